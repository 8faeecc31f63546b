"""Sampling settings: the ONE set of defaults, and next-token sampling on numpy logits for the host.

The device runtime samples in libastroedge (one RNG, astroedge.h); DEFAULTS mirrors the header's
AE_DEFAULT_* so that CLI options can show them without loading the library, and a test checks that
they equal what the library reports. `Sampler` is libastroedge's own sampler (ae_sampler_pick) for the
host's `astroedge generate`, whose logits live in PyTorch: one algorithm, one RNG, so the same seed
picks the same tokens on the host and on the device.
"""

from __future__ import annotations

import ctypes
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


class Sampler:
    """A libastroedge AeSampler over caller-held logits: `sampler(logits, history)` -> the next token.

    The settings are checked by the library (one line naming the value and its range). `history` is
    the token ids the repetition penalty applies to (the prompt and what was generated so far).
    """

    def __init__(self, cfg: SamplingConfig) -> None:
        from astroedge.runtime._capi import lib  # loaded on first use: DEFAULTS needs no native library

        c = self._c = lib()
        self.cfg = cfg
        self._ptr = 0
        params = c.new(c.ae_generate_params_create)
        try:
            c.check(c.ae_generate_params_set_temperature(params, cfg.temperature))
            c.check(c.ae_generate_params_set_top_k(params, cfg.top_k))
            c.check(c.ae_generate_params_set_top_p(params, cfg.top_p))
            c.check(c.ae_generate_params_set_repetition_penalty(params, cfg.repetition_penalty))
            c.check(c.ae_generate_params_set_seed(params, cfg.seed % 2**64))
            self._ptr = c.new(c.ae_sampler_create, params)
        finally:
            c.ae_generate_params_destroy(params)
        self._token = ctypes.c_int32()

    def __del__(self) -> None:
        if getattr(self, "_ptr", 0):
            self._c.ae_sampler_destroy(self._ptr)
            self._ptr = 0

    def __call__(self, logits: np.ndarray, history: Sequence[int] = ()) -> int:
        z = np.ascontiguousarray(logits, dtype=np.float32).ravel()
        seen = None
        if len(history):
            ids = np.asarray(history, dtype=np.int64)
            if ids.min() < 0 or ids.max() >= z.size:
                raise UserError(f"history holds token {int(ids[(ids < 0) | (ids >= z.size)][0])}, outside the vocabulary [0, {z.size})")
            seen = np.zeros(z.size, dtype=np.uint8)
            seen[ids] = 1
        c = self._c
        c.check(c.ae_sampler_pick(self._ptr, z.ctypes.data, z.size, None if seen is None else seen.ctypes.data, ctypes.byref(self._token)))
        return self._token.value
