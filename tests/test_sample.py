"""The bundled Shakespeare model end to end: its card's numbers hold, and its exported package runs the
same with the native AMSU library, with the fallback function, and in PyTorch."""

from __future__ import annotations

from pathlib import Path

import pytest

from astroedge.runtime.ort_session import library_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples" / "shakespeare"


def test_checkpoint_is_small_and_documented() -> None:
    from astroedge import checkpoint

    assert (SAMPLE / "model.pt").stat().st_size <= 16 * 2**20
    ckpt = checkpoint.load(SAMPLE / "model.pt")
    card = (SAMPLE / "MODEL_CARD.md").read_text()
    assert f"{ckpt.model.num_parameters():,}" in card
    assert f"{ckpt.meta['held_out_nats_per_byte']:.3f} nats/byte" in card
    assert ckpt.meta["held_out_nats_per_byte"] <= 1.9


@pytest.mark.skipif(library_path() is None, reason="libastroedge_ort.so not built (make plugins)")
def test_exported_sample_library_fallback_and_pytorch_agree(tmp_path: Path) -> None:
    from astroedge.export.check import check_package
    from astroedge.export.package import export_package

    package = export_package(SAMPLE / "model.pt", tmp_path / "shakespeare.aepkg")
    report = check_package(SAMPLE / "model.pt", package, tokens=16)
    assert report["passed"], report["failures"]
    assert report["kernels"]["library"]["available"] and report["kernels"]["fallback"]["available"]
    assert {r["kernel"] for r in report["runs"]} == {"library", "fallback"}
    assert all(g["match"] for k, g in report["greedy"].items() if k != "reference")
