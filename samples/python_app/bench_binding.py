"""Benchmark the Python binding against the C sample app, in one run on one machine.

    .venv/bin/python samples/python_app/bench_binding.py build/shakespeare.aepkg --bench-package build/bench.aepkg

1. Per-token decode time: `astroedge.runtime` (Stream.generate) against build/runtime/ae_generate on the
   same package, same settings (temperature 0.8, seed 0, --threads 1, same AMSU library), interleaved
   repetitions, medians; the figure that matters is the ratio (target: the binding within 10%).
2. Batched decode tokens/s at B = 1, 4, 16, 64 (Engine.step_batch = ae_decode_batch: one graph call per
   step for all B streams), on each package given.

Packages that don't exist yet are made first (host side, needs torch): the bundled sample is exported from
samples/shakespeare/model.pt, the bench package from a random-weight model of the 'bench' preset.
Prints a Markdown section (for docs/benchmarks.md, section "Runtime") and, with --json, the raw numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "ROMEO:"
C_STATS = re.compile(r"generated (\d+) tokens in ([0-9.]+) s")


def ensure_package(path: Path, preset_name: str) -> Path:
    """Export the sample checkpoint ('sample') or a random 'bench' model to `path` unless it exists."""
    if (path / "manifest.json").is_file():
        return path
    import torch

    from astroedge import checkpoint
    from astroedge.config import preset
    from astroedge.export.package import export_package
    from astroedge.model import AMSNet
    from astroedge.tokenizer import ByteTokenizer

    if preset_name == "sample":
        source = ROOT / "samples" / "shakespeare" / "model.pt"
    else:
        torch.manual_seed(0)
        source = path.with_suffix(".pt")
        checkpoint.save(source, AMSNet(preset(preset_name)).eval(), ByteTokenizer())
    print(f"exporting {source} -> {path}", file=sys.stderr)
    return export_package(source, path)


def c_decode_seconds(app: Path, package: Path, tokens: int, library: str) -> float:
    args = [str(app), str(package), PROMPT, str(tokens), "--threads", "1", "--library", library, "--ids"]
    proc = subprocess.run(args, capture_output=True, text=True, check=True)
    m = C_STATS.search(proc.stderr)
    assert m and int(m.group(1)) == tokens, proc.stderr
    return float(m.group(2)) / tokens


def py_decode_seconds(package: Path, tokens: int, library: str) -> float:
    """Same work as ae_generate's timed part: generate `tokens` after the prompt (sampling, step, text piece)."""
    from astroedge.runtime import Engine

    engine = Engine(package, threads=1, library=library)
    stream = engine.create_stream()
    stream.feed(PROMPT)
    n = 0
    t0 = time.perf_counter()
    for _ in stream.generate(None, tokens):
        n += 1
    elapsed = time.perf_counter() - t0
    assert n == tokens
    engine.close()
    return elapsed / tokens


def batched_tokens_per_s(package: Path, batch: int, steps: int, library: str, threads: int) -> float:
    from astroedge.runtime import Engine

    engine = Engine(package, threads=threads, library=library)
    streams = [engine.create_stream() for _ in range(batch)]
    tokens = []
    for i, s in enumerate(streams):
        tokens.append(int(np.argmax(s.feed(f"{i} {PROMPT}"))))
    engine.step_batch(streams, tokens)  # warm-up: first call at this batch size
    t0 = time.perf_counter()
    for _ in range(steps):
        logits = engine.step_batch(streams, tokens)
        tokens = logits.argmax(axis=1).tolist()
    elapsed = time.perf_counter() - t0
    engine.close()
    return batch * steps / elapsed


def main() -> int:
    from astroedge.native import get_library_path, runtime_library_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path, help="the bundled sample's package (exported if missing)")
    ap.add_argument("--bench-package", type=Path, help="a 'bench' preset package (random weights; exported if missing)")
    ap.add_argument("--tokens", type=int, default=400, help="decoded tokens per repetition")
    ap.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per side")
    ap.add_argument("--steps", type=int, default=40, help="batched steps per batch size (sample)")
    ap.add_argument("--bench-steps", type=int, default=4, help="batched steps per batch size (bench package)")
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime threads for the batched runs (0 = its default)")
    ap.add_argument("--json", action="store_true", help="print the raw numbers as JSON after the Markdown")
    a = ap.parse_args()
    library = str(get_library_path() or "")
    lib = runtime_library_path()
    app = None if lib is None else lib.parent / "ae_generate"
    if app is None or not app.is_file():
        print("error: the C sample app (build/runtime/ae_generate) is not built; run 'make setup'", file=sys.stderr)
        return 2
    packages = {"sample": ensure_package(a.package, "sample")}
    if a.bench_package:
        packages["bench"] = ensure_package(a.bench_package, "bench")

    c_runs: list[float] = []
    py_runs: list[float] = []
    c_decode_seconds(app, packages["sample"], 20, library)  # warm the page cache for both sides
    for _ in range(a.repeats):
        c_runs.append(c_decode_seconds(app, packages["sample"], a.tokens, library))
        py_runs.append(py_decode_seconds(packages["sample"], a.tokens, library))
    c_ms, py_ms = 1e3 * statistics.median(c_runs), 1e3 * statistics.median(py_runs)

    batched: dict[str, dict[int, float]] = {}
    for name, pkg in packages.items():
        steps = a.steps if name == "sample" else a.bench_steps
        batched[name] = {b: batched_tokens_per_s(pkg, b, steps, library, a.threads) for b in (1, 4, 16, 64)}

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(
            line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    print("## Python binding vs the C sample app\n")
    amsu = "native library" if library else "fallback function"
    print(f"Machine: {cpu}, {os.cpu_count()} cores (shared with other jobs while measured). AMSU: {amsu}.")
    env = f"ASTROEDGE_LIBRARY={os.environ['ASTROEDGE_LIBRARY']} " if os.environ.get("ASTROEDGE_LIBRARY") else ""
    print(f"Command: `{env}{' '.join(['.venv/bin/python', 'samples/python_app/bench_binding.py', *sys.argv[1:]])}`\n")
    print(f"Per-token decode on the bundled sample ({a.tokens} tokens after {PROMPT!r}, temperature 0.8, seed 0, 1 thread,")
    print(f"median of {a.repeats} interleaved runs each):\n")
    print("| runtime | ms/token | ratio |")
    print("|---|---:|---:|")
    print(f"| C sample app (ae_generate) | {c_ms:.3f} | 1.00 |")
    print(f"| Python binding (Stream.generate) | {py_ms:.3f} | {py_ms / c_ms:.2f} |\n")
    print(f"Batched decode (Engine.step_batch, one graph call per step), tokens/s, onnxruntime threads {a.threads or 'default'}:\n")
    print("| package | B=1 | B=4 | B=16 | B=64 |")
    print("|---|---:|---:|---:|---:|")
    for name, row in batched.items():
        print(f"| {name} | " + " | ".join(f"{row[b]:.0f}" for b in (1, 4, 16, 64)) + " |")
    if a.json:
        out: dict[str, Any] = {"c_s_per_token": c_runs, "py_s_per_token": py_runs, "batched_tokens_per_s": batched}
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
