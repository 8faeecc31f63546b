#!/usr/bin/env python3
"""Micro-benchmark of the SpikeMatMul CPU kernel against the dense ONNX Runtime products, at the bench config's shapes.

What one decode step of the bench model (astroedge/config.py 'bench': D=768, 12 layers, ffn 4D) multiplies
spikes with: per layer W_O [K=D, N=D] at the AMSU spikes' firing rate (0.32 in the bundled sample) and
W_2 [K=ffn, N=D] at the FFN spikes' (0.14). Each variant is ONE onnxruntime session holding all 24
products as independent nodes with their own weights (144 MB in fp32: far beyond the caches, as in the
real model), run as one call per "token", so every row pays the same session overhead:

  dense   MatMul (fp32, MLAS), MatMulNBits bits=8 / bits=4 (block 32 along K, accuracy_level 4 as
          astroedge/quantize/integer.py uses: int8 activations, MLAS's fast path), the dense library
          products the sparse op replaces
  sparse  astroedge::SpikeMatMul from libastroedge_ort.so in each weight format

Prefill (T tokens at once, same rates) is timed the same way. Reported: median ms per call over
interleaved repetitions (variants alternate, so machine load hits all alike), the speed-up
dense / sparse of the same precision, and bytes read per call over time. Ratios within one run are the
result; absolute numbers depend on the machine and its load, both printed.

Usage: .venv/bin/python plugins/scripts/bench_spikematmul.py [--library build/plugins/libastroedge_ort.so]
       [--reps 30] [--prefill 128] [--threads 0] [--out docs/benchmarks-spikematmul.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from astroedge.config import preset  # noqa: E402
from astroedge.contract import spikematmul_contract  # noqa: E402
from astroedge.contract.spikematmul import quantize  # noqa: E402

PRECISIONS = ["float32", "float16", "int8", "int4"]
NBITS = {"int8": 8, "int4": 4}
NBITS_BLOCK = 32
SMM_BLOCK = 32


def layer_shapes() -> tuple[int, list[tuple[str, int, int, float]]]:
    cfg = preset("bench")
    return cfg.n_layers, [("W_O", cfg.d_model, cfg.d_model, 0.32), ("W_2", cfg.ffn_hidden, cfg.d_model, 0.14)]


def matmulnbits_pack(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """W^T [K, N] -> MatMulNBits B [N, K/32, 32*bits/8] uint8 and scales [N * K/32] (symmetric, default zero point)."""
    k, n = w.shape
    blocks = w.T.reshape(n, k // NBITS_BLOCK, NBITS_BLOCK)
    qmax = 2 ** (bits - 1) - 1
    amax = np.abs(blocks).max(axis=2, keepdims=True)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    q = (np.clip(np.rint(blocks / scale), -qmax - 1, qmax) + 2 ** (bits - 1)).astype(np.uint8)
    if bits == 4:
        q = q[..., 0::2] | (q[..., 1::2] << 4)
    return q, scale.reshape(-1)


def build_model(
    kind: str, precision: str, layers: int, shapes: list[tuple[str, int, int, float]], rng: np.random.Generator
) -> bytes | None:
    """One session's model: 2 * layers independent products, inputs s_<i> [B, T, K]; None if the kind lacks the precision."""
    c = spikematmul_contract()
    nodes, inputs, outputs, inits = [], [], [], []
    act = TensorProto.FLOAT
    for layer in range(layers):
        for name, k, n, _ in shapes:
            tag = f"{name}_{layer}"
            w = (rng.standard_normal((k, n)) * 0.05).astype(np.float32)
            inputs.append(helper.make_tensor_value_info(f"s_{tag}", act, ["B", "T", k]))
            outputs.append(helper.make_tensor_value_info(f"y_{tag}", act, ["B", "T", n]))
            if kind == "sparse":
                weight, scale = quantize(w, precision, SMM_BLOCK)
                inits.append(numpy_helper.from_array(weight, f"w_{tag}"))
                node_inputs = [f"s_{tag}", f"w_{tag}"]
                if scale is not None:
                    inits.append(numpy_helper.from_array(scale, f"sc_{tag}"))
                    node_inputs.append(f"sc_{tag}")
                attrs = {"out_features": n} | ({"block_size": SMM_BLOCK} if precision == "int4" else {})
                nodes.append(helper.make_node(c.name, node_inputs, [f"y_{tag}"], domain=c.domain, **attrs))
            elif precision == "float32":
                inits.append(numpy_helper.from_array(w, f"w_{tag}"))
                nodes.append(helper.make_node("MatMul", [f"s_{tag}", f"w_{tag}"], [f"y_{tag}"]))
            elif precision in NBITS:
                b, scales = matmulnbits_pack(w, NBITS[precision])
                inits += [numpy_helper.from_array(b, f"w_{tag}"), numpy_helper.from_array(scales, f"sc_{tag}")]
                nodes.append(
                    helper.make_node(
                        "MatMulNBits",
                        [f"s_{tag}", f"w_{tag}", f"sc_{tag}"],
                        [f"y_{tag}"],
                        domain="com.microsoft",
                        K=k,
                        N=n,
                        bits=NBITS[precision],
                        block_size=NBITS_BLOCK,
                        accuracy_level=4,
                    )
                )
            else:
                return None  # onnxruntime's CPU MatMul has no fp16 kernel on x86: no dense fp16 row
    graph = helper.make_graph(nodes, f"{kind}_{precision}", inputs, outputs, initializer=inits)
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1), helper.make_opsetid(c.domain, c.version)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9
    return model.SerializeToString()


