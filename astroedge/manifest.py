"""The package format, defined once (docs/package-format.md): constants, the manifest's fields and
ranges, the rules for the files it names, and the checks against the graph.

The exporter and the quantiser write manifests with `build_manifest`/`write_manifest` (which validate
what they write with the reader's rules), `astroedge inspect` and the Python binding read them with
`read_manifest`/`open_package`. The C core (libastroedge) implements the same rules; the table in
tests/fixtures/manifest_cases/cases.json is run through both readers so that they cannot drift apart.

A package is hostile input until proven otherwise (docs/security.md), so the reader:
- reads every file through `read_package_file`: a plain name inside the package folder, opened without
  following symlinks and without blocking (a FIFO or device is refused before it is read), a regular
  file whose size matches the manifest before a byte is read, and whose sha256 is checked on the very
  bytes it returns (no check-then-reopen race);
- bounds the JSON it parses (size, nesting depth, duplicate keys, NaN/Infinity, huge numbers);
- range-checks every field; the state list must equal the one derived from the model config (names,
  order, shapes), so a manifest cannot rewire layers;
- walks model.onnx's protobuf itself (no `onnx` import, so the device side checks the same things):
  every external-data location must be the listed external file, inside its size, and the graph's
  inputs and outputs must be exactly the manifest's, with matching element types and shapes.

Torch-free and onnx-free on purpose: the device side imports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astroedge.config import ModelConfig
from astroedge.errors import UserError

FORMAT = "astroedge-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
EXTERNAL_DATA_FILE = "model.onnx.data"
TOKENIZER_FILE = "tokenizer.json"
INPUT_TOKENS = "tokens"
INPUT_POSITION = "position"
OUTPUT_LOGITS = "logits"
MAX_POSITION = 2**32  # RoPE digits cover positions below 256**4 exactly (astroedge.model.ROPE_MAX_POSITION)
STATE_DTYPES = {"float32": 4}  # state is fp32 data in every precision
PRECISIONS = ("fp32", "fp16", "int8", "int4")
TOKENIZER_TYPES = ("bytes", "hf")
BYTE_VOCAB = 256

# Bounds that keep a hostile manifest from making a reader allocate or hash without limit.
MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few KB
MAX_JSON_DEPTH = 16  # a real manifest nests 4 deep
MAX_FILE_BYTES = 1 << 40  # any one package file
MAX_ONNX_BYTES = 2**31 - 1  # protobuf's own limit: larger weights live in the external data file
MAX_TOKENIZER_BYTES = 64 << 20
MAX_STATE_BYTES_PER_STREAM = 1 << 30
MAX_ONNX_NESTING = 32  # subgraphs inside attributes inside subgraphs...
NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
REGENERATE = "re-export the package with 'astroedge export'"

# Model config fields as a package may state them: (kind, low, high, low inclusive). Tighter than
# ModelConfig.validate (which checks the relations between fields) so that no value can overflow
# a derived size (ffn_mult 1e308, vocab_size 2**63) before the relations are checked.
CONFIG_RANGES: dict[str, tuple[type, float, float, bool]] = {
    "vocab_size": (int, 2, 2**24, True),
    "d_model": (int, 2, 2**16, True),
    "n_layers": (int, 1, 1024, True),
    "n_heads": (int, 1, 4096, True),
    "ffn_mult": (float, 0.0, 64.0, False),
    "tau_n": (float, 0.0, 1e9, False),
    "tau_a_min": (float, 0.0, 1e9, False),
    "tau_a_max": (float, 0.0, 1e9, False),
    "threshold": (float, -1e6, 1e6, True),
    "ffn_threshold": (float, -1e6, 1e6, True),
    "rope_base": (float, 1.0, 1e12, False),
    "norm_eps": (float, 0.0, 1.0, False),
    "surrogate_width": (float, 0.0, 1e6, False),
}

# ONNX TensorProto.DataType values the I/O check needs.
ONNX_FLOAT = 1
ONNX_INT64 = 7


@dataclass(frozen=True)
class FileEntry:
    """A file of the package: plain name inside the folder, exact size, sha256 of its bytes."""

    name: str
    bytes: int
    sha256: str


@dataclass(frozen=True)
class StateSpec:
    """One recurrent state tensor: graph input `input` is fed with the graph output `output` of the previous call."""

    name: str
    input: str
    output: str
    dtype: str
    shape: tuple[int | str, ...]  # first entry is the symbolic "batch"

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        return tuple(batch if d == "batch" else int(d) for d in self.shape)

    @property
    def bytes_per_stream(self) -> int:
        return math.prod(int(d) for d in self.shape[1:]) * STATE_DTYPES[self.dtype]

    def to_dict(self) -> dict[str, Any]:
        names = {"name": self.name, "input": self.input, "output": self.output}
        return {**names, "dtype": self.dtype, "shape": list(self.shape), "init": "zeros"}


@dataclass(frozen=True)
class IOSpec:
    """Graph input and output names besides the state (fixed by the format; the manifest repeats them)."""

    tokens: str = INPUT_TOKENS
    position: str = INPUT_POSITION
    logits: str = OUTPUT_LOGITS


@dataclass(frozen=True)
class TokenizerEntry:
    type: str  # "bytes" or "hf"
    vocab_size: int
    file: str | None  # the listed tokenizer file of an "hf" tokenizer


@dataclass(frozen=True)
class Manifest:
    """A validated manifest. `raw` is the parsed JSON, `sha256` the hash of manifest.json's bytes."""

    raw: dict[str, Any]
    sha256: str
    source: str
    format_version: int
    created_by: str | None
    config: ModelConfig
    parameters: int | None
    precision: str
    onnx_file: str
    opset: int
    external_data: str | None
    io: IOSpec
    state: tuple[StateSpec, ...]
    state_bytes_per_stream: int
    max_position: int
    tokenizer: TokenizerEntry
    files: dict[str, FileEntry]


