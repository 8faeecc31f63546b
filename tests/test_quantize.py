"""astroedge quantize: fp16 / int8 / int4 packages of the tiny fixture run in the runtime, stay close to
the reference, keep fp32 state, and the perplexity gate refuses (leaving nothing behind) beyond its limit.

Tolerances against the PyTorch reference (docs/quantize.md): a quantised graph is a different
function, and spikes are thresholds, so a rounding change flips some of them; what is checked is that
the logits stay close and greedy decoding mostly agrees, and that the native library and the fallback
function compute the same quantised function.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from astroedge.errors import UserError

TEXT = (
    "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer "
    "the slings and arrows of outrageous fortune, or to take arms against a sea of troubles. "
) * 12
# Tolerances of each quantised package of the tiny random model (logits ~0.1 in size) against the
# PyTorch reference, ~2x what was measured (docs/quantize.md):
# max |dlogits|, max |dstate| / max(1, |state|), spike flip rate, fraction of greedy tokens matching.
LOOSE = {
    "fp16": (0.01, 0.005, 0.01, 0.9),
    "int8": (0.02, 0.03, 0.05, 0.9),
    "int8-dynamic": (0.3, 0.5, 0.1, 0.5),
    "int4": (0.1, 0.3, 0.1, 0.5),
}


@pytest.fixture(scope="module")
def texts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("texts")
    (d / "eval.txt").write_text(TEXT, encoding="utf-8")
    (d / "short.txt").write_text("too short", encoding="utf-8")
    return {"eval": d / "eval.txt", "short": d / "short.txt"}


@pytest.fixture(scope="module")
def quantised(tiny_package: Path, texts: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """fp16, int8 (weight-only), int8 (dynamic) and int4 packages of the tiny model; random weights, so a generous gate."""
    from astroedge.quantize.package import quantize_package

    out = tmp_path_factory.mktemp("quantised")
    made = {}
    variants = (("fp16", "fp16", None), ("int8", "int8", None), ("int8-dynamic", "int8", "dynamic"), ("int4", "int4", None))
    for name, precision, method in variants:
        report = quantize_package(
            tiny_package, out / f"{name}.aepkg", precision, method, eval_text=texts["eval"], eval_tokens=512, max_ppl_increase=50.0
        )
        made[name] = (out / f"{name}.aepkg", report)
    return made


@pytest.mark.parametrize("name", ["fp16", "int8", "int8-dynamic", "int4"])
def test_package_manifest_and_size(quantised: dict[str, tuple[Path, dict]], name: str) -> None:
    from astroedge.runtime import load_package

    path, report = quantised[name]
    pkg = load_package(path)
    assert pkg.precision == report["precision"]
    q = pkg.manifest["quantization"]
    assert q["method"] == report["method"] and q["quality"]["tokens"] >= 256
    assert all(s.dtype == "float32" for s in pkg.state)  # state stays fp32 in every precision
    assert report["bytes"][pkg.precision] < report["bytes"]["fp32"]
    assert abs(report["quality"]["increase_percent"]) <= 50.0


@pytest.mark.parametrize("name", ["fp16", "int8", "int8-dynamic", "int4"])
def test_library_and_fallback_agree_and_state_is_fp32(
    quantised: dict[str, tuple[Path, dict]], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quantised graph is one function: the native AMSU kernels and the fallback give the same logits from a non-zero state."""
    from astroedge.runtime import Engine

    path, _ = quantised[name]
    results = {}
    for lib in ("", None):
        if lib is None:
            monkeypatch.delenv("ASTROEDGE_ORT_LIBRARY", raising=False)
        else:
            monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", lib)
        engine = Engine(path)
        rng = np.random.default_rng(3)
        state = [(rng.standard_normal((1, *shape)) * 0.3).astype(np.float32) for shape in engine.state_shapes]
        stream = engine.create_stream()
        stream.set_state(state, 10**7)
        logits = np.stack([stream.step(int(t)) for t in rng.integers(0, 256, 7)])
        assert all(a.dtype == np.float32 for a in stream.state)
        assert logits.dtype == np.float32 and np.isfinite(logits).all()
        results[engine.kernel] = logits
    if "library" in results:
        np.testing.assert_allclose(results["library"], results["fallback"], atol=1e-4)


@pytest.mark.parametrize("name", ["fp16", "int8", "int8-dynamic", "int4"])
def test_close_to_reference(quantised: dict[str, tuple[Path, dict]], tiny_checkpoint: Path, name: str) -> None:
    """`astroedge check`-style: decode from a non-zero state at a large position against the PyTorch step form."""
    import torch

    from astroedge import checkpoint
    from astroedge.model import StreamState
    from astroedge.runtime import Engine

    path, _ = quantised[name]
    tol_logits, tol_state, _, greedy = LOOSE[name]
    model = checkpoint.load(tiny_checkpoint).model.eval()
    engine = Engine(path)
    rng = np.random.default_rng(5)
    tokens = rng.integers(0, 256, (2, 24))
    state = [
        (rng.standard_normal((2, *shape)) * 0.3 if name.startswith("h.") else rng.uniform(0, 1, (2, *shape))).astype(np.float32)
        for name, shape in zip(engine.state_names, engine.state_shapes, strict=True)
    ]
    position = np.array([10**7, 4 * 10**9])
    with torch.no_grad():
        ref = model(
            torch.from_numpy(tokens),
            StreamState(torch.from_numpy(position), [torch.from_numpy(a) for a in state[0::2]], [torch.from_numpy(a) for a in state[1::2]]),
            form="step",
        )
    streams = [engine.create_stream() for _ in range(2)]
    for i, stream in enumerate(streams):
        stream.set_state([a[i : i + 1] for a in state], int(position[i]))
    got = np.stack([engine.step_batch(streams, tokens[:, t].tolist()) for t in range(tokens.shape[1])], axis=1)
    ref_logits = ref.logits.numpy()
    assert np.abs(got - ref_logits).max() <= tol_logits
    ref_state = [t.numpy() for pair in zip(ref.state.h, ref.state.u, strict=True) for t in pair]
    for a, b in zip(ref_state, [np.concatenate(parts) for parts in zip(*(s.state for s in streams), strict=True)], strict=True):
        assert np.abs(a - b).max() / max(1.0, float(np.abs(a).max())) <= tol_state
    assert (got.argmax(-1) == ref_logits.argmax(-1)).mean() >= greedy


