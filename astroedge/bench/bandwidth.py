"""The memory-bandwidth floors of a decode step: bytes that must be read per token / measured READ bandwidth.

At batch 1 a decode step reads every weight once and does ~2 flops per weight: no CPU can go faster
than streaming those bytes from memory. Two floors:

- dense floor: every weight byte (tables only gathered from count one row) / read bandwidth;
- sparse floor: the same, but the products whose input is a spike (W_O after the AMSU, W_2 after
  the FFN) count only the rows of the neurons that fired, at the firing rates measured on text.

The bandwidth is a READ bandwidth, measured the way a decode step reads: every core reading its own
share of a buffer far larger than the caches (>= 1 GiB), in parallel. A copy is the wrong yardstick:
it reads and writes, and on this 2-core machine it undercounted the read rate ~2x, which put the
library "below the floor".
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx  # annotations only: the functions below import it when called

GATHER_ONLY = ("Gather",)  # tables read one row per token (embedding, RoPE), not whole


@dataclass(frozen=True)
class Bandwidth:
    gbs: float  # best read rate, 1e9 bytes/s
    method: str  # how it was measured, printed beside every floor


def read_bandwidth(gib: float = 1.0, threads: int = 0, repeats: int = 5) -> Bandwidth:
    """Best of `repeats` parallel reads of a `gib` GiB buffer, one contiguous share per thread.

    Each thread ORs its share into one word (np.bitwise_or.reduce releases the GIL and streams at
    memory speed: it does one integer op per 8 bytes read). The buffer is written once first so that
    its pages exist; the timed passes only read.
    """
    threads = threads or os.cpu_count() or 1
    words = int(gib * (1 << 30)) // 8
    buf = np.ones(words, dtype=np.uint64)
    shares = np.array_split(buf, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            t0 = time.perf_counter()
            list(pool.map(np.bitwise_or.reduce, shares))
            best = min(best, time.perf_counter() - t0)
    method = (
        f"read of a {buf.nbytes / 2**30:.2f} GiB buffer by {threads} threads in parallel "
        f"(np.bitwise_or.reduce over each thread's share), best of {repeats}"
    )
    return Bandwidth(buf.nbytes / best / 1e9, method)


def _load(onnx_path: Path) -> onnx.ModelProto:
    import onnx

    return onnx.load(str(onnx_path), load_external_data=False)


def weight_bytes_per_token(onnx_path: Path, rates: dict[tuple[str, int], float] | None = None) -> int:
    """Bytes of initializers a one-token step reads.

    All of them, except tables only gathered from (one row each) and, when `rates` is given ((site,
    layer) -> firing rate, export/spike_matmul.py's numbering), the weights of the spike products,
    which count at that rate: only the rows of the neurons that fired are needed.
    """
    from astroedge.export.spike_matmul import spike_products

    model = _load(onnx_path)
    graph = model.graph
    consumers: dict[str, set[str]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, set()).add(node.op_type)
    scale: dict[str, float] = {}
    if rates is not None:
        for product in spike_products(graph):
            for w in product.weights:
                scale[w] = rates[product.site, product.layer]
    total = 0.0
    for t in graph.initializer:
        size = _tensor_bytes(t)
        if consumers.get(t.name, set()) and consumers[t.name] <= set(GATHER_ONLY) and len(t.dims) == 2:
            size = size // max(int(t.dims[0]), 1)  # one row
        total += size * scale.get(t.name, 1.0)
    return int(total)


def _tensor_bytes(t: onnx.TensorProto) -> int:
    """Stored bytes of an initializer; int4 packs two values a byte."""
    from onnx import TensorProto, helper

    count = int(np.prod(t.dims)) if t.dims else 1
    if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
        return (count + 1) // 2
    return count * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
