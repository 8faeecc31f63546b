"""The memory-bandwidth floor of a decode step: bytes that must be read per token / measured bandwidth.

At batch 1 a decode step reads every weight once and does ~2 flops per weight: no CPU can go faster
than streaming those bytes from memory. The bandwidth is measured here, with a large numpy copy.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

GATHER_ONLY = ("Gather",)  # tables read one row per token (embedding, RoPE), not whole


def copy_bandwidth_gbs(mib: int = 256, repeats: int = 5) -> float:
    """Best of `repeats` copies of a `mib` MiB array, counting bytes read + written, in GB/s."""
    src = np.ones(mib * (1 << 20) // 8, dtype=np.float64)
    dst = np.empty_like(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t0)
    return 2 * src.nbytes / best / 1e9


def weight_bytes_per_token(onnx_path: Path) -> int:
    """Bytes of initializers a one-token step reads: all of them, except tables only gathered from (one row each)."""
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    consumers: dict[str, set[str]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    total = 0
    for t in model.graph.initializer:
        size = _tensor_bytes(t)
        if consumers.get(t.name, set()) and consumers[t.name] <= set(GATHER_ONLY) and len(t.dims) == 2:
            size = size // max(int(t.dims[0]), 1)  # one row
        total += size
    return total


def _tensor_bytes(t: object) -> int:
    from onnx import helper

    count = int(np.prod(t.dims)) if t.dims else 1  # type: ignore[attr-defined]
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize  # type: ignore[attr-defined]