def session(model: bytes, library: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(str(library))
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


def feeds(layers: int, shapes: list[tuple[str, int, int, float]], t: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        f"s_{name}_{layer}": (rng.random((1, t, k)) < rate).astype(np.float32) for layer in range(layers) for name, k, _, rate in shapes
    }


def bytes_read(
    kind: str, precision: str, shapes: list[tuple[str, int, int, float]], layers: int, t: int, f: dict[str, np.ndarray]
) -> float:
    """Weight bytes a call must read: every row (dense), or the rows fired in any of the t tokens (sparse)."""
    per_elem = {"float32": 4.0, "float16": 2.0, "int8": 1.0, "int4": 0.5}[precision]
    total = 0.0
    for layer in range(layers):
        for name, k, n, _ in shapes:
            rows = k if kind == "dense" else int(np.any(f[f"s_{name}_{layer}"][0] != 0, axis=0).sum())
            scale = (
                (4.0 / SMM_BLOCK if precision == "int4" else 0.0)
                if kind == "sparse"
                else (4.0 / NBITS_BLOCK if precision in NBITS else 0.0)
            )
            total += rows * n * (per_elem + scale)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--library", type=Path, default=ROOT / "build" / "plugins" / "libastroedge_ort.so")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--prefill", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its default)")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here (temp file + rename)")
    args = ap.parse_args()
    if not args.library.is_file():
        print(f"error: --library {args.library} not found; run `make plugins`", file=sys.stderr)
        raise SystemExit(2)

    layers, shapes = layer_shapes()
    rng = np.random.default_rng(0)
    variants: dict[tuple[str, str], ort.InferenceSession] = {}
    for precision in PRECISIONS:
        for kind in ("dense", "sparse"):
            model = build_model(kind, precision, layers, shapes, rng)
            if model is not None:
                variants[(kind, precision)] = session(model, args.library, args.threads)
    rows = []
    for t in (1, args.prefill):
        f = feeds(layers, shapes, t, rng)
        times: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
        for s in variants.values():  # warm-up: first-run allocations, page faults on the weights
            s.run(None, f)
        for _ in range(args.reps):
            for v, s in variants.items():
                start = time.perf_counter()
                s.run(None, f)
                times[v].append(time.perf_counter() - start)
        for precision in PRECISIONS:
            med = {kind: statistics.median(times[(kind, precision)]) for kind in ("dense", "sparse") if (kind, precision) in times}
            for kind, sec in med.items():
                gbps = bytes_read(kind, precision, shapes, layers, t, f) / sec / 1e9
                speedup = f"{med['dense'] / sec:.2f}x" if "dense" in med and kind == "sparse" else ""
                rows.append((f"T={t}", precision, kind, f"{sec * 1e3:.3f}", f"{gbps:.1f}", speedup))
    rates = ", ".join(f"{name} K={k} N={n} rate {rate}" for name, k, n, rate in shapes)
    header = [
        f"SpikeMatMul micro-benchmark: {layers} layers x ({rates}), one onnxruntime call per row, median of {args.reps}",
        f"machine: {platform.machine()} {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; onnxruntime {ort.__version__}, "
        f"onnx {onnx.__version__}, numpy {np.__version__}; intra-op threads {args.threads or 'default'}",
        "command: .venv/bin/python plugins/scripts/bench_spikematmul.py "
        f"--reps {args.reps} --prefill {args.prefill} --threads {args.threads}",
        "",
        "| tokens | precision | kind | ms / call | GB/s of weights read | sparse speed-up |",
        "|---|---|---|---|---|---|",
    ]
    table = "\n".join(header + [f"| {' | '.join(r)} |" for r in rows]) + "\n"
    print(table)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(table)
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
