"""Sampling settings: the ONE set of defaults, and next-token sampling on numpy logits for the host.

The device runtime samples in libastroedge (one RNG, astroedge.h); DEFAULTS mirrors the header's
AE_DEFAULT_* so that CLI options can show them without loading the library, and a test checks that
they equal what the library reports. `Sampler` serves the host's `astroedge generate` (PyTorch logits).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from astroedge.errors import UserError


@dataclass(frozen=True)
class Defaults:
    max_new_tokens: int = 200
    temperature: float = 0.8  # 0 = greedy
    top_k: int = 0  # 0 = off
    top_p: float = 1.0  # 1 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int = 0


DEFAULTS = Defaults()


@dataclass(frozen=True)
class SamplingConfig:
    temperature: float = DEFAULTS.temperature
    top_k: int = DEFAULTS.top_k
    top_p: float = DEFAULTS.top_p
    repetition_penalty: float = DEFAULTS.repetition_penalty  # > 1 discourages tokens already seen, < 1 favours them
    seed: int = DEFAULTS.seed

    def validate(self) -> SamplingConfig:
        if not (self.temperature >= 0 and np.isfinite(self.temperature)):
            raise UserError(f"--temperature {self.temperature}: must be >= 0 (0 = greedy)")
        if self.top_k < 0:
            raise UserError(f"--top-k {self.top_k}: must be >= 0 (0 = off)")
        if not (0 < self.top_p <= 1):
            raise UserError(f"--top-p {self.top_p}: must be in (0, 1]")
        if not (self.repetition_penalty > 0 and np.isfinite(self.repetition_penalty)):
            raise UserError(f"--repetition-penalty {self.repetition_penalty}: must be > 0 (1 = off)")
        return self


class Sampler:
    """Holds the RNG so that a seed fixes the whole generated sequence."""

    def __init__(self, cfg: SamplingConfig) -> None:
        self.cfg = cfg.validate()
        self.rng = np.random.default_rng(cfg.seed)

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        z = np.asarray(logits, dtype=np.float64).copy()
        c = self.cfg
        if c.repetition_penalty != 1.0 and len(history):
            seen = np.unique(np.asarray(history, dtype=np.int64))
            z[seen] = np.where(z[seen] > 0, z[seen] / c.repetition_penalty, z[seen] * c.repetition_penalty)
        if c.temperature == 0:
            return int(np.argmax(z))
        z = z / c.temperature
        if 0 < c.top_k < z.size:
            kth = np.partition(z, -c.top_k)[-c.top_k]
            z[z < kth] = -np.inf
        p = np.exp(z - z.max())
        p /= p.sum()
        if c.top_p < 1.0:
            order = np.argsort(-p, kind="stable")
            cum = np.cumsum(p[order])
            keep = order[: int(np.searchsorted(cum, c.top_p) + 1)]
            mask = np.zeros_like(p, dtype=bool)
            mask[keep] = True
            p = np.where(mask, p, 0.0)
            p /= p.sum()
        return int(self.rng.choice(p.size, p=p))
