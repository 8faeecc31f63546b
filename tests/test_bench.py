"""astroedge bench on the tiny package with tiny contexts: every row and field of the JSON report is
there and sane, rows are named after what ran, the floors use a read bandwidth and the measured firing
rates, the Transformer's KV cache grows while AM-SNet's state does not, plots are written, and bad
input is a one-line error."""

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

    opts = BenchOptions(
        tiny_package, None, contexts=CONTEXTS, precisions=("fp32", "int8", "int4"), decode_steps=3, prompt_tokens=8, prefill_tokens=16
    )
    rep = run_bench(opts, "test")
    rep["plots"] = [str(p) for p in write_plots(rep, tmp_path_factory.mktemp("plots"))]
    return rep


def test_every_row_and_field(report: dict[str, Any]) -> None:
    from astroedge.bench.model import ROW_FIELDS
    from astroedge.native import get_library_path

    for key in ("command", "machine", "package", "model", "device", "contexts", "rows", "summary", "transformer", "firing_rates", "floors"):
        assert key in report
    assert report["machine"]["bandwidth_gbs"] > 0.1 and "read of a 1.00 GiB buffer" in report["machine"]["bandwidth_method"]
    assert len(report["machine"]["load_at_start"]) == 3 and report["machine"]["versions"]["onnxruntime"]
    kinds = {(r["impl"].removesuffix("-fallback"), r["precision"]) for r in report["rows"]}
    library = "ort-library" if get_library_path("cpu") is not None else "ort-fallback"
    expected = {("torch-eager", "fp32"), ("ort-fallback-dense", "fp32"), ("transformer-ort", "fp32")}
    expected |= {(f"{library}-{form}", p) for form in ("dense", "sparse") for p in ("fp32", "int8", "int4")}
    assert kinds == expected
    for row in report["rows"]:
        assert set(row) == set(ROW_FIELDS)
        assert row["error"] is None, row
        for key in (
            "decode_p50_ms",
            "decode_p99_ms",
            "ttft_ms",
            "prefill_tokens_per_s",
            "peak_rss_mib",
            "state_bytes",
            "bytes_per_token",
            "floor_ms",
            "load_1m",
            "threads",
        ):
            assert row[key] is not None and row[key] >= 0, (row["impl"], key)
        assert row["decode_p99_ms"] >= row["decode_p50_ms"]
        assert row["gpu_mem_mib"] is None  # cpu run
        if row["impl"] != "transformer-ort":  # the sparse floor counts W_O and W_2 at the firing rates, below the dense one
            assert 0 < row["sparse_floor_ms"] < row["floor_ms"]
    wanted = {"sparse_speedup_vs_dense", "sparse_over_sparse_floor", "dense_over_dense_floor", "speedup_vs_fallback"}
    assert set(report["summary"]) >= wanted


