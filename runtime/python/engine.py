"""Engine and streams: the Python API, a thin ctypes binding over libastroedge (sherpa-onnx / onnxruntime-genai shape).

One `Engine` per package and device holds the C engine (graph, verified package, tokenizer) and is
shared by every thread. A `Stream` is one conversation: its recurrent state (constant size: AM-SNet has
no KV cache), its absolute position and its last logits, all held by the C library. Streams are cheap;
create one per user, clone one to branch a conversation, save one to disk to resume it later. A stream
is used by one thread at a time; different streams may run concurrently on the same engine (ctypes
releases the GIL during each C call).

What lives here and not in C: turning Python values into C buffers and statuses into UserError, and the
text side of HuggingFace-tokenizer packages (the C core is token-level for them, astroedge.h says why:
each token's text is made here and handed back to C for stop matching). The generation loop (sampling,
its RNG, text pieces, stop strings), state, state files, batching and every package check are the C
library's; `Stream.generate` only pulls from it.
"""

from __future__ import annotations

import ctypes
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from astroedge.errors import UserError
from astroedge.runtime._capi import AE_ERR_NO_LOGITS, lib
from astroedge.tokenizer import ByteTokenizer, HFTokenizer, Tokenizer

DEVICES = ("cpu", "cuda", "tensorrt", "jetson")
FEED_CHUNK = 256  # tokens per graph call in ae_stream_feed (astroedge.h)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


class _Handle:
    """An owned C handle, destroyed exactly once (by close() or when the last reference goes).

    `keep` holds what must outlive it: a stream's handle keeps its engine's handle alive, so that
    garbage collection can never destroy an engine before one of its streams (the C API forbids it).
    """

    def __init__(self, ptr: int, destroy: Any, keep: Any = None) -> None:
        self.ptr, self._destroy, self._keep = ptr, destroy, keep

    def close(self) -> None:
        if self.ptr:
            self._destroy(self.ptr)
            self.ptr = 0
            self._keep = None

    def __del__(self) -> None:
        self.close()


def _library_arg(library: str | Path | None, device: str) -> str:
    """What to give ae_engine_params_set_amsu_library: a path, or "" for the ONNX fallback function.

    An explicit `library` is passed through (C refuses it in one line if it can't be loaded). Otherwise
    astroedge.native decides, as for every native library: ASTROEDGE_ORT_LIBRARY (a set but unusable
    path is refused, "" means the fallback), the library bundled in the wheel, the checkout's build.
    """
    if library is not None:
        return str(library)
    from astroedge.native import get_library_path

    found = get_library_path("cuda") if device == "cuda" else None
    return str(found or get_library_path("cpu") or "")


