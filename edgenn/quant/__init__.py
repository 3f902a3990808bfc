"""Integer quantization: fixed-point arithmetic, calibration observers, and the float -> int8 graph rewrite."""
