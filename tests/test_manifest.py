"""The package format (astroedge/manifest.py) against the table of manifest cases, for the Python and the C reader.

tests/fixtures/manifest_cases/cases.json lists mutations of the tiny package's manifest and files with the verdict
and the field the one-line refusal must name; both readers run every case, so their rules cannot drift apart.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import json
import os
import random
import selectors
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from astroedge import manifest as fmt
from astroedge.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
CASE_DIR = ROOT / "tests" / "fixtures" / "manifest_cases"
_spec = importlib.util.spec_from_file_location("apply_case", CASE_DIR / "apply_case.py")
assert _spec is not None and _spec.loader is not None
apply_case = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(apply_case)
CASES: list[dict[str, Any]] = apply_case.load_cases()
C_LIBRARY = ROOT / "build" / "runtime" / "libastroedge.so"


def _refusal(case: dict[str, Any], message: str) -> None:
    assert "\n" not in message.strip(), f"{case['name']}: refusal is not one line: {message!r}"
    assert case["field"] in message, f"{case['name']}: refusal does not name {case['field']!r}: {message}"
    assert len(message) < 600, f"{case['name']}: refusal of {len(message)} characters"


def test_cases_table_is_well_formed() -> None:
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    assert {c["expect"] for c in CASES} == {"ok", "refuse"}
    assert all(c["expect"] == "ok" or c.get("field") for c in CASES), "every refusal names its field"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_python_reader(case: dict[str, Any], tiny_package: Path, tmp_path: Path) -> None:
    pkg = apply_case.apply_case(tiny_package, case, tmp_path / "case.aepkg")
    if case["expect"] == "ok":
        opened = fmt.open_package(pkg)
        assert opened.manifest.state == tuple(fmt.state_specs(opened.manifest.config))
        return
    with pytest.raises(UserError) as info:
        fmt.open_package(pkg)
    _refusal(case, str(info.value))


def test_exported_manifest_round_trips(tiny_package: Path) -> None:
    opened = fmt.open_package(tiny_package)
    m = opened.manifest
    assert m.sha256 == hashlib.sha256((tiny_package / fmt.MANIFEST).read_bytes()).hexdigest()
    assert [s.name for s in m.state] == ["h.0", "u.0", "h.1", "u.1"] and m.state_bytes_per_stream == 2 * (5 * 8 * 8 + 40) * 4
    assert hashlib.sha256(opened.onnx_bytes).hexdigest() == m.files[fmt.ONNX_FILE].sha256  # the verified bytes are the ones returned
    assert {v.name for v in opened.graph.inputs} - opened.graph.initializers == {"tokens", "position", *(s.input for s in m.state)}


def test_writer_refuses_what_the_reader_refuses(tiny_package: Path, tmp_path: Path) -> None:
    """write_manifest checks with the reader's rules, so a writer bug fails at export, not on a device."""
    import shutil

    folder = tmp_path / "w"
    shutil.copytree(tiny_package, folder)
    raw = json.loads((tiny_package / fmt.MANIFEST).read_text())
    raw["state"][0], raw["state"][2] = raw["state"][2], raw["state"][0]
    with pytest.raises(UserError, match=r"state\[0\]"):
        fmt.write_manifest(folder, raw)


def test_json_bounds() -> None:
    with pytest.raises(UserError, match="deeper than"):
        fmt.parse_json(b'{"a":' * 5000 + b"1" + b"}" * 5000, "m.json")
    assert fmt.parse_json(b'{"a": "' + b"[" * 40 + b'"}', "m.json") == {"a": "[" * 40}  # brackets in strings do not nest
    for bad in (b'{"a": 1, "a": 2}', b'{"a": NaN}', b'{"a": -Infinity}', b'{"a": 1e400}', b'{"a": ' + b"9" * 5000 + b"}", b"\xff{}"):
        with pytest.raises(UserError, match="m.json"):
            fmt.parse_json(bad, "m.json")


def test_graph_walk_never_raises_anything_but_a_user_error(tiny_package: Path) -> None:
    """Truncated and bit-flipped model.onnx bytes: one UserError or valid facts, never IndexError/RecursionError/a hang."""
    data = (tiny_package / fmt.ONNX_FILE).read_bytes()
    rng = random.Random(0)
    refused = 0
    for i in range(300):
        mutant = bytearray(data[: rng.randrange(len(data))] if i % 2 else data)
        for _ in range(rng.randint(1, 8)):
            if mutant:
                mutant[rng.randrange(len(mutant))] ^= 1 << rng.randrange(8)
        try:
            fmt.graph_facts(bytes(mutant), "model.onnx")
        except UserError as exc:
            refused += 1
            assert "\n" not in str(exc)
    assert refused > 100


