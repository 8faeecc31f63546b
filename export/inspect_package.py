"""`astroedge inspect`: what is in a package, read through the runtime's validating reader.

Works without torch. The op histogram and the custom-node list need the `onnx` package (host side);
without it they are reported as unavailable rather than failing, so inspect also runs on a device.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from astroedge.contract import amsu_contract
from astroedge.runtime.package import load_package


def _graph_summary(onnx_path: Path) -> dict[str, Any]:
    """Op histogram, custom nodes and attached functions of the graph (weights are not loaded)."""
    try:
        import onnx
    except ImportError:
        return {"available": False, "reason": "the 'onnx' package is not installed (pip install onnx)"}
    proto = onnx.load(str(onnx_path), load_external_data=False)
    c = amsu_contract()
    histogram = Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in proto.graph.node)
    custom = [
        {
            "name": n.name,
            "op": f"{n.domain}::{n.op_type}",
            "attributes": {a.name: _attr_value(onnx.helper.get_attribute_value(a)) for a in n.attribute},
        }
        for n in proto.graph.node
        if n.domain not in ("", "ai.onnx")
    ]
    functions = [f"{f.domain}::{f.name}" for f in proto.functions]
    return {
        "available": True,
        "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
        "nodes": len(proto.graph.node),
        "op_histogram": dict(histogram.most_common()),
        "custom_nodes": custom,
        "functions": functions,
        "fallback_attached": f"{c.domain}::{c.name}" in functions,
        "initializers": len(proto.graph.initializer),
    }


def _attr_value(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


def inspect_package(path: str | Path) -> dict[str, Any]:
    """The report `astroedge inspect` prints: a plain JSON-able dict."""
    pkg = load_package(path, verify=True)
    m = pkg.manifest
    cfg = pkg.config
    files = {name: info["bytes"] for name, info in m["files"].items()}
    return {
        "package": str(pkg.path),
        "format_version": m["format_version"],
        "created_by": m.get("created_by"),
        "precision": pkg.precision,
        "layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "heads": cfg.n_heads,
        "vocab_size": cfg.vocab_size,
        "parameters": m.get("parameters"),
        "op": m.get("op"),
        "state": [{"name": s.name, "input": s.input, "output": s.output, "dtype": s.dtype, "shape": list(s.shape)} for s in pkg.state],
        "state_bytes_per_stream": pkg.state_bytes_per_stream,
        "max_position": pkg.max_position,
        "tokenizer": dict(m["tokenizer"]),
        "files": files,
        "total_bytes": sum(files.values()),
        "graph": _graph_summary(pkg.onnx_path),
    }


def print_inspect(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"package {report['package']}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    params = report["parameters"]
    rows = [
        ("format version", str(report["format_version"])),
        ("created by", str(report["created_by"])),
        ("precision", report["precision"]),
        ("layers x d_model / heads", f"{report['layers']} x {report['d_model']} / {report['heads']}"),
        ("vocab", str(report["vocab_size"])),
        ("parameters", f"{params:,}" if isinstance(params, int) else "not recorded"),
        ("state per stream", f"{report['state_bytes_per_stream']:,} bytes ({len(report['state'])} fp32 tensors)"),
        ("tokenizer", f"{report['tokenizer'].get('type')} ({report['tokenizer'].get('file') or 'no file'})"),
    ]
    rows += [(f"file {name}", f"{size:,} bytes") for name, size in report["files"].items()]
    graph = report["graph"]
    if graph["available"]:
        rows.append(("opsets", ", ".join(f"{d} {v}" for d, v in graph["opsets"].items())))
        rows.append(("nodes", f"{graph['nodes']} ({len(graph['custom_nodes'])} custom)"))
        rows.append(("fallback function", "attached" if graph["fallback_attached"] else "MISSING"))
    else:
        rows.append(("graph", graph["reason"]))
    for field, value in rows:
        summary.add_row(field, value)
    console.print(summary)
    if graph["available"]:
        ops = Table(title="op histogram")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for op, count in graph["op_histogram"].items():
            ops.add_row(op, str(count))
        console.print(ops)
        nodes = Table(title="custom nodes")
        nodes.add_column("node")
        nodes.add_column("op")
        nodes.add_column("attributes")
        for n in graph["custom_nodes"]:
            nodes.add_row(n["name"], n["op"], ", ".join(f"{k}={v}" for k, v in n["attributes"].items()))
        console.print(nodes)
