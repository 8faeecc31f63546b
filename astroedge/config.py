"""Model configuration: one dataclass, validated, printable, with named presets.

Kept free of torch so that the runtime (device side) can read a package's config too.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astroedge.errors import UserError


@dataclass(frozen=True)
class ModelConfig:
    """Shape and constants of an AM-SNet (see docs/model.md for the equations)."""

    vocab_size: int = 256
    d_model: int = 256
    n_layers: int = 4
    n_heads: int = 4
    ffn_mult: float = 4.0
    tau_n: float = 2.0  # neuron (membrane) time constant, tokens
    tau_a_min: float = 4.0  # fastest astrocyte head, tokens
    tau_a_max: float = 4096.0  # slowest astrocyte head, tokens (geometric spread across heads)
    threshold: float = 0.5  # AMSU spike threshold theta
    ffn_threshold: float = 0.5  # FFN spike threshold theta_f
    rope_base: float = 10000.0
    norm_eps: float = 1e-5
    surrogate_width: float = 1.0  # half-width of the triangle surrogate gradient

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def ffn_hidden(self) -> int:
        return int(round(self.ffn_mult * self.d_model))

    def validate(self) -> ModelConfig:
        """Raise UserError naming the first bad field; return self so calls chain."""

        def bad(field: str, value: Any, why: str) -> UserError:
            return UserError(f"config field '{field}' = {value!r}: {why}")

        for name in ("vocab_size", "d_model", "n_layers", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(name, value, "must be a positive integer")
        if self.vocab_size < 2:
            raise bad("vocab_size", self.vocab_size, "must be at least 2")
        if self.d_model % self.n_heads:
            raise bad("d_model", self.d_model, f"must be divisible by n_heads={self.n_heads}")
        if self.head_dim % 2:
            raise bad("n_heads", self.n_heads, f"head width d_model/n_heads={self.head_dim} must be even (RoPE rotates pairs)")
        if not (self.ffn_mult > 0 and self.ffn_hidden >= 1):
            raise bad("ffn_mult", self.ffn_mult, "must be positive")
        if not (math.isfinite(self.tau_n) and self.tau_n > 0):
            raise bad("tau_n", self.tau_n, "must be a positive number of tokens")
        if not (math.isfinite(self.tau_a_min) and self.tau_a_min > 0):
            raise bad("tau_a_min", self.tau_a_min, "must be a positive number of tokens")
        if not (math.isfinite(self.tau_a_max) and self.tau_a_max >= self.tau_a_min):
            raise bad("tau_a_max", self.tau_a_max, f"must be finite and >= tau_a_min={self.tau_a_min}")
        for name in ("threshold", "ffn_threshold"):
            if not math.isfinite(getattr(self, name)):
                raise bad(name, getattr(self, name), "must be a finite number")
        if not (math.isfinite(self.rope_base) and self.rope_base > 1):
            raise bad("rope_base", self.rope_base, "must be greater than 1")
        if not (self.norm_eps > 0 and math.isfinite(self.norm_eps)):
            raise bad("norm_eps", self.norm_eps, "must be a small positive number")
        if not (self.surrogate_width > 0 and math.isfinite(self.surrogate_width)):
            raise bad("surrogate_width", self.surrogate_width, "must be positive")
        return self

    def tau_a(self) -> list[float]:
        """Astrocyte time constants, geometric from tau_a_min to tau_a_max across heads [paper: exponential spread]."""
        if self.n_heads == 1:
            return [self.tau_a_min]
        ratio = (self.tau_a_max / self.tau_a_min) ** (1.0 / (self.n_heads - 1))
        return [self.tau_a_min * ratio**h for h in range(self.n_heads)]

    def gammas(self) -> list[float]:
        """Per-head astrocyte decay gamma_h = exp(-1/tau_a,h)."""
        return [math.exp(-1.0 / t) for t in self.tau_a()]

    def beta(self) -> float:
        """Membrane decay beta = exp(-1/tau_n)."""
        return math.exp(-1.0 / self.tau_n)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> ModelConfig:
        """Validated config from a mapping (a JSON file, a checkpoint); errors name `source`, the field and the value."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: must be a JSON object of config fields, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise UserError(f"{source}: unknown config field '{unknown[0]}'; known fields: {', '.join(sorted(fields))}")
        for name, value in data.items():
            want = type(fields[name].default)  # int or float: the defaults say which
            if isinstance(value, bool) or not isinstance(value, int if want is int else (int, float)):
                raise UserError(f"{source}: config field '{name}' = {value!r}: must be {'an integer' if want is int else 'a number'}")
        # checked above: ints for int fields, numbers (made floats here) for float fields
        values: dict[str, Any] = {k: float(v) if type(fields[k].default) is float else v for k, v in data.items()}
        try:
            return cls(**values).validate()
        except UserError as exc:
            raise UserError(f"{source}: {exc}") from None

    def describe(self) -> str:
        """Printable form, one field a line."""
        lines = [f"{f.name:16s} {getattr(self, f.name)}" for f in dataclasses.fields(self)]
        lines.append(f"{'head_dim':16s} {self.head_dim}  (derived)")
        lines.append(f"{'ffn_hidden':16s} {self.ffn_hidden}  (derived)")
        return "\n".join(lines)


PRESETS: dict[str, ModelConfig] = {
    # unit tests: small and odd-shaped on purpose
    "tiny": ModelConfig(d_model=40, n_layers=2, n_heads=5, ffn_mult=2.0, tau_a_max=256.0),
    # the bundled Shakespeare sample (trained on a laptop CPU in minutes)
    "sample": ModelConfig(d_model=256, n_layers=4, n_heads=4),
    # random-weight bench model for bandwidth-bound figures
    "bench": ModelConfig(d_model=768, n_layers=12, n_heads=12),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise UserError(f"unknown config '{name}'; choose one of: {', '.join(PRESETS)}, or a FILE.json ('astroedge config show NAME')")
    return PRESETS[name]


def load_config(spec: str, overrides: dict[str, Any] | None = None) -> ModelConfig:
    """A preset name or a JSON file of config fields (any subset: the rest default), then `overrides`, validated.

    `overrides` (the train command's --d-model, --n-heads, ...) win over the file; None values are ignored.
    """
    if spec in PRESETS:
        base, source = PRESETS[spec].to_dict(), f"preset '{spec}'"
    elif spec.endswith(".json") or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"--config {spec}: file not found; write one with 'astroedge config show sample > {spec}'")
        try:
            base = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"--config {spec}: not valid JSON ({exc}); start from 'astroedge config show sample'") from None
        source = str(path)
        if not isinstance(base, dict):
            raise UserError(f"{source}: must be a JSON object of config fields, got {type(base).__name__}")
        base = ModelConfig().to_dict() | base
    else:
        preset(spec)  # raises, naming the presets
        raise AssertionError("unreachable")
    set_by_option = {k: v for k, v in (overrides or {}).items() if v is not None}
    if set_by_option:
        source += " with " + ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in set_by_option.items())
    return ModelConfig.from_dict(base | set_by_option, source)
