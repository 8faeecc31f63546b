"""The AMSU ONNX Runtime library (build/plugins/libastroedge_ort.so) on CPU against the float64 reference.

Odd widths and head counts, decode and multi-chunk prefill, B > 1, non-zero initial state, fp32 and
fp16 inputs. Spikes are compared separately: a flip is allowed only where the reference drive is
within rounding of the threshold. Bad shapes, dtypes and attributes must give a clear onnxruntime
error, checked in a subprocess so that a crash would fail the test instead of killing pytest.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from ort_bad_inputs import run_bad_inputs

from astroedge.bench.amsu_case import AmsuCase, random_inputs, reference, single_node_model
from astroedge.runtime.ort_session import create_session, library_path

LIBRARY = library_path("cpu")
pytestmark = pytest.mark.skipif(LIBRARY is None, reason="libastroedge_ort.so not built (run `make plugins`)")

STATE_RTOL = 1e-5  # max |error| / max |reference| on h_out and u_out
DRIVE_TOL = 1e-5  # spikes may differ from the reference only where |drive| is below this

CASES = [
    AmsuCase(batch=3, seq=1, dim=200, heads=5),
    AmsuCase(batch=3, seq=1, dim=40, heads=5),
    AmsuCase(batch=3, seq=7, dim=200, heads=5),
    AmsuCase(batch=3, seq=7, dim=40, heads=5, dtype="float16"),
    AmsuCase(batch=3, seq=1000, dim=40, heads=5),
    AmsuCase(batch=3, seq=1000, dim=200, heads=5, dtype="float16"),
    AmsuCase(batch=1, seq=130, dim=256, heads=4),
]


def run_library(case: AmsuCase, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    info = create_session(single_node_model(case.dtype, case.heads), device="cpu", use_library=True)
    assert info.kernel == "library"
    return info.session.run(None, feeds)  # type: ignore[attr-defined]


def max_rel(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.describe().replace(" ", "-"))
def test_library_matches_reference(case: AmsuCase) -> None:
    feeds = random_inputs(case, seed=case.seq + case.dim)
    ref = reference(feeds, case.heads)
    s, h, u = run_library(case, feeds)

    assert s.dtype == np.dtype(case.dtype) and h.dtype == np.float32 and u.dtype == np.float32
    assert s.shape == ref.s.shape and h.shape == ref.h.shape and u.shape == ref.u.shape
    assert set(np.unique(s).tolist()) <= {0.0, 1.0}
    assert max_rel(h, ref.h) < STATE_RTOL
    assert max_rel(u, ref.u) < STATE_RTOL
    flips = s.astype(np.float64) != ref.s
    assert np.all(np.abs(ref.drive[flips]) < DRIVE_TOL), f"{flips.sum()} flips, |drive| up to {np.abs(ref.drive[flips]).max()}"
    assert 0.05 < ref.s.mean() < 0.95  # the inputs really exercise both sides of the threshold


def test_state_carries_across_calls() -> None:
    """Prefill in two calls (feeding h_out/u_out back) equals one call: the state is the whole carry."""
    case = AmsuCase(batch=2, seq=90, dim=40, heads=5)
    feeds = random_inputs(case, seed=3)
    whole = run_library(case, feeds)
    first = {k: (v[:, :50] if k in "xqkv" else v) for k, v in feeds.items()}
    s1, h1, u1 = run_library(case, first)
    second = {k: (v[:, 50:] if k in "xqkv" else v) for k, v in feeds.items()} | {"h_in": h1, "u_in": u1}
    s2, h2, u2 = run_library(case, second)
    assert max_rel(h2, whole[1]) < STATE_RTOL and max_rel(u2, whole[2]) < STATE_RTOL
    assert np.mean(np.concatenate([s1, s2], axis=1) != whole[0]) < 1e-3


_BAD_INPUTS = """
    from astroedge.bench.amsu_case import AmsuCase, random_inputs, single_node_model

    good = random_inputs(AmsuCase(batch=2, seq=3, dim=40, heads=5))
    results = {
        "d_not_divisible": attempt(single_node_model(heads=3), good),
        "h_in_shape": attempt(single_node_model(heads=5), {**good, "h_in": good["h_in"][..., :-1].copy()}),
        "u_in_batch": attempt(single_node_model(heads=5), {**good, "u_in": good["u_in"][:1].copy()}),
        "missing_threshold": attempt(single_node_model(heads=5, attributes={"threshold": None}), good),
        "missing_num_heads": attempt(single_node_model(heads=None), good),
        "mixed_dtypes": attempt(single_node_model("float16", heads=5), {**good, "x": good["x"].astype(np.float16)}),
    }
"""


def test_bad_inputs_give_clear_errors_not_crashes() -> None:
    errors = run_bad_inputs(_BAD_INPUTS, LIBRARY)
    assert "INVALID_ARGUMENT" in errors["d_not_divisible"] and "not divisible by num_heads = 3" in errors["d_not_divisible"]
    assert "input 'h_in' has shape [2, 5, 8, 7]; expected [B, NH, HD, HD] = [2, 5, 8, 8]" in errors["h_in_shape"]
    assert "input 'u_in' has shape [1, 40]; expected [B, D] = [2, 40]" in errors["u_in_batch"]
    assert "required attribute 'threshold' (float) is missing" in errors["missing_threshold"]
    assert "required attribute 'num_heads' (int) is missing" in errors["missing_num_heads"]
    assert errors["mixed_dtypes"] != "no error" and "float" in errors["mixed_dtypes"]


CUDA_LIBRARY = LIBRARY.parent / "libastroedge_ort_cuda.so" if LIBRARY else None


@pytest.mark.skipif(CUDA_LIBRARY is None or not CUDA_LIBRARY.is_file(), reason="libastroedge_ort_cuda.so not built (no nvcc)")
def test_cuda_build_loads_and_runs_on_cpu_without_cuda_runtime() -> None:
    """cudart is linked statically (no libcudart in DT_NEEDED): the CUDA build loads and serves the CPU EP on a machine with no GPU."""
    import shutil

    import onnxruntime as ort

    if shutil.which("readelf"):
        needed = subprocess.run(["readelf", "-d", str(CUDA_LIBRARY)], capture_output=True, text=True, check=True).stdout
        assert "NEEDED" in needed and "cudart" not in needed and "libcuda.so" not in needed

    case = AmsuCase(batch=2, seq=5, dim=40, heads=5)
    feeds = random_inputs(case, seed=5)
    opts = ort.SessionOptions()
    opts.register_custom_ops_library(str(CUDA_LIBRARY))
    session = ort.InferenceSession(single_node_model(case.dtype, case.heads), opts, providers=["CPUExecutionProvider"])
    _, h, u = session.run(None, feeds)
    ref = reference(feeds, case.heads)
    assert max_rel(h, ref.h) < STATE_RTOL and max_rel(u, ref.u) < STATE_RTOL
