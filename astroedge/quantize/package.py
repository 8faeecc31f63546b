"""Quantise a package: fp32 package in, a new fp16/int8/int4 package out, refused when quality drops.

Order of work, so that bad input fails before anything slow and nothing is left half-written:
options and texts are checked first; the new package is assembled in a temp directory beside the
output (astroedge.fileio.atomic_dir); its held-out perplexity is measured with the runtime and
compared with the fp32 package's; only if it is within the limit is the directory renamed into place.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from astroedge import __version__
from astroedge.errors import UserError
from astroedge.fileio import atomic_dir

METHODS: dict[str, tuple[str, ...]] = {"fp16": ("fp16",), "int8": ("weight-only", "dynamic", "static-qdq"), "int4": ("weight-only",)}
DEFAULT_MAX_INCREASE_PERCENT = {"fp16": 1.0, "int8": 1.0, "int4": 5.0}
MIN_CALIB_TOKENS = 256
CALIB_CHUNK = 128


def resolve_method(precision: str, method: str | None, calib: Path | None) -> str:
    """The quantisation method for `precision`; UserError for an unknown or inconsistent choice."""
    if precision not in METHODS:
        raise UserError(f"precision '{precision}' is unknown; choose one of: {', '.join(METHODS)} (fp32 is the exported package itself)")
    if method is None:
        method = "static-qdq" if calib is not None and precision == "int8" else METHODS[precision][0]
    if method not in METHODS[precision]:
        raise UserError(f"--method {method} does not exist for {precision}; choose one of: {', '.join(METHODS[precision])}")
    if method == "static-qdq" and calib is None:
        raise UserError("--method static-qdq needs calibration text: pass --calib TEXT (a few thousand tokens of typical input)")
    if method != "static-qdq" and calib is not None:
        raise UserError(f"--calib is used only by int8 static QDQ; drop it, or use --int8 --method static-qdq (got {precision} {method})")
    return method


def _package_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def _calibration_feeds(source: Path, ids: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Graph feeds for calibration: the text in chunks, each with the fp32 state the stream has there."""
    from astroedge.runtime import Engine
    from astroedge.runtime.package import load_package

    pkg = load_package(source, verify=False)
    engine = Engine(source, device="cpu", verify=False)
    stream = engine.create_stream()
    feeds = []
    for start in range(0, len(ids) - len(ids) % CALIB_CHUNK, CALIB_CHUNK):
        tokens = ids[start : start + CALIB_CHUNK].reshape(1, -1)
        feed = {pkg.tokens_input: tokens, pkg.position_input: np.array([start], dtype=np.int64)}
        feed.update({s.input: a for s, a in zip(pkg.state, stream.state, strict=True)})
        feeds.append(feed)
        stream.feed(tokens[0].tolist())
    engine.close()
    return feeds


def _quantised_graph(
    source_onnx: Path, precision: str, method: str, block_size: int, feeds: list[dict[str, np.ndarray]]
) -> tuple[Any, dict[str, Any]]:
    """The quantised ModelProto and what the method reports about itself (for the manifest)."""
    import onnx

    from astroedge.export.spike_matmul import quantize_weights
    from astroedge.quantize import integer
    from astroedge.quantize.fp16 import convert_fp16

    model = onnx.load(str(source_onnx))
    if method == "fp16":
        return model, {"fp16": asdict(convert_fp16(model))}
    # W_O and W_2 (SpikeMatMul) take the op's own formats: int8 per output channel, int4 in blocks
    # along N; the other products go through onnxruntime's quantisers, which see only MatMul.
    spike = {"spikematmul": {"format": precision, "nodes": quantize_weights(model, precision, block_size)}}
    if method == "weight-only":
        bits = 4 if precision == "int4" else 8
        return integer.weight_only(model, bits, block_size), {"bits": bits, "block_size": block_size, **spike}
    if method == "dynamic":
        return integer.dynamic_int8(model), {"bits": 8, **spike}
    return integer.static_qdq(model, feeds), {"bits": 8, "calibration_chunks": len(feeds), **spike}


