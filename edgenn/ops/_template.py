"""TEMPLATE: copy this file to edgenn/ops/<family>.py (a name without the leading _) to add an op.

Everything edgenn knows about an op lives in its family's file; the registry derives every backend
table from what the file registers, so nothing else is edited. Files starting with _ are not loaded
as families: this one is imported only by tests/test_template_op.py, which runs it end to end (the
runtime against the float reference) so the template keeps working. `edgenn/ops/resize.py` is a
complete real example (ONNX reader, a program table, C, TFLite both ways).

This skeleton is a unary elementwise op computed in int8 through a 256-entry lookup table made at
prepare time from the float reference: y = q_out(f(dq_in(x))). Replace `TemplateSquare` and `f`.
To finish a real op, in this order:
  1. ONNX reader (`from_onnx`, `onnx_ops`) and `examples`: tests/test_ops_contract.py then checks it
     against onnxruntime, tests/test_quantization.py runs its int8 kernel against tests/int8_spec.py
     (add the op's independent spec there), tests/test_tflite.py and tests/test_codegen_c.py run
     the examples on TFLM and in gcc-built C.
  2. C kernel: a function `void edgenn_<name>(const edgenn_context *ctx, const int32_t *row)` in
     codegen/c_kernels/<family>.c, reading fields as EDGENN_<LAYOUT>_<FIELD> and tables as
     ctx-><table>; name it in register_kernel(c=(function, file)). Its declaration is generated.
  3. TFLite: register_tflite(op, lower=..., versions={BUILTIN: version}) and
     register_tflite_reader(BUILTIN, read=...), or an EXCLUDES reason in tests/test_registry.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from edgenn.ir import Attrs, Graph, Node
from edgenn.ops import (
    Int8Spec,
    Layout,
    OpSpec,
    register,
    register_kernel,
    register_table,
    row_layout,
    same_type,
)
from edgenn.quant.fixed_point import quantize_value

if TYPE_CHECKING:
    from edgenn.runtime.program import ProgramBuilder


def f(x: np.ndarray) -> np.ndarray:
    """The op on real numbers (float32 in, float32 out): the one place its math is written."""
    return np.square(x)


# ---- shapes and float reference (numpy: the source of truth every backend is checked against) ----


def reference_template(inputs: Sequence[np.ndarray | None], attrs: Attrs) -> list[np.ndarray]:
    x = inputs[0]
    assert x is not None
    return [f(x).astype(x.dtype, copy=False)]


# ---- int8: prepare fills the row by field name; the kernel reads the same names ----


def prepare_template(node: Node, graph: Graph, b: ProgramBuilder) -> list[int]:
    """The row, and the table: entry q - (-128) holds the int8 output for input q."""
    (s_in, zp_in), (s_out, zp_out) = b.scale_zp(node.inputs[0]), b.scale_zp(node.outputs[0])
    real = ((np.arange(-128, 128) - zp_in) * np.float32(s_in)).astype(np.float32)
    table = [max(-128, min(127, quantize_value(float(v), s_out, zp_out))) for v in f(real)]
    return TEMPLATE.row(
        x=b.arena(node.inputs[0]),
        y=b.arena(node.outputs[0]),
        n=int(np.prod(b.shape(node.inputs[0]))),
        table=b.table("template_lut", np.array(table)),
    )


@njit(cache=True)
def template_int8(row, arena, weights, biases, mults, shifts, rounding, patch, acc, lut):  # type: ignore[no-untyped-def]
    """The kernel: the shared arguments, then the tables it declares (here one), in that order."""
    r = TEMPLATE_ROW
    x, y, n, table = row[r.x], row[r.y], row[r.n], row[r.table]
    for i in range(n):  # element i is read before it is written: in_place below is safe
        arena[y + i] = lut[table + arena[x + i] + 128]


register(
    OpSpec(
        "TemplateSquare",
        same_type,
        reference_template,
        layout=Layout.ELEMENTWISE,
        int8=Int8Spec(in_place=True, prepare=prepare_template),
    )
)

# ---- registration: a table, the row layout (declared once, by name) and the kernel ----
register_table("template_lut", np.int8, "256 outputs per TemplateSquare node")
TEMPLATE_ROW = row_layout("template", "x y n table")
TEMPLATE = register_kernel("template", template_int8, TEMPLATE_ROW, tables=("template_lut",))
