"""One bench measurement in its own process: `python -m astroedge.bench.worker '<json spec>'` prints one JSON line.

A process per (implementation, context) so that its peak resident memory (VmHWM) belongs to that
measurement alone, not to whatever ran before it in the same process.

Spec: kind (torch | amsnet | transformer), path (package dir or transformer .onnx; unused for torch),
config (ModelConfig dict), device, mode ("prefill": time to first token and prefill tokens/s from
zero state; "decode": per-token latency after a context of `context` tokens), and the sizes.
The state at context N is not computed by prefilling N tokens: AM-SNet's is the state that the
text in `warm_ids` leaves, moved to position N, and its timed steps read the text's next tokens
(`decode_ids`), so its spikes fire at text rates (what a spike-sparse product's cost depends on);
the PyTorch row's state is synthesised (random, non-zero: its dense step costs the same whatever the
state holds), and so is the Transformer's cache (its cost depends on the length, not the values).
That keeps 65536-token contexts cheap to set up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from astroedge.runtime.stats import proc_status_kib

PREFILL_CHUNK = 256


def _timed(fn: Callable[[], object], steps: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _gpu_mib() -> float | None:
    """GPU memory this process holds, from nvidia-smi (None without one)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0] == str(os.getpid()):
            return float(parts[1])
    return None


