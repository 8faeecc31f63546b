"""`astroedge bench`: whole-model decode and prefill against the baselines and the floors, in one run.

Rows (each measured in its own process, astroedge/bench/worker.py): PyTorch eager (the reference
step form; threads pinned, load recorded, kept out of the headline), onnxruntime with the fallback
functions, onnxruntime with the native library in each precision, once with dense W_O / W_2
products and once with ``astroedge::SpikeMatMul`` (made from the fp32 package on the fly, without the
quality gate: speed only), and a GPT-style Transformer with a KV cache and the same parameter count.

A row is named after what ran, not what was asked for: a library row whose library (or whose
SpikeMatMul kernel) is missing is labelled as the fallback, and a precision or form that cannot be
built is a row with the reason, never dropped.

Beside them, two floors per precision (astroedge/bench/bandwidth.py): dense = all the bytes a
one-token step reads / the measured read bandwidth; sparse = the same with W_O and W_2 counted at the
firing rates measured on text (printed). AM-SNet decode runs from the state that 256 tokens of the
sample's held-out text leave, moved to position N, on the text's next tokens, so the spike kernels
see real firing rates; the Transformer's cache at N is synthesised (its cost depends on the length
only). Output: a rich table, a JSON report and PNG plots (astroedge/bench/plots.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from astroedge.errors import UserError

DEFAULT_CONTEXTS = (128, 1024, 8192, 65536)
PRECISIONS = ("fp32", "fp16", "int8", "int4")
FORMS = ("dense", "sparse")
RANDOM_PACKAGES = Path("build/bench")
MEMORY_SHARE = 0.5  # refuse a Transformer context whose KV cache (x3: past, present, copy) needs more than this share of RAM
WARM_TOKENS = 256  # text fed before the timed decode steps (AM-SNet rows)
ROW_FIELDS = (
    "impl",
    "form",
    "precision",
    "kernel",
    "context",
    "decode_p50_ms",
    "decode_p99_ms",
    "ttft_ms",
    "prefill_tokens_per_s",
    "peak_rss_mib",
    "rss_after_load_mib",
    "gpu_mem_mib",
    "state_bytes",
    "bytes_per_token",
    "floor_ms",
    "sparse_bytes_per_token",
    "sparse_floor_ms",
    "threads",
    "load_1m",
    "note",
    "error",
)


@dataclass(frozen=True)
class BenchOptions:
    package: Path | None
    config: str | None
    device: str = "cpu"
    contexts: tuple[int, ...] = DEFAULT_CONTEXTS
    precisions: tuple[str, ...] = PRECISIONS
    decode_steps: int = 32
    prompt_tokens: int = 128
    prefill_tokens: int = 1024
    threads: int = 0
    baselines: bool = True  # torch eager, fallback and Transformer rows
    forms: tuple[str, ...] = FORMS


def parse_list(text: str, what: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise UserError(f"--{what} '{text}': give a comma-separated list")
    bad = [x for x in items if allowed is not None and x not in allowed]
    if bad:
        raise UserError(f"--{what}: '{bad[0]}' is unknown; choose from {', '.join(allowed or ())}")
    return items


def parse_contexts(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in parse_list(text, "contexts"))
    except ValueError:
        raise UserError(f"--contexts '{text}': must be comma-separated token counts, e.g. 128,1024,8192") from None
    if any(v < 1 for v in values):
        raise UserError(f"--contexts '{text}': every context must be at least 1 token")
    return tuple(sorted(set(values)))


def versions() -> dict[str, str | None]:
    """Versions of what the rows run on, read from package metadata (importing torch here would cost a second)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for dist in ("onnxruntime", "onnx", "numpy", "torch", "astroedge"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def machine_info(bandwidth_gbs: float, bandwidth_method: str) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "bandwidth_gbs": bandwidth_gbs,
        "bandwidth_method": bandwidth_method,
        "load_at_start": list(os.getloadavg()),
        "versions": versions(),
    }
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        info["ram_gib"] = None
    return info


