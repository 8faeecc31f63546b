"""The one place that finds astroedge's native libraries (device side: never imports torch).

Three libraries, one lookup order for each:

1. an environment override (``ASTROEDGE_ORT_LIBRARY`` for the AMSU custom-op library,
   ``ASTROEDGE_LIBRARY`` for the C runtime). A set but unusable override is refused in one line:
   falling back silently would run something other than what the user pointed at.
   ``ASTROEDGE_ORT_LIBRARY=""`` means "no library": onnxruntime inlines the fallback function.
2. the library bundled inside the installed package (``astroedge/lib``, put there by the wheel build),
3. the source checkout's build folders (``build/plugins``, ``build/runtime``: ``make setup``).

``get_library_path()`` follows onnxruntime-extensions' convention (``astroedge.get_library_path()``
is what you pass to ``SessionOptions.register_custom_ops_library``).
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from pathlib import Path

from astroedge.errors import UserError

ORT_LIBRARY_ENV = "ASTROEDGE_ORT_LIBRARY"
RUNTIME_LIBRARY_ENV = "ASTROEDGE_LIBRARY"

PACKAGE_DIR = Path(__file__).resolve().parent
BUNDLED_LIB_DIR = PACKAGE_DIR / "lib"
BUNDLED_INCLUDE_DIR = PACKAGE_DIR / "include"

# File names per device; the wheel carries only the soname file of libastroedge (wheels hold no links).
ORT_LIBRARY_NAMES = {"cpu": "libastroedge_ort.so", "cuda": "libastroedge_ort_cuda.so"}
RUNTIME_LIBRARY_NAMES = ("libastroedge.so.1", "libastroedge.so")
TENSORRT_PLUGIN_NAME = "libastroedge_trt.so"


def checkout_root() -> Path | None:
    """The source checkout this package runs from (editable install), None for an installed wheel.

    Files that exist only in a checkout (the bundled sample, build folders) are looked up through this,
    so that an installed package never goes looking for them inside site-packages.
    """
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "runtime" / "CMakeLists.txt").is_file():
        return root
    return None


def _search_dirs(build_subdir: str) -> list[Path]:
    dirs = [BUNDLED_LIB_DIR]
    root = checkout_root()
    if root is not None:
        dirs.append(root / "build" / build_subdir)
    return dirs


def _override(env: str, what: str, load: bool) -> Path | None:
    """The library an environment variable names, checked to load; None when unset."""
    value = os.environ.get(env)
    if value is None or value == "":
        return None
    path = Path(value)
    if not path.is_file():
        raise UserError(f"{env}={value}: no such file; unset it or point it at {what}")
    if load:
        try:
            ctypes.CDLL(str(path), mode=os.RTLD_LOCAL)
        except OSError as exc:
            raise UserError(f"{env}={value}: cannot be loaded ({exc}); unset it or point it at {what}") from None
    return path


def _first(names: tuple[str, ...], dirs: list[Path]) -> Path | None:
    for d in dirs:
        for name in names:
            p = d / name
            if p.is_file():
                return p
    return None


def get_library_path(device: str = "cpu") -> Path | None:
    """The AMSU custom-op library for onnxruntime on `device` ('cpu' or 'cuda'); None = use the fallback.

    The CUDA library also runs the CPU provider, so 'cuda' falls back to the CPU library's search only
    through the caller (the runtime asks for 'cpu' when no CUDA build exists).
    """
    if device not in ORT_LIBRARY_NAMES:
        raise UserError(f"device '{device}' has no AMSU library; choose cpu or cuda")
    if os.environ.get(ORT_LIBRARY_ENV) == "":
        return None
    env = _override(ORT_LIBRARY_ENV, ORT_LIBRARY_NAMES["cpu"], load=True)
    if env is not None:
        return env
    return _first((ORT_LIBRARY_NAMES[device],), _search_dirs("plugins"))


def onnxruntime_library_path() -> Path | None:
    """libonnxruntime.so.1.x inside the installed onnxruntime package (its wheel ships no .so.1 link)."""
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "capi", "libonnxruntime.so.1*")))
        if found:
            return Path(found[-1])
    return None


def runtime_library_path() -> Path | None:
    """libastroedge (the C runtime): override, bundled, then the checkout's build/runtime."""
    env = _override(RUNTIME_LIBRARY_ENV, RUNTIME_LIBRARY_NAMES[-1], load=False)
    if env is not None:
        return env
    return _first(RUNTIME_LIBRARY_NAMES, _search_dirs("runtime"))


def load_runtime_library() -> ctypes.CDLL:
    """Load libastroedge with ctypes, after the onnxruntime library it links against.

    libastroedge needs ``libonnxruntime.so.1``; the onnxruntime wheel ships that library under its full
    version name only, so it is loaded first (RTLD_GLOBAL): the dynamic linker then matches the
    soname to the loaded copy instead of searching the disk. A build-tree library finds its own copy
    through its rpath either way.
    """
    path = runtime_library_path()
    if path is None:
        raise UserError(f"libastroedge is not built or bundled; run 'make setup' or set {RUNTIME_LIBRARY_ENV}")
    ort = onnxruntime_library_path()
    try:
        if ort is not None:
            ctypes.CDLL(str(ort), mode=os.RTLD_GLOBAL)
        return ctypes.CDLL(str(path))
    except OSError as exc:
        raise UserError(f"{path}: cannot be loaded ({exc}); install onnxruntime: pip install 'astroedge[cpu]'") from None


def tensorrt_plugin_path() -> Path | None:
    """The TensorRT plugin library (built only where TensorRT and nvcc are found): bundled, then build/plugins."""
    return _first((TENSORRT_PLUGIN_NAME,), _search_dirs("plugins"))


def include_dir() -> Path | None:
    """Folder holding astroedge.h: the wheel's astroedge/include, else the checkout's runtime/include."""
    if (BUNDLED_INCLUDE_DIR / "astroedge.h").is_file():
        return BUNDLED_INCLUDE_DIR
    root = checkout_root()
    if root is not None and (root / "runtime" / "include" / "astroedge.h").is_file():
        return root / "runtime" / "include"
    return None