def _write_graph(src: Any, tmp: Path, proto: Any, precision: str) -> dict[str, Any]:
    """Write `proto` and the source package's other files into `tmp`; returns the new manifest (not yet written)."""
    from astroedge.export.onnx_export import save_onnx
    from astroedge.manifest import sha256_file

    onnx_file = src.manifest["onnx"]["file"]
    external = save_onnx(proto, tmp / onnx_file)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    names = [onnx_file] + ([external] if external else [])
    for name in src.manifest["files"]:
        if name not in names and name not in (src.manifest["onnx"].get("external_data"),):
            shutil.copy2(src.path / name, tmp / name)  # tokenizer.json and anything else the graph does not hold
            names.append(name)
    manifest = json.loads(json.dumps(src.manifest))
    manifest["created_by"] = f"astroedge {__version__}"
    manifest["precision"] = precision
    manifest["onnx"]["external_data"] = external
    manifest["onnx"]["opset"] = opset
    manifest["files"] = {n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size} for n in names}
    return manifest


def repack_form(package: str | Path, output: str | Path, form: str) -> Path:
    """The fp32 `package` with W_O and W_2 as SpikeMatMul ("sparse") or MatMul ("dense"): `package` itself when it already is.

    Same weights, same function (export/spike_matmul.py rewrites the two products only); the bench
    makes its dense and sparse rows from one package with this.
    """
    import onnx

    from astroedge.export.spike_matmul import count_spikematmul, to_dense, to_sparse
    from astroedge.manifest import write_manifest
    from astroedge.runtime.package import load_package

    if form not in ("dense", "sparse"):
        raise UserError(f"form '{form}' is unknown; choose dense or sparse")
    src = load_package(package, verify=False)
    if src.precision != "fp32":
        raise UserError(f"{src.path}: is {src.precision}; dense and sparse forms are made from the fp32 package")
    proto = onnx.load(str(src.onnx_path))
    if (form == "sparse") == (count_spikematmul(proto) > 0):
        return src.path
    changed = to_sparse(proto) if form == "sparse" else to_dense(proto)
    if form == "sparse" and changed != 2 * src.config.n_layers:
        raise UserError(
            f"{src.path}: {changed} spike products found for {src.config.n_layers} layers; re-export it with 'astroedge export'"
        )
    output = Path(output)
    with atomic_dir(output, force=True) as tmp:
        tmp.chmod(0o755)
        write_manifest(tmp, _write_graph(src, tmp, proto, "fp32"))
    return output


