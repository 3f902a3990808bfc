"""The `edgenn` command line: thin wrappers over the API. Bad input exits 2 with a one-line message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np

from edgenn import __version__
from edgenn.errors import EdgennError

_debug = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgenn")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """edgenn: compile trained ONNX networks for microcontrollers, the Raspberry Pi and neuromorphic devices."""
    global _debug
    _debug = debug


def _load(model: Path, batch_size: int, optimized: bool):  # type: ignore[no-untyped-def]
    from edgenn.frontend.onnx import load_onnx
    from edgenn.passes import optimize

    graph = load_onnx(model, batch_size=batch_size)
    return optimize(graph) if optimized else graph


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
    """Per-layer table of MODEL: op, output shape, parameters, MACs, and totals."""
    from edgenn.summary import format_table, summary

    info = summary(_load(model, batch_size, optimized=not raw))
    click.echo(json.dumps(info, indent=2) if as_json else format_table(info))


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
    type=click.Path(path_type=Path),
    help="Where to write the output (.npy; .npz for several outputs).",
)
@click.option(
    "--backend",
    type=click.Choice(["float"]),
    default="float",
    show_default=True,
    help="float: the numpy float reference.",
)
def run(model: Path, inputs: tuple[Path, ...], output: Path, backend: str) -> None:
    """Run MODEL on the given inputs (any batch size) and save its outputs."""
    from edgenn.fileio import load_array, load_labels, save_arrays
    from edgenn.reference import run_reference

    graph = _load(model, 1, optimized=False)
    arrays = [load_array(path) for path in inputs]
    results = run_reference(graph, arrays)
    save_arrays(output, results)
    shapes = ", ".join(f"{k} {'x'.join(map(str, v.shape))}" for k, v in results.items())
    click.echo(f"wrote {output} ({shapes})")
    labels = load_labels(inputs[0]) if len(inputs) == 1 else None
    first = next(iter(results.values()))
    if labels is not None and first.ndim == 2 and len(labels) == len(first):
        accuracy = float(np.mean(first.argmax(axis=1) == labels))
        click.echo(f"top-1 accuracy {accuracy:.4f} on {len(labels)} labelled samples ({backend})")


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="edgenn", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("edgenn: aborted", err=True)
        sys.exit(130)
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
