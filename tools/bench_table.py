"""The benchmark table in README: every bundled model and every MLPerf Tiny file, on the host (edgenn
beside LiteRT XNNPACK and onnxruntime int8, alternating rounds, ratios of medians with their spread)
and on the emulated Cortex-M4 (instructions per inference, flash, RAM beside TFLM's arena).

    python tools/bench_table.py                 # measure, print, and rewrite README's table
    python tools/bench_table.py --no-mcu        # the host columns only
    python tools/bench_table.py --print-only    # leave README as it is

Needs the test extras (LiteRT, onnxruntime, tflite-micro) and, for the Cortex-M4 columns, the
toolchain and QEMU of targets/cortex-m4-qemu.toml.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = [ROOT / "models" / f"{name}.onnx" for name in ("digits_mlp", "digits_cnn", "mnist1d_cnn")]
MLPERF = [
    ROOT / "tests" / "data" / "mlperf_tiny" / f"{name}.tflite"
    for name in (
        "kws_ref_model",
        "pretrainedResnet_quant",
        "vww_96_int8",
        "ad01_int8",
        "str_ww_ref_model",
    )
]
START, END = "<!-- bench-table:start -->", "<!-- bench-table:end -->"


def host_row(model: Path, seconds: float, rounds: int) -> dict[str, Any]:
    from edgenn.bench import run_bench

    print(f"host: {model.name}", file=sys.stderr, flush=True)
    return run_bench(model, seconds=seconds, rounds=rounds, cold=False)


def mcu_row(model: Path) -> dict[str, Any]:
    from edgenn.cli import _fixed_point
    from edgenn.sim.footprint import measure_footprint
    from edgenn.sim.targets import load_target

    print(f"cortex-m4: {model.name}", file=sys.stderr, flush=True)
    _, fixed = _fixed_point(model, {})
    return measure_footprint(fixed, model.stem, load_target("cortex-m4-qemu"))


def spread(results: dict[str, Any], kind: str, key: str) -> str:
    if f"{kind}_ratio_vs_{key}" not in results:
        return "n/a"
    low, high = results[f"{kind}_spread_vs_{key}"]
    return f"{results[f'{kind}_ratio_vs_{key}']:.2f} ({low:.2f}-{high:.2f})"


def table(host: list[dict[str, Any]], mcu: list[dict[str, Any]] | None) -> str:
    from edgenn import ops
    from edgenn.runtime.interpreter import host_features

    first = host[0]
    variants = {v.feature for k in ops.KERNELS.values() for v in k.variants}
    features = ", ".join(sorted(variants & host_features())) or "none: the generic kernels"
    lines = [
        f"Measured {date.today().isoformat()} with `python tools/bench_table.py` on {first['cpu']} "
        f"(edgenn's kernel variants for: {features}), one thread, {first['rounds']} alternating "
        "rounds; a ratio is edgenn / the other backend, of the medians over the rounds, with the "
        "lowest and highest per-round ratio in brackets. Below 1 is edgenn faster (latency) or "
        "slower (throughput).",
        "",
        "| model | edgenn us | LiteRT us | latency / LiteRT | throughput / LiteRT "
        "| latency / ort int8 | throughput / ort int8 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in host:
        b = r["backends"]
        lines.append(
            f"| {Path(r['model']).name} | {b['edgenn']['latency_us']:.1f} "
            f"| {b['litert']['latency_us']:.1f} | {spread(r, 'latency', 'litert')} "
            f"| {spread(r, 'throughput', 'litert')} | {spread(r, 'latency', 'ort_int8')} "
            f"| {spread(r, 'throughput', 'ort_int8')} |"
        )
    if mcu:
        lines += [
            "",
            "Cortex-M4 (`cortex-m4-qemu`: arm-none-eabi-gcc -Os, SMLAD path; instructions counted in "
            "QEMU, one inference):",
            "",
            "| model | instructions | flash B | flash - weights B | RAM B (arena + stack) "
            "| TFLM arena B | RAM / TFLM |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in mcu:
            count = (m["instructions_per_inference"] or {}).get("default")
            lines.append(
                f"| {m['model']} | {count:,} | {m['flash_bytes']:,} "
                f"| {m['flash_over_weights_bytes']:,} | {m['ram_bytes']:,} "
                f"| {m['tflm_arena']['total']:,} | {m['ram_ratio_vs_tflm']:.3f} |"
            )
    return "\n".join(lines)


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    source = readme.read_text()
    if START not in source or END not in source:
        raise SystemExit(f"README.md has no {START} ... {END} section")
    head, rest = source.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per backend and mode")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-mcu", action="store_true", help="skip the Cortex-M4 columns")
    parser.add_argument("--print-only", action="store_true", help="do not rewrite README.md")
    args = parser.parse_args()
    models = BUNDLED + MLPERF
    host = [host_row(m, args.seconds, args.rounds) for m in models]
    mcu = None if args.no_mcu else [mcu_row(m) for m in models]
    text = table(host, mcu)
    print(text)
    if not args.print_only:
        write_readme(text)


if __name__ == "__main__":
    main()
