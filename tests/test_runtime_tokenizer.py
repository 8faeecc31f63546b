"""Streaming text from HuggingFace-tokenizer packages: same text as a full decode, constant memory per token.

The runtime turns token ids into text pieces with `HFTokenizer.stream_decoder()`; it must cost the same
per token on the 100,000th token as on the first (the constant-memory promise of a recurrent model).
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

from astroedge.tokenizer import HFTokenizer

tokenizers = pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parents[1]
# Multi-byte characters (2, 3 and 4 UTF-8 bytes) so that byte-level tokens split characters.
EXTRA = "Ça fait déjà l'été — naïve façade, 東京の夜 🌙✨, Ελληνικά, русский текст. "


def corpus() -> str:
    text = (ROOT / "samples/shakespeare/input.txt").read_text(encoding="utf-8")[:200_000]
    return "\n".join(line + (" " + EXTRA if i % 7 == 0 else "") for i, line in enumerate(text.splitlines()))


def train(vocab: int, kind: str) -> HFTokenizer:
    """A small BPE trained here: 'bytelevel' (GPT-2 style) or 'metaspace' (SentencePiece style, '▁' for spaces)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator(corpus().splitlines(), trainer)
    return HFTokenizer(tok.to_str())


@pytest.fixture(scope="module", params=["bytelevel", "metaspace"])
def hf(request: pytest.FixtureRequest) -> HFTokenizer:
    return train(600, request.param)


def stream_text(tok: HFTokenizer, ids: list[int]) -> str:
    decoder = tok.stream_decoder()
    return "".join(decoder.push(t) for t in ids)


def test_stream_pieces_equal_the_full_decode_on_a_long_text(hf: HFTokenizer) -> None:
    ids = hf.encode(corpus())
    assert len(ids) > 50_000
    assert stream_text(hf, ids) == hf.decode(ids)


def test_random_ids_stream_to_the_full_decode(hf: HFTokenizer) -> None:
    """Any id sequence, not only encodings of text: split and invalid UTF-8 included (decoded as U+FFFD)."""
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(0, hf.vocab_size, 20_000)]
    ids.append(hf.encode("a")[0])  # end on a complete character: a held-back partial one is not text yet
    assert stream_text(hf, ids) == hf.decode(ids)


def test_100k_tokens_grow_resident_memory_by_less_than_2_mb(hf: HFTokenizer) -> None:
    psutil = pytest.importorskip("psutil")
    ids = hf.encode(corpus())
    decoder = hf.stream_decoder()
    for t in ids[:5_000]:  # warm up allocator pools and caches before measuring
        decoder.push(t)
    gc.collect()
    before = psutil.Process().memory_info().rss
    emitted = 0
    for i in range(100_000):
        emitted += len(decoder.push(ids[i % len(ids)]))
    gc.collect()
    grown = psutil.Process().memory_info().rss - before
    assert emitted > 200_000  # the stream really produced text
    assert grown < 2 * 1024 * 1024, f"resident memory grew by {grown / 1024:.0f} KiB over 100,000 tokens"


def test_generation_from_an_hf_tokenizer_package_streams_the_full_decode(hf_tiny_package: Path) -> None:
    """Token ids from libastroedge, text from the binding's decoder: the pieces are the full decode."""
    from astroedge.runtime import Engine

    engine = Engine(hf_tiny_package)
    tok = engine.tokenizer
    assert isinstance(tok, HFTokenizer)
    out = list(engine.create_stream().generate("ROMEO:", 3000, temperature=1.0, seed=1))
    tokens = [t for t, _ in out]
    text = "".join(p for _, p in out)
    full = tok.decode(tokens)
    # Only a character still incomplete at the end (decoded as U+FFFD by the full decode) may be held back.
    assert full.startswith(text) and set(full[len(text) :]) <= {"\ufffd"}
    assert len(text) > 1000