class Engine:
    """A package opened on a device: `Engine("model.aepkg", device="cpu")`.

    device: cpu | cuda | tensorrt | jetson (refused in one line where it can't run: never a silent
    fall-back to the CPU). threads: onnxruntime intra-op threads (0 = its default). verify: check every
    file's sha256 against the manifest. library: the AMSU custom-op library (None = found as
    astroedge.native says, "" = the ONNX fallback function, a path = that library or a refusal).
    """

    def __init__(
        self, package_path: str | Path, device: str = "cpu", threads: int = 0, verify: bool = True, library: str | Path | None = None
    ) -> None:
        if device not in DEVICES:
            raise UserError(f"device '{device}' is unknown; choose one of: {', '.join(DEVICES)}")
        c = lib()
        self._c = c
        self.library = _library_arg(library, device)
        params = _Handle(c.new(c.ae_engine_params_create), c.ae_engine_params_destroy)
        c.check(c.ae_engine_params_set_package_dir(params.ptr, str(package_path).encode()))
        c.check(c.ae_engine_params_set_device(params.ptr, device.encode()))
        c.check(c.ae_engine_params_set_num_threads(params.ptr, threads))
        c.check(c.ae_engine_params_set_amsu_library(params.ptr, self.library.encode()))
        c.check(c.ae_engine_params_set_verify_checksums(params.ptr, int(verify)))
        self._h = _Handle(c.new(c.ae_engine_create, params.ptr), c.ae_engine_destroy)
        params.close()
        self.path = Path(package_path)
        h = self._h.ptr
        self.device: str = c.ae_engine_device(h).decode()
        self.kernel: str = c.ae_engine_kernel(h).decode()  # 'library' (native AMSU kernels) or 'fallback' (the ONNX function)
        self.precision: str = c.ae_engine_precision(h).decode()
        self.vocab_size: int = c.ae_engine_vocab_size(h)
        self.max_position: int = c.ae_engine_max_position(h)
        self.state_bytes: int = c.ae_engine_state_size(h)
        self.manifest_sha256: str = c.ae_engine_manifest_sha256(h).decode()
        self.state_names: list[str] = []
        self.state_shapes: list[tuple[int, ...]] = []  # per stream, without the batch dimension
        dims = (ctypes.c_int64 * 8)()
        for i in range(c.ae_engine_state_count(h)):
            self.state_names.append(c.ae_engine_state_name(h, i).decode())
            self.state_shapes.append(tuple(dims[: c.ae_engine_state_shape(h, i, dims, 8)]))
        self.tokenizer: Tokenizer = self._tokenizer()
        self._streams: weakref.WeakSet[Stream] = weakref.WeakSet()

    def _tokenizer(self) -> Tokenizer:
        c = self._c
        if c.ae_engine_tokenizer(self._h.ptr).decode() != "hf":
            return ByteTokenizer()
        n = ctypes.c_size_t()
        data = c.ae_engine_tokenizer_data(self._h.ptr, ctypes.byref(n))
        # the bytes the C core verified against the manifest's sha256, not a second read of the file
        source = str(self.path / "tokenizer.json")
        try:
            text = ctypes.string_at(data, n.value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{source}: not UTF-8 text (byte {exc.start}); re-export the package") from None
        return HFTokenizer(text, source)

    @property
    def handle(self) -> int:
        """The AeEngine* (for C code sharing this engine); UserError once closed."""
        if not self._h.ptr:
            raise UserError("this engine was closed; create a new Engine")
        return self._h.ptr

    def describe(self) -> str:
        where = f"native library {self.library}" if self.kernel == "library" else "ONNX fallback function (no native library)"
        return f"AMSU runs on {where}; device {self.device}; {self.precision} package {self.path}; libastroedge {self._c.path}"

    def create_stream(self) -> Stream:
        return Stream(self, self._c.new(self._c.ae_stream_create, self.handle))

    def step_batch(self, streams: Sequence[Stream], tokens: Sequence[int]) -> np.ndarray:
        """Advance each stream by its token in ONE graph call; returns logits [len(streams), V].

        Streams may sit at different positions. All or nothing: on an error no stream changes.
        """
        if len(streams) != len(tokens):
            raise UserError(f"step_batch: {len(streams)} streams but {len(tokens)} tokens; pass one token per stream")
        if not streams:
            raise UserError("step_batch: no streams given")
        ids = _token_array(tokens)
        handles = (ctypes.c_void_p * len(streams))(*(s.handle for s in streams))
        logits = np.empty((len(streams), self.vocab_size), dtype=np.float32)
        self._c.check(self._c.ae_decode_batch(ctypes.addressof(handles), _ptr(ids), len(streams), _ptr(logits)))
        return logits

    def close(self) -> None:
        """Release the C engine now, and with it every stream still open (they refuse use afterwards)."""
        for s in list(self._streams):
            s.close()
        self._h.close()


def _token_array(tokens: Sequence[int] | np.ndarray) -> np.ndarray:
    """int32 ids for C; the range check against the vocabulary is the C library's."""
    ids = np.asarray(tokens)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise UserError(f"tokens must be a flat list of integer ids, got {ids.dtype} {list(ids.shape)}")
    out = ids.astype(np.int32)
    if ids.size and not np.array_equal(out, ids):
        first = int(np.flatnonzero(out != ids)[0])
        raise UserError(f"token id {int(ids[first])} (index {first}) is not a 32-bit id; check the tokenizer")
    return np.ascontiguousarray(out)


class Stream:
    """One sequence's state, position and last logits on an engine (held by libastroedge)."""

    def __init__(self, engine: Engine, handle: int) -> None:
        self.engine = engine
        self._c = engine._c
        self._h = _Handle(handle, self._c.ae_stream_destroy, keep=engine._h)
        engine._streams.add(self)

    @property
    def handle(self) -> int:
        """The AeStream* (for C code); UserError once closed."""
        if not self._h.ptr:
            raise UserError("this stream was closed (or its engine was); create a new stream")
        return self._h.ptr

    def close(self) -> None:
        self._h.close()

    # -- state -----------------------------------------------------------------------------------

    @property
    def position(self) -> int:
        """Absolute position of the next token."""
        return int(self._c.ae_stream_position(self.handle))

    @position.setter
    def position(self, value: int) -> None:
        """Move the stream to `value`, keeping its state and logits (clears the repetition-penalty history)."""
        self.set_state(self.state, value, self.last_logits)

    @property
    def state(self) -> list[np.ndarray]:
        """A copy of the state: float32 arrays in manifest order, each [1, ...]."""
        flat = np.empty(self.engine.state_bytes // 4, dtype=np.float32)
        self._c.check(self._c.ae_stream_get_state(self.handle, _ptr(flat), flat.nbytes))
        sizes = [int(np.prod(s)) for s in self.engine.state_shapes]
        parts = np.split(flat, np.cumsum(sizes)[:-1])
        return [p.reshape((1, *s)) for p, s in zip(parts, self.engine.state_shapes, strict=True)]

    @property
    def state_bytes(self) -> int:
        return self.engine.state_bytes

    @property
    def last_logits(self) -> np.ndarray | None:
        """A copy of the logits after the last consumed token, None before the first."""
        out = np.empty(self.engine.vocab_size, dtype=np.float32)
        status = self._c.ae_stream_logits(self.handle, _ptr(out))
        if status == AE_ERR_NO_LOGITS:
            return None
        self._c.check(status)
        return out

    def set_state(self, state: Sequence[np.ndarray] | np.ndarray, position: int, logits: np.ndarray | None = None) -> None:
        """Replace state (arrays in manifest order, or one flat float32 array), position and logits.

        In memory, as rwkv.cpp and llama.cpp allow; the repetition-penalty history is cleared.
        """
        parts = [state] if isinstance(state, np.ndarray) else list(state)
        flat = np.ascontiguousarray(np.concatenate([np.asarray(a, dtype=np.float32).ravel() for a in parts]))
        if flat.nbytes != self.engine.state_bytes:
            raise UserError(f"set_state: {flat.nbytes} bytes of state given, this package's streams hold {self.engine.state_bytes}")
        if position < 0:
            raise UserError(f"set_state: position {position} is negative")
        lg = None if logits is None else np.ascontiguousarray(logits, dtype=np.float32).ravel()
        if lg is not None and lg.size != self.engine.vocab_size:
            raise UserError(f"set_state: {lg.size} logits given, the vocabulary has {self.engine.vocab_size}")
        self._c.check(self._c.ae_stream_set_state(self.handle, _ptr(flat), flat.nbytes, position, None if lg is None else _ptr(lg)))

    def reset(self) -> None:
        self._c.check(self._c.ae_stream_reset(self.handle))

    def clone(self) -> Stream:
        return Stream(self.engine, self._c.new(self._c.ae_stream_clone, self.handle))

    def save_state(self, path: str | Path) -> None:
        """Write state, position and logits in libastroedge's state-file format (atomically)."""
        self._c.check(self._c.ae_stream_save_state(self.handle, str(path).encode()))

    def load_state(self, path: str | Path) -> None:
        """Replace this stream's state, position and logits by a saved one (same package only; C or Python saved)."""
        self._c.check(self._c.ae_stream_load_state(self.handle, str(path).encode()))

    # -- running ---------------------------------------------------------------------------------

    def _encode(self, tokens_or_text: str | Sequence[int] | np.ndarray) -> np.ndarray:
        raw = self.engine.tokenizer.encode(tokens_or_text) if isinstance(tokens_or_text, str) else tokens_or_text
        ids = _token_array(raw)
        if ids.size == 0:
            raise UserError("empty prompt: give at least one token or character")
        return ids

    def feed(self, tokens_or_text: str | Sequence[int] | np.ndarray, chunk: int = 256) -> np.ndarray:
        """Prefill: run the tokens (or the encoded text); returns the last logits [V].

        libastroedge runs graph calls of up to 256 tokens; a smaller `chunk` makes more, smaller calls.
        All or nothing: a refused prompt (bad id, past max_position) leaves the stream unchanged.
        """
        if chunk < 1:
            raise UserError(f"chunk {chunk}: must be at least 1")
        ids = self._encode(tokens_or_text)
        step = ids.size if chunk >= FEED_CHUNK else chunk
        if step < ids.size:  # one C call checks its whole input; several must not stop halfway
            self._check_whole(ids)
        logits = np.empty(self.engine.vocab_size, dtype=np.float32)
        h = self.handle
        for start in range(0, ids.size, step):
            part = ids[start : start + step]
            self._c.check(self._c.ae_stream_feed(h, _ptr(part), part.size, _ptr(logits)))
        return logits

    def _check_whole(self, ids: np.ndarray) -> None:
        bad = np.flatnonzero((ids < 0) | (ids >= self.engine.vocab_size))
        if bad.size:
            i = int(bad[0])
            raise UserError(
                f"token id {int(ids[i])} (index {i}) is outside the vocabulary [0, {self.engine.vocab_size}); check the tokenizer"
            )
        if self.position + ids.size > self.engine.max_position:
            raise UserError(
                f"stream position {self.position} + {ids.size} tokens exceeds the package's max_position {self.engine.max_position}"
            )

    def step(self, token: int) -> np.ndarray:
        """Decode one token; returns the logits [V] for the next one."""
        logits = np.empty(self.engine.vocab_size, dtype=np.float32)
        self._c.check(self._c.ae_stream_step(self.handle, int(_token_array([token])[0]), _ptr(logits)))
        return logits

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
        """Yield (token id, text piece) as tokens are made; pieces concatenate to the decoded text.

        Defaults are libastroedge's (astroedge.h AE_DEFAULT_*). With prompt=None the stream continues
        from its last feed/step. Generation ends after max_new_tokens or once the generated text ends
        with one of `stop` (the stop text is yielded). The loop is libastroedge's AeGenerator (sampler, text
        pieces, stop strings): the same seed gives what ae_generate gives. Every yielded token has been consumed, so
        the stream can be saved or cloned at any point, also after breaking out of the loop.
        """
        c = self._c
        params = _Handle(c.new(c.ae_generate_params_create), c.ae_generate_params_destroy)
        if not (0 <= max_new_tokens < 2**31):
            raise UserError(f"max_new_tokens {max_new_tokens}: must be >= 0")
        c.check(c.ae_generate_params_set_max_tokens(params.ptr, max_new_tokens))
        c.check(c.ae_generate_params_set_temperature(params.ptr, temperature))
        c.check(c.ae_generate_params_set_top_k(params.ptr, top_k))
        c.check(c.ae_generate_params_set_top_p(params.ptr, top_p))
        c.check(c.ae_generate_params_set_repetition_penalty(params.ptr, repetition_penalty))
        c.check(c.ae_generate_params_set_seed(params.ptr, seed % 2**64))
        for text in stop:
            raw = text.encode("utf-8")
            if raw:
                c.check(c.ae_generate_params_add_stop(params.ptr, raw, len(raw)))
        if prompt is not None:
            self.feed(prompt, chunk)  # here, not in ae_generator_create: `chunk` and text prompts are the binding's
        elif self.last_logits is None:
            raise UserError("empty prompt: give a prompt, or feed the stream before generating")
        # made now, not at the first next(): bad settings raise here; the generator keeps the stream alive
        gen = _Handle(c.new(c.ae_generator_create, self.handle, params.ptr, None, 0), c.ae_generator_destroy, keep=self._h)
        params.close()
        return self._pull(gen)

    def _pull(self, gen: _Handle) -> Iterator[tuple[int, str]]:
        """Yield what ae_generator_next makes; "hf" packages: decode each token here and hand its text back for stop matching."""
        c = self._c
        decoder = None if isinstance(self.engine.tokenizer, ByteTokenizer) else self.engine.tokenizer.stream_decoder()
        token, done, piece, size = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_void_p(), ctypes.c_size_t()
        refs = (ctypes.byref(token), ctypes.byref(piece), ctypes.byref(size), ctypes.byref(done))
        try:
            while True:
                if not self._h.ptr:  # closed (or its engine was) between two tokens: C must not see a freed stream
                    raise UserError("this stream was closed (or its engine was) during generate; create a new stream")
                c.check(c.ae_generator_next(gen.ptr, *refs))
                if done.value:
                    return
                if decoder is None:
                    text = ctypes.string_at(piece, size.value).decode("utf-8")  # C made valid UTF-8 (U+FFFD repaired)
                else:
                    text = decoder.push(token.value)
                    raw = text.encode("utf-8")
                    c.check(c.ae_generator_set_piece(gen.ptr, raw, len(raw)))
                yield token.value, text
        finally:
            gen.close()
