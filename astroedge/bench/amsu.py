"""Benchmark of the AMSU op alone on CPU: PyTorch eager vs ONNX Runtime with the fallback function vs
ONNX Runtime with the native library, for decode (T=1) and prefill (T=512) at batch 1.

Run by `make bench`:  python -m astroedge.bench.amsu [--out build/bench/amsu_cpu.json]
Each method runs the same random inputs (non-zero state); the library's and the fallback's states
are checked against each other so a fast wrong kernel cannot post a number.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from astroedge.bench.amsu_case import EPS, THRESHOLD, AmsuCase, random_inputs, single_node_model
from astroedge.config import preset
from astroedge.errors import UserError
from astroedge.fileio import atomic_file

DEFAULT_OUT = Path("build/bench/amsu_cpu.json")


def time_us(fn: Callable[[], object], repeat: int, min_seconds: float = 0.5) -> float:
    """Median wall time of fn() in microseconds, after a warm-up call; at least `repeat` runs or min_seconds."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * repeat:
            break
    return statistics.median(times) * 1e6


def torch_runner(case: AmsuCase, feeds: dict[str, np.ndarray]) -> Callable[[], object]:
    import torch

    from astroedge.model import AMSUParams, amsu_chunkwise_form, amsu_step_form

    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    p = AMSUParams(t["w_o"], t["gamma"], t["beta"], THRESHOLD, EPS, 1.0)
    form = amsu_step_form if case.seq == 1 else amsu_chunkwise_form

    def run() -> object:
        with torch.no_grad():
            return form(t["x"], t["q"], t["k"], t["v"], t["h_in"], t["u_in"], p)

    return run


def ort_runner(case: AmsuCase, feeds: dict[str, np.ndarray], use_library: bool) -> Callable[[], list[np.ndarray]]:
    from astroedge.runtime.ort_session import create_session

    info = create_session(
        single_node_model(case.dtype, case.heads, with_fallback=True, dim=case.dim), device="cpu", use_library=use_library
    )
    session = info.session

    def run() -> list[np.ndarray]:
        return session.run(None, feeds)

    return run


def bench(repeat: int) -> list[dict[str, object]]:
    cfg = preset("sample")
    rows: list[dict[str, object]] = []
    for phase, seq in (("decode", 1), ("prefill", 512)):
        case = AmsuCase(batch=1, seq=seq, dim=cfg.d_model, heads=cfg.n_heads)
        feeds = random_inputs(case, seed=seq)
        lib, fallback = ort_runner(case, feeds, True), ort_runner(case, feeds, False)
        _, h_lib, u_lib = lib()
        _, h_fb, u_fb = fallback()
        state_diff = max(float(np.abs(h_lib - h_fb).max() / np.abs(h_fb).max()), float(np.abs(u_lib - u_fb).max() / np.abs(u_fb).max()))
        if state_diff > 1e-4:
            raise RuntimeError(f"{phase}: library and fallback disagree on the state (max rel diff {state_diff:.2e})")
        # onnxruntime first: torch's OpenMP workers keep spinning for a while after each torch call
        # and would steal the cores the library's threads run on (seen here as a 2x spread).
        times = {"ort_fallback": time_us(fallback, repeat), "ort_library": time_us(lib, repeat)}
        times["pytorch"] = time_us(torch_runner(case, feeds), repeat)
        time.sleep(0.5)  # let those workers go idle before the next case's onnxruntime rows
        rows.append(
            {
                "phase": phase,
                "batch": case.batch,
                "seq": case.seq,
                "dim": case.dim,
                "heads": case.heads,
                "us": times,
                "library_speedup_vs_fallback": times["ort_fallback"] / times["ort_library"],
                "library_speedup_vs_pytorch": times["pytorch"] / times["ort_library"],
                "state_max_rel_diff_library_vs_fallback": state_diff,
            }
        )
    return rows


def print_table(rows: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="AMSU op alone, CPU, sample config (D=256, NH=4), batch 1, microseconds per call (median)")
    for col in ("phase", "T", "PyTorch eager", "ORT fallback", "ORT library", "lib vs fallback", "lib vs PyTorch"):
        table.add_column(col, justify="right")
    for r in rows:
        us = r["us"]
        assert isinstance(us, dict)
        table.add_row(
            str(r["phase"]),
            str(r["seq"]),
            f"{us['pytorch']:.1f}",
            f"{us['ort_fallback']:.1f}",
            f"{us['ort_library']:.1f}",
            f"{r['library_speedup_vs_fallback']:.1f}x",
            f"{r['library_speedup_vs_pytorch']:.1f}x",
        )
    Console().print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    parser.add_argument("--repeat", type=int, default=20, help="minimum timed runs per method")
    args = parser.parse_args()
    try:
        from astroedge.runtime.ort_session import library_path

        if library_path("cpu") is None:
            raise UserError("libastroedge_ort.so is not built: run 'make plugins' first")
        rows = bench(args.repeat)
        print_table(rows)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "results": rows}
        with atomic_file(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None


if __name__ == "__main__":
    main()
