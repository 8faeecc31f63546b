"""astroedge bench on the tiny package with tiny contexts: every row and field of the JSON report is
there and sane, the Transformer's KV cache grows while AM-SNet's state does not, plots are written,
and bad input is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CONTEXTS = (8, 64)


@pytest.fixture(scope="module")
def report(tiny_package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from astroedge.bench.model import BenchOptions, run_bench
    from astroedge.bench.plots import write_plots

    opts = BenchOptions(tiny_package, None, contexts=CONTEXTS, precisions=("fp32", "int8"), decode_steps=3, prompt_tokens=8,
                        prefill_tokens=16)
    rep = run_bench(opts, "test")
    rep["plots"] = [str(p) for p in write_plots(rep, tmp_path_factory.mktemp("plots"))]
    return rep


def test_every_row_and_field(report: dict[str, Any]) -> None:
    from astroedge.bench.model import ROW_FIELDS
    from astroedge.runtime.ort_session import library_path

    for key in ("command", "machine", "package", "model", "device", "contexts", "rows", "summary", "transformer"):
        assert key in report
    assert report["machine"]["bandwidth_gbs"] > 0.1
    impls = {r["impl"] for r in report["rows"]}
    expected = {"torch-eager", "ort-fallback", "transformer-ort"}
    if library_path("cpu") is not None:
        expected |= {"ort-library-fp32", "ort-library-int8"}
    assert impls == expected
    for row in report["rows"]:
        assert set(row) == set(ROW_FIELDS)
        assert row["error"] is None, row
        for key in ("decode_p50_ms", "decode_p99_ms", "ttft_ms", "prefill_tokens_per_s", "peak_rss_mib", "state_bytes",
                    "bytes_per_token", "floor_ms"):
            assert row[key] is not None and row[key] > 0, (row["impl"], key)
        assert row["decode_p99_ms"] >= row["decode_p50_ms"]
        assert row["gpu_mem_mib"] is None  # cpu run
    assert set(report["summary"]) >= {"speedup_vs_torch_eager", "speedup_vs_fallback", "fp32_over_bandwidth_floor", "int8_speedup_vs_fp32"}


def test_state_constant_and_kv_cache_growing(report: dict[str, Any], tiny_package: Path) -> None:
    from astroedge.bench.kv_cache import kv_bytes
    from astroedge.runtime import load_package

    pkg = load_package(tiny_package)
    for row in report["rows"]:
        if row["impl"] == "transformer-ort":
            assert row["state_bytes"] == kv_bytes(pkg.config, row["context"])
        else:
            assert row["state_bytes"] == pkg.state_bytes_per_stream
    params = report["model"]["parameters"]
    assert abs(report["transformer"]["parameters"] - params) / params < 0.02  # same size as the AM-SNet


def test_plots_are_png(report: dict[str, Any]) -> None:
    assert len(report["plots"]) == 2
    for p in report["plots"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_transformer_export_matches_torch(tmp_path: Path) -> None:
    """The exported baseline computes what the torch module computes, with and without a cache."""
    import onnxruntime as ort
    import torch

    from astroedge.bench.kv_cache import kv_names
    from astroedge.bench.transformer import Transformer, export_transformer
    from astroedge.config import preset

    cfg = preset("tiny")
    export_transformer(cfg, tmp_path / "t.onnx", seed=1)
    torch.manual_seed(1)
    model = Transformer(cfg).eval()
    session = ort.InferenceSession(str(tmp_path / "t.onnx"), providers=["CPUExecutionProvider"])
    past, _ = kv_names(cfg.n_layers)
    rng = np.random.default_rng(0)
    for cache in (0, 5):
        kv = [rng.standard_normal((1, cfg.n_heads, cache, cfg.head_dim)).astype(np.float32) for _ in past]
        tokens = rng.integers(0, cfg.vocab_size, (1, 3))
        got = session.run(None, {"tokens": tokens, **dict(zip(past, kv, strict=True))})
        with torch.no_grad():
            ref = model(torch.from_numpy(tokens), *[torch.from_numpy(a) for a in kv])
        np.testing.assert_allclose(got[0], ref[0].numpy(), atol=1e-4)
        assert got[1].shape[2] == cache + 3


def test_bandwidth_floor_inputs(tiny_package: Path, tmp_path: Path) -> None:
    from astroedge.bench.bandwidth import copy_bandwidth_gbs, weight_bytes_per_token
    from astroedge.quantize.package import quantize_package

    assert copy_bandwidth_gbs(mib=16, repeats=2) > 0.1
    fp32 = weight_bytes_per_token(tiny_package / "model.onnx")
    quantize_package(tiny_package, tmp_path / "q.aepkg", "int8", gate=False)
    assert weight_bytes_per_token(tmp_path / "q.aepkg" / "model.onnx") < 0.6 * fp32


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--contexts", "12,abc"], "must be comma-separated token counts"),
        (["--precisions", "fp8"], "'fp8' is unknown"),
        (["--config", "tiny"], "not both"),
        (["--device", "npu"], "bench runs on cpu or cuda"),
    ],
)
def test_cli_bad_input(tiny_package: Path, args: list[str], message: str) -> None:
    cmd = [sys.executable, "-m", "astroedge.cli", "bench", str(tiny_package), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