def test_config_ranges_refuse_overflowing_values() -> None:
    good = fmt.check_config(json.loads(json.dumps(fmt.ModelConfig().to_dict())), "x").to_dict()
    for key, value in (("vocab_size", 2**40), ("ffn_mult", 1e308), ("d_model", 2**20), ("tau_n", float("inf")), ("rope_base", True)):
        with pytest.raises(UserError, match=f"model.{key}"):
            fmt.check_config({**good, key: value}, "x")
    with pytest.raises(UserError, match="state per stream"):
        fmt.check_config({**good, "d_model": 65536, "n_heads": 2, "n_layers": 4}, "x")


# --- the C reader (libastroedge, API v2) on the same table ------------------------------------------------------

_C_WORKER = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.ae_last_error.restype = ctypes.c_char_p
for d in sys.argv[2:]:
    print("START", d, flush=True)
    params = ctypes.c_void_p()
    assert lib.ae_engine_params_create(ctypes.byref(params)) == 0
    lib.ae_engine_params_set_package_dir(params, d.encode())
    engine = ctypes.c_void_p()
    rc = lib.ae_engine_create(params, ctypes.byref(engine))
    msg = (lib.ae_last_error() or b"").decode("utf-8", "replace") if rc else ""
    if rc == 0:
        lib.ae_engine_destroy(engine)
    lib.ae_engine_params_destroy(params)
    print("DONE", d, rc, msg.replace("\n", "\\n"), flush=True)
"""
C_CASE_TIMEOUT_S = 20.0


def _c_api_v2() -> str | None:
    """None if the library has the v2 engine API; else why the C cases are skipped."""
    if not C_LIBRARY.is_file():
        return f"{C_LIBRARY} is not built (make runtime)"
    try:
        lib = ctypes.CDLL(str(C_LIBRARY))
    except OSError as exc:
        return f"{C_LIBRARY} does not load: {exc}"
    if not hasattr(lib, "ae_engine_params_create") or lib.ae_api_version() < 2:
        return f"{C_LIBRARY} lacks the v2 engine API (ae_engine_params_create)"
    return None


def _run_c_cases(dirs: list[str]) -> dict[str, tuple[int | None, str]]:
    """{dir: (status, message)}; status None for a case that hung or crashed the worker (a new worker takes the rest)."""
    results: dict[str, tuple[int | None, str]] = {}
    pending = list(dirs)
    while pending:
        proc = subprocess.Popen([sys.executable, "-c", _C_WORKER, str(C_LIBRARY), *pending], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        current = None
        deadline = time.monotonic() + C_CASE_TIMEOUT_S
        while True:
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                proc.kill()
                results[current or pending[0]] = (None, f"hung for {C_CASE_TIMEOUT_S:g} s")
                break
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                if current is not None:
                    results[current] = (None, f"worker died with {proc.returncode}")
                break
            kind, d, *rest = line.rstrip("\n").split(" ", 3)
            if kind == "START":
                current, deadline = d, time.monotonic() + C_CASE_TIMEOUT_S
            else:
                results[d] = (int(rest[0]), rest[1] if len(rest) > 1 else "")
                current = None
        proc.stdout.close()
        proc.wait()
        pending = [d for d in dirs if d not in results]
    return results


def test_c_reader(tiny_package: Path, tmp_path: Path) -> None:
    why = _c_api_v2()
    if why is not None:
        pytest.skip(why)
    dirs = {}
    for i, case in enumerate(CASES):
        dirs[str(apply_case.apply_case(tiny_package, case, tmp_path / f"case{i:03d}"))] = case
    results = _run_c_cases(list(dirs))
    wrong = []
    for d, case in dirs.items():
        status, message = results[d]
        if status is None:
            wrong.append(f"{case['name']}: {message}")
        elif case["expect"] == "ok" and status != 0:
            wrong.append(f"{case['name']}: refused ({message})")
        elif case["expect"] == "refuse" and status == 0:
            wrong.append(f"{case['name']}: accepted")
        elif case["expect"] == "refuse" and (case["field"] not in message or "\\n" in message):
            wrong.append(f"{case['name']}: refusal does not name {case['field']!r} in one line: {message}")
    assert not wrong, f"{len(wrong)} of {len(dirs)} cases differ from the table:\n" + "\n".join(wrong)


def test_fifo_manifest_does_not_block_the_python_reader(tmp_path: Path) -> None:
    pkg = tmp_path / "p.aepkg"
    pkg.mkdir()
    os.mkfifo(pkg / fmt.MANIFEST)
    with pytest.raises(UserError, match="not a regular file"):
        fmt.read_manifest(pkg)