def test_rows_are_named_after_what_ran(tiny_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the library, the library rows run the fallback and say so; a precision that cannot be built is a row with the reason."""
    from astroedge.bench import model as bench

    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")
    real = bench._variants

    def broken_int4(opts: bench.BenchOptions, fp32: Path, work: Path) -> dict[tuple[str, str], Path | str]:
        out = real(opts, fp32, work)
        out["int4", "sparse"] = "not built: int4 refused for this test"
        return out

    monkeypatch.setattr(bench, "_variants", broken_int4)
    opts = bench.BenchOptions(
        tiny_package, None, contexts=(8,), precisions=("fp32", "int4"), decode_steps=2, prompt_tokens=4, prefill_tokens=8, baselines=False
    )
    rows = bench.run_bench(opts, "test")["rows"]
    assert not any(r["impl"].startswith("ort-library") for r in rows)
    ran = [r for r in rows if r["error"] is None]
    assert {r["impl"] for r in ran} == {"ort-fallback-dense", "ort-fallback-sparse"} and all(r["kernel"] == "fallback" for r in ran)
    assert all(r["note"] == "library not found: this row ran the fallback functions" for r in ran)
    refused = [r for r in rows if r["error"]]
    assert [(r["precision"], r["error"]) for r in refused] == [("int4", "not built: int4 refused for this test")]


def test_firing_rates_and_floors(report: dict[str, Any], tiny_package: Path) -> None:
    """Rates: one per layer and site, read off the graph; the sparse floor's bytes are the dense bytes less the unfired rows."""
    from astroedge.bench.bandwidth import weight_bytes_per_token
    from astroedge.bench.firing import firing_rates, text_ids
    from astroedge.runtime.package import load_package

    sites = report["firing_rates"]["sites"]
    assert sorted((s["site"], s["layer"]) for s in sites) == [("w_2", 0), ("w_2", 1), ("w_o", 0), ("w_o", 1)]
    assert all(0 < s["rate"] < 1 for s in sites)
    ids, _ = text_ids(tiny_package, 64)
    again = firing_rates(tiny_package, ids)
    assert all(0 <= r.rate <= 1 for r in again) and len(again) == 4
    cfg = load_package(tiny_package).config
    rates = {(s["site"], s["layer"]): s["rate"] for s in sites}
    dense, sparse = weight_bytes_per_token(tiny_package / "model.onnx"), weight_bytes_per_token(tiny_package / "model.onnx", rates)
    unfired = sum(
        (1 - rates["w_o", i]) * cfg.d_model**2 * 4 + (1 - rates["w_2", i]) * cfg.ffn_hidden * cfg.d_model * 4 for i in range(cfg.n_layers)
    )
    assert abs((dense - sparse) - unfired) <= 8


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
    from astroedge.bench.plots import tokens_label

    assert [Path(p).name for p in report["plots"]] == ["decode_latency.png", "peak_memory.png", "ttft.png", "prefill.png"]
    for p in report["plots"]:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [tokens_label(n) for n in (128, 1024, 8192, 65536, 1000, 1 << 20)] == ["128", "1k", "8k", "64k", "1000", "1M"]


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
    from astroedge.bench.bandwidth import read_bandwidth, weight_bytes_per_token
    from astroedge.quantize.package import quantize_package

    bw = read_bandwidth(gib=1 / 64, threads=2, repeats=2)
    assert bw.gbs > 0.1 and "2 threads" in bw.method
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


def test_random_model_fires_at_the_samples_rates() -> None:
    """Calibration: each layer and site of a random model reaches the rate of the sample's layer at the same depth."""
    from astroedge.bench.calibrate import calibrated_model, model_rates, sample_rates
    from astroedge.config import preset

    tokens = 256
    model, report = calibrated_model(preset("tiny"), tokens=tokens)
    targets, reached = np.array(report["targets"]), np.array(report["reached"])
    sample = sample_rates(tokens)
    assert targets.shape == (2, 2) and np.allclose(targets, sample[[0, 2]], atol=1e-4)  # layers 0, 1 of 2 <- 0, 2 of 4
    assert np.abs(reached - targets).max() < 0.01
    assert model.cfg.threshold == 1.0  # the membrane alone never fires; the scaled read-out decides
    other = model_rates(model, np.arange(tokens) % 256)  # other text: calibrated, not fitted to one text
    assert np.abs(other - targets).max() < 0.15


def test_interleaved_ab(tiny_package: Path, tmp_path: Path) -> None:
    """The A/B tool times both packages' steps in turns and reports the per-pair ratio (here sparse vs its dense form)."""
    from astroedge.bench.ab import ab
    from astroedge.quantize.package import repack_form

    dense = repack_form(tiny_package, tmp_path / "dense.aepkg", "dense")
    out = ab(dense, tiny_package, steps=6)
    assert out["pairs"] == 4 and out["a_p50_ms"] > 0 and out["b_p50_ms"] > 0
    lo, hi = out["a_over_b_p25_p75"]
    assert 0 < lo <= out["a_over_b_median"] <= hi
