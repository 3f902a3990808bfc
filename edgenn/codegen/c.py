"""C code generation: a fixed-point graph as plain C99 for devices with no Python and no interpreter.

The compiler's program (the rows the Numba runtime runs, and its arena plan) becomes const data; the
model's inference function calls one C kernel per row, in order, over one static arena. So the C and the
Numba runtime share the Prepare step and the memory plan, and differ only in the kernel loops, which are
written to give the same integers (tests compare the two on whole test sets).

Files (all under OUTDIR/c/): `<name>_model.h` (API, shapes, quantization parameters, sizes),
`<name>_model.c` (rows, arena, invoke), `<name>_weights.c` (const blobs: stay in flash), and the kernel
sources the model uses (from edgenn/codegen/c_kernels/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgenn.errors import FootprintError, UnsupportedOpError
from edgenn.ir import DType, Graph, Node
from edgenn.ops import KERNELS, kernel_for
from edgenn.ops.conv import CONV_GATHER, CONV_ROW
from edgenn.runtime.program import Program, build_program, runs_kernel
from edgenn.sim.targets import Target

KERNEL_DIR = Path(__file__).with_name("c_kernels")
COMMON = ("edgenn_kernels.h", "edgenn_dot.h")
FIXED_POINT = "fixed_point.c"  # gemmlowp exp / reciprocal, for the ops that need them

FIXED_POINT_USERS = {"activation.c", "softmax.c"}


def c_kernels() -> dict[int, tuple[str, str]]:
    """Program opcode -> (C function, source file), from the kernels' declarations."""
    return {
        k.opcode: (k.c_function, k.c_source)
        for k in KERNELS.values()
        if k.c_function is not None and k.c_source is not None
    }


C_KERNELS = c_kernels()


def rows_header() -> str:
    """Every C kernel's row fields as #defines (EDGENN_<LAYOUT>_<FIELD>), from the layouts the
    kernels declare in their op files: the C reads the same named indices as the Numba kernel."""
    layouts: dict[str, tuple[Any, list[str]]] = {}
    for k in KERNELS.values():
        if k.c_function is not None:
            name = type(k.layout).__name__
            layouts.setdefault(name, (k.layout, []))[1].append(k.name)
    lines = [
        "/* Program row fields by name, generated from the kernels' declared layouts (edgenn/ops). */",
        "#ifndef EDGENN_ROWS_H",
        "#define EDGENN_ROWS_H",
    ]
    for name, (layout, kernels) in sorted(layouts.items()):
        lines.append(f"\n/* {name}: kernels {', '.join(kernels)} */")
        for field, index in zip(layout._fields, layout):
            lines.append(f"#define EDGENN_{name.upper()}_{field.upper()} {index}")
    return "\n".join([*lines, "\n#endif", ""])


def row_fields(opcode: int) -> tuple[str, ...]:
    """What each field of a row means (its kernel's declared layout), for the rows' comments."""
    return tuple(kernel_for(opcode).layout._fields)


INT32 = np.iinfo(np.int32)


def c_identifier(text: str, fallback: str = "model") -> str:
    """A valid, harmless C identifier from any name: [a-z0-9_], not starting with a digit."""
    ident = re.sub(r"[^0-9a-zA-Z_]+", "_", text).strip("_").lower()[:48].rstrip("_")
    if not ident:
        ident = fallback
    return f"m_{ident}" if ident[0].isdigit() else ident


def c_comment(text: str) -> str:
    """Text safe inside /* */: no comment delimiters, no trigraphs or line splices, printable ASCII."""
    return re.sub(r"[^0-9A-Za-z _.,:;()\[\]<>=+-]", "_", text)[:80]


@dataclass(frozen=True)
class CSources:
    name: str  # the C prefix of every public symbol
    files: dict[str, str]  # file name -> contents
    program: Program
    arena_bytes: int
    flash_data_bytes: int  # const blobs and rows


def kernel_steps(graph: Graph) -> list[Node]:
    return [n for n in graph.nodes if runs_kernel(n.op)]


def check_supported(graph: Graph, program: Program) -> None:
    missing = [
        f"'{node.name}' ({node.op}{', 16x8' if _is_wide(graph, node) else ''})"
        for node, row in zip(kernel_steps(graph), program.rows)
        if int(row[0]) not in C_KERNELS
    ]
    if missing:
        raise UnsupportedOpError(
            f"no C kernel for {len(missing)} node(s): {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
        )


def _is_wide(graph: Graph, node: Node) -> bool:
    return any(graph.type_of(t).dtype == DType.INT16 for t in (*node.inputs, *node.outputs))


