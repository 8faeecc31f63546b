"""`model.pt`: format version, config, weights, tokenizer and training metadata.

Loading uses `torch.load(weights_only=True)`: a checkpoint that carries pickled code is refused
instead of executed. Format version 2 adds `weights_sha256`, a checksum of every tensor (name, dtype,
shape, bytes), verified on load, so a flipped bit in a weight is refused instead of exported.
Version-1 files (the bundled sample among them) have no checksum and load with the check skipped;
a version-2 file without one is refused (stripping the checksum does not turn the check off).
Every field is type- and range-checked (astroedge.manifest.check_config for the config) so that a
damaged or hostile file ends in one UserError line, never a traceback.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from astroedge import __version__
from astroedge.errors import UserError
from astroedge.fileio import atomic_file
from astroedge.manifest import check_config
from astroedge.model import AMSNet
from astroedge.tokenizer import Tokenizer, from_spec

FORMAT = "astroedge-checkpoint"
FORMAT_VERSION = 2  # 2: weights_sha256
RESUME_FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    model: AMSNet
    tokenizer: Tokenizer
    meta: dict[str, Any]  # how it was trained: steps, time, held-out loss...


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor in name order: name, dtype, shape and raw bytes (any dtype, any layout)."""
    h = hashlib.sha256()
    for name in sorted(weights):
        t = weights[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save(path: str | Path, model: AMSNet, tokenizer: Tokenizer, meta: dict[str, Any] | None = None) -> None:
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"astroedge {__version__}",
        "config": model.cfg.to_dict(),
        "tokenizer": tokenizer.spec(),
        "weights": weights,
        "weights_sha256": weights_sha256(weights),
        "meta": meta or {},
    }
    with atomic_file(path) as tmp:
        torch.save(payload, tmp)


def _short(exc: BaseException) -> str:
    """First line of an exception's text, cut short: torch's own messages run to hundreds of characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:80]


def load(path: str | Path) -> Checkpoint:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: checkpoint not found")
    try:
        payload = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{p}: refused to load, it holds pickled objects beyond plain tensors; re-save it with 'astroedge train'") from None
    except Exception as exc:  # torch raises many types for a damaged file; all mean the same to a user
        raise UserError(f"{p}: not a readable astroedge checkpoint (truncated or corrupt: {_short(exc)})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{p}: not an astroedge checkpoint (no '{FORMAT}' header); train one with 'astroedge train'")
    version = payload.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(f"{p}: field 'format_version' = {repr(version)[:40]} must be an integer >= 1; the file is damaged, re-train it")
    if version > FORMAT_VERSION:
        raise UserError(
            f"{p}: checkpoint format version {version} is newer than this astroedge reads ({FORMAT_VERSION}); upgrade astroedge"
        )
    cfg = check_config(payload.get("config"), str(p), "config")
    weights = payload.get("weights")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise UserError(f"{p}: field 'weights' must map names to tensors; the file is damaged, re-train it")
    digest = payload.get("weights_sha256")
    if digest is not None or version >= 2:
        if not isinstance(digest, str):
            raise UserError(f"{p}: field 'weights_sha256' is missing (required from format version 2); the file is damaged, re-train it")
        if weights_sha256(weights) != digest:
            raise UserError(
                f"{p}: the weights do not match their checksum 'weights_sha256' (file corrupted or edited); re-train it or "
                "restore it from a copy"
            )
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())), None)
    if bad is not None:
        raise UserError(f"{p}: weight '{bad[:80]}' holds NaN or infinite values; the training diverged or the file is damaged, re-train it")
    model = AMSNet(cfg)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"{p}: weights do not match the config ({_short(exc)})") from None
    model.eval()
    tokenizer = payload.get("tokenizer")
    if not isinstance(tokenizer, dict):
        raise UserError(f"{p}: field 'tokenizer' must be an object; the file is damaged, re-train it")
    tok = from_spec(tokenizer, f"{p}: tokenizer")
    if getattr(tok, "vocab_size", 0) > cfg.vocab_size:
        raise UserError(f"{p}: the tokenizer has {tok.vocab_size} tokens, more than the model's vocab_size {cfg.vocab_size}")
    meta = payload.get("meta") or {}
    return Checkpoint(model, tok, meta if isinstance(meta, dict) else {})


def resume_path(checkpoint: str | Path) -> Path:
    """Where the optimizer state of `checkpoint` lives (needed only by --resume)."""
    p = Path(checkpoint)
    return p.with_name(p.name + ".resume")


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    with atomic_file(path) as tmp:
        torch.save({"format": FORMAT + "-resume", "format_version": RESUME_FORMAT_VERSION, **state}, tmp)


def load_train_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file gets the same one-line refusal
        raise UserError(f"{path}: unreadable optimizer state ({_short(exc)}); train without --resume") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT + "-resume":
        raise UserError(f"{path}: not an astroedge optimizer state; train without --resume")
    return state
