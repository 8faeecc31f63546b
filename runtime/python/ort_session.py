"""onnxruntime sessions for the HOST tools that run a package's graph directly.

`astroedge check`, the quantiser, `astroedge bench` and the kernel tests need a bare graph call (every
position's logits, a lone AMSU node); the runtime itself (astroedge.runtime.Engine) never uses this
module: its sessions are libastroedge's. It registers the AMSU custom-op library when one is found
(native kernels) and otherwise lets onnxruntime inline the fallback function attached to the model;
either way it says which ran. It also refuses onnxruntime's silent fall-back to CPU when a GPU
provider was asked for. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from astroedge.errors import UserError
from astroedge.native import ORT_LIBRARY_ENV, ORT_LIBRARY_NAMES, get_library_path

if TYPE_CHECKING:
    import onnxruntime as ort  # annotations only: create_session imports it when called

LIBRARY_ENV = ORT_LIBRARY_ENV
_LIB_NAMES = ORT_LIBRARY_NAMES

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def library_path(device: str = "cpu") -> Path | None:
    """Path of the AMSU custom-op library for `device` ('cpu' or 'cuda'), or None if not built.

    $ASTROEDGE_ORT_LIBRARY overrides the search; set it to an empty string to force the fallback.
    The search itself (override, bundled in the wheel, source checkout) is astroedge.native's.
    """
    return get_library_path(device)


@dataclass
class SessionInfo:
    session: ort.InferenceSession
    kernel: str  # "library" (native AMSU kernels) or "fallback" (the ONNX function, inlined)
    library: Path | None
    providers: list[str]

    def describe(self) -> str:
        where = f"native library {self.library}" if self.kernel == "library" else "ONNX fallback function (no native library)"
        return f"AMSU runs on {where}; providers {', '.join(self.providers)}"


def create_session(
    model: str | Path | bytes,
    device: str = "cpu",
    use_library: bool | None = None,
    threads: int = 0,
) -> SessionInfo:
    """Open `model` on `device`. use_library: None = when found, True = required, False = never."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install 'astroedge[cpu]' (or '[gpu]' for CUDA)") from None
    if device not in PROVIDERS:
        raise UserError(f"device '{device}' has no onnxruntime provider here; choose cpu or cuda")
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    lib = None
    if use_library is not False:
        lib = library_path(device)
        if lib is None and device == "cuda":
            lib = library_path("cpu")
        if lib is None and use_library:
            raise UserError(f"the AMSU library ({_LIB_NAMES[device]}) is not built; run 'make setup' or set {LIBRARY_ENV}")
        if lib is not None:
            opts.register_custom_ops_library(str(lib))
    wanted = PROVIDERS[device]
    missing = [p for p in wanted if p not in ort.get_available_providers()]
    if missing:
        raise UserError(
            f"device '{device}': onnxruntime lacks {missing[0]}; install onnxruntime-gpu "
            "(pip install 'astroedge[gpu]', not together with onnxruntime)"
        )
    src = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(src, sess_options=opts, providers=wanted)
    got = session.get_providers()
    if wanted[0] not in got:
        raise UserError(
            f"device '{device}': onnxruntime fell back to {', '.join(got)} (CUDA libraries missing?); "
            "install the CUDA runtime that onnxruntime-gpu needs, or use --device cpu"
        )
    return SessionInfo(session, "library" if lib is not None else "fallback", lib, got)
