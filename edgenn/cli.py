"""The `edgenn` command line: thin wrappers over the API. Bad input exits 2 with a one-line message."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from edgenn import __version__
from edgenn.errors import EdgennError, InputError

_debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgenn")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option(
    "--max-memory",
    default=None,
    metavar="SIZE",
    help="Largest tensor, padded copy, arena or scratch buffer a model may ask for (e.g. 4G). "
    "Default 1G.",
)
def cli(debug: bool, max_memory: str | None) -> None:
    """edgenn: compile trained ONNX networks for microcontrollers, the Raspberry Pi and neuromorphic devices."""
    global _debug
    _debug = debug
    if max_memory is not None:
        from edgenn.limits import parse_size, set_max_bytes

        set_max_bytes(parse_size(max_memory))


def _named_path(value: str) -> Path:
    """Paths must be given: an empty string would silently mean the current folder."""
    if not value.strip():
        raise click.BadParameter("give a path (an empty one would mean the current folder)")
    return Path(value)


def calib_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The calibration options shared by convert, eval and run."""
    options = [
        click.option(
            "--calib",
            default=None,
            metavar="DATA|random",
            help="Calibration data (.npz with array x, or .npy), or 'random'. "
            "Default: the model's bundled test set.",
        ),
        click.option(
            "--observer",
            type=click.Choice(["minmax", "percentile", "mse"]),
            default="minmax",
            show_default=True,
            help="How activation ranges are chosen from the calibration data.",
        ),
        click.option(
            "--percentile",
            default=99.99,
            show_default=True,
            type=click.FloatRange(min=0, max=100, min_open=True),
            help="Percentile for --observer percentile.",
        ),
        click.option(
            "--calib-samples",
            default=256,
            show_default=True,
            type=click.IntRange(min=1),
            help="Samples drawn for --calib random.",
        ),
        click.option(
            "--seed",
            default=0,
            show_default=True,
            type=click.IntRange(min=0),
            help="Seed for --calib random.",
        ),
        click.option(
            "--precision",
            type=click.Choice(["int8", "int16", "auto"]),
            default="int8",
            show_default=True,
            help="int8; int16 activations with int8 weights (16x8) wherever a layer has such a "
            "kernel; auto: promote the worst layers to 16x8 until --max-drop holds.",
        ),
        click.option(
            "--max-drop",
            default=0.5,
            show_default=True,
            type=click.FloatRange(min=0),
            help="With --precision auto: the accuracy drop allowed, in percentage points.",
        ),
    ]

    @functools.wraps(fn)
    def collapsed(**kwargs: Any) -> Any:
        names = (
            "calib",
            "observer",
            "percentile",
            "calib_samples",
            "seed",
            "precision",
            "max_drop",
        )
        calib_args = _calib(*(kwargs.pop(n) for n in names))
        return fn(**kwargs, calib_args=calib_args)

    for option in reversed(options):
        collapsed = option(collapsed)
    return collapsed


def _float_graph(model: Path, batch_size: int, optimized: bool):  # type: ignore[no-untyped-def]
    from edgenn.frontend.onnx import load_onnx
    from edgenn.passes import optimize

    graph = load_onnx(model, batch_size=batch_size)
    return optimize(graph) if optimized else graph


def _fixed_point(model: Path, calib: dict[str, Any]):  # type: ignore[no-untyped-def]
    """(Converted or None, fixed-point graph): an ONNX model is converted now; a .edgenn file is loaded."""
    from edgenn.compile import convert
    from edgenn.serialize import is_edgenn_file, load_graph

    if is_edgenn_file(model):
        return None, load_graph(model)
    if _is_tflite(model):
        from edgenn.frontend.tflite import load_tflite

        return None, load_tflite(model)
    converted = convert(model, **calib)
    return converted, converted.fixed_graph


