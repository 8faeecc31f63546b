"""`astroedge bench`: whole-model decode and prefill against the baselines, in one run.

Rows (each measured in its own process, astroedge/bench/worker.py): PyTorch eager (the reference
step form), onnxruntime with the fallback function, onnxruntime with the native AMSU library in each
precision (quantised on the fly from the fp32 package, without the quality gate: speed only), and a
GPT-style Transformer with a KV cache and the same parameter count. Beside them, the bandwidth
floor: bytes read per token / this machine's measured copy bandwidth. Decode is measured after a
context of N tokens for each N in `contexts`: AM-SNet's state is constant, the Transformer's cache
grows. Output: a rich table, a JSON report and PNG plots (astroedge/bench/plots.py).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astroedge.errors import UserError

DEFAULT_CONTEXTS = (128, 1024, 8192, 65536)
PRECISIONS = ("fp32", "fp16", "int8", "int4")
RANDOM_PACKAGES = Path("build/bench")
MEMORY_SHARE = 0.5  # refuse a Transformer context whose KV cache (x3: past, present, copy) needs more than this share of RAM
ROW_FIELDS = (
    "impl", "precision", "kernel", "context", "decode_p50_ms", "decode_p99_ms", "ttft_ms", "prefill_tokens_per_s",
    "peak_rss_mib", "rss_after_load_mib", "gpu_mem_mib", "state_bytes", "bytes_per_token", "floor_ms", "error",
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


def machine_info(bandwidth_gbs: float) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "bandwidth_gbs": bandwidth_gbs}
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * size / 2**30, 1)
    except (ValueError, OSError):
        info["ram_gib"] = None
    import onnxruntime

    info["onnxruntime"] = onnxruntime.__version__
    return info


def random_package(config: str) -> Path:
    """A seeded random-weight checkpoint and package of preset `config`, made once under build/bench/ and reused."""
    from astroedge.config import preset

    preset(config)  # unknown name -> UserError
    folder = RANDOM_PACKAGES / f"{config}-random"
    pkg = folder / "model.aepkg"
    if (pkg / "manifest.json").is_file():
        return pkg
    import torch

    from astroedge import checkpoint
    from astroedge.export.package import export_package
    from astroedge.model import AMSNet
    from astroedge.tokenizer import ByteTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    checkpoint.save(folder / "model.pt", AMSNet(preset(config)).eval(), ByteTokenizer())
    return export_package(folder / "model.pt", pkg, force=True)


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "astroedge.bench.worker", json.dumps(spec)], capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"worker failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def _variants(opts: BenchOptions, fp32: Path, work: Path) -> dict[str, Path]:
    from astroedge.quantize.package import quantize_package

    out = {}
    for p in opts.precisions:
        if p == "fp32":
            out[p] = fp32
        else:
            out[p] = work / f"{p}.aepkg"
            quantize_package(fp32, out[p], p, gate=False)
    return out


def run_bench(opts: BenchOptions, command: str) -> dict[str, Any]:
    from astroedge.bench.bandwidth import copy_bandwidth_gbs, weight_bytes_per_token
    from astroedge.bench.kv_cache import kv_bytes, mlp_hidden
    from astroedge.bench.transformer import export_transformer
    from astroedge.runtime.ort_session import library_path
    from astroedge.runtime.package import load_package

    if (opts.package is None) == (opts.config is None):
        raise UserError("give a package (model.aepkg) or --config NAME for a random-weight model, not both")
    fp32 = opts.package if opts.package is not None else random_package(str(opts.config))
    pkg = load_package(fp32)
    if pkg.precision != "fp32":
        raise UserError(f"{fp32}: is {pkg.precision}; bench the fp32 package (other precisions are made from it on the fly)")
    cfg = pkg.config
    bandwidth = copy_bandwidth_gbs()
    report: dict[str, Any] = {
        "command": command,
        "machine": machine_info(bandwidth),
        "package": str(fp32),
        "model": {**cfg.to_dict(), "parameters": pkg.manifest.get("parameters")},
        "device": opts.device,
        "contexts": list(opts.contexts),
        "decode_steps": opts.decode_steps,
        "prompt_tokens": opts.prompt_tokens,
        "prefill_tokens": opts.prefill_tokens,
        "state_synthesised": True,
        "rows": [],
    }
    have_library = library_path("cuda" if opts.device == "cuda" else "cpu") is not None
    ram = report["machine"].get("ram_gib") or 0
    with tempfile.TemporaryDirectory(prefix="astroedge-bench-", dir=RANDOM_PACKAGES if RANDOM_PACKAGES.is_dir() else None) as tmp:
        work = Path(tmp)
        variants = _variants(opts, fp32, work) if have_library else {"fp32": fp32}
        impls: list[tuple[str, str, dict[str, Any]]] = []
        base = {"config": cfg.to_dict(), "device": opts.device, "threads": opts.threads}
        if opts.baselines:
            if opts.device == "cpu":
                impls.append(("torch-eager", "fp32", {**base, "kind": "torch"}))
            impls.append(("ort-fallback", "fp32", {**base, "kind": "amsnet", "path": str(fp32), "use_library": False}))
        for p, path in variants.items():
            impls.append((f"ort-library-{p}", p, {**base, "kind": "amsnet", "path": str(path), "use_library": True}))
        if not have_library:
            report["library"] = "not built (make plugins): no ort-library rows"
        if opts.baselines:
            tf_path = work / "transformer.onnx"
            report["transformer"] = {"parameters": export_transformer(cfg, tf_path), "mlp_hidden": mlp_hidden(cfg)}
            impls.append(("transformer-ort", "fp32", {**base, "kind": "transformer", "path": str(tf_path)}))
        for impl, precision, spec in impls:
            onnx_path = Path(spec["path"]) if impl.startswith("transformer") else (variants.get(precision, fp32) / "model.onnx")
            weights = weight_bytes_per_token(onnx_path)
            prefill = _run_worker({**spec, "mode": "prefill", "prompt_tokens": opts.prompt_tokens, "prefill_tokens": opts.prefill_tokens})
            for context in opts.contexts:
                row: dict[str, Any] = dict.fromkeys(ROW_FIELDS)
                row.update(impl=impl, precision=precision, context=context)
                need = 3 * kv_bytes(cfg, context)
                if impl.startswith("transformer") and need > MEMORY_SHARE * ram * 2**30:
                    row["error"] = f"skipped: a {context}-token KV cache needs ~{need / 2**30:.1f} GiB, over half this machine's RAM"
                else:
                    row.update(_run_worker({**spec, "mode": "decode", "context": context, "decode_steps": opts.decode_steps}))
                row["ttft_ms"] = prefill.get("ttft_ms")
                row["prefill_tokens_per_s"] = prefill.get("prefill_tokens_per_s")
                if prefill.get("error") and not row.get("error"):
                    row["error"] = prefill["error"]
                state = kv_bytes(cfg, context) if impl.startswith("transformer") else pkg.state_bytes_per_stream
                row["bytes_per_token"] = weights + (state if impl.startswith("transformer") else 2 * state)  # KV read; state read + written
                row["floor_ms"] = 1e3 * row["bytes_per_token"] / (bandwidth * 1e9)
                report["rows"].append({k: row.get(k) for k in ROW_FIELDS})
    report["summary"] = summarise(report["rows"])
    return report


def _median_p50(rows: list[dict[str, Any]], impl: str) -> float | None:
    values = sorted(r["decode_p50_ms"] for r in rows if r["impl"] == impl and r["decode_p50_ms"] is not None)
    return values[len(values) // 2] if values else None


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, as ratios of median decode p50 over contexts (None where a row is missing)."""

    def ratio(a: str, b: str) -> float | None:
        x, y = _median_p50(rows, a), _median_p50(rows, b)
        return None if x is None or y is None or y == 0 else x / y

    lib = "ort-library-fp32"
    floor = sorted(r["floor_ms"] for r in rows if r["impl"] == lib and r["floor_ms"] is not None)
    lib_ms = _median_p50(rows, lib)

    def growth(impl: str, key: str) -> float | None:
        vals = [(r["context"], r[key]) for r in rows if r["impl"] == impl and r[key] is not None]
        return None if len(vals) < 2 else max(vals)[1] / min(vals)[1]

    return {
        "speedup_vs_torch_eager": ratio("torch-eager", lib),
        "speedup_vs_fallback": ratio("ort-fallback", lib),
        "fp32_over_bandwidth_floor": None if lib_ms is None or not floor else lib_ms / floor[len(floor) // 2],
        "int8_speedup_vs_fp32": ratio(lib, "ort-library-int8"),
        "int4_speedup_vs_fp32": ratio(lib, "ort-library-int4"),
        "amsnet_peak_rss_growth": growth(lib, "peak_rss_mib"),
        "transformer_peak_rss_growth": growth("transformer-ort", "peak_rss_mib"),
        "amsnet_decode_growth": growth(lib, "decode_p50_ms"),
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

    console = Console(width=max(Console().width, 150))
    m = report["machine"]
    console.print(f"{m['cpu']}, {m['cores']} cores, copy bandwidth {m['bandwidth_gbs']:.1f} GB/s, onnxruntime {m['onnxruntime']}")
    model = report["model"]
    console.print(f"{report['package']}: L={model['n_layers']} D={model['d_model']}, {model['parameters']:,} params, {report['device']}")
    table = Table(title=f"decode after N tokens of context ({report['decode_steps']} steps); state at N synthesised")
    for col in ("impl", "N", "p50 ms", "p99 ms", "floor ms", "TTFT ms", "prefill tok/s", "peak RSS MiB", "state/KV bytes", "note"):
        table.add_column(col, justify="left" if col in ("impl", "note") else "right")
    for r in report["rows"]:
        table.add_row(
            r["impl"], str(r["context"]), _fmt(r["decode_p50_ms"], ".2f"), _fmt(r["decode_p99_ms"], ".2f"), _fmt(r["floor_ms"], ".3f"),
            _fmt(r["ttft_ms"], ".1f"), _fmt(r["prefill_tokens_per_s"], ",.0f"), _fmt(r["peak_rss_mib"], ",.0f"),
            _fmt(r["state_bytes"], ","), (r["error"] or "")[:60],
        )
    console.print(table)
    s = report["summary"]
    console.print(
        "library fp32 decode: "
        f"{_fmt(s['speedup_vs_torch_eager'], '.2f')}x vs PyTorch eager, {_fmt(s['speedup_vs_fallback'], '.2f')}x vs fallback, "
        f"{_fmt(s['fp32_over_bandwidth_floor'], '.2f')}x the bandwidth floor; int8 {_fmt(s['int8_speedup_vs_fp32'], '.2f')}x, "
        f"int4 {_fmt(s['int4_speedup_vs_fp32'], '.2f')}x vs fp32; peak RSS growth over contexts: AM-SNet "
        f"{_fmt(s['amsnet_peak_rss_growth'], '.2f')}x, Transformer {_fmt(s['transformer_peak_rss_growth'], '.2f')}x"
    )
