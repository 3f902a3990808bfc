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
from edgenn.frontend.onnx import load_onnx
from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value, verify
from edgenn.passes import PIPELINE, optimize, run_pipeline
from edgenn.reference import run_reference

__version__ = "0.1.0"

# the integer side: imported after __version__ (the CLI module reads it)
from edgenn.compile import Converted, convert  # noqa: E402
from edgenn.limits import memory_limit  # noqa: E402
from edgenn.quant.calibrate import calibrate  # noqa: E402
from edgenn.quant.quantize import quantize_graph  # noqa: E402
from edgenn.runtime import Runtime  # noqa: E402
from edgenn.serialize import load_graph, save_graph  # noqa: E402

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
