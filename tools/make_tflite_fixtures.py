"""Make int8 .tflite files with TensorFlow's own converter, as test data for edgenn's TFLite reader.

TensorFlow is used only here, never by edgenn or its tests. Run in an environment with TensorFlow and onnx:
    python -m venv tfenv && tfenv/bin/pip install tensorflow-cpu tf-keras onnx
    tfenv/bin/python tools/make_tflite_fixtures.py
Writes tests/data/tflite/<name>.tflite and <name>_inputs.npy (int8 inputs in the model's own
quantization), and tests/data/conformance/: the same kinds of model under the converter's other settings
(per-tensor weights, per-tensor dense layers, float input/output, 16x8 activations) plus an int8 LSTM
that edgenn must refuse by name (tf_keras is needed for it: pip install tf-keras). Also `tf_digits_cnn.tflite`: the bundled digits CNN (weights read from models/) converted by
TFLiteConverter, for comparing file sizes with edgenn's export.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "tflite"
SEED = 0


def keras_models() -> dict[str, tf.keras.Model]:
    layers = tf.keras.layers
    return {
        "keras_cnn": tf.keras.Sequential(
            [
                layers.Input((12, 12, 3)),
                layers.Conv2D(8, 3, padding="same", activation="relu"),
                layers.MaxPooling2D(2),
                layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu6"),
                layers.Flatten(),
                layers.Dense(10),
                layers.Softmax(),
            ]
        ),
        "keras_depthwise": tf.keras.Sequential(
            [
                layers.Input((16, 16, 4)),
                layers.DepthwiseConv2D(3, padding="same", activation="relu"),
                layers.Conv2D(8, 1, activation="relu"),
                layers.AveragePooling2D(2),
                layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same"),
                layers.Activation("tanh"),
                layers.Flatten(),
                layers.Dense(5, activation="sigmoid"),
            ]
        ),
        "keras_mlp": tf.keras.Sequential(
            [
                layers.Input((20,)),
                layers.Dense(32, activation="relu"),
                layers.Dense(16),
                layers.LeakyReLU(0.2),
                layers.Dense(4),
            ]
        ),
    }


def convert(
    model: tf.keras.Model,
    calibration: np.ndarray,
    int8_io: bool = True,
    wide: bool = False,
    **private: bool,
) -> bytes:
    """Full-integer conversion; `wide` for 16x8 (int16 activations, int8 weights), `private` sets the
    converter's underscore switches (e.g. _experimental_disable_per_channel=True)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[None]] for x in calibration)
    ops = tf.lite.OpsSet
    converter.target_spec.supported_ops = [
        ops.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        if wide
        else ops.TFLITE_BUILTINS_INT8
    ]
    if int8_io:
        converter.inference_input_type = tf.int16 if wide else tf.int8
        converter.inference_output_type = tf.int16 if wide else tf.int8
    for key, value in private.items():
        setattr(converter, key, value)
    return converter.convert()


def input_int8(data: bytes, x: np.ndarray) -> np.ndarray:
    """x in the model's input type: quantized for int8/int16 inputs, as it is for float ones."""
    detail = tf.lite.Interpreter(model_content=data).get_input_details()[0]
    dtype, (scale, zero) = np.dtype(detail["dtype"]), detail["quantization"]
    if dtype == np.float32:
        return x.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale) + zero, info.min, info.max).astype(dtype)


def digits_cnn_in_keras() -> tf.keras.Model:
    """The bundled digits CNN rebuilt in Keras from its ONNX weights (BatchNorm folded as edgenn does)."""
    inits = {
        t.name: numpy_helper.to_array(t)
        for t in onnx.load(str(ROOT / "models" / "digits_cnn.onnx")).graph.initializer
    }

    def bn_fold(conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
        w, b = inits[f"{conv}.weight"], inits[f"{conv}.bias"]
        g, beta, mean, var = (
            inits[f"{bn}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")
        )
        m = g / np.sqrt(var + 1e-5)
        return w * m[:, None, None, None], (b - mean) * m + beta

    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            layers.Input((8, 8, 1)),
            layers.Conv2D(16, 3, padding="same", activation="relu"),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, padding="same", activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(10),
        ]
    )
    weights = [bn_fold("0", "1"), bn_fold("3", "4"), (inits["7.weight"], inits["7.bias"])]
    for layer, (w, b) in zip([m for m in model.layers if isinstance(m, layers.Conv2D)], weights):
        layer.set_weights([np.transpose(w, (2, 3, 1, 0)), b])  # OIHW -> HWIO
    model.layers[-1].set_weights([inits["11.weight"].T, inits["11.bias"]])
    return model


