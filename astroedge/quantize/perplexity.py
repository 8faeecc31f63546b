"""Held-out perplexity of a package, computed by onnxruntime over the package's graph, not by torch.

The quality gate must judge what will actually run on the device: the quantised graph with the same
AMSU kernels as `astroedge run` (the custom-op library astroedge.native finds, else the fallback
function attached to the graph). Quantisation is a host step, so it calls the graph through a host
onnxruntime session (astroedge.runtime.ort_session) rather than through libastroedge, whose API
returns only the last position's logits of a feed: one graph call then scores a whole chunk of
tokens instead of one. The text is cut into a few contiguous segments, one stream each, fed a chunk
at a time with the state carried from call to call, which computes the same logits as decoding the
segment token by token (the step and chunkwise forms are one function; tests/test_quantize.py
checks the two perplexities agree).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from astroedge.corpus import load_tokens, split_held_out
from astroedge.errors import UserError
from astroedge.native import checkout_root
from astroedge.tokenizer import Tokenizer

# The default held-out text is the bundled sample's, which exists only in a source checkout: an
# installed wheel never looks for it inside site-packages, it asks for --eval-text instead.
_CHECKOUT = checkout_root()
SAMPLE_TEXT = _CHECKOUT / "samples" / "shakespeare" / "input.txt" if _CHECKOUT is not None else None
MIN_EVAL_TOKENS = 256


@dataclass(frozen=True)
class Perplexity:
    tokens: int
    nats_per_token: float
    perplexity: float
    seconds: float
    kernel: str  # which AMSU implementation computed it


def eval_tokens(tokenizer: Tokenizer, eval_text: Path | None, max_tokens: int) -> tuple[np.ndarray, str]:
    """Token ids to score and where they come from: `eval_text` whole, or the sample's held-out last 10%."""
    if max_tokens < MIN_EVAL_TOKENS:
        raise UserError(f"--eval-tokens {max_tokens}: must be at least {MIN_EVAL_TOKENS}")
    if eval_text is None:
        if SAMPLE_TEXT is None or not SAMPLE_TEXT.is_file():
            raise UserError(
                "--eval-text is required: the default held-out text (the bundled sample's last 10%) comes only with "
                "a source checkout; pass a UTF-8 text the model was not trained on"
            )
        _, ids = split_held_out(load_tokens(SAMPLE_TEXT, tokenizer, min_tokens=10 * MIN_EVAL_TOKENS))
        source = f"{SAMPLE_TEXT} (last 10%, held out from training)"
    else:
        ids = load_tokens(eval_text, tokenizer, min_tokens=MIN_EVAL_TOKENS)
        source = str(eval_text)
    return ids[: max_tokens + 1], source


def _log_softmax_pick(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum over positions of -log p(target): logits [B, S, V] float32, targets [B, S]."""
    x = logits.astype(np.float64)
    x -= x.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(x).sum(axis=-1))
    picked = np.take_along_axis(x, targets[..., None], axis=-1)[..., 0]
    return float((log_z - picked).sum())


def package_perplexity(package: Path, ids: np.ndarray, segments: int = 4, chunk: int = 256, verify: bool = True) -> Perplexity:
    """Perplexity per token of `ids` (int64, >= 2) under the package, on the CPU.

    `segments` streams, each a contiguous slice of `ids`, go through the graph together, `chunk`
    tokens per call; every position's logits come back, and the state outputs of one call are the
    state inputs of the next, so each token is scored in the context of everything before it in its
    segment, as a decoding stream would score it.
    """
    from astroedge.runtime.ort_session import create_session
    from astroedge.runtime.package import load_package

    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    pkg = load_package(package, verify=verify)
    info = create_session(pkg.onnx_path, "cpu")
    session: Any = info.session
    seg_len = (len(ids) - 1) // segments
    if seg_len < 1:
        segments, seg_len = 1, len(ids) - 1
    starts = np.arange(segments) * seg_len
    inputs = np.stack([ids[s : s + seg_len] for s in starts]).astype(np.int64)
    targets = np.stack([ids[s + 1 : s + 1 + seg_len] for s in starts])
    state = [np.zeros(s.concrete_shape(segments), dtype=np.float32) for s in pkg.state]
    outputs = [pkg.logits_output] + [s.output for s in pkg.state]
    total = 0.0
    begin = time.perf_counter()
    for start in range(0, seg_len, chunk):
        feed: dict[str, np.ndarray] = {
            pkg.tokens_input: inputs[:, start : start + chunk],
            pkg.position_input: np.full(segments, start, dtype=np.int64),
        }
        feed.update({s.input: a for s, a in zip(pkg.state, state, strict=True)})
        logits, *state = session.run(outputs, feed)
        total += _log_softmax_pick(logits, targets[:, start : start + chunk])
    n = segments * seg_len
    return Perplexity(n, total / n, math.exp(min(total / n, 700.0)), time.perf_counter() - begin, info.kernel)
