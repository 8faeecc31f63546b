"""Engine and streams: the runtime's public API (sherpa-onnx / onnxruntime-genai style).

One `Engine` per package and device holds the compiled graph and the tokenizer and is shared by
every thread. A `Stream` is one conversation: its recurrent state (constant size: AM-SNet has no KV
cache) and its absolute position. Streams are cheap; create one per user, clone one to branch a
conversation, save one to disk to resume it later. A stream is used by one thread at a time;
different streams may run concurrently on the same engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astroedge.errors import UserError
from astroedge.runtime import state_file
from astroedge.runtime.backends import Backend, open_backend
from astroedge.runtime.package import Package, load_package
from astroedge.sampling import Sampler, SamplingConfig


class Engine:
    """A package opened on a device: `Engine("model.aepkg", device="cpu")`.

    device: cpu | cuda | tensorrt | jetson. threads: onnxruntime intra-op threads (0 = its default).
    """

    def __init__(self, package_path: str | Path, device: str = "cpu", threads: int = 0, verify: bool = True) -> None:
        self.package: Package = load_package(package_path, verify=verify)
        self.backend: Backend = open_backend(self.package, device, threads)
        self.device = device
        self.tokenizer = self.package.tokenizer

    @property
    def kernel(self) -> str:
        """Which AMSU implementation runs: 'library' (native kernels), 'fallback' (ONNX function) or 'tensorrt-plugin'."""
        return self.backend.kernel

    def describe(self) -> str:
        return self.backend.describe()

    def create_stream(self) -> Stream:
        return Stream(self)

    def check_tokens(self, tokens: Sequence[int]) -> np.ndarray:
        """int64 array of `tokens`, or UserError naming the first id outside [0, vocab)."""
        ids = np.asarray(tokens)
        if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
            raise UserError(f"tokens must be a flat list of integer ids, got {ids.dtype} {list(ids.shape)}")
        vocab = self.package.vocab_size
        bad = np.flatnonzero((ids < 0) | (ids >= vocab))
        if bad.size:
            first = int(bad[0])
            raise UserError(f"token id {int(ids[first])} (index {first}) is outside the vocabulary [0, {vocab}); check the tokenizer")
        return ids.astype(np.int64)

    def step_batch(self, streams: Sequence[Stream], tokens: Sequence[int]) -> np.ndarray:
        """Advance each stream by its token in ONE graph call; returns logits [len(streams), V]."""
        if len(streams) != len(tokens):
            raise UserError(f"step_batch: {len(streams)} streams but {len(tokens)} tokens; pass one token per stream")
        if not streams:
            raise UserError("step_batch: no streams given")
        if len({id(s) for s in streams}) != len(streams):
            raise UserError("step_batch: the same stream appears twice; a stream can advance once per call")
        for s in streams:
            if s.engine is not self:
                raise UserError("step_batch: a stream belongs to another engine; batch only streams created by this engine")
            s.check_room(1)
        ids = self.check_tokens(tokens).reshape(-1, 1)
        position = np.array([s.position for s in streams], dtype=np.int64)
        state = self.backend.stack([s.device_state for s in streams])
        logits, new_state = self.backend.run(ids, position, state)
        for i, (s, part) in enumerate(zip(streams, self.backend.unstack(new_state, len(streams)), strict=True)):
            s.advance(part, 1, logits[i, -1], ids[i])
        return logits[:, -1]

    def close(self) -> None:
        self.backend.close()


class Stream:
    """One sequence's state and position on an engine."""

    def __init__(self, engine: Engine, state: Any = None, position: int = 0) -> None:
        self.engine = engine
        self.device_state: Any = engine.backend.zeros(1) if state is None else state
        self.position = position
        self.last_logits: np.ndarray | None = None
        self.seen = np.zeros(engine.package.vocab_size, dtype=bool)  # ids seen since reset, for the repetition penalty

    # -- state -----------------------------------------------------------------------------------

    @property
    def state(self) -> list[np.ndarray]:
        """Host copy of the state, manifest order, each [1, ...] float32."""
        return [np.array(a, copy=True) for a in self.engine.backend.to_host(self.device_state)]

    @property
    def state_bytes(self) -> int:
        return self.engine.package.state_bytes_per_stream

    def reset(self) -> None:
        self.device_state = self.engine.backend.zeros(1)
        self.position = 0
        self.last_logits = None
        self.seen[:] = False

    def clone(self) -> Stream:
        backend = self.engine.backend
        other = Stream(self.engine, backend.from_host(backend.to_host(self.device_state)), self.position)
        other.last_logits = None if self.last_logits is None else self.last_logits.copy()
        other.seen = self.seen.copy()
        return other

    def set_state(self, state: Sequence[np.ndarray] | np.ndarray, position: int, logits: np.ndarray | None = None) -> None:
        """Replace state (manifest order, or one flat float32 array), position and last logits (history cleared)."""
        flat = np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in state]) if isinstance(state, list) else state
        flat = np.asarray(flat, dtype=np.float32).ravel()
        specs = self.engine.package.state
        sizes = [int(np.prod(s.concrete_shape(1))) for s in specs]
        arrays = [p.reshape(s.concrete_shape(1)) for p, s in zip(np.split(flat, np.cumsum(sizes)[:-1]), specs, strict=True)]
        self.device_state = self.engine.backend.from_host(arrays)
        self.position = position
        self.last_logits = None if logits is None else np.array(logits, dtype=np.float32)
        self.seen[:] = False

    def save_state(self, path: str | Path) -> None:
        package, backend = self.engine.package, self.engine.backend
        state_file.save_state(path, package, self.position, backend.to_host(self.device_state), self.last_logits)

    def load_state(self, path: str | Path) -> None:
        """Replace this stream's state and position by a saved one (same package only)."""
        saved = state_file.load_state(path, self.engine.package)
        self.device_state = self.engine.backend.from_host(saved.arrays)
        self.position = saved.position
        self.last_logits = saved.last_logits
        self.seen[:] = False

    # -- running ---------------------------------------------------------------------------------

    def check_room(self, n: int) -> None:
        limit = self.engine.package.max_position
        if self.position + n > limit:
            raise UserError(
                f"stream position {self.position} + {n} tokens exceeds the package's max_position {limit}; reset the stream"
            )

    def advance(self, state: Any, n: int, logits: np.ndarray, ids: np.ndarray) -> None:
        """Commit the result of a graph call that consumed `n` tokens (used by Engine.step_batch)."""
        self.device_state = state
        self.position += n
        self.last_logits = np.array(logits, copy=True)  # not a view: it would pin a whole prefill's [S, V] logits
        self.seen[ids] = True

    def _encode(self, tokens_or_text: str | Sequence[int]) -> np.ndarray:
        if isinstance(tokens_or_text, str):
            ids = self.engine.check_tokens(self.engine.tokenizer.encode(tokens_or_text))
        else:
            ids = self.engine.check_tokens(tokens_or_text)
        if ids.size == 0:
            raise UserError("empty prompt: give at least one token or character")
        return ids

    def feed(self, tokens_or_text: str | Sequence[int], chunk: int = 256) -> np.ndarray:
        """Prefill: run the tokens (or the encoded text) in chunks of `chunk`; returns the last logits [V]."""
        if chunk < 1:
            raise UserError(f"chunk {chunk}: must be at least 1")
        ids = self._encode(tokens_or_text)
        self.check_room(ids.size)
        backend = self.engine.backend
        for start in range(0, ids.size, chunk):
            part = ids[start : start + chunk]
            logits, state = backend.run(part.reshape(1, -1), np.array([self.position], dtype=np.int64), self.device_state)
            self.advance(state, part.size, logits[0, -1], part)
        assert self.last_logits is not None
        return self.last_logits

    def step(self, token: int) -> np.ndarray:
        """Decode one token; returns the logits [V] for the next one."""
        return self.feed([token])

    def generate(
        self,
        prompt: str | Sequence[int] | None = None,
        max_new_tokens: int = 200,
        temperature: float = 0.8,
        top_k: int = 0,
        top_p: float = 1.0,
        repetition_penalty: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] = (),
        chunk: int = 256,
    ) -> Iterator[tuple[int, str]]:
        """Yield (token id, text piece) as tokens are made; pieces concatenate to valid UTF-8 text.

        With prompt=None the stream continues from its last feed/step. Generation ends after
        max_new_tokens or once the generated text ends with one of `stop` (the stop text is yielded).
        """
        sampler = Sampler(SamplingConfig(temperature, top_k, top_p, repetition_penalty, seed))
        if max_new_tokens < 0:
            raise UserError(f"max_new_tokens {max_new_tokens}: must be >= 0")
        if prompt is not None:
            self.feed(prompt, chunk)
        elif self.last_logits is None:
            raise UserError("empty prompt: give a prompt, or feed the stream before generating")
        return self._generate(sampler, max_new_tokens, [s for s in stop if s])

    def _generate(self, sampler: Sampler, max_new_tokens: int, stop: list[str]) -> Iterator[tuple[int, str]]:
        decoder = self.engine.tokenizer.stream_decoder()
        keep = max((len(s) for s in stop), default=0)
        penalised = sampler.cfg.repetition_penalty != 1.0
        tail = ""
        for _ in range(max_new_tokens):
            assert self.last_logits is not None
            token = sampler(self.last_logits, np.flatnonzero(self.seen) if penalised else ())
            self.step(token)  # before yielding: the state holds every token the caller has seen
            piece = decoder.push(token)
            yield token, piece
            if keep:
                tail = (tail + piece)[-keep:]
                if any(tail.endswith(s) for s in stop):
                    return
