"""Interleaved A/B decode timing of two packages in one process: the ratio a shared machine can still give.

`python -m astroedge.bench.ab DENSE.aepkg SPARSE.aepkg --steps 200` opens both (native library when
built), brings each stream to the state 256 tokens of the sample's held-out text leave, then times one
decode step of A, one of B, A, B, ... on the text's next tokens. Another job's load hits neighbouring
A and B steps alike, so the median of the per-pair ratios (A time / B time) is far steadier than two
medians taken minutes apart (astroedge bench measures each row in its own process, one after another).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def ab(a: Path, b: Path, steps: int, threads: int = 0) -> dict[str, Any]:
    from astroedge.bench.firing import text_ids
    from astroedge.runtime import Engine

    ids, source = text_ids(a, 256 + steps + 8)
    engines = [Engine(p, threads=threads, verify=False) for p in (a, b)]
    streams = [e.create_stream() for e in engines]
    for s in streams:
        s.feed(ids[:256].tolist())
    times = np.zeros((steps, 2))
    load = os.getloadavg()[0]
    for i in range(steps):
        token = int(ids[256 + i])
        for j, s in enumerate(streams):
            t0 = time.perf_counter()
            s.step(token)
            times[i, j] = time.perf_counter() - t0
    times = times[2:]  # warm-up pairs
    ratio = times[:, 0] / times[:, 1]
    out = {
        "a": str(a),
        "b": str(b),
        "kernels": [e.kernel for e in engines],
        "text": source,
        "pairs": len(times),
        "a_p50_ms": 1e3 * float(np.median(times[:, 0])),
        "b_p50_ms": 1e3 * float(np.median(times[:, 1])),
        "a_over_b_median": float(np.median(ratio)),
        "a_over_b_p25_p75": [float(np.percentile(ratio, 25)), float(np.percentile(ratio, 75))],
        "load_1m": [load, os.getloadavg()[0]],
    }
    for e in engines:
        e.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(ab(args.a, args.b, args.steps, args.threads), indent=2))


if __name__ == "__main__":
    main()