def _is_tflite(model: Path) -> bool:
    """A TFLite file by its identifier, or by its name (so a damaged one is reported as TFLite)."""
    if not model.is_file():
        return False
    with open(model, "rb") as f:
        return f.read(8)[4:8] == b"TFL3" or model.suffix.lower() == ".tflite"


def _calib(
    calib: str | None,
    observer: str,
    percentile: float,
    calib_samples: int,
    seed: int,
    precision: str,
    max_drop: float,
) -> dict[str, Any]:
    return {
        "calib": calib,
        "observer": observer,
        "percentile": percentile,
        "samples": calib_samples,
        "seed": seed,
        "precision": precision,
        "max_drop": max_drop,
    }


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@click.option(
    "--raw", is_flag=True, help="Show the graph as imported, before fusion and layout passes."
)
@click.option(
    "--batch-size",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Batch size given to a symbolic or missing batch dimension.",
)
def inspect(model: Path, as_json: bool, raw: bool, batch_size: int) -> None:
    """Per-layer table of MODEL (ONNX, .tflite or .edgenn): op, output shape, parameters, MACs, totals."""
    from edgenn.serialize import is_edgenn_file
    from edgenn.summary import format_table, summary

    if _is_tflite(model) or is_edgenn_file(model):
        _, graph = _fixed_point(model, {})
    else:
        graph = _float_graph(model, batch_size, optimized=not raw)
    info = summary(graph)
    click.echo(json.dumps(info, indent=2) if as_json else format_table(info))


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    "outdir",
    required=True,
    type=click.Path(),
    callback=lambda ctx, param, value: _named_path(value),
    help="Folder for model.edgenn and report.json (created if missing).",
)
@calib_options
@click.option(
    "--data",
    default=None,
    type=click.Path(path_type=Path),
    help="Labelled data (.npz with x, y) for the accuracy report. "
    "Default: the bundled test set, or the calibration data if labelled.",
)
@click.option(
    "--emit",
    "emits",
    multiple=True,
    type=click.Choice(["tflite", "c"]),
    help="Also write OUTDIR/model.tflite (for TFLM and LiteRT) or OUTDIR/c/ (C99 sources for "
    "devices); repeat for both.",
)
@click.option(
    "--float-io",
    is_flag=True,
    help="The .tflite takes and returns float32 (QUANTIZE/DEQUANTIZE at its ends).",
)
@click.option(
    "--target",
    default=None,
    metavar="NAME|PROFILE.toml",
    help="Device the C code is for (targets/*.toml): checks RAM and flash, picks the DSP path.",
)
@click.option("--force", is_flag=True, help="Write the C code even if it does not fit --target.")
@click.option(
    "--c-prefix",
    default=None,
    metavar="NAME",
    help="Prefix of the C code's public symbols (default: from the model's file name).",
)
@click.option(
    "--c-arena",
    type=click.Choice(["static", "caller"]),
    default="static",
    show_default=True,
    help="The C arena: a static array, or the caller's (<name>_invoke takes it).",
)
@click.option(
    "--c-layout",
    type=click.Choice(["model", "nhwc"]),
    default="model",
    show_default=True,
    help="C input/output layout: the model file's, or channels-last (no transpose in the arena).",
)
def convert(
    model: Path,
    outdir: Path,
    calib_args: dict[str, Any],
    data: Path | None,
    emits: tuple[str, ...],
    float_io: bool,
    target: str | None,
    force: bool,
    c_prefix: str | None,
    c_arena: str,
    c_layout: str,
) -> None:
    """Quantize MODEL (ONNX) to an int8 fixed-point model: OUTDIR/model.edgenn and OUTDIR/report.json.
    An int8 .tflite (or .edgenn) model is taken as it is, e.g. to generate C from it."""
    from edgenn.compile import conversion_report, fixed_point_report
    from edgenn.fileio import check_output_folder, write_output_set
    from edgenn.sim.targets import load_target

    check_output_folder(outdir)  # these checks are cheap: before a calibration that is not
    c_options = {"prefix": c_prefix, "arena": c_arena, "layout": c_layout}
    _check_c_options(c_options, emits)
    profile = load_target(target) if target and "c" in emits else None
    converted, fixed = _fixed_point(model, {**calib_args, "data": data})
    if converted is None and "c" not in emits and "tflite" not in emits:
        raise InputError(
            f"{model}: already a fixed-point model; convert it with --emit c or --emit tflite"
        )
    report = (
        conversion_report(converted, model, calib_args["calib"], data)
        if converted is not None
        else fixed_point_report(fixed, model)
    )
    c_sources = (
        _c_sources(fixed, model, profile, force, report, c_options) if "c" in emits else None
    )
    tflite_bytes = None
    if "tflite" in emits:  # lowered before anything is written, so an unmappable op writes nothing
        from edgenn.codegen.tflite import to_tflite

        tflite_bytes = to_tflite(fixed, float_io)
        report["tflite_file_bytes"] = len(tflite_bytes)
    from edgenn.serialize import to_bytes

    artifacts: dict[str, bytes | dict[str, str]] = {"model.edgenn": to_bytes(fixed)}
    if tflite_bytes is not None:
        artifacts["model.tflite"] = tflite_bytes
    if c_sources is not None:
        artifacts["c"] = c_sources.files
    artifacts["report.json"] = json.dumps(report, indent=2).encode()
    written = write_output_set(outdir, artifacts)
    _print_report(report)
    click.echo(f"wrote {', '.join(map(str, written))}")


