"""One stream generating a very long text: the runtime's constant-memory promise, measured.

    python -m astroedge.bench.long_stream build/shakespeare.aepkg --tokens 1000000 [--out FILE.json]

Samples (temperature 0.8) token by token with the torch-free runtime, and records the process's
resident memory (VmRSS) and the throughput at 20 checkpoints. Memory after warm-up should not grow:
the state is the same 266 KB whether the stream is 1 or 10**6 tokens long.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from astroedge.runtime import Engine
from astroedge.runtime.stats import proc_status_kib


def run(package: Path, tokens: int, prompt: str = "ROMEO:", checkpoints: int = 20) -> dict:
    engine = Engine(package)
    stream = engine.create_stream()
    every = max(tokens // checkpoints, 1)
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    gen = stream.generate(prompt, max_new_tokens=tokens, temperature=0.8, seed=1)
    for i, _ in enumerate(gen, start=1):
        if i % every == 0 or i == tokens:
            rows.append({"tokens": i, "seconds": round(time.perf_counter() - t0, 2), "rss_kib": proc_status_kib("VmRSS")})
    rss = [r["rss_kib"] for r in rows if r["rss_kib"] is not None]  # VmRSS: None off Linux
    warm = rss[0] if rss else None
    return {
        "package": str(package),
        "kernel": engine.kernel,
        "tokens": tokens,
        "position_after": stream.position,
        "tokens_per_s": round(tokens / (time.perf_counter() - t0), 1),
        "rss_kib_after_warmup": warm,
        "rss_kib_max_growth_after_warmup": max(rss) - rss[0] if rss else None,
        "state_bytes_per_stream": stream.state_bytes,
        "checkpoints": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("--tokens", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    report = run(args.package, args.tokens)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
