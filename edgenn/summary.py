"""Per-layer summary of a graph: op, output shape, parameters and MACs, with totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgenn.ir import Graph
from edgenn.ops import spec_for


@dataclass(frozen=True)
class LayerInfo:
    name: str
    op: str
    output_shape: tuple[int, ...]
    dtype: str
    params: int
    macs: int


def layer_table(graph: Graph) -> list[LayerInfo]:
    rows = []
    for node in graph.nodes:
        spec = spec_for(node.op, node.name)
        in_types = [graph.type_of(i) if i else None for i in node.inputs]
        out_types = [graph.type_of(o) for o in node.outputs]
        params = sum(graph.type_of(i).size for i in node.inputs if i and graph.values[i].is_const)
        rows.append(
            LayerInfo(
                node.name,
                node.op,
                out_types[0].shape,
                out_types[0].dtype.value,
                params,
                spec.macs(in_types, out_types, spec.attrs_of(node)),
            )
        )
    return rows


def summary(graph: Graph) -> dict[str, Any]:
    rows = layer_table(graph)
    weights = [v for v in graph.values.values() if v.is_const]
    return {
        "model": graph.name,
        "inputs": {
            n: {"shape": list(graph.type_of(n).shape), "dtype": graph.type_of(n).dtype.value}
            for n in graph.inputs
        },
        "outputs": {
            n: {"shape": list(graph.type_of(n).shape), "dtype": graph.type_of(n).dtype.value}
            for n in graph.outputs
        },
        "layers": [asdict(r) | {"output_shape": list(r.output_shape)} for r in rows],
        "totals": {
            "layers": len(rows),
            "params": sum(v.type.size for v in weights),
            "weight_bytes": sum(v.type.nbytes for v in weights),
            "macs": sum(r.macs for r in rows),
        },
    }


def format_table(info: dict[str, Any]) -> str:
    header = ("#", "name", "op", "output shape", "type", "params", "MACs")
    body = [
        (
            str(i),
            r["name"],
            r["op"],
            "x".join(map(str, r["output_shape"])),
            r["dtype"],
            f"{r['params']:,}",
            f"{r['macs']:,}",
        )
        for i, r in enumerate(info["layers"])
    ]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(len(header))]
    right = {0, 5, 6}

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(w) if c in right else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths))
        )

    totals = info["totals"]
    ios = "; ".join(
        f"{k} {'x'.join(map(str, v['shape']))} {v['dtype']}" for k, v in info["inputs"].items()
    )
    return "\n".join(
        [
            f"model {info['model']}: input {ios}",
            line(header),
            "  ".join("-" * w for w in widths),
            *map(line, body),
            f"total: {totals['layers']} layers, {totals['params']:,} parameters "
            f"({totals['weight_bytes']:,} bytes), {totals['macs']:,} MACs",
        ]
    )
