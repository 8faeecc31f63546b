"""Conformance fixtures (rwkv.cpp style): the runtime reproduces stored logits and state, per precision.

tests/fixtures/conformance/ holds a tiny committed package in four precisions and, for each, the logits
after every one of a fixed list of tokens decoded from a non-zero state at position 3e9 (> 2**31), and
the state after the last. make_fixtures.py there wrote them with onnxruntime running the graphs directly
(not through libastroedge); fixtures.json states the tolerances and why they are what they are.
The binding and the C sample app, both over libastroedge, must agree with each other bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from astroedge.runtime import Engine

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "conformance"
INDEX: dict[str, Any] = json.loads((FIXTURES / "fixtures.json").read_text())
PRECISIONS = list(INDEX["precisions"])


def f32(name: str, shape: list[int] | None = None) -> np.ndarray:
    a = np.fromfile(FIXTURES / name, dtype="<f4")
    return a.reshape(shape) if shape else a


def assert_close(actual: np.ndarray, expected: np.ndarray, tol: dict[str, float], what: str) -> None:
    """Tolerance check that says where and by how much it failed (a spike flip shows as one large jump)."""
    err = np.abs(actual.astype(np.float64) - expected) - (tol["atol"] + tol["rtol"] * np.abs(expected))
    if (err > 0).any():
        i = np.unravel_index(int(np.argmax(err)), err.shape)
        raise AssertionError(
            f"{what}: {int((err > 0).sum())} of {err.size} values outside atol {tol['atol']} + rtol {tol['rtol']}; "
            f"worst at {tuple(int(x) for x in i)}: {actual[i]!r} vs {expected[i]!r}"
        )


def decode(engine: Engine, position: int, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    stream = engine.create_stream()
    stream.set_state(state, position)
    logits = np.stack([np.array(stream.step(t)) for t in INDEX["tokens"]])
    assert stream.position == position + len(INDEX["tokens"])
    return logits, np.concatenate([a.ravel() for a in stream.state])


@pytest.fixture(scope="module")
def start() -> np.ndarray:
    s = f32(INDEX["start_state"]["file"])
    assert s.size == INDEX["start_state"]["floats"] and np.abs(s).max() > 1  # a real, non-zero state
    return s


@pytest.mark.parametrize("kernel", ["library", "fallback"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_runtime_reproduces_the_fixture(precision: str, kernel: str, start: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both AMSU implementations, every precision: same logits and state within the stated tolerance."""
    entry = INDEX["precisions"][precision]
    if kernel == "fallback":
        monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")
    engine = Engine(FIXTURES / entry["package"])
    if engine.kernel != kernel:
        pytest.skip(f"the native AMSU library is not built (make setup builds it); engine runs {engine.kernel}")
    logits, state = decode(engine, INDEX["start_position"], start)
    assert_close(logits, f32(entry["logits"]["file"], entry["logits"]["shape"]), entry["tolerance"]["logits"], f"{precision} logits")
    assert_close(state, f32(entry["state"]["file"]), entry["tolerance"]["state"], f"{precision} state")


def test_the_fixture_detects_a_wrong_position_or_state(start: np.ndarray) -> None:
    """The tolerance is tight enough to matter: an off-by-one position or a lost state fails it."""
    entry = INDEX["precisions"]["fp32"]
    engine = Engine(FIXTURES / entry["package"])
    expected = f32(entry["logits"]["file"], entry["logits"]["shape"])
    for position, state in (
        (INDEX["start_position"] + 1, start),
        (INDEX["start_position"] - 2**31, start),
        (INDEX["start_position"], 0 * start),
    ):
        logits, _ = decode(engine, position, state)
        with pytest.raises(AssertionError, match="outside atol"):
            assert_close(logits, expected, entry["tolerance"]["logits"], "fp32 logits")


def test_fixture_files_are_what_the_index_says() -> None:
    import hashlib

    names = [INDEX["start_state"]] + [e[k] for e in INDEX["precisions"].values() for k in ("logits", "state")]
    for entry in names:
        assert hashlib.sha256((FIXTURES / entry["file"]).read_bytes()).hexdigest() == entry["sha256"], entry["file"]
    assert INDEX["start_position"] > 2**31
    # make_fixtures.py ran the float64 PyTorch reference too: no spike decision within 1e-4 of its threshold
    # (fp32 rounding is ~1e-7 there), so a tolerance failure is an error, not a rounding tie flipping a spike.
    ref = INDEX["float64_reference"]
    assert ref["min_abs_drive"] >= 1e-4 and ref["spike_decisions"] > 1000
    assert ref["max_abs_logit_diff_fp32"] <= INDEX["precisions"]["fp32"]["tolerance"]["logits"]["atol"]
    total = sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 1024 * 1024  # committed: keep it small


@pytest.mark.parametrize("precision", PRECISIONS)
def test_c_app_and_python_agree_bit_for_bit(precision: str, start: np.ndarray, tmp_path: Path) -> None:
    """From the fixture's start state the C sample app and the binding decode the same tokens and end in
    byte-identical state files (state, position and logits, all float32 bits)."""
    import subprocess

    from astroedge.native import get_library_path, runtime_library_path

    lib = runtime_library_path()
    app = None if lib is None else lib.parent / "ae_generate"
    if app is None or not app.is_file():
        pytest.skip("the C sample app (build/runtime/ae_generate) is not built: make setup")
    library = str(get_library_path() or "")
    engine = Engine(FIXTURES / INDEX["precisions"][precision]["package"], library=library)
    stream = engine.create_stream()
    stream.set_state(start, INDEX["start_position"])
    stream.step(INDEX["tokens"][0])
    stream.save_state(tmp_path / "start.aestate")
    py = [t for t, _ in stream.generate(None, 24, temperature=0.9, seed=5)]
    stream.save_state(tmp_path / "py.aestate")
    proc = subprocess.run(
        [str(app), str(engine.path), "", "24", "--temperature", "0.9", "--seed", "5", "--ids", "--library", library,
         "--load-state", str(tmp_path / "start.aestate"), "--save-state", str(tmp_path / "c.aestate")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [int(t) for t in proc.stdout.split()] == py
    assert (tmp_path / "c.aestate").read_bytes() == (tmp_path / "py.aestate").read_bytes()
