"""edgenn: trained ONNX networks compiled to integer graphs for microcontrollers, the Raspberry Pi and
neuromorphic-style devices."""

from edgenn.errors import (
    EdgennError,
    ExternalDataError,
    FootprintError,
    GraphCycleError,
    GraphError,
    InputError,
    MemoryLimitError,
    MissingDependencyError,
    ModelFormatError,
    QuantizationError,
    ShapeError,
    UnsupportedOpError,
    UnsupportedOpsetError,
)

__version__ = "0.1.0"

# Everything past the errors loads on first use (PEP 562): onnx and numba cost seconds to import,
# which `edgenn --help`, a Ctrl-C during start-up and a Pi's first run should not pay.
_LAZY = {
    "load_onnx": "edgenn.frontend.onnx",
    "DType": "edgenn.ir",
    "Graph": "edgenn.ir",
    "Node": "edgenn.ir",
    "QParams": "edgenn.ir",
    "TensorType": "edgenn.ir",
    "Value": "edgenn.ir",
    "verify": "edgenn.ir",
    "PIPELINE": "edgenn.passes",
    "optimize": "edgenn.passes",
    "run_pipeline": "edgenn.passes",
    "run_reference": "edgenn.reference",
    "Converted": "edgenn.compile",
    "convert": "edgenn.compile",
    "memory_limit": "edgenn.limits",
    "calibrate": "edgenn.quant.calibrate",
    "quantize_graph": "edgenn.quant.quantize",
    "Runtime": "edgenn.runtime",
    "load_graph": "edgenn.serialize",
    "save_graph": "edgenn.serialize",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'edgenn' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "Converted",
    "DType",
    "QuantizationError",
    "Runtime",
    "calibrate",
    "convert",
    "load_graph",
    "memory_limit",
    "quantize_graph",
    "save_graph",
    "EdgennError",
    "ExternalDataError",
    "FootprintError",
    "MemoryLimitError",
    "MissingDependencyError",
    "Graph",
    "GraphCycleError",
    "GraphError",
    "InputError",
    "ModelFormatError",
    "Node",
    "PIPELINE",
    "QParams",
    "ShapeError",
    "TensorType",
    "UnsupportedOpError",
    "UnsupportedOpsetError",
    "Value",
    "__version__",
    "load_onnx",
    "optimize",
    "run_pipeline",
    "run_reference",
    "verify",
]