class _Runner:
    """step(tokens [1, S]) advances one stream; reset() gives zero state; at(context) synthesises state at a context length."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from astroedge.config import ModelConfig

        self.spec = spec
        self.cfg = ModelConfig.from_dict(spec["config"])
        self.rng = np.random.default_rng(0)
        self.kernel = spec["kind"]
        token = np.array([[int(self.rng.integers(0, self.cfg.vocab_size))]], dtype=np.int64)
        self.next_token: Callable[[], np.ndarray] = lambda: token  # the step's cost does not depend on the token (not AM-SNet's spikes)
        getattr(self, f"_open_{spec['kind']}")()

    # -- AM-SNet through the runtime (library or fallback, any precision, dense or sparse) ---------
    def _open_amsnet(self) -> None:
        from astroedge.runtime import Engine

        if not self.spec.get("use_library", True):
            os.environ["ASTROEDGE_ORT_LIBRARY"] = ""
        self.engine = Engine(self.spec["path"], device=self.spec["device"], threads=self.spec.get("threads", 0), verify=False)
        self.kernel = self.engine.kernel
        self.stream = self.engine.create_stream()
        self.state_bytes = self.stream.state_bytes
        decode = list(self.spec.get("decode_ids") or [0])
        self.next_index = 0

        def step(tokens: np.ndarray) -> np.ndarray:
            return self.stream.feed(tokens[0], chunk=PREFILL_CHUNK)

        def at(context: int) -> None:
            """The state real text leaves (so that spikes fire at text rates), moved to position `context`."""
            self.stream.reset()
            if self.spec.get("warm_ids"):
                self.stream.feed(np.asarray(self.spec["warm_ids"], dtype=np.int64), chunk=PREFILL_CHUNK)
            self.stream.position = context

        def next_token() -> np.ndarray:
            token = decode[self.next_index % len(decode)]
            self.next_index += 1
            return np.array([[token]], dtype=np.int64)

        self.step, self.reset, self.at, self.next_token = step, self.stream.reset, at, next_token

    # -- PyTorch eager, the reference step form ---------------------------------------------------
    def _open_torch(self) -> None:
        import torch

        from astroedge.model import AMSNet

        torch.manual_seed(0)
        threads = self.spec.get("threads", 0) or os.cpu_count() or 1
        torch.set_num_threads(threads)  # pinned: the default varies with the machine's load and torch's heuristics
        torch.set_num_interop_threads(1)
        model = AMSNet(self.cfg).eval()
        self.kernel = "torch-step"
        self.state_bytes = self.cfg.n_layers * (self.cfg.n_heads * self.cfg.head_dim**2 + self.cfg.d_model) * 4
        holder: dict[str, Any] = {"state": model.init_state(1)}

        def step(tokens: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                form = "step" if tokens.shape[1] == 1 else "chunkwise"
                out = None
                for start in range(0, tokens.shape[1], PREFILL_CHUNK):
                    out = model(torch.from_numpy(tokens[:, start : start + PREFILL_CHUNK]), holder["state"], form=form)
                    holder["state"] = out.state
            assert out is not None
            return out.logits[0, -1].numpy()

        def reset() -> None:
            holder["state"] = model.init_state(1)

        def at(context: int) -> None:
            st = model.init_state(1)
            st.h = [torch.from_numpy(self._random(tuple(h.shape), True)) for h in st.h]
            st.u = [torch.from_numpy(self._random(tuple(u.shape), False)) for u in st.u]
            st.position = torch.tensor([context])
            holder["state"] = st

        self.step, self.reset, self.at = step, reset, at

    # -- the Transformer baseline with a KV cache --------------------------------------------------
    def _open_transformer(self) -> None:
        from astroedge.bench.kv_cache import kv_bytes, kv_names
        from astroedge.runtime.ort_session import create_session

        info = create_session(self.spec["path"], self.spec["device"], use_library=False, threads=self.spec.get("threads", 0))
        session: Any = info.session
        past, _ = kv_names(self.cfg.n_layers)
        c = self.cfg
        holder: dict[str, Any] = {}
        self.kernel = "transformer"

        def empty(length: int, random: bool) -> list[np.ndarray]:
            shape = (1, c.n_heads, length, c.head_dim)
            return [self._random(shape, False) if random else np.zeros(shape, np.float32) for _ in past]

        def step(tokens: np.ndarray) -> np.ndarray:
            out = None
            for start in range(0, tokens.shape[1], PREFILL_CHUNK):
                feed = {"tokens": tokens[:, start : start + PREFILL_CHUNK], **dict(zip(past, holder["kv"], strict=True))}
                out = session.run(None, feed)
                holder["kv"] = out[1:]
            assert out is not None
            return out[0][0, -1]

        def reset() -> None:
            holder["kv"] = empty(0, False)

        def at(context: int) -> None:
            holder["kv"] = empty(context, True)
            self.state_bytes = kv_bytes(c, context)

        reset()
        self.state_bytes = 0
        self.step, self.reset, self.at = step, reset, at

    def _random(self, shape: tuple[int, ...], astro: bool) -> np.ndarray:
        value = self.rng.standard_normal(shape) * 0.3 if astro else self.rng.uniform(0, 1, shape)
        return value.astype(np.float32)


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    load = os.getloadavg()[0]  # recorded with every row: this machine is shared, timings move with its load
    t0 = time.perf_counter()
    runner = _Runner(spec)
    result: dict[str, Any] = {
        "load_1m": load,
        "kernel": runner.kernel,
        "load_s": time.perf_counter() - t0,
        "rss_after_load_mib": proc_status_kib("VmRSS"),
    }
    vocab = runner.cfg.vocab_size
    rng = np.random.default_rng(1)
    if spec["mode"] == "prefill":
        prompt = rng.integers(0, vocab, size=(1, spec["prompt_tokens"]), dtype=np.int64)

        def first_token() -> None:
            runner.reset()
            int(np.argmax(runner.step(prompt)))

        ttft = _timed(first_token, spec.get("repeats", 3), warmup=1)
        text = rng.integers(0, vocab, size=(1, spec["prefill_tokens"]), dtype=np.int64)

        def prefill() -> None:
            runner.reset()
            runner.step(text)

        pre = _timed(prefill, 1, warmup=1)
        result.update(ttft_ms=1e3 * float(np.median(ttft)), prefill_tokens_per_s=spec["prefill_tokens"] / min(pre))
    else:
        runner.at(spec["context"])
        times = _timed(lambda: runner.step(runner.next_token()), spec["decode_steps"])
        result.update(
            decode_p50_ms=1e3 * float(np.percentile(times, 50)),
            decode_p99_ms=1e3 * float(np.percentile(times, 99)),
            state_bytes=runner.state_bytes,
        )
    hwm = proc_status_kib("VmHWM")
    result["peak_rss_mib"] = None if hwm is None else hwm / 1024
    result["rss_after_load_mib"] = None if result["rss_after_load_mib"] is None else result["rss_after_load_mib"] / 1024
    result["gpu_mem_mib"] = _gpu_mib() if spec["device"] != "cpu" else None
    return result


def main() -> None:
    from astroedge.errors import UserError

    try:
        print(json.dumps(measure(json.loads(sys.argv[1]))))
    except UserError as exc:
        print(json.dumps({"error": str(exc)}))


if __name__ == "__main__":
    main()