@pytest.mark.parametrize("name", ["fp16", "int8", "int8-dynamic", "int4"])
def test_quantised_packages_pass_astroedge_check(quantised: dict[str, tuple[Path, dict]], tiny_checkpoint: Path, name: str) -> None:
    """Every precision passes the full `astroedge check` with its loose tolerances; the reference
    evaluator runs on standard-op graphs and is skipped, saying why, on MatMulNBits graphs."""
    from astroedge.export.check import Tolerances, check_package

    path, _ = quantised[name]
    result = check_package(tiny_checkpoint, path, tokens=8, tolerances=Tolerances(*LOOSE[name]))
    assert result["passed"], result["failures"]
    skipped = result["reference_evaluator"].get("skipped", "")
    assert ("MatMulNBits" in skipped) == (name in ("int8", "int4"))


def test_fp16_guards_overflow() -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from astroedge.quantize.fp16 import convert_fp16

    w = numpy_helper.from_array(np.array([[1e6, -1e6], [1.0, 1e-9]], np.float32), "w")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [w],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    report = convert_fp16(model)
    assert report.clipped_values == 2 and report.clipped_tensors == ["w"] and report.flushed_to_zero == 1
    assert np.isfinite(numpy_helper.to_array(model.graph.initializer[0])).all()
    assert model.graph.node[-1].op_type == "Cast"  # graph output stays float32
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("name", ["fp32", "int8", "int4"])
def test_chunked_perplexity_equals_token_by_token(tiny_package: Path, quantised: dict[str, tuple[Path, dict]], name: str) -> None:
    """The gate scores chunks of tokens per host graph call; the runtime decoding them one by one gives the same perplexity.

    Token by token is what `astroedge run` does (libastroedge, Engine.step_batch, one token per call from
    each stream's state); the gate's chunked graph calls must compute that same function, only faster,
    for the fp32 package and for the quantised ones (whose MatMulNBits run with M = 1 in one and M > 1 in the other).
    """
    from astroedge.quantize.perplexity import _log_softmax_pick, package_perplexity
    from astroedge.runtime import Engine

    package = tiny_package if name == "fp32" else quantised[name][0]
    ids = np.random.default_rng(3).integers(0, 256, size=301, dtype=np.int64)
    segments = 3
    chunked = package_perplexity(package, ids, segments=segments, chunk=64)  # 100 tokens a segment: a short last chunk
    seg_len = (len(ids) - 1) // segments
    engine = Engine(package, device="cpu")
    streams = [engine.create_stream() for _ in range(segments)]
    total = 0.0
    for t in range(seg_len):
        logits = engine.step_batch(streams, [int(ids[s * seg_len + t]) for s in range(segments)])
        targets = np.array([[ids[s * seg_len + t + 1]] for s in range(segments)])
        total += _log_softmax_pick(logits[:, None, :], targets)
    engine.close()
    assert chunked.tokens == segments * seg_len
    assert chunked.kernel == engine.kernel  # the same AMSU implementation ran in both
    np.testing.assert_allclose(chunked.nats_per_token, total / chunked.tokens, rtol=1e-5)


def test_gate_refuses_and_leaves_nothing(tiny_package: Path, texts: dict[str, Path], tmp_path: Path) -> None:
    from astroedge.quantize.package import quantize_package

    out = tmp_path / "refused.aepkg"
    with pytest.raises(UserError, match=r"above fp32's .* not written"):
        quantize_package(tiny_package, out, "int4", eval_text=texts["eval"], eval_tokens=512, max_ppl_increase=0.0, block_size=16)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "astroedge.cli", "quantize", *args], capture_output=True, text=True, check=False)


def test_cli_bad_input(tiny_package: Path, texts: dict[str, Path], tmp_path: Path) -> None:
    cases = [
        (["--precision", "int3"], "precision 'int3' is unknown"),
        (["--int8", "--calib", str(texts["short"])], "calibration tokens, need at least"),
        (["--int4", "--method", "dynamic"], "does not exist for int4"),
        (["--fp16", "--int8"], "choose exactly one precision"),
    ]
    for args, message in cases:
        r = _cli(str(tiny_package), "-o", str(tmp_path / "out.aepkg"), *args)
        assert r.returncode == 2 and r.stderr.startswith("error: ") and message in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    (tmp_path / "exists.aepkg").mkdir()
    r = _cli(str(tiny_package), "-o", str(tmp_path / "exists.aepkg"), "--int8")
    assert r.returncode == 2 and "already exists; pass --force" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.aepkg"]


def test_cli_json_report(tiny_package: Path, texts: dict[str, Path], tmp_path: Path) -> None:
    r = _cli(
        str(tiny_package),
        "-o",
        str(tmp_path / "q.aepkg"),
        "--int8",
        "--eval-text",
        str(texts["eval"]),
        "--eval-tokens",
        "256",
        "--max-ppl-increase",
        "50",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["precision"] == "int8" and report["method"] == "weight-only" and report["quality"]["perplexity"] > 0
