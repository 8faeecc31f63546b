"""SpikeMatMul's CPU kernel against the float64 reference of the op contract (astroedge/contract/spikematmul.json).

Two ways in: the kernel ABI through ctypes (build/plugins/libspikematmul_kernels.so) and the ONNX Runtime
custom-op library (libastroedge_ort.so) running a one-node model. Firing rates 0, 0.01, 0.14, 0.5 and 1
(all-zero and all-one rows), odd K and N, every weight format, fp32 and fp16 spikes, decode (one row)
and prefill (many rows: the kernel's dense path); non-0/1 spike values multiply their rows. Bad models
and inputs must give one clear onnxruntime error, checked in a subprocess so a crash fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from ort_bad_inputs import run_bad_inputs

from astroedge.contract import spikematmul_contract
from astroedge.contract.spikematmul import FORMATS, dequantize, quantize, reference, single_node_model
from astroedge.native import get_library_path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins" / "scripts"))
from spikematmul_ctypes import SpikeMatMulKernels  # noqa: E402

LIBRARY = get_library_path("cpu")
KERNELS = LIBRARY.parent / "libspikematmul_kernels.so" if LIBRARY else ROOT / "build" / "plugins" / "libspikematmul_kernels.so"
needs_kernels = pytest.mark.skipif(not KERNELS.is_file(), reason=f"{KERNELS.name} not built (run `make plugins`)")
needs_library = pytest.mark.skipif(LIBRARY is None, reason="libastroedge_ort.so not built (run `make plugins`)")

RATES = [0.0, 0.01, 0.14, 0.5, 1.0]


def make_case(
    rng: np.random.Generator,
    b: int,
    t: int,
    k: int,
    n: int,
    rate: float,
    fmt: str,
    act: str = "float32",
    bs: int = 32,
    general: bool = False,
) -> dict:
    spikes = (rng.random((b, t, k)) < rate).astype(np.float32)
    if rate in (0.0, 1.0):
        assert spikes.min() == spikes.max() == rate  # all-zero / all-one rows really occur
    if general:  # a few values other than 0 and 1: they multiply their rows
        mask = rng.random(spikes.shape) < 0.05
        spikes[mask] = rng.integers(-4, 5, mask.sum()) / 2.0
    weight, scale = quantize(rng.standard_normal((k, n)).astype(np.float32) * 0.1, fmt, bs)
    bias = rng.standard_normal(n).astype(np.float32)
    return {"spikes": spikes.astype(act), "weight": weight, "scale": scale, "bias": bias, "n": n, "bs": bs, "fmt": fmt}


def check_close(y: np.ndarray, case: dict) -> None:
    """Within float32 rounding of the float64 reference: error <= (K + 2) 2^-24 sum|terms| (+ fp16 output rounding)."""
    s = case["spikes"].astype(np.float64)
    w = dequantize(case["weight"], case["scale"], case["n"], case["bs"])
    ref = reference(case["spikes"], case["weight"], case["scale"], case["bias"], case["n"], case["bs"])
    magnitude = np.abs(s) @ np.abs(w) + np.abs(case["bias"].astype(np.float64))
    tol = (s.shape[-1] + 2) * 2.0**-24 * magnitude
    if y.dtype == np.float16:
        tol = tol + 2.0**-11 * np.abs(ref) + 1e-7
    assert y.shape == ref.shape
    err = np.abs(y.astype(np.float64) - ref)
    assert np.all(err <= tol), f"max error {err.max():.3g} where the bound is {tol.flat[np.argmax(err - tol)]:.3g}"


# ------------------------------------------------------------------------------------------------
# The kernel ABI (ctypes)


@needs_kernels
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("rate", RATES)
def test_kernel_decode_and_prefill_match_reference(fmt: str, rate: float) -> None:
    rng = np.random.default_rng(int(rate * 100) + len(fmt))
    kernels = SpikeMatMulKernels(KERNELS)
    for b, t, k, n, threads, bs in [(1, 1, 769, 255, 1, 16), (1, 1, 3071, 769, 0, 32), (1, 2, 257, 259, 1, 64), (2, 33, 257, 131, 2, 16)]:
        case = make_case(rng, b, t, k, n, rate, fmt, bs=bs)
        y = kernels.forward(case["spikes"], case["weight"], case["scale"], case["bias"], n, fmt, bs, threads)
        check_close(y, case)


@needs_kernels
@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_fp16_spikes_general_values_and_no_bias(fmt: str) -> None:
    rng = np.random.default_rng(7)
    kernels = SpikeMatMulKernels(KERNELS)
    for b, t, general in [(1, 1, False), (3, 11, False), (1, 2, True), (4, 9, True)]:
        case = make_case(rng, b, t, 301, 97, 0.3, fmt, act="float16", bs=6, general=general)
        check_close(kernels.forward(case["spikes"], case["weight"], case["scale"], case["bias"], 97, fmt, 6, 0), case)
        case["spikes"] = case["spikes"].astype(np.float32)
        case["bias"] = np.zeros(97, np.float32)
        check_close(kernels.forward(case["spikes"], case["weight"], case["scale"], None, 97, fmt, 6, 0), case)


def test_quantizers_round_trip_within_half_a_step() -> None:
    """quantize -> dequantize loses at most half a quantisation step per weight (odd N, partial int4 block)."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((37, 45)).astype(np.float32)
    q8, s8 = quantize(w, "int8")
    assert q8.dtype == np.int8 and s8 is not None and s8.shape == (45,)
    assert np.all(np.abs(dequantize(q8, s8, 45) - w) <= s8[None, :] / 2 + 1e-7)
    q4, s4 = quantize(w, "int4", 16)
    assert q4.dtype == np.uint8 and q4.shape == (37, 23) and s4 is not None and s4.shape == (37, 3)
    step = s4[:, np.arange(45) // 16]
    assert np.all(np.abs(dequantize(q4, s4, 45, 16) - w) <= step / 2 + 1e-7)
    assert np.all(q4[:, -1] >> 4 == 8)  # the unused high nibble of an odd row codes the value 0


# ------------------------------------------------------------------------------------------------
# Through ONNX Runtime, the one-node model


def run_session(model: bytes, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.register_custom_ops_library(str(LIBRARY))
    session = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


@needs_library
@pytest.mark.parametrize("act", ["float32", "float16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_onnxruntime_library_matches_reference(fmt: str, act: str) -> None:
    c = spikematmul_contract()
    rng = np.random.default_rng(11)
    k, n, bs = 193, 77, 8
    for b, t, rate, with_bias in [(1, 1, 0.14, True), (2, 17, 0.5, False), (1, 1, 1.0, True), (1, 3, 0.0, True)]:
        case = make_case(rng, b, t, k, n, rate, fmt, act=act, bs=bs)
        weights = {"weight": case["weight"]} | ({"scale": case["scale"]} if case["scale"] is not None else {})
        if with_bias:
            weights["bias"] = case["bias"]
        else:
            case["bias"] = np.zeros(n, np.float32)
        model = single_node_model(act, fmt, k, n, bs, with_bias=with_bias, weights=weights)
        y = run_session(model, {c.input_names[0]: case["spikes"]})
        assert y.dtype == np.dtype(act)
        check_close(y, case)


_BAD_INPUTS = """
    from astroedge.contract.spikematmul import quantize, single_node_model

    s = np.ones((1, 2, 10), np.float32)
    w = np.ones((10, 6), np.float32)
    q8, s8 = quantize(w, "int8")
    q4, s4 = quantize(w, "int4", 4)

    def bad(fmt, weights, block_size=32, attributes=None, feeds=None):
        # weights as initializers: their shapes reach the op unchecked by the graph's declared inputs
        model = single_node_model("float32", fmt, 10, 6, block_size, with_bias="bias" in weights, weights=weights, attributes=attributes)
        return attempt(model, feeds or {"spikes": s})

    results = {
        "weight_rows": bad("float32", {"weight": np.ones((9, 6), np.float32)}),
        "out_features": bad("float32", {"weight": w}, attributes={"out_features": 7}),
        "missing_out_features": bad("float32", {"weight": w}, attributes={"out_features": None}),
        "int8_scale": bad("int8", {"weight": q8, "scale": s8[:5].copy()}),
        "int4_scale": bad("int4", {"weight": q4, "scale": s4[:, :1].copy()}, 4),
        "int4_block": bad("int4", {"weight": q4, "scale": s4}, 4, attributes={"block_size": 3}),
        "bias": bad("float32", {"weight": w, "bias": np.ones(5, np.float32)}),
        "spikes_rank": bad("float32", {"weight": w}, feeds={"spikes": s[0]}),
    }
"""


@needs_library
def test_bad_inputs_give_clear_errors_not_crashes() -> None:
    errors = run_bad_inputs(_BAD_INPUTS, LIBRARY)
    assert "input 'weight' has shape [9, 6]; expected [K, N] = [10, 6]" in errors["weight_rows"]
    assert "input 'weight' has shape [10, 6]; expected [K, N] = [10, 7]" in errors["out_features"]
    assert "required attribute 'out_features' (int) is missing" in errors["missing_out_features"]
    assert "input 'scale' has shape [5]; expected [N] = [6]" in errors["int8_scale"]
    assert "input 'scale' has shape [10, 1]; expected [K, NB] = [10, 2]" in errors["int4_scale"]
    assert "'block_size' = 3: int4 blocks must be an even number" in errors["int4_block"]
    assert "input 'bias' has shape [5]; expected [N] = [6]" in errors["bias"]
    assert errors["spikes_rank"] != "no error"
    for name, message in errors.items():
        assert "SpikeMatMul node 'smm0'" in message or name == "spikes_rank", (name, message)


@needs_library
@pytest.mark.parametrize("act", ["float32", "float16"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_fallback_function_equals_kernel(fmt: str, act: str) -> None:
    """The ONNX fallback function (export/fallback.py, what stock runtimes run) and the kernel compute the same y.

    One model with the exporter's function attached: without the library onnxruntime inlines the function,
    with it the library's kernel runs; both must stay within float32 rounding of the float64 reference.
    """
    import onnx
    import onnxruntime as ort

    from astroedge.export.fallback import spikematmul_function

    c = spikematmul_contract()
    rng = np.random.default_rng(23)
    k, n, bs = 161, 67, 16
    case = make_case(rng, 3, 5, k, n, 0.3, fmt, act=act, bs=bs)
    case["bias"] = np.zeros(n, np.float32)  # the exporter writes no bias; the fallback takes none
    weights = {"weight": case["weight"]} | ({"scale": case["scale"]} if case["scale"] is not None else {})
    model = onnx.load_from_string(single_node_model(act, fmt, k, n, bs, weights=weights))
    model.opset_import[0].version = 18
    model.functions.append(spikematmul_function(18, fmt))
    data = model.SerializeToString()
    feeds = {c.input_names[0]: case["spikes"]}

    fallback = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
    kernel = run_session(data, feeds)
    for y in (fallback, kernel):
        assert y.dtype == np.dtype(act)
        check_close(y, case)


@needs_library
def test_registered_kernel_takes_precedence_over_the_function() -> None:
    """With the library registered, onnxruntime runs the kernel, not the model's function: a model whose
    attached function is deliberately the wrong format's (it cannot even type-check) still runs, correctly."""
    import onnx
    import onnxruntime as ort

    from astroedge.export.fallback import spikematmul_function

    w = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    model = onnx.load_from_string(single_node_model("float32", "float32", 16, 8, weights={"weight": w}))
    model.opset_import[0].version = 18
    model.functions.append(spikematmul_function(18, "int4"))
    data = model.SerializeToString()
    s = np.ones((1, 2, 16), np.float32)
    np.testing.assert_allclose(run_session(data, {"spikes": s}), s @ w, rtol=1e-5, atol=1e-5)
    with pytest.raises(Exception, match="INVALID_GRAPH"):
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
