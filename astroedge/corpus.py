"""Reading a training or evaluation text into token ids, with the checks a user needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from astroedge.errors import UserError
from astroedge.tokenizer import Tokenizer


def read_text(path: str | Path) -> str:
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: text file not found")
    if not p.is_file():
        raise UserError(f"{p}: not a file; pass a UTF-8 text file")
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text (bad byte at offset {exc.start}); convert it to UTF-8") from None


def load_tokens(path: str | Path, tokenizer: Tokenizer, min_tokens: int) -> np.ndarray:
    """Token ids of the file as int64; refuses a text shorter than `min_tokens`."""
    text = read_text(path)
    ids = np.asarray(tokenizer.encode(text), dtype=np.int64)
    if ids.size < min_tokens:
        raise UserError(f"{path}: only {ids.size} tokens, need at least {min_tokens}; use a longer text (or a smaller --seq-len)")
    return ids


def split_held_out(ids: np.ndarray, fraction: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out): the held-out part is the last `fraction` of the text, never trained on."""
    cut = int(len(ids) * (1 - fraction))
    return ids[:cut], ids[cut:]
