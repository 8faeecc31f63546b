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


def test_setup_step_prints_one_line_and_keeps_the_full_log(tmp_path: Path) -> None:
    """make's set-up steps (scripts/step.sh): one line on success; on failure the log's tail and its path."""
    step = str(ROOT / "scripts" / "step.sh")
    noisy = "for i in $(seq 300); do echo line $i; done; echo warning >&2"
    r = subprocess.run([step, "noisy step", "h6-test-noisy", "bash", "-c", noisy], capture_output=True, text=True)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1 and "noisy step ..." in r.stdout and "done" in r.stdout
    log = ROOT / "build" / "logs" / "h6-test-noisy.log"
    assert log.read_text().count("line ") == 300 and "warning" in log.read_text()
    failing = "echo why it failed; exit 3"
    r = subprocess.run([step, "failing step", "h6-test-failing", "bash", "-c", failing], capture_output=True, text=True)
    assert r.returncode == 3 and "FAILED (exit 3)" in r.stdout and "why it failed" in r.stdout
    assert "build/logs/h6-test-failing.log" in r.stdout
    log.unlink()
    (ROOT / "build" / "logs" / "h6-test-failing.log").unlink()


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


# ------------------------------------------------------------------------------------------------
# The C SDK: `cmake --install` of the root CMakeLists.txt, used by a C app built outside the checkout.

CMAKE = str(ROOT / ".venv" / "bin" / "cmake") if (ROOT / ".venv" / "bin" / "cmake").is_file() else "cmake"
SAMPLE_C = ROOT / "samples" / "c_app" / "ae_generate.c"
PROMPT = "ROMEO:"