# ---------------------------------------------------------------------------------------------
# Derived from the config: what the exporter writes and what the reader demands.


def state_specs(cfg: ModelConfig) -> list[StateSpec]:
    """The per-layer state, in graph input order (h.0, u.0, h.1, u.1, ...)."""
    specs = []
    for i in range(cfg.n_layers):
        for kind, dims in (("h", (cfg.n_heads, cfg.head_dim, cfg.head_dim)), ("u", (cfg.d_model,))):
            specs.append(StateSpec(f"{kind}.{i}", f"past_{kind}.{i}", f"present_{kind}.{i}", "float32", ("batch", *dims)))
    return specs


def state_bytes_per_stream(cfg: ModelConfig) -> int:
    return sum(s.bytes_per_stream for s in state_specs(cfg))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file the writer just made (readers use read_package_file instead)."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_entries(folder: Path, names: list[str]) -> dict[str, Any]:
    """The manifest's `files` object for files just written into `folder`."""
    return {n: {"sha256": sha256_file(folder / n), "bytes": (folder / n).stat().st_size} for n in names}


def build_manifest(
    cfg: ModelConfig,
    tokenizer_entry: dict[str, Any],
    opset: int,
    external_data: str | None,
    parameters: int,
    files: dict[str, Any],
    created_by: str,
    op: dict[str, Any],
    precision: str = "fp32",
) -> dict[str, Any]:
    """The manifest dict of an exported package (validated when written, by write_manifest)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": created_by,
        "model": cfg.to_dict(),
        "parameters": parameters,
        "op": op,
        "precision": precision,
        "onnx": {"file": ONNX_FILE, "opset": opset, "external_data": external_data},
        "inputs": {"tokens": INPUT_TOKENS, "position": INPUT_POSITION},
        "outputs": {"logits": OUTPUT_LOGITS},
        "state": [s.to_dict() for s in state_specs(cfg)],
        "state_bytes_per_stream": state_bytes_per_stream(cfg),
        "max_position": MAX_POSITION,
        "tokenizer": tokenizer_entry,
        "files": files,
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> Manifest:
    """Write manifest.json into a package being assembled, after checking it and its files with the reader's rules.

    A writer that produced something its own reader refuses is a bug, so it fails here, before the
    package is renamed into place, instead of on the user's device.
    """
    raw = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    (Path(folder) / MANIFEST).write_bytes(raw)
    return open_package(folder).manifest


# ---------------------------------------------------------------------------------------------
# Bounded JSON.


def _json_depth_ok(text: str, max_depth: int) -> bool:
    """True if no array/object nests deeper than max_depth (checked before json.loads, which recurses)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > max_depth:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice")
        out[key] = value
    return out


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def parse_json(raw: bytes, source: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Strict JSON: UTF-8, at most max_depth deep, no duplicate keys, no NaN/Infinity, finite numbers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{source}: not UTF-8 text (byte {exc.start}); {REGENERATE}") from None
    if not _json_depth_ok(text, max_depth):
        raise UserError(f"{source}: JSON nests deeper than {max_depth} levels; {REGENERATE}")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so is int's digit limit
        raise UserError(f"{source}: not valid JSON ({str(exc).splitlines()[0][:160]}); {REGENERATE}") from None


# ---------------------------------------------------------------------------------------------
# Files: plain names, regular files, sizes before reads, hashes of the bytes returned.


def check_name(name: Any, field: str, source: str) -> str:
    """A file name the manifest gives must be a plain name inside the package folder."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or name in (".", "..") or name == MANIFEST:
        raise UserError(
            f"{source}: field '{field}' = {name!r} must be a plain file name inside the package (letters, digits, '._-', "
            f"no '/', no '..', not absolute); {REGENERATE}"
        )
    return name


def _open_regular(root: Path, name: str) -> tuple[int, int]:
    """Open root/name for reading: no symlink, no FIFO/device/folder; (fd, size). Never blocks.

    The name is resolved relative to a descriptor of the package folder (openat), so a folder swapped
    or renamed above it while the package is read cannot redirect the open.
    """
    path = root / name
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        folder = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise UserError(f"{root}: the package folder cannot be opened ({exc.strerror})") from None
    try:
        try:
            info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        except FileNotFoundError:
            raise UserError(f"{path}: missing from the package (listed in {MANIFEST}); copy the whole package or re-export it") from None
        except OSError as exc:
            raise UserError(f"{path}: cannot be read ({exc.strerror}); check its permissions") from None
        if stat.S_ISLNK(info.st_mode):
            raise UserError(f"{path}: is a symbolic link; a package holds its files itself (copy the file in place of the link)")
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path}: not a regular file (a FIFO, device or folder); a package holds plain files only")
        try:
            fd = os.open(name, flags, dir_fd=folder)
        except OSError as exc:
            raise UserError(f"{path}: cannot be opened ({exc.strerror}); a package holds plain readable files only") from None
    finally:
        os.close(folder)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):  # swapped between the stat and the open
        os.close(fd)
        raise UserError(f"{path}: not a regular file (a FIFO, device or folder); a package holds plain files only")
    return fd, st.st_size


def _read_fd(fd: int, size: int) -> bytes:
    chunks = []
    left = size
    while left > 0:
        block = os.read(fd, min(left, 1 << 24))
        if not block:
            break
        chunks.append(block)
        left -= len(block)
    return b"".join(chunks)


def read_bounded(root: Path, name: str, max_bytes: int) -> bytes:
    """Bytes of root/name (a regular file, no link) if it holds at most max_bytes."""
    fd, size = _open_regular(root, name)
    try:
        if size > max_bytes:
            raise UserError(f"{root / name}: {size} bytes, more than the {max_bytes} a {name} may hold; {REGENERATE}")
        data = _read_fd(fd, size)
    finally:
        os.close(fd)
    if len(data) != size:
        raise UserError(f"{root / name}: changed while being read; copy or re-export the package")
    return data


def verify_package_file(root: Path, entry: FileEntry) -> None:
    """Check a listed file's size and sha256 reading it in 1 MiB blocks (memory stays flat for big external data)."""
    path = root / entry.name
    fd, size = _open_regular(root, entry.name)
    h = hashlib.sha256()
    total = 0
    try:
        if size != entry.bytes:
            raise UserError(f"{path}: {size} bytes, {MANIFEST} says {entry.bytes}: damaged or truncated, copy or re-export the package")
        while block := os.read(fd, 1 << 20):
            h.update(block)
            total += len(block)
    finally:
        os.close(fd)
    if total != entry.bytes:
        raise UserError(f"{path}: changed while being read; copy or re-export the package")
    if h.hexdigest() != entry.sha256:
        raise UserError(f"{path}: sha256 does not match {MANIFEST} (file corrupted or edited); copy or re-export the package")


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def read_package_file(root: Path, entry: FileEntry) -> bytes:
    """The bytes of a listed file, checked against its size (before reading) and sha256 (of these bytes).

    Callers hand these bytes on (to onnxruntime, the tokenizer) instead of reopening the path, so that
    a file swapped after the check is never used.
    """
    path = root / entry.name
    fd, size = _open_regular(root, entry.name)
    try:
        if size != entry.bytes:
            raise UserError(f"{path}: {size} bytes, {MANIFEST} says {entry.bytes}: damaged or truncated, copy or re-export the package")
        data = _read_fd(fd, size + 1)
    finally:
        os.close(fd)
    if len(data) != entry.bytes:
        raise UserError(f"{path}: changed while being read; copy or re-export the package")
    if hashlib.sha256(data).hexdigest() != entry.sha256:
        raise UserError(f"{path}: sha256 does not match {MANIFEST} (file corrupted or edited); copy or re-export the package")
    return data


# ---------------------------------------------------------------------------------------------
# Validation of the parsed manifest.


class _Fields:
    """Typed access to manifest fields; each failure names the manifest file and the field."""

    def __init__(self, source: str) -> None:
        self.source = source

    def error(self, field: str, value: Any, why: str) -> UserError:
        shown = repr(value)
        if len(shown) > 80:
            shown = shown[:77] + "..."
        return UserError(f"{self.source}: field '{field}' = {shown} {why}; {REGENERATE}")

    def get(self, obj: dict[str, Any], key: str, field: str) -> Any:
        if key not in obj:
            raise UserError(f"{self.source}: required field '{field}' is missing; {REGENERATE}")
        return obj[key]

    def obj(self, obj: dict[str, Any], key: str, field: str) -> dict[str, Any]:
        value = self.get(obj, key, field)
        if not isinstance(value, dict):
            raise self.error(field, value, "must be an object")
        return value

    def string(self, obj: dict[str, Any], key: str, field: str) -> str:
        value = self.get(obj, key, field)
        if not isinstance(value, str) or not value:
            raise self.error(field, value, "must be a non-empty string")
        return value

    def integer(self, obj: dict[str, Any], key: str, field: str, lo: int, hi: int) -> int:
        value = self.get(obj, key, field)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(field, value, f"must be an integer from {lo} to {hi}")
        return value

    def equal(self, obj: dict[str, Any], key: str, field: str, expected: Any) -> Any:
        value = self.get(obj, key, field)
        if type(value) is not type(expected) or value != expected:
            raise self.error(field, value, f"must be {expected!r}")
        return value


def check_config(data: Any, source: str, field: str = "model") -> ModelConfig:
    """A ModelConfig from untrusted data (a manifest's `model`, a checkpoint's `config`): types and ranges, then relations."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: field '{field}' = {type(data).__name__} must be an object of model config fields")
    values: dict[str, Any] = {}
    for key in data:
        if key not in CONFIG_RANGES:
            raise UserError(f"{source}: field '{field}.{str(key)[:40]}' is not a model config field (known: {', '.join(CONFIG_RANGES)})")
    for key, (kind, lo, hi, inclusive) in CONFIG_RANGES.items():
        if key not in data:
            raise UserError(f"{source}: required field '{field}.{key}' is missing")
        value = data[key]
        ok_type = isinstance(value, int if kind is int else int | float) and not isinstance(value, bool)
        in_range = ok_type and math.isfinite(value) and (lo <= value <= hi if inclusive else lo < value <= hi)
        if not in_range:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            lo_text, hi_text = (f"{int(lo)}", f"{int(hi)}") if kind is int else (f"{lo:g}", f"{hi:g}")
            bound = f"[{lo_text}, {hi_text}]" if inclusive else f"({lo_text}, {hi_text}]"
            raise UserError(f"{source}: field '{field}.{key}' = {shown} must be {'an integer' if kind is int else 'a number'} in {bound}")
        values[key] = kind(value)
    try:
        cfg = ModelConfig(**values).validate()
    except UserError as exc:
        raise UserError(f"{source}: {exc}") from None
    if state_bytes_per_stream(cfg) > MAX_STATE_BYTES_PER_STREAM:
        raise UserError(
            f"{source}: field '{field}' gives {state_bytes_per_stream(cfg)} bytes of state per stream (limit {MAX_STATE_BYTES_PER_STREAM})"
        )
    return cfg


def _check_state(m: dict[str, Any], f: _Fields, cfg: ModelConfig) -> tuple[StateSpec, ...]:
    entries = f.get(m, "state", "state")
    expected = state_specs(cfg)
    if not isinstance(entries, list):
        raise f.error("state", entries, "must be a list of state tensors")
    for i, (e, want) in enumerate(zip(entries, expected, strict=False)):
        where = f"state[{i}]"
        if not isinstance(e, dict):
            raise f.error(where, e, "must be an object")
        unknown = sorted(set(e) - {"name", "input", "output", "dtype", "shape", "init"})
        if unknown:
            raise f.error(f"{where}.{unknown[0]}", e[unknown[0]], "is not a state field")
        f.equal(e, "dtype", f"{where}.dtype", "float32")
        f.equal(e, "shape", f"{where}.shape", list(want.shape))
        for key in ("name", "input", "output"):  # fixed by the layer: a manifest cannot rewire the state
            f.equal(e, key, f"{where}.{key}", getattr(want, key))
        if "init" in e:
            f.equal(e, "init", f"{where}.init", "zeros")
    if len(entries) != len(expected):
        raise f.error("state", f"{len(entries)} entries", f"must list {len(expected)} state tensors (2 per layer of the model config)")
    return tuple(expected)


def _check_files(m: dict[str, Any], f: _Fields) -> dict[str, FileEntry]:
    files = f.obj(m, "files", "files")
    out: dict[str, FileEntry] = {}
    for name, info in files.items():
        check_name(name, f"files.{name[:60]}", f.source)
        where = f"files.{name}"
        if not isinstance(info, dict):
            raise f.error(where, info, "must be an object with 'sha256' and 'bytes'")
        unknown = sorted(set(info) - {"sha256", "bytes"})
        if unknown:
            raise f.error(f"{where}.{unknown[0]}", info[unknown[0]], "is not a file field")
        digest = f.string(info, "sha256", f"{where}.sha256")
        if not SHA256_PATTERN.fullmatch(digest):
            raise f.error(f"{where}.sha256", digest, "must be 64 lowercase hex digits")
        size = f.integer(info, "bytes", f"{where}.bytes", 1, MAX_FILE_BYTES)
        out[name] = FileEntry(name, size, digest)
    return out


def validate(m: Any, source: str, sha256: str = "") -> Manifest:
    """Check a parsed manifest against the format; UserError naming the first bad field."""
    f = _Fields(source)
    if not isinstance(m, dict):
        raise UserError(f"{source}: must hold a JSON object; {REGENERATE}")
    if m.get("format") != FORMAT:
        raise UserError(f"{source}: field 'format' = {str(m.get('format'))[:40]!r}, expected '{FORMAT}'; this is not an astroedge package")
    version = f.get(m, "format_version", "format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise f.error("format_version", version, "must be an integer >= 1")
    if version > FORMAT_VERSION:
        raise UserError(f"{source}: package format_version {version} is newer than this astroedge reads ({FORMAT_VERSION}); upgrade it")
    created_by = m.get("created_by")
    if created_by is not None and not isinstance(created_by, str):
        raise f.error("created_by", created_by, "must be a string")
    parameters = m.get("parameters")
    if parameters is not None and (not isinstance(parameters, int) or isinstance(parameters, bool) or not 0 <= parameters <= 2**53):
        raise f.error("parameters", parameters, "must be a non-negative integer")

    cfg = check_config(f.get(m, "model", "model"), source)
    op = f.obj(m, "op", "op")
    for key in ("name", "domain"):
        f.string(op, key, f"op.{key}")
    f.integer(op, "version", "op.version", 1, 2**31 - 1)
    precision = f.string(m, "precision", "precision")
    if precision not in PRECISIONS:
        raise f.error("precision", precision, f"is unknown (expected one of {', '.join(PRECISIONS)})")

    files = _check_files(m, f)
    onnx = f.obj(m, "onnx", "onnx")
    onnx_file = check_name(f.string(onnx, "file", "onnx.file"), "onnx.file", source)
    opset = f.integer(onnx, "opset", "onnx.opset", 1, 1000)
    external = f.get(onnx, "external_data", "onnx.external_data")
    if external is not None:
        external = check_name(external, "onnx.external_data", source)
        if external == onnx_file:
            raise f.error("onnx.external_data", external, "must differ from onnx.file")

    inputs = f.obj(m, "inputs", "inputs")
    outputs = f.obj(m, "outputs", "outputs")
    if set(inputs) != {"tokens", "position"}:
        raise f.error("inputs", sorted(inputs), "must have exactly the keys 'tokens' and 'position'")
    if set(outputs) != {"logits"}:
        raise f.error("outputs", sorted(outputs), "must have exactly the key 'logits'")
    f.equal(inputs, "tokens", "inputs.tokens", INPUT_TOKENS)
    f.equal(inputs, "position", "inputs.position", INPUT_POSITION)
    f.equal(outputs, "logits", "outputs.logits", OUTPUT_LOGITS)

    state = _check_state(m, f, cfg)
    state_bytes = f.integer(m, "state_bytes_per_stream", "state_bytes_per_stream", 1, MAX_STATE_BYTES_PER_STREAM)
    if state_bytes != state_bytes_per_stream(cfg):
        raise f.error("state_bytes_per_stream", state_bytes, f"disagrees with the state shapes ({state_bytes_per_stream(cfg)})")
    max_position = f.integer(m, "max_position", "max_position", 1, MAX_POSITION)

    tok = f.obj(m, "tokenizer", "tokenizer")
    kind = f.string(tok, "type", "tokenizer.type")
    if kind not in TOKENIZER_TYPES:
        raise f.error("tokenizer.type", kind, f"must be one of {', '.join(TOKENIZER_TYPES)}")
    tok_vocab = f.integer(tok, "vocab_size", "tokenizer.vocab_size", 1, cfg.vocab_size)
    tok_file = f.get(tok, "file", "tokenizer.file")
    if kind == "bytes":
        if tok_vocab != BYTE_VOCAB:
            raise f.error("tokenizer.vocab_size", tok_vocab, f"must be {BYTE_VOCAB} for the byte tokenizer")
        if tok_file is not None:
            raise f.error("tokenizer.file", tok_file, "must be null for the byte tokenizer")
    else:
        tok_file = check_name(tok_file, "tokenizer.file", source)

    used = [n for n in (onnx_file, external, tok_file) if n is not None]
    if len(set(used)) != len(used):
        raise f.error("onnx.file", onnx_file, "names the same file twice among onnx.file, onnx.external_data and tokenizer.file")
    for field, name in (("onnx.file", onnx_file), ("onnx.external_data", external), ("tokenizer.file", tok_file)):
        if name is not None and name not in files:
            raise f.error(field, name, "is not listed in 'files' (every file the runtime reads needs its size and sha256)")
    extra = sorted(set(files) - set(used))
    if extra:
        raise f.error(f"files.{extra[0]}", files[extra[0]].name, "is listed but not used by the package")

    return Manifest(
        raw=m,
        sha256=sha256,
        source=source,
        format_version=version,
        created_by=created_by,
        config=cfg,
        parameters=parameters,
        precision=precision,
        onnx_file=onnx_file,
        opset=opset,
        external_data=external,
        io=IOSpec(),
        state=state,
        state_bytes_per_stream=state_bytes,
        max_position=max_position,
        tokenizer=TokenizerEntry(kind, tok_vocab, tok_file),
        files=files,
    )


def read_manifest(root: str | Path) -> Manifest:
    """Read and validate root/manifest.json (no other file is touched)."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{root}: package not found; export one with 'astroedge export CHECKPOINT -o {root.name}'")
    if not root.is_dir():
        raise UserError(f"{root}: a package is a directory (*.aepkg) holding {MANIFEST}; export one with 'astroedge export'")
    if not (root / MANIFEST).exists() and not (root / MANIFEST).is_symlink():
        raise UserError(f"{root / MANIFEST}: missing; {root} is not an astroedge package (re-export it with 'astroedge export')")
    raw = read_bounded(root, MANIFEST, MAX_MANIFEST_BYTES)
    source = str(root / MANIFEST)
    return validate(parse_json(raw, source), source, hashlib.sha256(raw).hexdigest())


