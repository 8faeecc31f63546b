"""`model.pt`: format version, config, weights, tokenizer and training metadata.

Loading uses `torch.load(weights_only=True)`: a checkpoint that carries pickled code is refused
instead of executed.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from astroedge import __version__
from astroedge.config import ModelConfig
from astroedge.errors import UserError
from astroedge.fileio import atomic_file
from astroedge.model import AMSNet
from astroedge.tokenizer import Tokenizer, from_spec

FORMAT = "astroedge-checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    model: AMSNet
    tokenizer: Tokenizer
    meta: dict[str, Any]  # how it was trained: steps, time, held-out loss...


def save(path: str | Path, model: AMSNet, tokenizer: Tokenizer, meta: dict[str, Any] | None = None) -> None:
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"astroedge {__version__}",
        "config": model.cfg.to_dict(),
        "tokenizer": tokenizer.spec(),
        "weights": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
        "meta": meta or {},
    }
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path) -> Checkpoint:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsafe content"
        raise UserError(
            f"{p}: refused to load, the checkpoint holds pickled objects beyond plain tensors ({first[:120]}); "
            "re-save it with 'astroedge train'"
        ) from None
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same to a user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{p}: not a readable astroedge checkpoint (truncated or corrupt: {first[:120]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{p}: not an astroedge checkpoint (no '{FORMAT}' header); train one with 'astroedge train'")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{p}: checkpoint format version {version} is newer than this astroedge reads ({FORMAT_VERSION}); "
                        "upgrade astroedge")
    cfg = ModelConfig.from_dict(dict(payload["config"]), source=f"{p}: config")
    model = AMSNet(cfg)
    try:
        model.load_state_dict(payload["weights"])
    except RuntimeError as exc:
        raise UserError(f"{p}: weights do not match the config ({str(exc).splitlines()[0][:160]})") from None
    model.eval()
    tok = from_spec(payload["tokenizer"], f"{p}: tokenizer")
    return Checkpoint(model, tok, payload.get("meta") or {})


def resume_path(checkpoint: str | Path) -> Path:
    """Where the optimizer state of `checkpoint` lives (needed only by --resume)."""
    p = Path(checkpoint)
    return p.with_name(p.name + ".resume")


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        torch.save({"format": FORMAT + "-resume", "format_version": FORMAT_VERSION, **state}, tmp)


def load_train_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets the same one-line refusal
        raise UserError(f"{path}: unreadable optimizer state ({str(exc).strip().splitlines()[0][:120]}); train without --resume") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT + "-resume":
        raise UserError(f"{path}: not an astroedge optimizer state; train without --resume")
    return state