def residual_model(softmax: bool = True) -> tf.keras.Model:
    """What the sequential stacks lack: ADD with two scales, CONCATENATION, PAD, MEAN, strided depthwise."""
    layers = tf.keras.layers
    x = layers.Input((16, 16, 3))
    a = layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    b = layers.Conv2D(8, 3, padding="same")(a)
    c = layers.ReLU()(layers.Add()([a, b]))
    d = layers.Conv2D(8, 1, activation="relu6")(c)
    e = layers.MaxPooling2D(2)(layers.Concatenate()([c, d]))
    f = layers.DepthwiseConv2D(3, strides=2)(layers.ZeroPadding2D(1)(e))
    y = layers.Dense(6)(layers.GlobalAveragePooling2D()(f))
    return tf.keras.Model(x, layers.Softmax()(y) if softmax else y)


def lstm_model() -> tf.keras.Model:
    """Keras 2 (tf_keras): its LSTM converts to the fused UNIDIRECTIONAL_SEQUENCE_LSTM, Keras 3's to a
    WHILE loop (and its int8 calibration crashes)."""
    import tf_keras

    layers = tf_keras.layers
    return tf_keras.Sequential(
        [layers.Input((8, 4), batch_size=1), layers.LSTM(6), layers.Dense(3)]
    )


PER_TENSOR = {"_experimental_disable_per_channel": True}
DENSE_PER_TENSOR = {"_experimental_disable_per_channel_quantization_for_dense_layers": True}
# name -> (model, conversion settings): the converter's settings a user may have picked
CONFORMANCE = {
    "residual_int8": ("residual", {}),
    "residual_per_tensor": ("residual", PER_TENSOR),
    "residual_float_io": ("residual", {"int8_io": False}),
    "residual_16x8": ("residual", {"wide": True}),
    "residual_logits_16x8": ("residual_logits", {"wide": True}),  # the same without its softmax
    "cnn_per_tensor": ("keras_cnn", PER_TENSOR),
    "depthwise_per_tensor": ("keras_depthwise", PER_TENSOR),
    "mlp_dense_per_tensor": ("keras_mlp", DENSE_PER_TENSOR),
    "mlp_float_io": ("keras_mlp", {"int8_io": False}),
    "cnn_16x8": ("keras_cnn", {"wide": True}),
    "depthwise_16x8": ("keras_depthwise", {"wide": True}),
    "mlp_16x8": ("keras_mlp", {"wide": True}),
    "lstm_int8": ("lstm", {}),  # edgenn must refuse it, naming UNIDIRECTIONAL_SEQUENCE_LSTM
}


def conformance() -> None:
    """tests/data/conformance/: one file per converter setting, with 16 inputs in its input type."""
    out = ROOT / "tests" / "data" / "conformance"
    out.mkdir(parents=True, exist_ok=True)
    models = {
        **keras_models(),
        "residual": residual_model(),
        "residual_logits": residual_model(softmax=False),
        "lstm": lstm_model(),
    }
    for name, (model_name, settings) in CONFORMANCE.items():
        rng = np.random.default_rng(SEED)
        tf.keras.utils.set_random_seed(SEED)
        model = models[model_name]
        shape = model.input_shape[1:]
        data = convert(model, rng.uniform(-1, 1, (64, *shape)).astype(np.float32), **settings)
        (out / f"{name}.tflite").write_bytes(data)
        x = rng.uniform(-1, 1, (16, *shape)).astype(np.float32)
        np.save(out / f"{name}_inputs.npy", input_int8(data, x))
        print(f"wrote conformance/{name}.tflite ({len(data)} B)")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    tf.keras.utils.set_random_seed(SEED)
    for name, model in keras_models().items():
        shape = model.input_shape[1:]
        calibration = rng.uniform(-1, 1, (64, *shape)).astype(np.float32)
        data = convert(model, calibration)
        (OUT / f"{name}.tflite").write_bytes(data)
        np.save(
            OUT / f"{name}_inputs.npy",
            input_int8(data, rng.uniform(-1, 1, (16, *shape)).astype(np.float32)),
        )
        print(f"wrote {name}.tflite ({len(data)} B)")
    digits = np.load(ROOT / "models" / "digits_cnn_test.npz")["x"].transpose(0, 2, 3, 1)
    data = convert(digits_cnn_in_keras(), digits)
    (OUT / "tf_digits_cnn.tflite").write_bytes(data)
    print(f"wrote tf_digits_cnn.tflite ({len(data)} B)")
    conformance()


if __name__ == "__main__":
    main()