def _check_c_options(options: dict[str, Any], emits: tuple[str, ...]) -> None:
    """The --c-* options only mean something with --emit c; a prefix is checked before any work."""
    from edgenn.codegen.c import checked_prefix

    given = {"prefix": None, "arena": "static", "layout": "model"}
    if "c" not in emits and options != given:
        raise InputError("--c-prefix, --c-arena and --c-layout apply to --emit c")
    if options["prefix"] is not None:
        checked_prefix(options["prefix"])


def _c_sources(  # type: ignore[no-untyped-def]
    fixed: Any, model: Path, profile: Any, force: bool, report: dict[str, Any], options: dict
):
    """Generate (not yet write) the C code, checked against the target profile (if any) first."""
    from edgenn.codegen.c import check_fits, check_fits_early, generate_c
    from edgenn.passes.io_layout import changed_io, channels_last_io
    from edgenn.runtime.program import build_program

    graph = channels_last_io(fixed) if options["layout"] == "nhwc" else fixed
    program = build_program(graph)
    if profile is not None and not force:
        check_fits_early(program, graph, profile)
    sources = generate_c(
        graph,
        model.stem,
        dsp=profile.dsp if profile else True,
        program=program,
        prefix=options["prefix"],
        arena=options["arena"],
        cpu_flags=[f for f in profile.cflags if f.startswith("-m")] if profile else (),
    )
    if profile is not None and not force:
        check_fits(sources, graph, profile)
    report["c"] = {
        "name": sources.name,
        "arena": options["arena"],
        "channels_last_io": changed_io(fixed, graph),
        "target": profile.name if profile else None,
        "arena_bytes": sources.arena_bytes,
        "constant_bytes": sources.flash_data_bytes,
        "files": sorted(sources.files),
    }
    return sources