def random_package(config: str) -> tuple[Path, dict[str, Any]]:
    """A seeded random-weight checkpoint and package of preset `config` whose firing rates are the sample's.

    Made once under build/bench/ and reused (astroedge/bench/calibrate.py says how the rates are
    matched); returns the package and the calibration report.
    """
    from astroedge.config import preset

    cfg = preset(config)  # unknown name -> UserError
    folder = RANDOM_PACKAGES / f"{config}-random-calibrated"
    pkg = folder / "model.aepkg"
    report_path = folder / "calibration.json"
    if (pkg / "manifest.json").is_file() and report_path.is_file():
        return pkg, json.loads(report_path.read_text())
    from astroedge import checkpoint
    from astroedge.bench.calibrate import calibrated_model
    from astroedge.export.package import export_package
    from astroedge.tokenizer import ByteTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    model, report = calibrated_model(cfg)
    checkpoint.save(folder / "model.pt", model, ByteTokenizer())
    export_package(folder / "model.pt", pkg, force=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return pkg, report


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "astroedge.bench.worker", json.dumps(spec)], capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def _variants(opts: BenchOptions, fp32: Path, work: Path) -> dict[tuple[str, str], Path | str]:
    """(precision, form) -> package path, or the one-line reason it could not be built (reported as a row)."""
    from astroedge.quantize.package import quantize_package, repack_form

    out: dict[tuple[str, str], Path | str] = {}
    for form in opts.forms:
        try:
            base = repack_form(fp32, work / f"fp32-{form}.aepkg", form)
        except UserError as exc:
            for p in opts.precisions:
                out[p, form] = f"not built: {exc}"
            continue
        for p in opts.precisions:
            if p == "fp32":
                out[p, form] = base
                continue
            try:
                out[p, form] = Path(quantize_package(base, work / f"{p}-{form}.aepkg", p, gate=False)["output"])
            except UserError as exc:
                out[p, form] = f"not built: {exc}"
    return out


