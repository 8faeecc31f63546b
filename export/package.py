"""`astroedge export`: checkpoint -> package directory (docs/package-format.md).

The package is assembled in a temp directory beside the output and renamed into place at the end
(astroedge.fileio.atomic_dir), so a failed or interrupted export leaves nothing behind and a reader
never sees half a package. The manifest records everything the runtime needs (I/O names, state specs,
tokenizer, checksums), so running the package needs no model code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from astroedge import __version__
from astroedge.config import ModelConfig
from astroedge.contract import amsu_contract
from astroedge.fileio import atomic_dir
from astroedge.runtime.package import sha256_file
from astroedge.tokenizer import spec_to_json_file

FORMAT = "astroedge-package"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ONNX_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MAX_POSITION = 2**32  # RoPE digits cover positions below 256**4 exactly (astroedge.model.ROPE_MAX_POSITION)
STATE_DTYPE_BYTES = 4  # float32


def state_specs(cfg: ModelConfig) -> list[dict[str, Any]]:
    """Manifest entries of the per-layer state, in graph input order (h.0, u.0, h.1, u.1, ...)."""
    specs = []
    for i in range(cfg.n_layers):
        for kind, shape in (("h", ["batch", cfg.n_heads, cfg.head_dim, cfg.head_dim]), ("u", ["batch", cfg.d_model])):
            names = {"name": f"{kind}.{i}", "input": f"past_{kind}.{i}", "output": f"present_{kind}.{i}"}
            specs.append({**names, "dtype": "float32", "shape": shape, "init": "zeros"})
    return specs


def state_bytes_per_stream(cfg: ModelConfig) -> int:
    return cfg.n_layers * (cfg.n_heads * cfg.head_dim * cfg.head_dim + cfg.d_model) * STATE_DTYPE_BYTES


def build_manifest(
    cfg: ModelConfig, tokenizer_entry: dict[str, Any], opset: int, external_data: str | None, parameters: int, files: dict[str, Any]
) -> dict[str, Any]:
    c = amsu_contract()
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"astroedge {__version__}",
        "model": cfg.to_dict(),
        "parameters": parameters,
        "op": {"name": c.name, "domain": c.domain, "version": c.version},
        "precision": "fp32",
        "onnx": {"file": ONNX_FILE, "opset": opset, "external_data": external_data},
        "inputs": {"tokens": "tokens", "position": "position"},
        "outputs": {"logits": "logits"},
        "state": state_specs(cfg),
        "state_bytes_per_stream": state_bytes_per_stream(cfg),
        "max_position": MAX_POSITION,
        "tokenizer": tokenizer_entry,
        "files": files,
    }


def export_package(checkpoint: str | Path, output: str | Path, force: bool = False) -> Path:
    """Write the package for `checkpoint` to `output` (a directory, conventionally *.aepkg).

    Refuses an existing `output` unless `force`; bad input raises UserError before anything is written.
    """
    from astroedge import checkpoint as ckpt
    from astroedge.export.onnx_export import build_onnx, save_onnx

    output = Path(output)
    ck = ckpt.load(checkpoint)
    cfg = ck.model.cfg
    with atomic_dir(output, force=force) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a package is an ordinary readable directory
        proto = build_onnx(ck.model)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        external = save_onnx(proto, tmp / ONNX_FILE)
        tok_entry, tok_text = spec_to_json_file(ck.tokenizer.spec())
        if tok_text is not None:
            (tmp / TOKENIZER_FILE).write_text(tok_text, encoding="utf-8")
        names = [ONNX_FILE] + ([external] if external else []) + ([TOKENIZER_FILE] if tok_text is not None else [])
        files = {n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size} for n in names}
        manifest = build_manifest(cfg, tok_entry, opset, external, ck.model.num_parameters(), files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return output
