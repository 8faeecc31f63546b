"""Give the random-weight bench model the trained sample's firing rates (host side, torch).

Random weights fire at arbitrary rates (the AMSU's ~0.5: its membrane averages sigmoid(N(0,1)) around
the default threshold 0.5), and a spike-sparse kernel's speed depends on the rate, so timing the
random model as it comes would say nothing about a trained one. The sample's rates are measured per
layer and site on its held-out text; the bench model's layer l takes the sample layer at the same
relative depth. Calibration, layer by layer on the same text, each layer seeing the calibrated
layers before it:

- AMSU: threshold 1.0 for the whole model (the membrane, an average of sigmoids, stays below 1, so
  only the astrocyte read-out makes a neuron fire), then the read-out weight w_o of the layer scaled
  so that the rate matches: rate(c) = P(u - 1 + c * o_hat > 0) rises with c from 0 towards 1/2.
- FFN: W_1 of the layer scaled: rate(c) = P(c * W_1 z > theta_f) rises with c (theta_f > 0).

Both scales are found by bisection on one pass's drives; the report gives the targets and the rates
the finished model reaches, measured by its own forward pass.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from astroedge.model import AMSNet, amsu_chunkwise_form, rope_cos_sin

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "shakespeare"
AMSU_THRESHOLD = 1.0
CALIB_TOKENS = 512


def _ids(tokens: int) -> np.ndarray:
    from astroedge import checkpoint
    from astroedge.corpus import load_tokens, split_held_out

    tokenizer = checkpoint.load(SAMPLE / "model.pt").tokenizer
    _, held = split_held_out(load_tokens(SAMPLE / "input.txt", tokenizer, min_tokens=10 * tokens))
    return held[:tokens]


def model_rates(model: AMSNet, ids: np.ndarray) -> np.ndarray:
    """[L, 2] mean rates of (AMSU, FFN) spikes per layer over `ids`, from the model's own forward pass."""
    with torch.no_grad():
        return model(torch.from_numpy(ids).view(1, -1)).firing.numpy().astype(np.float64)


def sample_rates(tokens: int = CALIB_TOKENS) -> np.ndarray:
    from astroedge import checkpoint

    return model_rates(checkpoint.load(SAMPLE / "model.pt").model.eval(), _ids(tokens))


def _bisect(base: torch.Tensor, slope: torch.Tensor, target: float, hi: float = 64.0, steps: int = 40) -> float:
    """The scale c in [0, hi] where rate(c) = mean(base + c * slope > 0), increasing in c here, crosses `target` (hi if never)."""

    def rate(c: float) -> float:
        return float(((base + c * slope) > 0).double().mean())

    lo = 0.0
    if rate(hi) < target:
        return hi
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def calibrated_model(config: Any, seed: int = 0, tokens: int = CALIB_TOKENS) -> tuple[AMSNet, dict[str, Any]]:
    """A seeded random AMSNet of `config` whose per-layer, per-site rates equal the sample's (see the module doc)."""
    targets_sample = sample_rates(tokens)
    cfg = dataclasses.replace(config, threshold=AMSU_THRESHOLD)
    torch.manual_seed(seed)
    model = AMSNet(cfg).eval()
    ids = _ids(tokens)
    depth = targets_sample.shape[0]
    targets = np.stack([targets_sample[min(depth - 1, (i * depth) // cfg.n_layers)] for i in range(cfg.n_layers)])
    tok = torch.from_numpy(ids).view(1, -1)
    with torch.no_grad():
        cos, sin = rope_cos_sin(torch.arange(tok.shape[1]).view(1, -1), model.rope)
        x = model.embed(tok)
        for i, layer in enumerate(model.blocks()):
            state = model.init_state(1)
            xs, q, k, v = layer.amsu.project(layer.norm1(x), cos, sin)
            p = layer.amsu.params()
            d1 = amsu_chunkwise_form(xs, q, k, v, state.h[i], state.u[i], p).drive
            d0 = amsu_chunkwise_form(xs, q, k, v, state.h[i], state.u[i], p._replace(w_o=torch.zeros_like(p.w_o))).drive
            c = _bisect(d0, d1 - d0, float(targets[i, 0]))  # d1 - d0 = o_hat, the read-out that w_o scales
            layer.amsu.w_o.mul_(c)
            s = amsu_chunkwise_form(xs, q, k, v, state.h[i], state.u[i], layer.amsu.params()).s
            x = x + layer.amsu.out_proj(s)
            pre = layer.ffn.up(layer.norm2(x))
            c2 = _bisect(torch.full_like(pre, -cfg.ffn_threshold), pre, float(targets[i, 1]))
            layer.ffn.up.weight.mul_(c2)
            x = x + layer.ffn(layer.norm2(x))[0]
    reached = model_rates(model, ids)
    report = {
        "method": "random weights, rates calibrated: AMSU threshold 1.0, per-layer w_o and W_1 scaled (astroedge/bench/calibrate.py)",
        "text": f"{SAMPLE / 'input.txt'} held-out last 10%, first {len(ids)} tokens",
        "sample_rates": targets_sample.round(4).tolist(),
        "targets": targets.round(4).tolist(),
        "reached": reached.round(4).tolist(),
    }
    return model, report
