"""Saved stream state (`*.npz`): resume a conversation later, on this or another device.

Layout: one fp32 array per manifest state entry (named by the entry's `name`, batch 1) plus
`__header__`, a JSON string: format name and version, the sha256 of the package's manifest.json
(the model's identity: a state is meaningful only for the exact graph and weights that made it),
the position, and the state names; plus `__logits__`, the logits of the last token fed (so that a
resumed stream can generate at once), when there is one. The file is written atomically and read without pickle.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astroedge.errors import UserError
from astroedge.fileio import atomic_file
from astroedge.runtime.package import Package

FORMAT = "astroedge-state"
FORMAT_VERSION = 1
HEADER = "__header__"
LOGITS = "__logits__"


@dataclass
class SavedState:
    position: int
    arrays: list[np.ndarray]  # manifest order, each [1, ...] float32
    last_logits: np.ndarray | None  # [V] float32


def save_state(path: str | Path, package: Package, position: int, arrays: list[np.ndarray], last_logits: np.ndarray | None) -> None:
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "package_sha256": package.manifest_sha256,
        "package": package.path.name,
        "position": int(position),
        "state": [s.name for s in package.state],
    }
    payload = {HEADER: np.array(json.dumps(header))}
    payload.update({s.name: np.ascontiguousarray(a, dtype=np.float32) for s, a in zip(package.state, arrays, strict=True)})
    if last_logits is not None:
        payload[LOGITS] = np.asarray(last_logits, dtype=np.float32)
    with atomic_file(path) as tmp, tmp.open("wb") as f:
        np.savez(f, **payload)  # type: ignore[arg-type]


def load_state(path: str | Path, package: Package) -> SavedState:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: state file not found")
    try:
        with np.load(p, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise UserError(f"{p}: not a readable astroedge state file ({exc}); save it again with Stream.save_state") from None
    if HEADER not in arrays:
        raise UserError(f"{p}: not an astroedge state file (no {HEADER}); save it again with Stream.save_state")
    try:
        header = json.loads(str(arrays.pop(HEADER)))
    except json.JSONDecodeError:
        raise UserError(f"{p}: state header is not valid JSON; save the state again") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise UserError(f"{p}: not an astroedge state file (format {header.get('format') if isinstance(header, dict) else None!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"{p}: state format_version {version} is newer than this astroedge reads ({FORMAT_VERSION}); upgrade astroedge")
    if header.get("package_sha256") != package.manifest_sha256:
        raise UserError(
            f"{p}: state belongs to another package ({header.get('package')!r}, manifest sha256 "
            f"{str(header.get('package_sha256'))[:12]}…), not {package.path} ({package.manifest_sha256[:12]}…); "
            "load it into the package that saved it"
        )
    position = header.get("position")
    if not isinstance(position, int) or not 0 <= position <= package.max_position:
        raise UserError(f"{p}: state header field 'position' = {position!r} is out of range [0, {package.max_position}]")
    out = []
    for spec in package.state:
        a = arrays.get(spec.name)
        want = spec.concrete_shape(1)
        if a is None or a.dtype != np.float32 or a.shape != want:
            got = "missing" if a is None else f"{a.dtype} {list(a.shape)}"
            raise UserError(f"{p}: state '{spec.name}' is {got}, expected float32 {list(want)}; the file is damaged, save it again")
        out.append(a)
    logits = arrays.get(LOGITS)
    if logits is not None and (logits.dtype != np.float32 or logits.shape != (package.vocab_size,)):
        got = f"{logits.dtype} {list(logits.shape)}"
        raise UserError(f"{p}: '{LOGITS}' is {got}, expected float32 [{package.vocab_size}]; save the state again")
    return SavedState(position, out, logits)
