"""A GPT-style Transformer with a KV cache, sized to an AM-SNet's parameter count: the bench baseline.

Same vocabulary, width, depth and heads as the AM-SNet it is compared with; the MLP width is chosen
so that the parameter count matches (AM-SNet spends 13 D^2 per layer, attention 4 D^2, so the MLP
gets ~9 D^2). RoPE on q/k, pre-norm RMSNorm, GELU MLP. Random weights: latency and memory do not
depend on their values. Exported with torch.onnx (dynamo) to a graph with the usual KV-cache I/O:

    tokens [B, S], past_key.i / past_value.i [B, NH, P, HD]  ->  logits [B, S, V], present_key.i / present_value.i [B, NH, P+S, HD]

The position of the first token is P (the cache length), so no position input is needed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from astroedge.bench.kv_cache import kv_names, mlp_hidden
from astroedge.config import ModelConfig


class _Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.n_heads, self.head_dim = cfg.n_heads, cfg.head_dim
        self.norm1 = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.norm2 = nn.RMSNorm(d, eps=cfg.norm_eps)
        self.up = nn.Linear(d, mlp_hidden(cfg), bias=False)
        self.down = nn.Linear(mlp_hidden(cfg), d, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, past_k: Tensor, past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        b, s, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, s, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # [B, NH, S, HD] each
        q, k = _rope(q, cos, sin), _rope(k, cos, sin)
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        p = past_k.shape[2]
        scores = q @ k.transpose(-1, -2) * (1.0 / math.sqrt(self.head_dim))  # [B, NH, S, P+S]
        keys = torch.arange(k.shape[2], device=x.device)
        queries = p + torch.arange(s, device=x.device)
        scores = scores.masked_fill(keys.view(1, -1) > queries.view(-1, 1), float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v
        x = x + self.proj(att.transpose(1, 2).reshape(b, s, d))
        x = x + self.down(F.gelu(self.up(self.norm2(x))))
        return x, k, v


def _rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class Transformer(nn.Module):
    inv_freq: Tensor  # buffer, declared for the type checker (nn.Module.__getattr__ is typed Tensor | Module)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        inv = cfg.rope_base ** (-torch.arange(0, cfg.head_dim, 2, dtype=torch.float32) / cfg.head_dim)
        self.register_buffer("inv_freq", inv, persistent=False)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, tokens: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        p = past[0].shape[2]
        pos = (p + torch.arange(tokens.shape[1], device=tokens.device)).to(torch.float32)
        angle = pos.view(-1, 1) * self.inv_freq.view(1, -1)  # [S, HD/2]
        cos, sin = angle.cos(), angle.sin()
        x = self.embed(tokens)
        present = []
        for i, block in enumerate(self.blocks):
            x, k, v = block(x, cos, sin, past[2 * i], past[2 * i + 1])
            present += [k, v]
        return (self.head(self.norm(x)), *present)


def export_transformer(cfg: ModelConfig, path: Path, seed: int = 0) -> int:
    """Write a random-weight Transformer for `cfg` to `path` (ONNX, external data when large); returns its parameter count."""
    from astroedge.export.onnx_export import _quiet_exporter, save_onnx

    torch.manual_seed(seed)
    model = Transformer(cfg).eval()
    past, present = kv_names(cfg.n_layers)
    batch, seq, cache = (torch.export.Dim(n, min=1, max=2**20) for n in ("batch", "seq", "past"))
    example_past = [torch.zeros(1, cfg.n_heads, 3, cfg.head_dim) for _ in past]
    dynamic = ({0: batch, 1: seq}, tuple({0: batch, 2: cache} for _ in past))
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            model,
            (torch.zeros(1, 2, dtype=torch.int64), *example_past),
            dynamo=True,
            opset_version=18,
            input_names=["tokens", *past],
            output_names=["logits", *present],
            dynamic_shapes=dynamic,
            verbose=False,
        )
    assert program is not None
    proto = program.model_proto
    for node in proto.graph.node:
        del node.metadata_props[:]
    save_onnx(proto, path)
    return model.num_parameters()
