"""Shipping: host commands refuse on a device-only install, the native-library lookup, the wheel, the C SDK.

The fast tests block the host modules inside a subprocess (a module set to None in sys.modules is
what Python reports as not installed); the wheel test installs the real wheel into a fresh venv
without torch and runs it from outside the checkout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

BLOCK_HOST = "import sys\nfor m in ('torch', 'onnx', 'onnxscript'):\n    sys.modules[m] = None\n"


def _cli_without_host(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = BLOCK_HOST + f"from astroedge.cli import main\nsys.argv = ['astroedge'] + {args!r}\nmain()\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "in.txt", "-o", "m.pt"],
        ["generate", "m.pt", "--prompt", "x"],
        ["eval", "m.pt", "in.txt"],
        ["export", "m.pt", "-o", "p.aepkg"],
        ["check", "m.pt", "p.aepkg"],
        ["quantize", "p.aepkg", "-o", "q.aepkg", "--fp16"],
        ["bench", "--config", "tiny"],
    ],
)
def test_host_command_refuses_in_one_line_without_host_extra(args: list[str], tmp_path: Path) -> None:
    r = _cli_without_host(args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"astroedge {args[0]}" in lines[0] and "pip install 'astroedge[host]'" in lines[0]
    assert "Traceback" not in r.stderr and not r.stdout


def test_host_command_help_still_works_without_host_extra() -> None:
    r = _cli_without_host(["export", "--help"])
    assert r.returncode == 0, r.stderr
    assert "checkpoint" in r.stdout


def _native(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    cmd = [sys.executable, "-c", "import astroedge\n" + code]
    return subprocess.run(cmd, capture_output=True, text=True, env=full)


def test_library_override_that_cannot_load_is_refused_not_skipped(tmp_path: Path) -> None:
    bogus = tmp_path / "libastroedge_ort.so"
    bogus.write_bytes(b"not an ELF file")
    r = _native("astroedge.get_library_path()", {"ASTROEDGE_ORT_LIBRARY": str(bogus)})
    assert r.returncode != 0 and "cannot be loaded" in r.stderr and "ASTROEDGE_ORT_LIBRARY" in r.stderr
    r = _native("astroedge.get_library_path()", {"ASTROEDGE_ORT_LIBRARY": str(tmp_path / "missing.so")})
    assert r.returncode != 0 and "no such file" in r.stderr


def test_empty_library_override_forces_the_fallback() -> None:
    r = _native("print(astroedge.get_library_path())", {"ASTROEDGE_ORT_LIBRARY": ""})
    assert r.returncode == 0 and r.stdout.strip() == "None"


def test_checkout_finds_its_build_folders() -> None:
    import astroedge
    from astroedge import native

    assert native.checkout_root() == ROOT
    lib = astroedge.get_library_path()
    if lib is None:
        pytest.skip("build/plugins/libastroedge_ort.so is not built (make plugins)")
    assert lib == ROOT / "build" / "plugins" / "libastroedge_ort.so"
