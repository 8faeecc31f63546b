"""Benchmark of the CUDA AMSU kernel alone against the memory-bandwidth roofline.

Decode (T=1) at B=1 and B=64 and prefill (T=512, B=1), for the sample (D=256, NH=4) and bench
(D=768, NH=12) configs, fp32 and fp16 inputs. Reports microseconds per call (CUDA events, state
updated in place as TensorRT binds it) and the achieved GB/s over the bytes a call must move:
state read + write, inputs x q k v, spikes, and the per-channel parameters.

Runs with plain python3 + torch (no venv, no rich):
    PYTHONPATH=. python3 -m astroedge.bench.amsu_cuda [--out build/bench/amsu_cuda.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from astroedge.bench.amsu_case import EPS, THRESHOLD, AmsuCase
from astroedge.bench.amsu_ctypes import AmsuKernels

CONFIGS = {"sample": (256, 4), "bench": (768, 12)}
SHAPES = (("decode", 1, 1), ("decode", 64, 1), ("prefill", 1, 512))  # (phase, B, T)


def bytes_moved(case: AmsuCase) -> int:
    """Minimum traffic of one call: fp32 state in and out, T-typed activations in and spikes out, parameters."""
    elt = 2 if case.dtype == "float16" else 4
    state = case.batch * (case.heads * case.head_dim**2 + case.dim) * 4
    activations = case.batch * case.seq * case.dim * elt * 5  # x, q, k, v in; s out
    params = (2 * case.dim + case.heads) * 4
    return 2 * state + activations + params


def time_case(kernels: AmsuKernels, case: AmsuCase, iters: int) -> float:
    """Microseconds per call, averaged over `iters` back-to-back launches on one stream."""
    import torch

    dt = getattr(torch, case.dtype)
    b, t, d, nh, hd = case.batch, case.seq, case.dim, case.heads, case.head_dim
    dev = {name: torch.randn(b, t, d, device="cuda").to(dt) for name in ("x", "q", "k", "v")}
    dev["k"] *= hd**-0.5
    dev |= {
        "w_o": torch.full((d,), 0.5, device="cuda"),
        "gamma": torch.linspace(0.8, 0.999, nh, device="cuda"),
        "beta": torch.full((d,), 0.6, device="cuda"),
        "h_in": torch.randn(b, nh, hd, hd, device="cuda") * 0.1,
        "u_in": torch.zeros(b, d, device="cuda"),
        "s": torch.empty(b, t, d, device="cuda", dtype=dt),
    }
    pointers = {k: v.data_ptr() for k, v in dev.items()} | {"h_out": dev["h_in"].data_ptr(), "u_out": dev["u_in"].data_ptr()}
    stream = torch.cuda.current_stream().cuda_stream
    shape = (b, t, d, nh)
    for _ in range(3):
        kernels.cuda_forward(shape, THRESHOLD, EPS, case.dtype, pointers, stream)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        kernels.cuda_forward(shape, THRESHOLD, EPS, case.dtype, pointers, stream)
    end.record()
    end.synchronize()
    return start.elapsed_time(end) * 1e3 / iters


def main() -> None:
    parser = argparse.ArgumentParser(description="CUDA AMSU kernel benchmark")
    parser.add_argument("--out", type=Path, default=Path("build/bench/amsu_cuda.json"))
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("error: no CUDA GPU visible to torch; run this on a machine with one")
    kernels = AmsuKernels()
    rows = []
    print(f"device: {torch.cuda.get_device_name()}")
    print(f"{'config':7s} {'phase':8s} {'B':>3s} {'T':>4s} {'dtype':8s} {'us/call':>9s} {'MB moved':>9s} {'GB/s':>8s}")
    for config, (d, nh) in CONFIGS.items():
        for phase, b, t in SHAPES:
            for dtype in ("float32", "float16"):
                case = AmsuCase(batch=b, seq=t, dim=d, heads=nh, dtype=dtype)
                us = time_case(kernels, case, args.iters if t == 1 else max(args.iters // 10, 5))
                moved = bytes_moved(case)
                gbs = moved / us / 1e3
                rows.append(
                    {
                        "config": config,
                        "phase": phase,
                        "batch": b,
                        "seq": t,
                        "dim": d,
                        "heads": nh,
                        "dtype": dtype,
                        "us": us,
                        "bytes": moved,
                        "gb_per_s": gbs,
                    }
                )
                print(f"{config:7s} {phase:8s} {b:3d} {t:4d} {dtype:8s} {us:9.2f} {moved / 1e6:9.3f} {gbs:8.1f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"device": torch.cuda.get_device_name(), "results": rows}, indent=2) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