def _print_report(report: dict[str, Any]) -> None:
    qdq_complete = "qdq" in report and not report["qdq"]["calibrated_tensors"]
    if "calibration" in report and qdq_complete:  # nothing took calibrated ranges
        click.echo(f"calibration: none, {report['calibration']}")
    elif "calibration" in report:
        click.echo(
            f"calibration: {report['calibration']} ({report['calibration_samples']} samples, "
            f"{report['observer']} observer)"
        )
    if report.get("layers"):
        click.echo(f"{'layer':<28} {'op':<18} {'SQNR dB':>8} {'precision':>10}")
    for row in report.get("layers", []):
        click.echo(
            f"{row['layer']:<28} {row['op']:<18} {row['sqnr_db']:>8.2f} {row['precision']:>10}"
        )
    tflite_size = (
        f", .tflite {report['tflite_file_bytes']:,} B" if "tflite_file_bytes" in report else ""
    )
    click.echo(
        f"arena {report['arena_bytes']:,} B, weights {report['weight_bytes']:,} B, "
        f"model file {report['model_file_bytes']:,} B{tflite_size}"
    )
    if "c" in report:
        c = report["c"]
        click.echo(
            f"C code: {len(c['files'])} files, prefix {c['name']}, arena {c['arena_bytes']:,} B "
            f"({c['arena']}), constants {c['constant_bytes']:,} B"
            + (f", target {c['target']}" if c["target"] else "")
        )
        for old, new in c["channels_last_io"].items():
            click.echo(f"C input/output '{old}' is channels-last: '{new}'")
    evaluation = report.get("evaluation", {})
    if "int8_accuracy" in evaluation:
        click.echo(
            f"accuracy on {evaluation['samples']} samples: float {evaluation['float_accuracy']:.4f}, "
            f"{report['precision']['mode']} {evaluation['int8_accuracy']:.4f}"
        )


@cli.command(name="eval")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path),
    help="Labelled data: .npz with x and y.",
)
@calib_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_command(
    model: Path,
    data: Path,
    calib_args: dict[str, Any],
    as_json: bool,
) -> None:
    """Float and int8 accuracy of MODEL side by side (an ONNX model is converted first)."""
    from edgenn.compile import accuracy, evaluate, load_dataset
    from edgenn.runtime import Runtime

    x, labels = load_dataset(data)
    if labels is None:
        raise InputError(f"{data}: no integer labels (array y) to compute accuracy")
    if len(labels) != len(x):
        raise InputError(f"{data}: {len(labels)} labels for {len(x)} samples")
    converted, fixed = _fixed_point(
        model, {**calib_args, "calib": calib_args["calib"] or str(data), "data": data}
    )
    if converted is not None:
        result = evaluate(converted, x, labels)
    else:  # a fixed-point file carries no float graph
        result = {
            "samples": len(x),
            "float_accuracy": None,
            "int8_accuracy": accuracy(Runtime(fixed).run_float(x.astype(np.float32)), labels),
        }
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    float_text = "n/a" if result["float_accuracy"] is None else f"{result['float_accuracy']:.4f}"
    click.echo(
        f"{len(x)} samples: float accuracy {float_text}, int8 accuracy {result['int8_accuracy']:.4f}"
    )


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Input array (.npy, or .npz with array 'x'); repeat for several model inputs, in order.",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(),
    callback=lambda ctx, param, value: _named_path(value),
    help="Where to write the output (.npy; .npz for several outputs).",
)
@click.option(
    "--backend",
    type=click.Choice(["float", "int8"]),
    default=None,
    help="float: the numpy float reference; int8: the Numba fixed-point runtime. Default: int8 for "
    ".tflite and .edgenn files (they have no other), float for ONNX.",
)
@click.option(
    "--dequantize", is_flag=True, help="With --backend int8: write float outputs instead of int8."
)
@click.option(
    "--repeat",
    default=0,
    type=click.IntRange(min=0),
    help="With --backend int8: also time N single-sample runs of the first input and print "
    "their latency statistics.",
)
@calib_options
def run(
    model: Path,
    inputs: tuple[Path, ...],
    output: Path,
    backend: str | None,
    dequantize: bool,
    repeat: int,
    calib_args: dict[str, Any],
) -> None:
    """Run MODEL on the given inputs (any batch size) and save its outputs."""
    from edgenn.fileio import load_array, load_labels, save_arrays
    from edgenn.serialize import is_edgenn_file

    arrays = [load_array(path) for path in inputs]
    labels = load_labels(inputs[0]) if len(inputs) == 1 else None
    fixed_point = _is_tflite(model) or is_edgenn_file(model)
    backend = backend or ("int8" if fixed_point else "float")
    if backend == "float":
        from edgenn.reference import run_reference

        if fixed_point:
            raise InputError(
                f"{model}: a fixed-point model runs with --backend int8 (float runs ONNX models)"
            )

        results = run_reference(_float_graph(model, 1, optimized=False), arrays)
    else:
        results = _run_int8(model, arrays, dequantize, calib_args, repeat)
    save_arrays(output, results)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))} {v.dtype}" for k, v in results.items())
    click.echo(f"wrote {output} ({shapes})")
    first = next(iter(results.values()))
    if labels is not None and first.ndim == 2 and len(labels) == len(first):
        accuracy = float(np.mean(first.argmax(axis=1) == labels))
        click.echo(f"top-1 accuracy {accuracy:.4f} on {len(labels)} labelled samples ({backend})")


