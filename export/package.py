"""`astroedge export`: checkpoint -> package directory (docs/package-format.md).

The package is assembled in a temp directory beside the output and renamed into place at the end
(astroedge.fileio.atomic_dir), so a failed or interrupted export leaves nothing behind and a reader
never sees half a package. The manifest records everything the runtime needs (I/O names, state specs,
tokenizer, checksums), so running the package needs no model code; its format is astroedge/manifest.py's,
and the written manifest is checked with the reader's rules before the rename.
"""

from __future__ import annotations

from pathlib import Path

from astroedge import __version__
from astroedge.contract import amsu_contract
from astroedge.fileio import atomic_dir
from astroedge.manifest import MANIFEST, ONNX_FILE, TOKENIZER_FILE, build_manifest, file_entries, sha256_file, write_manifest
from astroedge.tokenizer import spec_to_json_file

__all__ = ["MANIFEST", "export_package", "sha256_file"]


def export_package(checkpoint: str | Path, output: str | Path, force: bool = False, dense: bool = False) -> Path:
    """Write the package for `checkpoint` to `output` (a directory, conventionally *.aepkg).

    Refuses an existing `output` unless `force`; bad input raises UserError before anything is written.
    `dense` keeps W_O and W_2 as plain MatMul instead of astroedge::SpikeMatMul (for comparison).
    """
    from astroedge import checkpoint as ckpt
    from astroedge.export.onnx_export import build_onnx, save_onnx

    output = Path(output)
    ck = ckpt.load(checkpoint)
    cfg = ck.model.cfg
    with atomic_dir(output, force=force) as tmp:
        tmp.chmod(0o755)  # mkdtemp makes it private; a package is an ordinary readable directory
        proto = build_onnx(ck.model)
        if dense:
            from astroedge.export.spike_matmul import to_dense

            to_dense(proto)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        external = save_onnx(proto, tmp / ONNX_FILE)
        tok_entry, tok_text = spec_to_json_file(ck.tokenizer.spec())
        if tok_text is not None:
            (tmp / TOKENIZER_FILE).write_text(tok_text, encoding="utf-8")
        names = [ONNX_FILE] + ([external] if external else []) + ([TOKENIZER_FILE] if tok_text is not None else [])
        c = amsu_contract()
        op = {"name": c.name, "domain": c.domain, "version": c.version}
        created_by = f"astroedge {__version__}"
        manifest = build_manifest(cfg, tok_entry, opset, external, ck.model.num_parameters(), file_entries(tmp, names), created_by, op)
        write_manifest(tmp, manifest)  # checked with the reader's rules before the package is renamed into place
    return output
