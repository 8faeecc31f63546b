"""Sampling settings: the ONE set of defaults, and next-token sampling on numpy logits for the host.

The device runtime samples in libastroedge (one RNG, astroedge.h); DEFAULTS mirrors the header's
AE_DEFAULT_* so that CLI options can show them without loading the library, and a test checks that
they equal what the library reports. `Sampler` is the library's algorithm for the host's `astroedge
generate` (PyTorch logits), tested to pick the same tokens.
"""

from __future__ import annotations

import math
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
        if not (self.temperature == 0 or 1e-6 <= self.temperature <= 1e6):
            raise UserError(f"--temperature {self.temperature}: must be 0 (greedy) or in [1e-6, 1e6]")
        if self.top_k < 0:
            raise UserError(f"--top-k {self.top_k}: must be >= 0 (0 = off)")
        if not (0 < self.top_p <= 1):
            raise UserError(f"--top-p {self.top_p}: must be in (0, 1]")
        if not (self.repetition_penalty > 0 and np.isfinite(self.repetition_penalty)):
            raise UserError(f"--repetition-penalty {self.repetition_penalty}: must be > 0 (1 = off)")
        return self


_MASK64 = (1 << 64) - 1


class Sampler:
    """libastroedge's sampling algorithm (astroedge.h, runtime/src/sampler.cc) for logits that live in PyTorch.

    The host's `astroedge generate` has no libastroedge stream to call `ae_stream_sample` on, and the C API
    has no call that samples caller-held logits yet; so the header's documented algorithm is followed here
    step for step, in the same float types and summation order (float32 settings, float64 work, glibc exp,
    sequential sums, splitmix64), and a test checks it picks exactly the tokens the C sampler picks. Same
    seed, same tokens on the host and on the device.
    """

    def __init__(self, cfg: SamplingConfig) -> None:
        self.cfg = cfg.validate()
        self._state = cfg.seed & _MASK64
        # C stores the settings as float: round them the same way before using them as doubles
        self._temperature = float(np.float32(cfg.temperature))
        self._top_p = float(np.float32(cfg.top_p))
        self._penalty = float(np.float32(cfg.repetition_penalty))

    def _uniform(self) -> float:
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        z ^= z >> 31
        return (z >> 11) * 2.0**-53

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        z = np.asarray(logits, dtype=np.float32).astype(np.float64)
        if not np.isfinite(z).all():
            raise UserError(f"logit {int(np.flatnonzero(~np.isfinite(z))[0])} is not a finite number; the state is damaged")
        c = self.cfg
        if self._penalty != 1.0 and len(history):
            seen = np.unique(np.asarray(history, dtype=np.int64))
            z[seen] = np.where(z[seen] > 0, z[seen] / self._penalty, z[seen] * self._penalty)
        if c.temperature == 0:
            return int(np.argmax(z))  # the first maximum: the lowest id wins a tie
        z = z / self._temperature
        order = np.lexsort((np.arange(z.size), -z))  # descending, ties by ascending id
        zs = z[order]
        keep = z.size
        if 0 < c.top_k < z.size:
            keep = c.top_k
            while keep < z.size and zs[keep] == zs[keep - 1]:
                keep += 1
        top = zs[0]
        p = [math.exp(v - top) for v in zs[:keep].tolist()]
        total = 0.0
        for v in p:
            total += v
        if self._top_p < 1.0:
            mass, n, limit = 0.0, 0, self._top_p * total
            while n < keep and mass < limit:
                mass += p[n]
                n += 1
            keep = max(n, 1)
            total = mass if mass > 0.0 else p[0]
        r = self._uniform() * total
        for i in range(keep):
            r -= p[i]
            if r < 0.0:
                return int(order[i])
        return int(order[keep - 1])