# ---------------------------------------------------------------------------------------------
# model.onnx, read without the onnx package: external data and graph I/O.


@dataclass(frozen=True)
class ValueInfo:
    name: str
    elem_type: int
    dims: tuple[int | str, ...]  # int for a fixed size, str for a symbolic one ("" when unnamed)


@dataclass(frozen=True)
class ExternalRef:
    tensor: str
    location: str
    offset: int
    length: int | None


@dataclass
class GraphFacts:
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    initializers: set[str]
    external: list[ExternalRef]
    opsets: dict[str, int]


class _Protobuf:
    """Just enough of the protobuf wire format to walk ModelProto: every malformed byte is a ValueError."""

    def __init__(self, data: memoryview) -> None:
        self.data = data

    def fields(self, start: int, end: int) -> list[tuple[int, int, Any]]:
        """(field number, wire type, value) of the message in data[start:end]; length-delimited values are (start, end)."""
        out = []
        pos = start
        while pos < end:
            key, pos = self._varint(pos, end)
            number, wire = key >> 3, key & 7
            value: int | tuple[int, int]
            if number == 0:
                raise ValueError("field number 0")
            if wire == 0:
                value, pos = self._varint(pos, end)
            elif wire == 1:
                value, pos = (pos, pos + 8), pos + 8
            elif wire == 5:
                value, pos = (pos, pos + 4), pos + 4
            elif wire == 2:
                length, pos = self._varint(pos, end)
                value, pos = (pos, pos + length), pos + length
            else:
                raise ValueError(f"unsupported wire type {wire}")
            if pos > end:
                raise ValueError("truncated message")
            out.append((number, wire, value))
        return out

    def _varint(self, pos: int, end: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            if pos >= end or shift > 63:
                raise ValueError("truncated or overlong varint")
            byte = self.data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result, pos
            shift += 7

    def text(self, span: Any) -> str:
        if not isinstance(span, tuple):
            raise ValueError("string field with a non-length wire type")
        return bytes(self.data[span[0] : span[1]]).decode("utf-8")

    def sub(self, span: Any) -> tuple[int, int]:
        if not isinstance(span, tuple):
            raise ValueError("message field with a non-length wire type")
        return span


def _value_info(pb: _Protobuf, span: tuple[int, int]) -> ValueInfo:
    name, elem, dims = "", 0, []
    for num, _, val in pb.fields(*span):
        if num == 1:
            name = pb.text(val)
        elif num == 2:  # TypeProto
            for tnum, _, tval in pb.fields(*pb.sub(val)):
                if tnum != 1:  # tensor_type
                    continue
                for snum, swire, sval in pb.fields(*pb.sub(tval)):
                    if snum == 1 and swire == 0:
                        elem = sval
                    elif snum == 2:  # TensorShapeProto
                        for dnum, _, dval in pb.fields(*pb.sub(sval)):
                            if dnum != 1:
                                continue
                            dim: int | str = ""
                            for knum, kwire, kval in pb.fields(*pb.sub(dval)):
                                if knum == 1 and kwire == 0:
                                    dim = kval
                                elif knum == 2:
                                    dim = pb.text(kval)
                            dims.append(dim)
    return ValueInfo(name, elem, tuple(dims))


def _tensor(pb: _Protobuf, span: tuple[int, int], facts: GraphFacts, initializer: bool) -> None:
    name, location_external, entries = "", False, {}
    for num, wire, val in pb.fields(*span):
        if num == 8:
            name = pb.text(val)
        elif num == 14 and wire == 0:
            location_external = val == 1
        elif num == 13:
            key = value = ""
            for knum, _, kval in pb.fields(*pb.sub(val)):
                if knum == 1:
                    key = pb.text(kval)
                elif knum == 2:
                    value = pb.text(kval)
            entries[key] = value
    if initializer:
        facts.initializers.add(name)
    if location_external or entries:
        try:
            offset = int(entries.get("offset", "0"))
            length = int(entries["length"]) if "length" in entries else None
        except ValueError:
            raise ValueError(f"tensor {name!r}: external data offset/length are not integers") from None
        facts.external.append(ExternalRef(name, entries.get("location", ""), offset, length))


def _graph(pb: _Protobuf, span: tuple[int, int], facts: GraphFacts, depth: int, top: bool) -> None:
    if depth > MAX_ONNX_NESTING:
        raise ValueError(f"subgraphs nest deeper than {MAX_ONNX_NESTING}")
    for num, _, val in pb.fields(*span):
        if num == 1:
            _nodes(pb, [pb.sub(val)], facts, depth)
        elif num == 5:
            _tensor(pb, pb.sub(val), facts, initializer=top)
        elif num == 15:  # SparseTensorProto: values, indices
            for snum, _, sval in pb.fields(*pb.sub(val)):
                if snum in (1, 2):
                    _tensor(pb, pb.sub(sval), facts, initializer=False)
        elif top and num == 11:
            facts.inputs.append(_value_info(pb, pb.sub(val)))
        elif top and num == 12:
            facts.outputs.append(_value_info(pb, pb.sub(val)))


def _nodes(pb: _Protobuf, spans: list[tuple[int, int]], facts: GraphFacts, depth: int) -> None:
    for span in spans:
        for num, _, val in pb.fields(*span):
            if num != 5:  # attribute
                continue
            for anum, _, aval in pb.fields(*pb.sub(val)):
                if anum in (5, 10):  # t, tensors
                    _tensor(pb, pb.sub(aval), facts, initializer=False)
                elif anum in (6, 11):  # g, graphs
                    _graph(pb, pb.sub(aval), facts, depth + 1, top=False)
                elif anum in (22, 23):  # sparse_tensor(s)
                    for snum, _, sval in pb.fields(*pb.sub(aval)):
                        if snum in (1, 2):
                            _tensor(pb, pb.sub(sval), facts, initializer=False)


def graph_facts(onnx_bytes: bytes, source: str) -> GraphFacts:
    """Inputs, outputs, initializer names, external-data references and opsets of a serialized ModelProto."""
    pb = _Protobuf(memoryview(onnx_bytes))
    facts = GraphFacts([], [], set(), [], {})
    try:
        graphs = 0
        for num, _, val in pb.fields(0, len(onnx_bytes)):
            if num == 7:
                _graph(pb, pb.sub(val), facts, 0, top=True)
                graphs += 1
            elif num == 8:
                domain, version = "", 0
                for onum, owire, oval in pb.fields(*pb.sub(val)):
                    if onum == 1:
                        domain = pb.text(oval)
                    elif onum == 2 and owire == 0:
                        version = oval
                facts.opsets[domain or "ai.onnx"] = version
            elif num == 25:  # FunctionProto: node = 7
                _nodes(pb, [pb.sub(v) for n, _, v in pb.fields(*pb.sub(val)) if n == 7], facts, 1)
        if graphs != 1:
            raise ValueError("no graph" if graphs == 0 else "more than one graph")
    except (ValueError, UnicodeDecodeError, IndexError) as exc:
        raise UserError(f"{source}: not a valid ONNX model ({str(exc)[:120]}); the file is damaged, {REGENERATE}") from None
    return facts


def check_graph(facts: GraphFacts, manifest: Manifest, source: str) -> None:
    """The graph must read only the listed external file (within its size) and have exactly the manifest's I/O."""
    ext = manifest.files.get(manifest.external_data) if manifest.external_data else None
    for ref in facts.external:
        if ext is None or ref.location != ext.name:
            raise UserError(
                f"{source}: tensor {ref.tensor[:60]!r} keeps its data in {ref.location[:80]!r}, which is not the package's listed "
                f"onnx.external_data ({manifest.external_data}); {REGENERATE}"
            )
        end = ref.offset + (ref.length or 0)
        if ref.offset < 0 or (ref.length is not None and ref.length < 0) or end > ext.bytes:
            raise UserError(f"{source}: tensor {ref.tensor[:60]!r} reads bytes {ref.offset}..{end} of {ext.name}, which holds {ext.bytes}")
    if manifest.external_data and not facts.external:
        raise UserError(f"{source}: onnx.external_data names {manifest.external_data} but the graph keeps no data outside; {REGENERATE}")
    if facts.opsets.get("ai.onnx") != manifest.opset:
        got = facts.opsets.get("ai.onnx")
        raise UserError(f"{source}: graph opset {got} differs from the manifest's onnx.opset {manifest.opset}; {REGENERATE}")

    cfg = manifest.config
    want_in: dict[str, tuple[int, tuple[int | str | None, ...]]] = {
        manifest.io.tokens: (ONNX_INT64, (None, None)),
        manifest.io.position: (ONNX_INT64, (None,)),
    }
    want_out: dict[str, tuple[int, tuple[int | str | None, ...]]] = {manifest.io.logits: (ONNX_FLOAT, (None, None, cfg.vocab_size))}
    for s in manifest.state:
        dims: tuple[int | str | None, ...] = (None, *(int(d) for d in s.shape[1:]))
        want_in[s.input] = (ONNX_FLOAT, dims)
        want_out[s.output] = (ONNX_FLOAT, dims)
    graph_inputs = [v for v in facts.inputs if v.name not in facts.initializers]
    for kind, values, want in (("input", graph_inputs, want_in), ("output", facts.outputs, want_out)):
        names = [v.name for v in values]
        if sorted(names) != sorted(want):
            missing = sorted(set(want) - set(names))
            extra = sorted(set(names) - set(want))
            what = f"lacks {missing[0]!r}" if missing else f"has the unexpected {kind} {extra[0][:60]!r}" if extra else f"repeats an {kind}"
            raise UserError(f"{source}: the graph {what} (the manifest's {kind}s are {', '.join(sorted(want))[:200]}); {REGENERATE}")
        for v in values:
            elem, dims = want[v.name]
            ok = v.elem_type == elem and len(v.dims) == len(dims)
            ok = ok and all(d is None or g == d for g, d in zip(v.dims, dims, strict=True))
            ok = ok and all(not isinstance(g, int) or g > 0 for g in v.dims)
            if not ok:
                raise UserError(
                    f"{source}: graph {kind} {v.name!r} has element type {v.elem_type} and shape {list(v.dims)}, the manifest says "
                    f"type {elem} and shape {['*' if d is None else d for d in dims]}; {REGENERATE}"
                )


# ---------------------------------------------------------------------------------------------
# The whole package.


@dataclass
class OpenedPackage:
    """A validated package: its manifest, the verified graph bytes and the verified tokenizer text (if any)."""

    root: Path
    manifest: Manifest
    onnx_bytes: bytes
    tokenizer_text: str | None
    graph: GraphFacts


def open_package(root: str | Path) -> OpenedPackage:
    """Read and verify a whole package: manifest, every listed file (size, sha256), the graph against the manifest.

    The graph and tokenizer returned were checked on the bytes returned; nothing is reopened by name
    afterwards. The external data is hashed in blocks and not kept: a consumer that runs the graph
    (libastroedge) reads it once into memory and hashes those bytes itself. The listed sizes are
    checked against the machine's memory before any file is hashed, so a package claiming a sparse
    terabyte is refused at once instead of being hashed for an hour.
    """
    root = Path(root)
    manifest = read_manifest(root)
    total = sum(e.bytes for e in manifest.files.values())
    memory = _memory_bytes()
    if memory is not None and total > memory:
        raise UserError(f"{root}: {MANIFEST} lists {total} bytes of files, more than this machine's {memory} bytes of memory could run")
    onnx_entry = manifest.files[manifest.onnx_file]
    if onnx_entry.bytes > MAX_ONNX_BYTES:
        raise _Fields(manifest.source).error(f"files.{onnx_entry.name}.bytes", onnx_entry.bytes, "is beyond protobuf's 2 GiB limit")
    onnx_bytes = read_package_file(root, onnx_entry)
    if manifest.external_data:
        verify_package_file(root, manifest.files[manifest.external_data])
    tok_text = None
    if manifest.tokenizer.file is not None:
        entry = manifest.files[manifest.tokenizer.file]
        if entry.bytes > MAX_TOKENIZER_BYTES:
            raise UserError(f"{root / entry.name}: {entry.bytes} bytes, more than a tokenizer may hold ({MAX_TOKENIZER_BYTES})")
        try:
            tok_text = read_package_file(root, entry).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UserError(f"{root / entry.name}: not UTF-8 text (byte {exc.start}); {REGENERATE}") from None
    source = str(root / manifest.onnx_file)
    facts = graph_facts(onnx_bytes, source)
    check_graph(facts, manifest, source)
    return OpenedPackage(root, manifest, onnx_bytes, tok_text, facts)


__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST",
    "ONNX_FILE",
    "TOKENIZER_FILE",
    "FileEntry",
    "Manifest",
    "OpenedPackage",
    "StateSpec",
    "build_manifest",
    "check_config",
    "open_package",
    "parse_json",
    "read_manifest",
    "read_package_file",
    "state_specs",
    "validate",
    "write_manifest",
]