def _int32_values(values: np.ndarray, what: str) -> np.ndarray:
    if values.size and (values.min() < INT32.min or values.max() > INT32.max):
        raise UnsupportedOpError(f"{what} does not fit int32: the C backend needs int32 fields")
    return values.astype(np.int64)


def _array(ctype: str, name: str, values: np.ndarray, per_line: int = 16) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)] or ["0"]
    lines = [", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"{ctype} {name}[{len(flat)}] = {{\n    {body}\n}};\n"


def generate_c(
    graph: Graph,
    name: str,
    rounding: str = "double",
    dsp: bool = False,
    program: Program | None = None,
) -> CSources:
    """The C sources of a fixed-point graph (int8 activations only). rounding: TFLM's double rounding
    or single; dsp: use the Cortex-M DSP extension (SMLAD) where the compiler reports it; program:
    the graph's program when the caller built it already."""
    prefix = c_identifier(name)
    program = program or build_program(graph)
    check_supported(graph, program)
    steps = kernel_steps(graph)
    rows = _int32_values(program.rows, "a program row")
    lengths, tap_sums = _with_tap_sums(program, rows)
    kernels = sorted({C_KERNELS[int(row[0])][1] for row in rows})
    if FIXED_POINT_USERS.intersection(kernels):
        kernels.append(FIXED_POINT)
    files = {f: (KERNEL_DIR / f).read_text() for f in (*COMMON, *kernels)}
    files[f"{prefix}_weights.c"] = _weights_source(prefix, program, tap_sums)
    files[f"{prefix}_model.h"] = _header(prefix, graph, program, name)
    files["edgenn_config.h"] = _config(rounding, dsp)
    files["edgenn_rows.h"] = rows_header()
    files[f"{prefix}_model.c"] = _model_source(prefix, graph, program, steps, rows, lengths)
    flash_data = program.weights.size + 4 * (
        program.biases.size + 2 * program.multipliers.size + tap_sums.size + sum(lengths)
    )
    return CSources(prefix, files, program, max(program.plan.size, 16), flash_data)


def _with_tap_sums(program: Program, rows: np.ndarray) -> tuple[list[int], np.ndarray]:
    """C-only data for convolutions in GATHER mode: the weight sum of every (channel, tap), so a tap
    in the padding adds zp_in * sum(w) from a table instead of summing weights at run time. Its offset
    goes into the row's first free field, -1 without padding (the Numba kernel fills padding with zp_in
    instead)."""
    lengths, blocks, size = list(program.row_lengths), [], 0
    for i, row in enumerate(rows):
        if row[0] != CONV_GATHER.opcode:
            continue
        lengths[i] = CONV_ROW.tap_sums + 1
        row[CONV_ROW.tap_sums] = -1  # no padding: no table
        if _has_padding(row):
            f = CONV_ROW
            w, c, oc, kh, kw, stride = (int(row[i]) for i in (f.w, f.c, f.oc, f.kh, f.kw, f.stride))
            weights = program.weights[w : w + oc * stride].astype(np.int64).reshape(oc, stride)
            blocks.append(weights[:, : kh * kw * c].reshape(oc * kh * kw, c).sum(axis=1))
            row[CONV_ROW.tap_sums] = size
            size += blocks[-1].size
    return lengths, np.concatenate(blocks) if blocks else np.zeros(1, np.int64)


def _has_padding(row: np.ndarray) -> bool:
    """Whether some window of a conv row reaches outside its input (fields of ops/conv.py)."""
    f = CONV_ROW
    fields = (f.h, f.width, f.oh, f.ow, f.kh, f.kw, f.sh, f.sw, f.dh, f.dw, f.pad_top, f.pad_left)
    h, width, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl = (int(row[i]) for i in fields)
    bottom = (oh - 1) * sh - pt + (kh - 1) * dh >= h
    right = (ow - 1) * sw - pl + (kw - 1) * dw >= width
    return pt > 0 or pl > 0 or bottom or right


def _weights_source(prefix: str, program: Program, tap_sums: np.ndarray) -> str:
    mults = _int32_values(program.multipliers, "a multiplier")
    shifts = _int32_values(program.shifts, "a shift")
    return (
        f"/* {prefix}: constant data (int8 weights, int32 biases, Q31 multipliers and shifts), made by "
        "edgenn. const keeps it in flash. */\n#include <stdint.h>\n\n"
        + _array("const int8_t", f"{prefix}_weights", program.weights)
        + "\n"
        + _array("const int32_t", f"{prefix}_biases", program.biases, 8)
        + "\n"
        + _array("const int32_t", f"{prefix}_multipliers", mults, 8)
        + "\n"
        + _array("const int32_t", f"{prefix}_shifts", shifts)
        + "\n"
        + _array("const int32_t", f"{prefix}_tap_sums", tap_sums)
    )


def _qparams(graph: Graph, names: tuple[str, ...]) -> tuple[float, int]:
    qp = graph.type_of(names[0]).qparams
    assert qp is not None
    return float(qp.scale[0]), int(qp.zero_point[0])


def _header(prefix: str, graph: Graph, program: Program, name: str) -> str:
    upper = prefix.upper()
    guard = f"{upper}_MODEL_H"
    in_scale, in_zp = _qparams(graph, graph.inputs)
    out_scale, out_zp = _qparams(graph, graph.outputs)
    shapes = []
    for kind, names in (("input", graph.inputs), ("output", graph.outputs)):
        for tensor in names:
            shape = "x".join(map(str, graph.type_of(tensor).shape))
            shapes.append(f" * {kind} {c_comment(tensor)}: int8 [{shape}]")
    shape_lines = "\n".join(shapes)
    return f"""/* {c_comment(name)}: int8 inference in plain C99, made by edgenn.
{shape_lines}
 * Several inputs (outputs) are passed concatenated in this order. Activations live in one static
 * arena of {upper}_ARENA_SIZE bytes; weights are const.
 * Build: compile every .c file of this folder with your application (C99), e.g.
 *   cc -std=c99 -O2 -c *.c
 * On a Cortex-M with the DSP extension the SMLAD path is used unless -DEDGENN_USE_DSP=0.
 */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#define {upper}_INPUT_SIZE {int(program.input_sizes.sum())}
#define {upper}_OUTPUT_SIZE {int(program.output_sizes.sum())}
#define {upper}_ARENA_SIZE {max(program.plan.size, 16)}
#define {upper}_INPUT_SCALE {in_scale!r}f
#define {upper}_INPUT_ZERO_POINT {in_zp}
#define {upper}_OUTPUT_SCALE {out_scale!r}f
#define {upper}_OUTPUT_ZERO_POINT {out_zp}

/* Runs the model once: int8 in, int8 out. Returns 0. */
int {prefix}_invoke(const int8_t *input, int8_t *output);

/* Float convenience (outside the integer path): q = clamp(round(x / scale) + zero_point). */
static inline void {prefix}_quantize_input(const float *x, int8_t *q) {{
    int i;
    for (i = 0; i < {upper}_INPUT_SIZE; i++) {{
        const float v = x[i] / {upper}_INPUT_SCALE;
        long r = (long)(v >= 0.0f ? v + 0.5f : v - 0.5f) + {upper}_INPUT_ZERO_POINT;
        q[i] = (int8_t)(r < -128 ? -128 : (r > 127 ? 127 : r));
    }}
}}

static inline void {prefix}_dequantize_output(const int8_t *q, float *y) {{
    int i;
    for (i = 0; i < {upper}_OUTPUT_SIZE; i++) {{
        y[i] = (float)(q[i] - {upper}_OUTPUT_ZERO_POINT) * {upper}_OUTPUT_SCALE;
    }}
}}

#endif
"""


def _model_source(
    prefix: str,
    graph: Graph,
    program: Program,
    steps: list[Node],
    rows: np.ndarray,
    lengths: list[int],
) -> str:
    upper = prefix.upper()
    row_arrays, calls = [], []
    for i, (node, row, width) in enumerate(zip(steps, rows, lengths)):
        kernel = C_KERNELS[int(row[0])][0]
        label = f"{c_comment(node.name)} ({c_comment(node.op)}) -> {c_comment(node.outputs[0])}"
        row_arrays.append(
            f"/* {label}\n{_row_legend(row[:width])} */\n"
            + _array("static const int32_t", f"step_{i}", row[:width], 12)
        )
        calls.append(f"    {kernel}(&context, step_{i});")
    copies_in = [
        f"    memcpy(arena + {int(off)}, input + {int(pos)}, {int(size)});"
        for off, size, pos in _io(program.input_offsets, program.input_sizes)
    ]
    copies_out = [
        f"    memcpy(output + {int(pos)}, arena + {int(off)}, {int(size)});"
        for off, size, pos in _io(program.output_offsets, program.output_sizes)
    ]
    unused = [] if calls else ["    (void)context; /* a model of reshapes only */"]
    body = "\n".join([*copies_in, *unused, *calls, *copies_out])
    return f"""/* {prefix}: the graph as straight-line kernel calls over one static arena, made by edgenn.
 * Each step's row holds its arena offsets, shapes, zero points and clamp bounds (see the kernel). */
#include <string.h>

#include "{prefix}_model.h"
#include "edgenn_kernels.h"

extern const int8_t {prefix}_weights[];
extern const int32_t {prefix}_biases[];
extern const int32_t {prefix}_multipliers[];
extern const int32_t {prefix}_shifts[];
extern const int32_t {prefix}_tap_sums[];

#if defined(__GNUC__)
static int8_t arena[{upper}_ARENA_SIZE] __attribute__((aligned(16)));
#else
static int8_t arena[{upper}_ARENA_SIZE];
#endif

static const edgenn_context context = {{
    arena,
    {prefix}_weights,
    {prefix}_biases,
    {prefix}_multipliers,
    {prefix}_shifts,
    {prefix}_tap_sums,
}};

{chr(10).join(row_arrays)}
int {prefix}_invoke(const int8_t *input, int8_t *output) {{
{body}
    return 0;
}}
"""


def _row_legend(row: np.ndarray) -> str:
    """* field=value pairs, wrapped, naming what the kernel reads from each position."""
    names = row_fields(int(row[0]))
    pairs = [f"{names[i] if i < len(names) else i}={int(v)}" for i, v in enumerate(row)]
    lines, line = [], " *"
    for pair in pairs:
        if len(line) + len(pair) > 98:
            lines.append(line)
            line = " *"
        line += " " + pair
    return "\n".join([*lines, line])


def _config(rounding: str, dsp: bool) -> str:
    single = "#define EDGENN_SINGLE_ROUNDING\n" if rounding == "single" else ""
    return f"""/* Build choices of this model, made by edgenn: the requantization rounding (TFLM's double rounding
 * unless EDGENN_SINGLE_ROUNDING) and the Cortex-M DSP path, on by the target profile (override with
 * -DEDGENN_USE_DSP=0); both paths give the same integers. */
#ifndef EDGENN_CONFIG_H
#define EDGENN_CONFIG_H
{single}#ifndef EDGENN_USE_DSP
#define EDGENN_USE_DSP {int(dsp)}
#endif
#if EDGENN_USE_DSP && defined(__ARM_FEATURE_DSP)
#define EDGENN_ARM_DSP
#endif
#endif
"""


def _io(offsets: np.ndarray, sizes: np.ndarray) -> list[tuple[int, int, int]]:
    positions = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
    return list(zip(offsets.tolist(), sizes.tolist(), positions.tolist()))


def check_fits(sources: CSources, graph: Graph, target: Target) -> None:
    """Refuse (before anything is written) a model whose arena exceeds the target's RAM or whose
    constants exceed its flash; 0 in a profile means no limit."""
    _check_sizes(sources.program, sources.arena_bytes, sources.flash_data_bytes, graph, target)


def check_fits_early(program: Program, graph: Graph, target: Target) -> None:
    """The same check from the program alone, before any C is generated or compiled: the arena is
    the plan's, and the constants are at least the weight, bias and multiplier blobs."""
    blobs = program.weights.size + 4 * program.biases.size + 8 * program.multipliers.size
    _check_sizes(program, program.plan.size, blobs, graph, target)


def _check_sizes(
    program: Program, arena_bytes: int, constant_bytes: int, graph: Graph, target: Target
) -> None:
    plan = program.plan
    problems = []
    if target.ram_bytes and arena_bytes > target.ram_bytes:
        largest = sorted(plan.buffers, key=lambda b: (-b.size, b.name))[:3]
        names = ", ".join(f"'{c_comment(b.name)}' {b.size:,} B" for b in largest)
        problems.append(
            f"arena {arena_bytes:,} B exceeds {target.name}'s RAM "
            f"{target.ram_bytes:,} B (largest tensors: {names})"
        )
    if target.flash_bytes and constant_bytes > target.flash_bytes:
        consts = sorted(
            (v for v in graph.values.values() if v.is_const), key=lambda v: (-v.type.nbytes, v.name)
        )[:3]
        names = ", ".join(f"'{c_comment(v.name)}' {v.type.nbytes:,} B" for v in consts)
        problems.append(
            f"constants {constant_bytes:,} B exceed {target.name}'s flash "
            f"{target.flash_bytes:,} B (largest: {names})"
        )
    if problems:
        raise FootprintError("; ".join(problems) + " (--force writes the code anyway)")
