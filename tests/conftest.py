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
