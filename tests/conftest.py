"""Shared fixtures. Each helper adds its own fixtures below; keep them session-scoped and small."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight AMSNet(preset('tiny')) checkpoint with the byte tokenizer (seeded: same weights every run)."""
    import torch

    from astroedge import checkpoint
    from astroedge.config import preset
    from astroedge.model import AMSNet
    from astroedge.tokenizer import ByteTokenizer

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "model.pt"
    checkpoint.save(path, AMSNet(preset("tiny")).eval(), ByteTokenizer())
    return path


@pytest.fixture(scope="session")
def tiny_package(tiny_checkpoint: Path) -> Path:
    """The tiny checkpoint exported to a package (model.aepkg beside it)."""
    from astroedge.export.package import export_package

    return export_package(tiny_checkpoint, tiny_checkpoint.parent / "model.aepkg")


@pytest.fixture(scope="session")
def hf_tiny_package(tiny_package: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny package with a HuggingFace byte-level BPE of exactly its 256 ids (trained here, no download).

    A random-weight model's output then splits multi-byte characters everywhere: the hard case for streaming text.
    """
    import hashlib
    import json
    import shutil

    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=256, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    text = (Path(__file__).resolve().parents[1] / "samples" / "shakespeare" / "input.txt").read_text(encoding="utf-8")[:20_000]
    tok.train_from_iterator([text, "déjà vu, 東京 🌙"], trainer)
    assert tok.get_vocab_size() == 256
    pkg = shutil.copytree(tiny_package, tmp_path_factory.mktemp("hf") / "hf.aepkg")
    data = tok.to_str().encode("utf-8")
    (pkg / "tokenizer.json").write_bytes(data)
    manifest = json.loads((pkg / "manifest.json").read_text())
    manifest["tokenizer"] = {"type": "hf", "vocab_size": 256, "file": "tokenizer.json"}
    manifest["files"]["tokenizer.json"] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (pkg / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return pkg
