"""Exception classes raised by edgenn. Users catch `EdgennError`; each child names one kind of bad input."""

from __future__ import annotations


class EdgennError(Exception):
    """Base of every error edgenn raises on bad input. The message is one line naming what and where."""


class ModelFormatError(EdgennError):
    """The file is not a readable model (not ONNX, truncated, malformed)."""


class UnsupportedOpsetError(EdgennError):
    """The model's ONNX opset is outside the range edgenn reads."""


class UnsupportedOpError(EdgennError):
    """A node uses an operator (or an attribute value) edgenn does not implement."""


class ShapeError(EdgennError):
    """A tensor shape is invalid (zero or negative dimension) or inconsistent with its use."""


class ExternalDataError(EdgennError):
    """An ONNX external-data reference is missing or points outside the model's folder."""


class GraphError(EdgennError):
    """The graph is structurally invalid (undefined value, duplicate producer, bad attribute...)."""


class GraphCycleError(GraphError):
    """The graph's nodes form a cycle, so no execution order exists."""


class InputError(EdgennError):
    """Data given to a model (run inputs, calibration data) does not match what the model expects."""


class QuantizationError(EdgennError):
    """A graph cannot be quantized as asked (an op without an integer kernel, an accumulator that could
    overflow int32, ranges missing for a tensor)."""


class FootprintError(EdgennError):
    """A model does not fit its target: the arena exceeds the device's RAM or the constants its flash."""


class MissingDependencyError(EdgennError, ImportError):
    """An optional package a feature needs is not installed (the message names the pip extra)."""


class MemoryLimitError(EdgennError):
    """A tensor, padded copy, arena or scratch buffer would exceed the memory limit (a hostile or
    corrupt model); raise the limit with --max-memory when the model is genuinely that large."""