def spikematmul_kernel_available(library: Path | None) -> bool:
    """Whether `library` has a SpikeMatMul kernel: a one-node graph with the bare op (no fallback) loads."""
    if library is None:
        return False
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from astroedge.contract import spikematmul_contract

    c = spikematmul_contract()
    node = helper.make_node(c.name, ["s", "w"], ["y"], domain=c.domain, out_features=2)
    graph = helper.make_graph(
        [node],
        "probe",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2])],
        [onnx.numpy_helper.from_array(np.eye(2, dtype=np.float32), "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(c.domain, c.version)])
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(str(library))
    try:
        ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - onnxruntime raises its own exception types for an unknown op
        return False
    return True


def _label(kind: str, form: str, worker_kernel: str | None, has_spike_kernel: bool) -> tuple[str, str | None]:
    """The row's name from what actually ran, and a note when that differs from what was asked for."""
    if worker_kernel is None:
        return f"ort-{kind}-{form}", None
    if kind == "library" and worker_kernel != "library":
        return f"ort-fallback-{form}", "library not found: this row ran the fallback functions"
    if kind == "library" and form == "sparse" and not has_spike_kernel:
        return "ort-library-sparse-fallback", "the library has no SpikeMatMul kernel: that op ran its fallback function"
    return f"ort-{worker_kernel}-{form}", None


def run_bench(opts: BenchOptions, command: str) -> dict[str, Any]:
    from astroedge.bench.bandwidth import read_bandwidth
    from astroedge.bench.firing import RATE_TOKENS, firing_rates, text_ids
    from astroedge.bench.kv_cache import mlp_hidden
    from astroedge.bench.transformer import export_transformer
    from astroedge.native import get_library_path
    from astroedge.runtime.package import load_package

    if (opts.package is None) == (opts.config is None):
        raise UserError("give a package (model.aepkg) or --config NAME for a random-weight model, not both")
    calibration = None
    if opts.package is not None:
        fp32 = opts.package
    else:
        fp32, calibration = random_package(str(opts.config))
    pkg = load_package(fp32)
    if pkg.precision != "fp32":
        raise UserError(f"{fp32}: is {pkg.precision}; bench the fp32 package (other precisions are made from it on the fly)")
    cfg = pkg.config
    bw = read_bandwidth(threads=opts.threads)
    ids, text_source = text_ids(fp32, max(RATE_TOKENS, WARM_TOKENS + opts.decode_steps + 8))
    rates = firing_rates(fp32, ids[:RATE_TOKENS])
    rate_of = {(r.site, r.layer): r.rate for r in rates}
    library = get_library_path("cuda" if opts.device == "cuda" else "cpu")
    has_spike_kernel = spikematmul_kernel_available(library) if opts.device == "cpu" else False
    report: dict[str, Any] = {
        "command": command,
        "machine": machine_info(bw.gbs, bw.method),
        "package": str(fp32),
        "model": {**cfg.to_dict(), "parameters": pkg.manifest.get("parameters")},
        "weights": "random, firing rates calibrated to the sample's" if calibration else "the package's",
        "calibration": calibration,
        "firing_rates": {"text": f"{text_source}, first {RATE_TOKENS} tokens", "sites": [r.__dict__ for r in rates]},
        "library": str(library) if library else None,
        "spikematmul_kernel": has_spike_kernel,
        "device": opts.device,
        "contexts": list(opts.contexts),
        "decode_steps": opts.decode_steps,
        "prompt_tokens": opts.prompt_tokens,
        "prefill_tokens": opts.prefill_tokens,
        "decode_state": f"AM-SNet: after {WARM_TOKENS} tokens of the text, moved to position N; Transformer: synthesised KV cache of N",
        "rows": [],
    }
    ram = report["machine"].get("ram_gib") or 0
    warm = ids[:WARM_TOKENS].tolist()
    decode = ids[WARM_TOKENS : WARM_TOKENS + opts.decode_steps + 8].tolist()
    with tempfile.TemporaryDirectory(prefix="astroedge-bench-", dir=RANDOM_PACKAGES if RANDOM_PACKAGES.is_dir() else None) as tmp:
        work = Path(tmp)
        variants = _variants(opts, fp32, work)
        base = {"config": cfg.to_dict(), "device": opts.device, "threads": opts.threads}
        amsnet = {**base, "kind": "amsnet", "warm_ids": warm, "decode_ids": decode}
        impls: list[tuple[str, str, str, dict[str, Any] | str]] = []  # kind, form, precision, worker spec or error
        if opts.baselines:
            if opts.device == "cpu":
                impls.append(("torch", "dense", "fp32", {**base, "kind": "torch"}))
            dense32 = variants.get(("fp32", "dense"), fp32)
            impls.append(("fallback", "dense", "fp32", {**amsnet, "path": str(dense32), "use_library": False}))
        for (p, form), path in variants.items():
            if isinstance(path, str):  # not built: named after what would have run
                impls.append(("library" if library else "fallback", form, p, path))
            else:
                impls.append(("library", form, p, {**amsnet, "path": str(path), "use_library": True}))
        if opts.baselines:
            tf_path = work / "transformer.onnx"
            report["transformer"] = {"parameters": export_transformer(cfg, tf_path), "mlp_hidden": mlp_hidden(cfg)}
            impls.append(("transformer", "dense", "fp32", {**base, "kind": "transformer", "path": str(tf_path)}))
        floors = _floors(variants, rate_of, 2 * pkg.state_bytes_per_stream, bw.gbs)  # state read and written
        for kind, form, precision, spec in impls:
            report["rows"].extend(_rows(opts, cfg, (kind, form, precision), spec, floors, bw.gbs, ram, has_spike_kernel))
    report["floors"] = {f"{p}": v for p, v in floors.items()}
    report["summary"] = summarise(report["rows"])
    return report


def _floors(
    variants: dict[tuple[str, str], Path | str], rate_of: dict[tuple[str, int], float], state_io: int, gbs: float
) -> dict[str, dict[str, float]]:
    """Per precision: dense and sparse bytes per token and their floors (ms), from whichever form of it was built."""
    from astroedge.bench.bandwidth import weight_bytes_per_token

    out: dict[str, dict[str, float]] = {}
    for (p, _form), path in variants.items():
        if isinstance(path, str) or p in out:
            continue
        onnx_path = path / "model.onnx"
        dense = weight_bytes_per_token(onnx_path) + state_io
        sparse = weight_bytes_per_token(onnx_path, rate_of) + state_io
        out[p] = {
            "dense_bytes": dense,
            "dense_floor_ms": 1e3 * dense / (gbs * 1e9),
            "sparse_bytes": sparse,
            "sparse_floor_ms": 1e3 * sparse / (gbs * 1e9),
        }
    return out


def _rows(
    opts: BenchOptions,
    cfg: Any,
    what: tuple[str, str, str],
    spec: dict[str, Any] | str,
    floors: dict[str, dict[str, float]],
    gbs: float,
    ram: float,
    has_spike_kernel: bool,
) -> list[dict[str, Any]]:
    """One row per context for one implementation (kind, form, precision); prefill measured once, repeated on each row."""
    from astroedge.bench.bandwidth import weight_bytes_per_token
    from astroedge.bench.kv_cache import kv_bytes

    kind, form, precision = what
    rows = []
    prefill: dict[str, Any] = {}
    if not isinstance(spec, str):
        prefill = _run_worker({**spec, "mode": "prefill", "prompt_tokens": opts.prompt_tokens, "prefill_tokens": opts.prefill_tokens})
    for context in opts.contexts:
        row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
        row.update(form=form, precision=precision, context=context, threads=opts.threads or os.cpu_count())
        if isinstance(spec, str):
            row.update(impl=f"ort-{kind}-{form}", error=spec)
            rows.append(row)
            continue
        need = 3 * kv_bytes(cfg, context)
        if kind == "transformer" and need > MEMORY_SHARE * ram * 2**30:
            row["error"] = f"skipped: a {context}-token KV cache needs ~{need / 2**30:.1f} GiB, over half this machine's RAM"
        else:
            row.update(_run_worker({**spec, "mode": "decode", "context": context, "decode_steps": opts.decode_steps}))
        row["ttft_ms"] = prefill.get("ttft_ms")
        row["prefill_tokens_per_s"] = prefill.get("prefill_tokens_per_s")
        if prefill.get("error") and not row.get("error"):
            row["error"] = prefill["error"]
        if kind == "torch":
            row["impl"] = "torch-eager"
        elif kind == "transformer":
            row["impl"] = "transformer-ort"
            row["bytes_per_token"] = weight_bytes_per_token(Path(spec["path"])) + kv_bytes(cfg, context)
            row["floor_ms"] = 1e3 * row["bytes_per_token"] / (gbs * 1e9)
        else:
            row["impl"], row["note"] = _label(kind, form, row.get("kernel"), has_spike_kernel)
        if kind in ("torch", "fallback", "library") and precision in floors:
            f = floors[precision]
            row.update(
                bytes_per_token=f["dense_bytes"],
                floor_ms=f["dense_floor_ms"],
                sparse_bytes_per_token=f["sparse_bytes"],
                sparse_floor_ms=f["sparse_floor_ms"],
            )
        rows.append({k: row.get(k) for k in ROW_FIELDS})
    return rows


def _median_p50(rows: list[dict[str, Any]], impl: str, precision: str = "fp32") -> float | None:
    values = sorted(
        r["decode_p50_ms"] for r in rows if r["impl"] == impl and r["precision"] == precision and r["decode_p50_ms"] is not None
    )
    return values[len(values) // 2] if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, as ratios of median decode p50 over contexts (None where a row is missing)."""

    def ratio(a: str, b: str, pa: str = "fp32", pb: str = "fp32") -> float | None:
        x, y = _median_p50(rows, a, pa), _median_p50(rows, b, pb)
        return None if x is None or y is None or y == 0 else x / y

    def floor(key: str, precision: str) -> float | None:
        vals = [r[key] for r in rows if r["precision"] == precision and r[key] is not None and r["impl"].startswith("ort-")]
        return vals[0] if vals else None

    dense, sparse = "ort-library-dense", "ort-library-sparse"

    def over(impl: str, key: str, precision: str) -> float | None:
        x, f = _median_p50(rows, impl, precision), floor(key, precision)
        return None if x is None or f is None else x / f

    def growth(impl: str, key: str) -> float | None:
        vals = [(r["context"], r[key]) for r in rows if r["impl"] == impl and r["precision"] == "fp32" and r[key] is not None]
        return None if len(vals) < 2 else max(vals)[1] / min(vals)[1]

    return {
        "sparse_speedup_vs_dense": {p: ratio(dense, sparse, p, p) for p in PRECISIONS},
        "dense_over_dense_floor": {p: over(dense, "floor_ms", p) for p in PRECISIONS},
        "sparse_over_dense_floor": {p: over(sparse, "floor_ms", p) for p in PRECISIONS},
        "sparse_over_sparse_floor": {p: over(sparse, "sparse_floor_ms", p) for p in PRECISIONS},
        "speedup_vs_fallback": ratio("ort-fallback-dense", dense),
        "speedup_vs_torch_eager": ratio("torch-eager", dense),
        "torch_eager_load_1m": next((r["load_1m"] for r in rows if r["impl"] == "torch-eager" and r["load_1m"] is not None), None),
        "int8_speedup_vs_fp32": ratio(dense, dense, "fp32", "int8"),
        "int4_speedup_vs_fp32": ratio(dense, dense, "fp32", "int4"),
        "amsnet_peak_rss_growth": growth(dense, "peak_rss_mib"),
        "transformer_peak_rss_growth": growth("transformer-ort", "peak_rss_mib"),
        "amsnet_decode_growth": growth(dense, "decode_p50_ms"),
        "transformer_decode_growth": growth("transformer-ort", "decode_p50_ms"),
    }


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_bench(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 170))
    m = report["machine"]
    v = m["versions"]
    console.print(
        f"{m['cpu']}, {m['cores']} cores, load {m['load_at_start'][0]:.2f}; onnxruntime {v['onnxruntime']}, "
        f"torch {v['torch']}, Python {v['python']}"
    )
    console.print(f"read bandwidth {m['bandwidth_gbs']:.1f} GB/s: {m['bandwidth_method']}")
    model = report["model"]
    console.print(
        f"{report['package']}: L={model['n_layers']} D={model['d_model']}, {model['parameters']:,} params, "
        f"{report['device']}; weights: {report['weights']}"
    )
    fr = report["firing_rates"]
    per_site = {site: [s["rate"] for s in fr["sites"] if s["site"] == site] for site in ("w_o", "w_2")}
    console.print(
        f"firing rates on {fr['text']}: "
        + "; ".join(
            f"{site} input mean {sum(r) / len(r):.3f} (per layer {', '.join(f'{x:.2f}' for x in r)})" for site, r in per_site.items() if r
        )
    )
    table = Table(title=f"decode after N tokens of context ({report['decode_steps']} steps); {report['decode_state']}")
    for col in (
        "impl",
        "prec",
        "N",
        "p50 ms",
        "p99 ms",
        "floor ms",
        "sparse floor ms",
        "TTFT ms",
        "prefill tok/s",
        "peak RSS MiB",
        "load",
        "note",
    ):
        table.add_column(col, justify="left" if col in ("impl", "note") else "right")
    for r in report["rows"]:
        table.add_row(
            r["impl"],
            r["precision"],
            str(r["context"]),
            _fmt(r["decode_p50_ms"], ".2f"),
            _fmt(r["decode_p99_ms"], ".2f"),
            _fmt(r["floor_ms"], ".3f"),
            _fmt(r["sparse_floor_ms"], ".3f"),
            _fmt(r["ttft_ms"], ".1f"),
            _fmt(r["prefill_tokens_per_s"], ",.0f"),
            _fmt(r["peak_rss_mib"], ",.0f"),
            _fmt(r["load_1m"], ".1f"),
            (r["error"] or r["note"] or "")[:70],
        )
    console.print(table)
    s = report["summary"]
    sp = s["sparse_speedup_vs_dense"]
    console.print(
        "library decode, sparse vs dense: "
        + (", ".join(f"{p} {_fmt(sp[p], '.2f')}x" for p in PRECISIONS if sp[p] is not None) or "no sparse library rows")
        + f"; fp32 sparse at {_fmt(s['sparse_over_dense_floor']['fp32'], '.2f')}x the dense floor, "
        f"{_fmt(s['sparse_over_sparse_floor']['fp32'], '.2f')}x the sparse floor; "
        f"dense fp32 at {_fmt(s['dense_over_dense_floor']['fp32'], '.2f')}x "
        f"the dense floor, {_fmt(s['speedup_vs_fallback'], '.2f')}x vs the fallback"
    )
    console.print(
        f"(PyTorch eager, threads pinned to {next((r['threads'] for r in report['rows'] if r['impl'] == 'torch-eager'), '-')}, "
        f"load {_fmt(s['torch_eager_load_1m'], '.2f')} while measured: "
        f"library dense fp32 {_fmt(s['speedup_vs_torch_eager'], '.2f')}x faster; "
        "not a headline figure, eager timings move with the machine's load)"
    )