def quantize_package(
    package: str | Path,
    output: str | Path,
    precision: str,
    method: str | None = None,
    calib: Path | None = None,
    eval_text: Path | None = None,
    eval_tokens: int = 8192,
    calib_tokens: int = 4096,
    max_ppl_increase: float | None = None,
    block_size: int = 32,
    force: bool = False,
    gate: bool = True,
) -> dict[str, Any]:
    """Write the quantised package to `output`; returns the report (sizes, perplexities, verdict).

    max_ppl_increase is in percent (None: the precision's default). gate=False skips the perplexity
    measurement entirely (used by `astroedge bench`, which times random-weight models whose
    perplexity means nothing); the manifest then records the package as not quality-checked.
    """
    from astroedge.corpus import load_tokens
    from astroedge.manifest import write_manifest
    from astroedge.quantize.perplexity import eval_tokens as eval_ids
    from astroedge.quantize.perplexity import package_perplexity
    from astroedge.runtime.package import load_package

    method = resolve_method(precision, method, calib)
    limit = DEFAULT_MAX_INCREASE_PERCENT[precision] if max_ppl_increase is None else max_ppl_increase
    if not (limit >= 0):
        raise UserError(f"--max-ppl-increase {max_ppl_increase}: must be a percentage >= 0")
    if block_size < 16 or block_size & (block_size - 1):
        raise UserError(f"--block-size {block_size}: must be a power of two >= 16")
    src = load_package(package, verify=True)
    if src.precision != "fp32":
        raise UserError(f"{src.path}: already {src.precision}; quantise the fp32 package that 'astroedge export' wrote")
    output = Path(output)
    if output.resolve() == src.path.resolve():
        raise UserError(f"{output}: is the source package; write the quantised package to another directory")
    if output.exists() and not force:
        raise UserError(f"{output}: already exists; pass --force to overwrite it")

    ids, eval_source = eval_ids(src.tokenizer, eval_text, eval_tokens) if gate else (None, None)
    feeds: list[dict[str, np.ndarray]] = []
    if method == "static-qdq":
        assert calib is not None
        calib_ids = load_tokens(calib, src.tokenizer, min_tokens=1)
        if calib_ids.size < MIN_CALIB_TOKENS:
            raise UserError(
                f"{calib}: only {calib_ids.size} calibration tokens, need at least {MIN_CALIB_TOKENS}; give a longer --calib text"
            )
        feeds = _calibration_feeds(src.path, calib_ids[:calib_tokens])

    report: dict[str, Any] = {"source": str(src.path), "output": str(output), "precision": precision, "method": method}
    with atomic_dir(output, force=force) as tmp:
        tmp.chmod(0o755)
        proto, details = _quantised_graph(src.onnx_path, precision, method, block_size, feeds)
        manifest = _write_graph(src, tmp, proto, precision)
        del proto
        quant: dict[str, Any] = {"method": method, **details, "source_manifest_sha256": src.manifest_sha256, "quality": None}
        if calib is not None:
            quant["calibration_text"] = str(calib)
        manifest["quantization"] = quant
        write_manifest(tmp, manifest)  # checked with the reader's rules (astroedge/manifest.py)
        report.update(details)
        if gate:
            assert ids is not None
            base = package_perplexity(src.path, ids, verify=False)
            new = package_perplexity(tmp, ids, verify=False)
            increase = 100.0 * (new.perplexity / base.perplexity - 1.0)
            quality = {
                "eval_text": eval_source,
                "tokens": new.tokens,
                "perplexity_fp32": base.perplexity,
                "perplexity": new.perplexity,
                "increase_percent": increase,
                "limit_percent": limit,
                "kernel": new.kernel,
            }
            report["quality"] = quality
            report["seconds_eval"] = base.seconds + new.seconds
            if increase > limit:
                raise UserError(
                    f"{precision} ({method}) perplexity {new.perplexity:.4g} is {increase:.2f}% above fp32's {base.perplexity:.4g} "
                    f"on {new.tokens} held-out tokens (limit {limit:g}%); {output} not written. Pass --max-ppl-increase "
                    f"{max(increase * 1.1, 0.01):.2g} to accept it, or choose a higher precision"
                )
            quant["quality"] = quality
            write_manifest(tmp, manifest)
        else:
            report["quality"] = None
        report["bytes"] = {"fp32": _package_bytes(src.path), precision: _package_bytes(tmp)}
        report["size_ratio"] = report["bytes"][precision] / report["bytes"]["fp32"]
    report["passed"] = True
    return report


def print_report(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    p = report["precision"]
    table = Table(title=f"{report['output']}: {p} ({report['method']}) from {report['source']}")
    for col in ("package", "bytes", "size", "perplexity", "increase"):
        table.add_column(col, justify="left" if col == "package" else "right")
    q = report["quality"]
    sizes = report["bytes"]
    table.add_row("fp32", f"{sizes['fp32']:,}", "1.00x", f"{q['perplexity_fp32']:.4f}" if q else "-", "")
    table.add_row(
        p,
        f"{sizes[p]:,}",
        f"{report['size_ratio']:.2f}x",
        f"{q['perplexity']:.4f}" if q else "-",
        f"{q['increase_percent']:+.2f}% (limit {q['limit_percent']:g}%)" if q else "not checked",
    )
    console = Console()
    console.print(table)
    if q:
        console.print(f"held-out text: {q['eval_text']}, {q['tokens']} tokens, AMSU kernel: {q['kernel']}")
    fp16 = report.get("fp16")
    if fp16:
        console.print(
            f"fp16: {fp16['converted_tensors']} tensors converted, {fp16['clipped_values']} values clipped to +-65504"
            + (f" (in {', '.join(fp16['clipped_tensors'])})" if fp16["clipped_tensors"] else "")
            + f", {fp16['flushed_to_zero']} tiny values flushed to 0"
        )
