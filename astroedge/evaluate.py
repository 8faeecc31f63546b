"""Scoring a text: nats per byte, bits per byte, perplexity, firing rates.

The text is cut into a few contiguous segments that run as a batch, each streamed through the model
in chunks with its state carried, so the score is that of a stream reading the text, not of
independent windows.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from astroedge.model import AMSNet


@dataclass
class EvalReport:
    tokens: int
    bytes: int
    nats_per_token: float
    nats_per_byte: float
    bits_per_byte: float
    perplexity: float  # per token
    firing_amsu: list[float]  # mean spike rate per layer
    firing_ffn: list[float]


@torch.no_grad()
def score(model: AMSNet, ids: np.ndarray, n_bytes: int, segments: int = 8, chunk: int = 512) -> EvalReport:
    """Mean next-token loss of `ids` (int64) under `model`; n_bytes is the text's UTF-8 size."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    seg_len = (len(ids) - 1) // segments
    if seg_len < 1:
        segments, seg_len = 1, len(ids) - 1
    starts = np.arange(segments) * seg_len
    inputs = torch.from_numpy(np.stack([ids[s : s + seg_len] for s in starts])).to(device)
    targets = torch.from_numpy(np.stack([ids[s + 1 : s + 1 + seg_len] for s in starts])).to(device)
    state = model.init_state(segments, device)
    total, firing, calls = 0.0, torch.zeros(model.cfg.n_layers, 2, dtype=torch.float64), 0
    for start in range(0, seg_len, chunk):
        out = model(inputs[:, start : start + chunk], state)
        state = out.state
        total += F.cross_entropy(out.logits.flatten(0, 1).float(), targets[:, start : start + chunk].flatten(), reduction="sum").item()
        firing += out.firing.double().cpu()
        calls += 1
    model.train(was_training)
    n_tok = segments * seg_len
    scored_bytes = n_bytes * n_tok / max(len(ids) - 1, 1)  # bytes covered by the scored tokens
    firing /= max(calls, 1)
    return EvalReport(
        tokens=n_tok,
        bytes=int(round(scored_bytes)),
        nats_per_token=total / n_tok,
        nats_per_byte=total / scored_bytes,
        bits_per_byte=total / scored_bytes / math.log(2),
        perplexity=math.exp(min(total / n_tok, 700.0)),
        firing_amsu=[round(float(x), 4) for x in firing[:, 0]],
        firing_ffn=[round(float(x), 4) for x in firing[:, 1]],
    )


def evaluate_file(checkpoint: str | Path, text_path: str | Path, max_tokens: int = 0) -> EvalReport:
    from astroedge.checkpoint import load
    from astroedge.corpus import load_tokens, read_text
    from astroedge.errors import UserError

    if max_tokens < 0:
        raise UserError(f"--max-bytes {max_tokens}: must be >= 0 (0 = whole text)")
    ckpt = load(checkpoint)
    ids = load_tokens(text_path, ckpt.tokenizer, min_tokens=2)
    n_bytes = len(read_text(text_path).encode("utf-8"))
    if max_tokens and len(ids) > max_tokens:
        n_bytes = int(n_bytes * max_tokens / len(ids))
        ids = ids[:max_tokens]
    return score(ckpt.model, ids, n_bytes)


def print_report(report: EvalReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="evaluation", show_header=False)
    table.add_row("tokens scored", f"{report.tokens:,}")
    table.add_row("loss", f"{report.nats_per_byte:.4f} nats/byte ({report.nats_per_token:.4f} nats/token)")
    table.add_row("bits per byte", f"{report.bits_per_byte:.4f}")
    table.add_row("perplexity (per token)", f"{report.perplexity:.3f}")
    table.add_row("firing rate AMSU / layer", " ".join(f"{x:.3f}" for x in report.firing_amsu))
    table.add_row("firing rate FFN / layer", " ".join(f"{x:.3f}" for x in report.firing_ffn))
    Console().print(table)
