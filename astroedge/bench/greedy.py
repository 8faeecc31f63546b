"""Greedy decoding from the sparse (SpikeMatMul) and the dense export of one checkpoint: the same tokens?

`python -m astroedge.bench.greedy samples/shakespeare/model.pt --tokens 1000` exports the checkpoint
both ways into a temp folder, runs each through the runtime (native library when built, else the
fallback functions) from the same prompt, and reports how many greedy tokens agree, where the first
difference is (if any) and the largest relative logit difference before it. Greedy = argmax, lowest id
on ties, as the runtime's temperature 0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = "ROMEO:\n"


def greedy(package: Path, prompt: str, tokens: int, library: str | None) -> tuple[list[int], list[np.ndarray], str]:
    """`tokens` greedy ids after `prompt`, the logits each was chosen from, and which kernels ran."""
    from astroedge.runtime import Engine

    engine = Engine(package, library=library)
    stream = engine.create_stream()
    logits = stream.feed(prompt)
    ids, history = [], []
    for _ in range(tokens):
        history.append(logits)
        ids.append(int(np.argmax(logits)))
        logits = stream.step(ids[-1])
    kernel = engine.kernel
    engine.close()
    return ids, history, kernel


def compare(checkpoint: Path, tokens: int, prompt: str = PROMPT, library: str | None = None) -> dict[str, Any]:
    from astroedge.export.package import export_package

    with tempfile.TemporaryDirectory(prefix="astroedge-greedy-") as tmp:
        sparse = export_package(checkpoint, Path(tmp) / "sparse.aepkg")
        dense = export_package(checkpoint, Path(tmp) / "dense.aepkg", dense=True)
        a, la, kernel = greedy(sparse, prompt, tokens, library)
        b, lb, _ = greedy(dense, prompt, tokens, library)
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), None)
    upto = tokens if first is None else first
    rel = max(float(np.abs(x - y).max() / max(1.0, float(np.abs(y).max()))) for x, y in zip(la[:upto], lb[:upto], strict=True))
    return {
        "checkpoint": str(checkpoint),
        "prompt": prompt,
        "tokens": tokens,
        "kernel": kernel,
        "equal_tokens": upto,
        "first_difference": first,
        "max_rel_logit_diff_before": rel,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--fallback", action="store_true", help="run the fallback functions, not the native library")
    args = parser.parse_args()
    print(json.dumps(compare(args.checkpoint, args.tokens, library="" if args.fallback else None), indent=2))


if __name__ == "__main__":
    main()