@cli.command()
@click.argument("models", nargs=-1, type=click.Path(path_type=Path))
def precompile(models: tuple[Path, ...]) -> None:
    """Compile edgenn's kernels into Numba's cache now (after installing, e.g. on a Raspberry Pi),
    so that no later first run waits for them; with MODELS (.edgenn or .tflite files), also their
    dispatches, so that those models start at once."""
    import time

    from edgenn.ops import KERNELS
    from edgenn.runtime import Runtime
    from edgenn.runtime.interpreter import host_features, refresh_kernel_cache
    from edgenn.runtime.precompile import compile_kernels
    from edgenn.runtime.precompile import precompile as compile_in_children

    graphs = [(model, _fixed_point(model, {})[1]) for model in models]  # bad files first
    start = time.perf_counter()
    refresh_kernel_cache()
    kernels, features = list(KERNELS.values()), host_features()
    compile_in_children(kernels, features)
    compile_kernels([k.name for k in kernels], features)  # what the children left: from the cache
    click.echo(f"{len(kernels)} kernels compiled in {time.perf_counter() - start:.1f} s")
    for model, fixed in graphs:
        begin = time.perf_counter()
        Runtime(fixed)
        click.echo(f"{model}: ready in {time.perf_counter() - begin:.1f} s")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data",
    default=None,
    type=click.Path(path_type=Path),
    help="Inputs (and labels) to time and score on. Default: the model's bundled test set.",
)
@click.option(
    "--seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Measuring time per backend and mode, over all rounds.",
)
@click.option(
    "--rounds",
    default=5,
    show_default=True,
    type=click.IntRange(min=1, max=1000),
    help="Rounds in which the backends take turns; ratios are of the medians over the rounds.",
)
@click.option(
    "--no-cold", is_flag=True, help="Skip the fresh-process (cold and warm cache) timing."
)
@calib_options
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def bench(
    model: Path,
    data: Path | None,
    seconds: float,
    rounds: int,
    no_cold: bool,
    calib_args: dict[str, Any],
    as_json: bool,
) -> None:
    """Latency and throughput of edgenn's int8 runtime beside LiteRT and onnxruntime (float and int8),
    one thread, in alternating rounds. MODEL is an ONNX file, or an int8 .tflite file (timed beside
    LiteRT running that file)."""
    from edgenn.bench import format_bench, run_bench

    results = run_bench(model, data, seconds, rounds, not no_cold, **calib_args)
    click.echo(json.dumps(results, indent=2) if as_json else format_bench(results))


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--data",
    default=None,
    type=click.Path(path_type=Path),
    help="Inputs: .npz with x (float, quantized with the model's input parameters, or integers), or .npy.",
)
@click.option(
    "--random",
    "random_count",
    default=0,
    type=click.IntRange(min=0),
    help="Instead of --data: N seeded random inputs over the input type's range.",
)
@click.option(
    "--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Seed for --random."
)
@click.option(
    "--rounding",
    type=click.Choice(["double", "single"]),
    default="double",
    show_default=True,
    help="Requantization rounding of edgenn's runtime (TFLM uses double).",
)
@click.option(
    "--c",
    "c_target",
    default=None,
    metavar="TARGET",
    help="Also build edgenn's generated C for TARGET (host, cortex-m4-qemu, raspberry-pi-4 or a "
    "profile .toml) and compare its outputs.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
def verify(
    model: Path,
    data: Path | None,
    random_count: int,
    seed: int,
    rounding: str,
    c_target: str | None,
    as_json: bool,
) -> None:
    """Run MODEL.tflite on edgenn's runtime, TensorFlow Lite Micro and LiteRT; count differing outputs."""
    from edgenn.verify import format_verification, verify_tflite

    result = verify_tflite(model, data, rounding, random_count, seed, c_target)
    click.echo(json.dumps(result, indent=2) if as_json else format_verification(result))


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--target",
    default="cortex-m4-qemu",
    show_default=True,
    metavar="NAME|PROFILE.toml",
    help="Device profile (targets/*.toml) whose toolchain builds the generated C.",
)
@click.option("--no-tflm", is_flag=True, help="Skip TensorFlow Lite Micro's arena for comparison.")
@calib_options
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def footprint(
    model: Path,
    target: str,
    no_tflm: bool,
    calib_args: dict[str, Any],
    as_json: bool,
) -> None:
    """Flash and RAM of MODEL's generated C on a target (its toolchain's size, stack measured in its
    emulator) beside TensorFlow Lite Micro's arena for the same model."""
    from edgenn.codegen.c import check_fits_early
    from edgenn.runtime.program import build_program
    from edgenn.sim.footprint import format_footprint, measure_footprint
    from edgenn.sim.targets import load_target

    profile = load_target(target)
    _, fixed = _fixed_point(model, calib_args)
    check_fits_early(build_program(fixed), fixed, profile)  # before compiling anything
    result = measure_footprint(fixed, model.stem, profile, tflm=not no_tflm)
    click.echo(json.dumps(result, indent=2) if as_json else format_footprint(result))


