"""Read and validate an astroedge package (`*.aepkg`, docs/package-format.md) without torch.

Everything the runtime needs to drive the graph comes from manifest.json: the I/O names, the state
tensors (name, dtype, shape with a symbolic batch), the tokenizer and the precision. Validation is
done once, here, so that the engine never meets a half-valid package: every problem becomes a
UserError that names the file and field and says what to do.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astroedge.config import ModelConfig
from astroedge.errors import UserError
from astroedge.manifest import FORMAT, FORMAT_VERSION, MANIFEST, PRECISIONS, STATE_DTYPES, StateSpec
from astroedge.tokenizer import Tokenizer, load_from_manifest


@dataclass
class Package:
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str  # identity of the package: state files record it
    config: ModelConfig
    onnx_path: Path
    tokens_input: str
    position_input: str
    logits_output: str
    state: list[StateSpec]
    tokenizer: Tokenizer
    precision: str
    state_bytes_per_stream: int
    max_position: int

    @property
    def vocab_size(self) -> int:
        return self.config.vocab_size


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (packages are written and verified with it)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Fields:
    """Typed access to manifest fields; each failure names the field and the manifest file."""

    def __init__(self, source: Path) -> None:
        self.source = source

    def error(self, field: str, value: Any, why: str) -> UserError:
        return UserError(f"{self.source}: field '{field}' = {value!r} {why}; re-export the package with 'astroedge export'")

    def get(self, obj: dict[str, Any], key: str, kind: type | tuple[type, ...], field: str) -> Any:
        if key not in obj:
            raise UserError(f"{self.source}: required field '{field}' is missing; re-export the package with 'astroedge export'")
        value = obj[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(field, value, f"has the wrong type (expected {getattr(kind, '__name__', kind)})")
        return value

    def name(self, obj: dict[str, Any], key: str, field: str) -> str:
        value = self.get(obj, key, str, field)
        if not value:
            raise self.error(field, value, "must be a non-empty name")
        return value


def _read_manifest(root: Path) -> tuple[dict[str, Any], str]:
    if not root.exists():
        raise UserError(f"{root}: package not found; export one with 'astroedge export CHECKPOINT -o {root.name}'")
    if not root.is_dir():
        raise UserError(f"{root}: a package is a directory (*.aepkg) holding manifest.json; export one with 'astroedge export'")
    mpath = root / MANIFEST
    if not mpath.is_file():
        raise UserError(f"{mpath}: missing; {root} is not an astroedge package (re-export it with 'astroedge export')")
    raw = mpath.read_bytes()
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{mpath}: not valid JSON ({exc}); re-export the package with 'astroedge export'") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{mpath}: must hold a JSON object; re-export the package with 'astroedge export'")
    return manifest, hashlib.sha256(raw).hexdigest()


def _check_header(m: dict[str, Any], f: _Fields) -> None:
    if m.get("format") != FORMAT:
        raise UserError(f"{f.source}: field 'format' = {m.get('format')!r}, expected '{FORMAT}'; this is not an astroedge package")
    version = f.get(m, "format_version", int, "format_version")
    if version > FORMAT_VERSION:
        raise UserError(
            f"{f.source}: package format_version {version} is newer than this astroedge reads ({FORMAT_VERSION}); upgrade astroedge"
        )
    if version < 1:
        raise f.error("format_version", version, "must be >= 1")


def _state_specs(m: dict[str, Any], f: _Fields) -> list[StateSpec]:
    entries = f.get(m, "state", list, "state")
    if not entries:
        raise f.error("state", entries, "must list the recurrent state tensors")
    specs = []
    for i, e in enumerate(entries):
        where = f"state[{i}]"
        if not isinstance(e, dict):
            raise f.error(where, e, "must be an object")
        dtype = f.get(e, "dtype", str, f"{where}.dtype")
        if dtype not in STATE_DTYPES:
            raise f.error(f"{where}.dtype", dtype, "must be float32 (state stays fp32 in every precision)")
        shape = f.get(e, "shape", list, f"{where}.shape")
        if len(shape) < 2 or shape[0] != "batch" or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape[1:]):
            raise f.error(f"{where}.shape", shape, "must be ['batch', positive ints...]")
        init = e.get("init", "zeros")
        if init != "zeros":
            raise f.error(f"{where}.init", init, "is not supported (only 'zeros')")
        specs.append(
            StateSpec(
                f.name(e, "name", f"{where}.name"),
                f.name(e, "input", f"{where}.input"),
                f.name(e, "output", f"{where}.output"),
                dtype,
                tuple(shape),
            )
        )
    for attr in ("name", "input", "output"):
        values = [getattr(s, attr) for s in specs]
        dup = next((v for v in values if values.count(v) > 1), None)
        if dup is not None:
            raise f.error(f"state[].{attr}", dup, "appears twice")
    return specs


def _check_files(root: Path, m: dict[str, Any], f: _Fields, onnx_file: str, verify: bool) -> None:
    files = f.get(m, "files", dict, "files")
    if onnx_file not in files:
        raise f.error("files", sorted(files), f"must list the graph '{onnx_file}' with its sha256")
    for name, info in files.items():
        where = f"files.{name}"
        if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST):
            raise f.error("files", name, "must name plain files inside the package")
        if not isinstance(info, dict):
            raise f.error(where, info, "must be an object with 'sha256' and 'bytes'")
        digest = f.get(info, "sha256", str, f"{where}.sha256")
        size = f.get(info, "bytes", int, f"{where}.bytes")
        p = root / name
        if not p.is_file():
            raise UserError(f"{p}: missing from the package (listed in {MANIFEST}); copy the whole package directory or re-export it")
        actual_size = p.stat().st_size
        if actual_size != size:
            raise UserError(f"{p}: {actual_size} bytes, manifest says {size}; the package is corrupted or truncated, copy or re-export it")
        if verify and sha256_file(p) != digest.lower():
            raise UserError(f"{p}: sha256 does not match {MANIFEST} (file corrupted or edited); copy or re-export the package")


def load_package(path: str | Path, verify: bool = True) -> Package:
    """Open the package at `path`; `verify` re-hashes every file (skip it only for a package you just checked)."""
    from astroedge import manifest as package_format  # the format's one reader (H7); this module goes with the C binding

    root = Path(path)
    package_format.open_package(root) if verify else package_format.read_manifest(root)
    manifest, manifest_sha = _read_manifest(root)
    f = _Fields(root / MANIFEST)
    _check_header(manifest, f)

    model = f.get(manifest, "model", dict, "model")
    config = ModelConfig.from_dict(dict(model), source=f"{f.source}: model")

    onnx = f.get(manifest, "onnx", dict, "onnx")
    onnx_file = f.name(onnx, "file", "onnx.file")
    external = onnx.get("external_data")
    if external is not None and not isinstance(external, str):
        raise f.error("onnx.external_data", external, "must be a file name or null")
    for key, name in (("file", onnx_file), ("external_data", external)):
        if name is not None and name not in f.get(manifest, "files", dict, "files"):
            raise f.error(f"onnx.{key}", name, "is not listed in 'files'")

    inputs = f.get(manifest, "inputs", dict, "inputs")
    outputs = f.get(manifest, "outputs", dict, "outputs")
    precision = f.get(manifest, "precision", str, "precision")
    if precision not in PRECISIONS:
        raise f.error("precision", precision, f"is unknown (expected one of {', '.join(PRECISIONS)})")
    state = _state_specs(manifest, f)
    state_bytes = f.get(manifest, "state_bytes_per_stream", int, "state_bytes_per_stream")
    if state_bytes != sum(s.bytes_per_stream for s in state):
        raise f.error("state_bytes_per_stream", state_bytes, f"disagrees with the state shapes ({sum(s.bytes_per_stream for s in state)})")
    max_position = f.get(manifest, "max_position", int, "max_position")
    if max_position < 1:
        raise f.error("max_position", max_position, "must be positive")

    tok_entry = f.get(manifest, "tokenizer", dict, "tokenizer")
    _check_files(root, manifest, f, onnx_file, verify)
    tokenizer = load_from_manifest(tok_entry, root)
    if tokenizer.vocab_size > config.vocab_size:
        raise f.error("tokenizer.vocab_size", tokenizer.vocab_size, f"exceeds the model's vocab_size {config.vocab_size}")

    return Package(
        path=root,
        manifest=manifest,
        manifest_sha256=manifest_sha,
        config=config,
        onnx_path=root / onnx_file,
        tokens_input=f.name(inputs, "tokens", "inputs.tokens"),
        position_input=f.name(inputs, "position", "inputs.position"),
        logits_output=f.name(outputs, "logits", "outputs.logits"),
        state=state,
        tokenizer=tokenizer,
        precision=precision,
        state_bytes_per_stream=state_bytes,
        max_position=max_position,
    )
