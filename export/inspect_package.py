"""`astroedge inspect`: what is in a package, read through the format's reader (astroedge/manifest.py).

Every file is verified (size, sha256, graph I/O against the manifest) and the report is made from the
verified bytes, never from a file reopened by name. Works without torch. The op histogram and the
custom-node list need the `onnx` package (host side); without it they are reported as unavailable
rather than failing, so inspect also runs on a device.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from astroedge.contract import amsu_contract
from astroedge.errors import UserError
from astroedge.manifest import open_package


def _graph_summary(onnx_bytes: bytes, source: Path) -> dict[str, Any]:
    """Op histogram, custom nodes and attached functions of the graph, after onnx's checker accepted it."""
    try:
        import onnx
    except ImportError:
        return {"available": False, "reason": "the 'onnx' package is not installed (pip install onnx)"}
    try:
        proto = onnx.ModelProto.FromString(onnx_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends: the checked walk passed, protobuf did not
        why = str(exc).splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{source}: not a valid ONNX model ({why}); re-export the package") from None
    try:  # by path: the checker finds the (just verified) external data beside the graph
        onnx.checker.check_model(str(source))
    except Exception as exc:  # ValidationError and friends: a graph onnxruntime would refuse too
        why = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{source}: not a valid ONNX graph (onnx checker: {why}); re-export the package") from None
    c = amsu_contract()
    histogram = Counter(f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type for n in proto.graph.node)
    custom = [
        {
            "name": n.name,
            "op": f"{n.domain}::{n.op_type}",
            "attributes": {a.name: _attribute(onnx, a) for a in n.attribute},
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


def _attribute(onnx: Any, attr: Any) -> Any:
    """An attribute as plain JSON: a damaged or unusual one (tensor, graph, unknown type) is described, never a traceback."""
    try:
        value = onnx.helper.get_attribute_value(attr)
    except Exception:  # onnx raises ValueError/TypeError for unknown attribute types; inspect only describes
        return "<unreadable attribute>"
    return _plain(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Infinity
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return f"<{type(value).__name__}>"


def inspect_package(path: str | Path) -> dict[str, Any]:
    """The report `astroedge inspect` prints: a plain JSON-able dict."""
    pkg = open_package(path)
    m = pkg.manifest
    cfg = m.config
    if pkg.tokenizer_text is not None:
        from astroedge.tokenizer import HFTokenizer

        tok = HFTokenizer(pkg.tokenizer_text, str(pkg.root / str(m.tokenizer.file)))
        if tok.vocab_size != m.tokenizer.vocab_size:
            raise UserError(f"{m.source}: field 'tokenizer.vocab_size' = {m.tokenizer.vocab_size}, the tokenizer file has {tok.vocab_size}")
    files = {name: entry.bytes for name, entry in m.files.items()}
    return {
        "package": str(pkg.root),
        "format_version": m.format_version,
        "created_by": m.created_by,
        "precision": m.precision,
        "layers": cfg.n_layers,
        "d_model": cfg.d_model,
        "heads": cfg.n_heads,
        "vocab_size": cfg.vocab_size,
        "parameters": m.parameters,
        "op": m.raw["op"],
        "state": [{"name": s.name, "input": s.input, "output": s.output, "dtype": s.dtype, "shape": list(s.shape)} for s in m.state],
        "state_bytes_per_stream": m.state_bytes_per_stream,
        "max_position": m.max_position,
        "tokenizer": dict(m.raw["tokenizer"]),
        "files": files,
        "total_bytes": sum(files.values()),
        "graph": _graph_summary(pkg.onnx_bytes, pkg.root / m.onnx_file),
    }


def _shown(value: object) -> str:
    """A table cell from untrusted text (graph names, manifest strings): control characters escaped, rich markup inert."""
    from rich.markup import escape

    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return escape(text[:200] + ("..." if len(text) > 200 else ""))


def print_inspect(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    summary = Table(title=f"package {_shown(report['package'])}", show_header=False)
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
        summary.add_row(_shown(field), _shown(value))
    console.print(summary)
    if graph["available"]:
        ops = Table(title="op histogram")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        for op, count in graph["op_histogram"].items():
            ops.add_row(_shown(op), str(count))
        console.print(ops)
        nodes = Table(title="custom nodes")
        nodes.add_column("node")
        nodes.add_column("op")
        nodes.add_column("attributes")
        for n in graph["custom_nodes"]:
            nodes.add_row(_shown(n["name"]), _shown(n["op"]), _shown(", ".join(f"{k}={v}" for k, v in n["attributes"].items())))
        console.print(nodes)
