"""`astroedge generate`: prefill the prompt (chunkwise form), then decode with the step form.

Memory is constant in the number of generated tokens: only the per-layer state is carried.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch

from astroedge.checkpoint import load
from astroedge.errors import UserError
from astroedge.sampling import Sampler, SamplingConfig


@torch.no_grad()
def generate_text(
    checkpoint: str | Path, prompt: str, max_new_tokens: int, temperature: float, top_k: int, top_p: float, seed: int
) -> Iterator[str]:
    if max_new_tokens < 0:
        raise UserError(f"--max-new-tokens {max_new_tokens}: must be >= 0")
    sampler = Sampler(SamplingConfig(temperature, top_k, top_p, 1.0, seed))
    ckpt = load(checkpoint)
    model, tok = ckpt.model, ckpt.tokenizer
    ids = tok.encode(prompt)
    if not ids:
        raise UserError("--prompt is empty: give at least one character to continue")
    torch.manual_seed(seed)
    out = model(torch.tensor([ids]), form="chunkwise")
    state, history = out.state, list(ids)
    decoder = tok.stream_decoder()
    yield prompt
    for _ in range(max_new_tokens):
        nxt = sampler(out.logits[0, -1].numpy(), history)
        history.append(nxt)
        yield decoder.push(nxt)
        out = model(torch.tensor([[nxt]]), state, form="step")
        state = out.state