CONSUMER_CMAKE = """cmake_minimum_required(VERSION 3.22)
project(consumer C)
find_package(astroedge 0.1 REQUIRED)
add_executable(ae_generate "{sample}")
target_link_libraries(ae_generate PRIVATE astroedge::astroedge)
"""


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The SDK installed into a temporary prefix (CPU build: CUDA is compile-checked by make plugins)."""
    tmp = tmp_path_factory.mktemp("sdk")
    build = tmp / "build"
    _run([CMAKE, "-S", str(ROOT), "-B", str(build), "-DASTROEDGE_WITH_CUDA=OFF", f"-DPython3_EXECUTABLE={sys.executable}"])
    _run([CMAKE, "--build", str(build), "-j2"])
    _run([CMAKE, "--install", str(build), "--prefix", str(tmp / "prefix")])
    return tmp / "prefix"


def _ids(cmd: list[str], **kw: object) -> tuple[list[int], str]:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)  # type: ignore[call-overload]
    assert r.returncode == 0, r.stderr
    return [int(t) for t in r.stdout.split()], r.stderr


def test_onnxruntime_root_gives_headers_and_library_without_any_download(tmp_path: Path) -> None:
    """-DONNXRUNTIME_ROOT=<prefix> (an ORT release or a Jetson's own build): both come from there, nothing is fetched."""
    import shutil

    from astroedge import native

    headers = ROOT / ".deps" / "onnxruntime" / "usr" / "include" / "onnxruntime"
    ort = native.onnxruntime_library_path()
    if not headers.is_dir() or ort is None:
        pytest.skip("needs the fetched headers (make setup) and the onnxruntime package")
    prefix = tmp_path / "ort"
    shutil.copytree(headers, prefix / "include")
    (prefix / "lib").mkdir()
    shutil.copy(ort, prefix / "lib" / ort.name)
    deps = tmp_path / "deps"  # must stay empty
    build = tmp_path / "build"
    args = [CMAKE, "-S", str(ROOT), "-DASTROEDGE_WITH_CUDA=OFF", f"-DASTROEDGE_DEPS_DIR={deps}"]
    r = _run([*args, "-B", str(build), f"-DONNXRUNTIME_ROOT={prefix}"])
    assert f"ONNX Runtime headers from ONNXRUNTIME_ROOT: {prefix}/include" in r.stdout
    cache = (build / "CMakeCache.txt").read_text()
    assert f"ORT_LIBRARY:FILEPATH={prefix}/lib/{ort.name}" in cache
    assert not deps.exists()
    bad = subprocess.run([*args, "-B", str(tmp_path / "b2"), f"-DONNXRUNTIME_ROOT={tmp_path / 'nothing'}"], capture_output=True, text=True)
    assert bad.returncode != 0 and "has no include/onnxruntime_lite_custom_op.h" in bad.stderr


def test_sdk_layout_soname_and_relative_rpath(sdk: Path) -> None:
    lib = sdk / "lib"
    assert (sdk / "include" / "astroedge.h").is_file()
    assert (lib / "libastroedge.so.1").exists() and (lib / "libastroedge.so").is_symlink()
    assert (lib / "libonnxruntime.so.1").exists() and (lib / "libastroedge_ort.so").is_file()
    assert (lib / "cmake" / "astroedge" / "astroedgeConfig.cmake").is_file() and (lib / "pkgconfig" / "astroedge.pc").is_file()
    dyn = _run(["readelf", "-d", str(lib / "libastroedge.so.1")]).stdout
    assert "[libastroedge.so.1]" in dyn  # SONAME
    assert "[$ORIGIN]" in dyn and "/work" not in dyn and str(ROOT) not in dyn  # no build-tree runpath


def test_c_sample_builds_against_the_installed_sdk_and_runs_after_moving_it(sdk: Path, tiny_package: Path, tmp_path: Path) -> None:
    # find_package(astroedge): the sample's source, built outside the checkout against the SDK.
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "CMakeLists.txt").write_text(CONSUMER_CMAKE.format(sample=SAMPLE_C))
    _run([CMAKE, "-S", str(tmp_path / "app"), "-B", str(tmp_path / "app" / "build"), f"-DCMAKE_PREFIX_PATH={sdk}"])
    _run([CMAKE, "--build", str(tmp_path / "app" / "build")])
    app = tmp_path / "app" / "build" / "ae_generate"
    library = ["--library", str(sdk / "lib" / "libastroedge_ort.so")]
    native, err = _ids([str(app), str(tiny_package), PROMPT, "24", "--ids", *library])
    assert "AMSU library" in err
    fallback, err = _ids([str(app), str(tiny_package), PROMPT, "24", "--ids"])
    assert "AMSU fallback" in err and native == fallback and len(native) == 24

    # The SDK is relocatable: copied elsewhere, its own sample finds its libraries through $ORIGIN.
    import shutil

    moved = tmp_path / "elsewhere"
    shutil.copytree(sdk, moved, symlinks=True)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    moved_library = ["--library", str(moved / "lib" / "libastroedge_ort.so")]
    ids, _ = _ids([str(moved / "bin" / "ae_generate"), str(tiny_package), PROMPT, "24", "--ids", *moved_library], env=env)
    assert ids == native

    # pkg-config, relocatable through ${pcfiledir}.
    if shutil.which("pkg-config") is None:
        pytest.skip("pkg-config is not installed")
    pc_env = {**env, "PKG_CONFIG_PATH": str(moved / "lib" / "pkgconfig")}
    flags = _run(["pkg-config", "--cflags", "--libs", "astroedge"], env=pc_env).stdout.split()
    _run(["cc", "-o", str(tmp_path / "ae_pc"), str(SAMPLE_C), *flags])
    ids, _ = _ids([str(tmp_path / "ae_pc"), str(tiny_package), PROMPT, "24", "--ids"], env={**env, "LD_LIBRARY_PATH": str(moved / "lib")})
    assert ids == native