def _run_int8(
    model: Path, arrays: list[np.ndarray], dequantize: bool, calib: dict[str, Any], repeat: int = 0
) -> dict[str, np.ndarray]:
    """int8 inputs run as they are; float inputs are quantized with the model's input parameters."""
    from edgenn.quant.quantize import dequantize_array
    from edgenn.runtime import Runtime

    if model.suffix == ".onnx":  # before calibrating: bad inputs are refused at once
        from edgenn.frontend.onnx import load_onnx
        from edgenn.runtime import check_inputs

        check_inputs(load_onnx(model), arrays)
    _, fixed = _fixed_point(model, calib)
    runtime = Runtime(fixed)
    quantized = runtime.quantize(*arrays)
    outputs = runtime.run(*quantized)
    if repeat:
        if len(quantized) != 1:
            raise InputError("--repeat times models with one input")
        click.echo(str(runtime.session().latency(repeat, quantized[0][0])))
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if dequantize:
        outputs = [dequantize_array(o, t.qparams) for o, t in zip(outputs, runtime.output_types)]  # type: ignore[arg-type]
    return dict(zip(fixed.outputs, outputs))


class Terminated(BaseException):
    """SIGTERM, raised where the process is, so that cleanup (staging folders) runs as for Ctrl-C."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        cli.main(args=argv, prog_name="edgenn", standalone_mode=False)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("edgenn: aborted", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("edgenn: terminated", err=True)
        sys.exit(143)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (EdgennError, OSError) as err:
        if _debug:
            raise
        click.echo(f"edgenn: error: {' '.join(str(err).split())}", err=True)
        sys.exit(2)
    except Exception as err:  # a bug in edgenn: still one line unless --debug
        if _debug:
            raise
        click.echo(
            f"edgenn: internal error: {type(err).__name__}: {' '.join(str(err).split())} "
            "(rerun with --debug for the traceback)",
            err=True,
        )
        sys.exit(1)
