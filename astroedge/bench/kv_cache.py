"""Sizes and names of the Transformer baseline's KV cache, torch-free (the bench workers that run the
exported graph must not import torch: it would add ~200 MiB to the peak memory they report)."""

from __future__ import annotations

from astroedge.config import ModelConfig


def mlp_hidden(cfg: ModelConfig) -> int:
    """MLP width that gives the Transformer the AM-SNet's per-layer parameter count."""
    amsnet_layer = 5 * cfg.d_model**2 + 2 * cfg.d_model * cfg.ffn_hidden  # in_proj 4D^2 + out_proj D^2 + FFN
    return max(1, round((amsnet_layer - 4 * cfg.d_model**2) / (2 * cfg.d_model)))


def kv_names(n_layers: int) -> tuple[list[str], list[str]]:
    """Graph input and output names: past_key.0, past_value.0, ... and present_key.0, ..."""
    past = [f"past_{kind}.{i}" for i in range(n_layers) for kind in ("key", "value")]
    return past, [name.replace("past_", "present_") for name in past]


def kv_bytes(cfg: ModelConfig, context: int) -> int:
    """fp32 KV cache of one stream holding `context` tokens."""
    return 2 * cfg.n_layers * context * cfg.d_model * 4