# ------------------------------------------------------------------------------------------------
# The wheel: built by scikit-build-core, installed into a fresh venv without torch, run outside the checkout.


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel (CPU build) and astroedge[cpu] only: the device-side install."""
    tmp = tmp_path_factory.mktemp("wheel")
    _run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp / "dist"),
         "-C", "cmake.define.ASTROEDGE_WITH_CUDA=OFF", "-C", f"build-dir={tmp / 'build'}"],
        cwd=tmp,
    )  # fmt: skip
    (wheel,) = (tmp / "dist").glob("astroedge-*.whl")
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for want in ("astroedge/lib/libastroedge_ort.so", "astroedge/lib/libastroedge.so.1", "astroedge/include/astroedge.h",
                 "astroedge/export/package.py", "astroedge/runtime/engine.py", "astroedge/contract/amsu.json"):  # fmt: skip
        assert want in names, f"{wheel.name} lacks {want}"
    assert not any(n.startswith("astroedge/lib/libonnxruntime") for n in names)  # the onnxruntime package brings its own
    assert "-py3-none-linux_" in wheel.name  # a platform wheel, one for every CPython 3
    _run([sys.executable, "-m", "venv", str(tmp / "venv")])
    _run([str(tmp / "venv" / "bin" / "python"), "-m", "pip", "install", "-q", f"{wheel}[cpu]"])
    return tmp / "venv"


@pytest.mark.slow
def test_wheel_runs_the_bundled_native_library_outside_the_checkout(wheel_venv: Path, tiny_package: Path, tmp_path: Path) -> None:
    py = str(wheel_venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASTROEDGE_", "PYTHON", "LD_LIBRARY_PATH"))}
    code = (
        "import importlib.util, astroedge\n"
        "from astroedge import native\n"
        "from astroedge.runtime.engine import Engine\n"
        f"e = Engine({str(tiny_package)!r})\n"
        "print(importlib.util.find_spec('torch') is None, native.checkout_root(), astroedge.get_library_path(), e.kernel)\n"
    )
    r = _run([py, "-c", code], cwd=tmp_path, env=env)
    no_torch, checkout, library, kernel = r.stdout.split()
    site = str(wheel_venv)
    assert no_torch == "True" and checkout == "None"
    assert library.startswith(site) and library.endswith("astroedge/lib/libastroedge_ort.so")
    assert kernel == "library"  # the bundled native kernels, not the ONNX fallback

    # A host command refuses in one line, exit 2, naming the extra.
    r = subprocess.run([str(wheel_venv / "bin" / "astroedge"), "export", "m.pt", "-o", "p.aepkg"], capture_output=True, text=True,
                       cwd=tmp_path, env=env)  # fmt: skip
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "astroedge[host]" in r.stderr, r.stderr
    # quantize without --eval-text never looks for the sample text inside site-packages.
    code = "from astroedge.quantize import perplexity; print(perplexity.SAMPLE_TEXT)"
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert r.stdout.strip() == "None", r.stderr


# ------------------------------------------------------------------------------------------------
# aarch64 under qemu-user (scripts/aarch64_check.sh = make aarch64-check).


@pytest.mark.slow
@pytest.mark.aarch64
def test_aarch64_build_runs_kernel_tests_and_sample_like_x86_under_qemu() -> None:
    if not (ROOT / "build" / "runtime" / "ae_generate").is_file() or not (ROOT / "build" / "plugins" / "libastroedge_ort.so").is_file():
        pytest.skip("the x86 reference build is missing (make setup)")
    env = {**os.environ, "AARCH64_INSTALL": "0"}  # installing system packages is make aarch64-check's job, not a test's
    cmd = [str(ROOT / "scripts" / "aarch64_check.sh")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1500, stdin=subprocess.DEVNULL, env=env)
    if r.returncode == 77:
        pytest.skip(r.stderr.strip().splitlines()[-1])
    assert r.returncode == 0, f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    assert "all AMSU CPU kernel checks passed" in r.stdout and "aarch64-check passed" in r.stdout
