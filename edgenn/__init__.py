"""edgenn: trained ONNX networks compiled to integer graphs for microcontrollers, the Raspberry Pi and
neuromorphic-style devices."""

from edgenn.errors import (
    EdgennError,
    ExternalDataError,
    GraphCycleError,
    GraphError,
    InputError,
    ModelFormatError,
    ShapeError,
    UnsupportedOpError,
    UnsupportedOpsetError,
)
from edgenn.frontend.onnx import load_onnx
from edgenn.ir import DType, Graph, Node, QParams, TensorType, Value, verify
from edgenn.passes import PIPELINE, optimize, run_pipeline
from edgenn.reference import run_reference

__version__ = "0.1.0"

__all__ = [
    "DType",
    "EdgennError",
    "ExternalDataError",
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
