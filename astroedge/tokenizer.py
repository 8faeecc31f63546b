"""Tokenizers: byte-level by default (no files, every UTF-8 text round-trips), or a HuggingFace
`tokenizers` JSON. Torch-free: the runtime uses it too.

A tokenizer is described by a small dict (`spec()`), stored in checkpoints and package manifests.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, Protocol

from astroedge.errors import UserError


class Tokenizer(Protocol):
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def spec(self) -> dict[str, Any]: ...

    def stream_decoder(self) -> StreamDecoder: ...


class StreamDecoder(Protocol):
    def push(self, token: int) -> str:
        """Text completed by this token ('' while a multi-byte character is incomplete)."""
        ...


class ByteTokenizer:
    """Token i is byte i. Decoding replaces invalid UTF-8 rather than failing mid-stream."""

    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")

    def spec(self) -> dict[str, Any]:
        return {"type": "bytes", "vocab_size": 256}

    def stream_decoder(self) -> StreamDecoder:
        return _ByteStreamDecoder()


class _ByteStreamDecoder:
    def __init__(self) -> None:
        self._dec = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._dec.decode(bytes([token]))


class HFTokenizer:
    """A HuggingFace `tokenizers` JSON, kept as its text so it can be embedded in checkpoints."""

    def __init__(self, json_text: str, source: str = "tokenizer.json") -> None:
        try:
            from tokenizers import Tokenizer as _Tok
        except ImportError:  # pragma: no cover - depends on the install
            raise UserError("the 'tokenizers' package is needed for a HuggingFace tokenizer: pip install tokenizers") from None
        try:
            self._tok = _Tok.from_str(json_text)
        except Exception as exc:  # tokenizers raises plain Exception subclasses
            raise UserError(f"{source}: not a HuggingFace tokenizers JSON ({str(exc).splitlines()[0]})") from None
        self.json_text = json_text
        self.vocab_size = self._tok.get_vocab_size()

    @classmethod
    def from_file(cls, path: str | Path) -> HFTokenizer:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: tokenizer file not found")
        return cls(p.read_text(encoding="utf-8"), str(p))

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids)

    def spec(self) -> dict[str, Any]:
        return {"type": "hf", "vocab_size": self.vocab_size, "json": self.json_text}

    def stream_decoder(self) -> StreamDecoder:
        return _HFStreamDecoder(self)


class _HFStreamDecoder:
    """Constant work and memory per token: decode a small window of trailing ids, not the history.

    The window is the ids since the last emission point plus the new ones (the scheme of HF's
    DecodeStream and onnxruntime-genai's TokenizerStream). Decoding the window and subtracting the
    decoded prefix keeps what decoders do at word starts (a Metaspace '▁' becomes a space except at
    the very start), so the pieces concatenate to the full decode. A window ending in U+FFFD is an
    incomplete UTF-8 character: nothing is emitted until a later token completes it.
    """

    def __init__(self, tok: HFTokenizer) -> None:
        self._tok = tok
        self._ids: list[int] = []  # the window: ids since the last emission point
        self._prefix = ""  # decode of self._ids[:self._prefix_len]
        self._prefix_len = 0

    def push(self, token: int) -> str:
        self._ids.append(token)
        text = self._tok.decode(self._ids)
        # A decoder that rewrites earlier text (never seen with byte-level or Metaspace) widens the window until it agrees again.
        if len(text) <= len(self._prefix) or text.endswith("\ufffd") or not text.startswith(self._prefix):
            return ""
        new = text[len(self._prefix) :]
        # The next window starts where this one's emitted prefix did: the last emitted ids give the next decode its context.
        self._ids = self._ids[self._prefix_len :]
        self._prefix_len = len(self._ids)
        self._prefix = self._tok.decode(self._ids)
        return new


def from_spec(spec: dict[str, Any], source: str = "tokenizer") -> Tokenizer:
    kind = spec.get("type")
    if kind == "bytes":
        return ByteTokenizer()
    if kind == "hf":
        if "json" not in spec:
            raise UserError(f"{source}: HuggingFace tokenizer spec lacks its 'json' text")
        return HFTokenizer(spec["json"], source)
    raise UserError(f"{source}: unknown tokenizer type {kind!r}; expected 'bytes' or 'hf'")


def spec_to_json_file(spec: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Split a spec into (manifest entry, tokenizer.json text or None) for packages."""
    if spec["type"] == "hf":
        return {"type": "hf", "vocab_size": spec["vocab_size"], "file": "tokenizer.json"}, spec["json"]
    return {"type": spec["type"], "vocab_size": spec["vocab_size"], "file": None}, None


def load_from_manifest(entry: dict[str, Any], package_dir: Path) -> Tokenizer:
    if entry.get("type") == "hf":
        return HFTokenizer.from_file(package_dir / str(entry.get("file") or "tokenizer.json"))
    return from_spec(entry, str(package_dir / "manifest.json"))


__all__ = ["ByteTokenizer", "HFTokenizer", "Tokenizer", "from_spec", "load_from_manifest", "spec_to_json_file"]
