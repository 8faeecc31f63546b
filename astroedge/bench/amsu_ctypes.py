"""ctypes binding of the kernel C ABI (plugins/amsu/kernels/amsu_kernels.h), for the GPU test and the
CUDA benchmark: they call amsu_cuda_forward directly on device pointers, without onnxruntime.

The library is build/plugins/libamsu_kernels_cuda_test.so (cudart linked statically), which builds
without the ORT headers: cmake -S plugins -B build/plugins -DASTROEDGE_WITH_ORT=OFF.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

KERNEL_LIBRARY = Path(__file__).resolve().parents[2] / "build" / "plugins" / "libamsu_kernels_cuda_test.so"
DTYPES = {"float32": 0, "float16": 1}  # AmsuDType


class AmsuShape(ctypes.Structure):
    _fields_ = [("batch", ctypes.c_int64), ("seq", ctypes.c_int64), ("dim", ctypes.c_int64), ("heads", ctypes.c_int64)]


class AmsuAttrs(ctypes.Structure):
    _fields_ = [("threshold", ctypes.c_float), ("eps", ctypes.c_float)]


BUFFER_NAMES = ("x", "q", "k", "v", "w_o", "gamma", "beta", "h_in", "u_in", "s", "h_out", "u_out")


class AmsuBuffers(ctypes.Structure):
    _fields_ = [(name, ctypes.c_void_p) for name in BUFFER_NAMES]


class AmsuKernels:
    """The C entry points of one loaded kernel library; pointers are plain integers (data_ptr())."""

    def __init__(self, path: Path = KERNEL_LIBRARY) -> None:
        self.lib = ctypes.CDLL(str(path))
        args = (ctypes.POINTER(AmsuShape), AmsuAttrs, ctypes.c_int, ctypes.POINTER(AmsuBuffers))
        self.lib.amsu_cuda_forward.argtypes = [*args, ctypes.c_void_p]
        self.lib.amsu_cuda_forward_ws.argtypes = [*args, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
        self.lib.amsu_cpu_forward.argtypes = [*args, ctypes.c_int]
        for fn in (self.lib.amsu_cuda_forward, self.lib.amsu_cuda_forward_ws, self.lib.amsu_cpu_forward):
            fn.restype = ctypes.c_int
        self.lib.amsu_cuda_workspace_bytes.argtypes = [ctypes.POINTER(AmsuShape)]
        self.lib.amsu_cuda_workspace_bytes.restype = ctypes.c_size_t
        self.lib.amsu_cuda_last_error.restype = ctypes.c_char_p
        self.lib.amsu_error_string.restype = ctypes.c_char_p
        self.lib.amsu_error_string.argtypes = [ctypes.c_int]

    def workspace_bytes(self, shape: tuple[int, int, int, int]) -> int:
        return int(self.lib.amsu_cuda_workspace_bytes(ctypes.byref(AmsuShape(*shape))))

    def cuda_forward(
        self,
        shape: tuple[int, int, int, int],
        threshold: float,
        eps: float,
        dtype: str,
        pointers: dict[str, int],
        stream: int = 0,
        workspace: tuple[int, int] | None = None,
    ) -> None:
        """Enqueue one call on `stream` (0 = legacy default stream), with caller scratch (pointer, bytes)
        if given; raise RuntimeError with the kernel's text on failure."""
        buf = AmsuBuffers(**{name: pointers[name] for name in BUFFER_NAMES})
        args = (ctypes.byref(AmsuShape(*shape)), AmsuAttrs(threshold, eps), DTYPES[dtype], ctypes.byref(buf))
        if workspace is None:
            rc = self.lib.amsu_cuda_forward(*args, stream)
        else:
            rc = self.lib.amsu_cuda_forward_ws(*args, workspace[0], workspace[1], stream)
        if rc != 0:
            detail = self.lib.amsu_cuda_last_error().decode()
            raise RuntimeError(f"amsu_cuda_forward: {self.lib.amsu_error_string(rc).decode()} {detail}".strip())
