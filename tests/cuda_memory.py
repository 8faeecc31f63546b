"""The few CUDA runtime calls tests/test_tensorrt_plugin.py needs to feed TensorRT, through ctypes.

TensorRT's Python API takes raw device pointers; torch or cuda-python (one more dependency) are the
usual sources. libcudart is always present where TensorRT is, so a dozen ctypes declarations do
instead. Only the tests use it, so it lives beside them, not in the installed package.
"""

from __future__ import annotations

import ctypes
import os
import weakref

import numpy as np

from astroedge.errors import UserError

CUDART_ENV = "ASTROEDGE_CUDART"
_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
H2D, D2H, D2D = 1, 2, 3


class CudaRuntime:
    """Loaded libcudart with typed entry points; errors become UserError naming the call."""

    def __init__(self) -> None:
        names = [os.environ[CUDART_ENV]] if os.environ.get(CUDART_ENV) else list(_NAMES)
        lib: ctypes.CDLL | None = None
        for name in names:
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        if lib is None:
            raise UserError(
                f"the CUDA runtime library (libcudart) was not found (tried {', '.join(names)}); "
                f"install the CUDA runtime (JetPack on Jetson) or set {CUDART_ENV} to its path"
            )
        self.lib = lib
        vp, sz, c_int = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        sigs = {
            "cudaMalloc": [ctypes.POINTER(vp), sz],
            "cudaFree": [vp],
            "cudaMemcpyAsync": [vp, vp, sz, c_int, vp],
            "cudaMemsetAsync": [vp, c_int, sz, vp],
            "cudaStreamCreate": [ctypes.POINTER(vp)],
            "cudaStreamSynchronize": [vp],
            "cudaStreamDestroy": [vp],
            "cudaGetErrorString": [c_int],
            "cudaDeviceGetAttribute": [ctypes.POINTER(c_int), c_int, c_int],
            "cudaGetDevice": [ctypes.POINTER(c_int)],
        }
        for fn, args in sigs.items():
            f = getattr(self.lib, fn)
            f.argtypes = args
            f.restype = ctypes.c_char_p if fn == "cudaGetErrorString" else c_int
        self.stream = ctypes.c_void_p()
        self.check(self.lib.cudaStreamCreate(ctypes.byref(self.stream)), "cudaStreamCreate")

    def check(self, code: int, what: str) -> None:
        if code != 0:
            msg = self.lib.cudaGetErrorString(code).decode()
            raise UserError(f"CUDA call {what} failed: {msg} (error {code}); check the GPU and its driver (nvidia-smi / tegrastats)")

    def malloc(self, nbytes: int) -> int:
        ptr = ctypes.c_void_p()
        self.check(self.lib.cudaMalloc(ctypes.byref(ptr), max(nbytes, 1)), f"cudaMalloc({nbytes})")
        return int(ptr.value or 0)

    def free(self, ptr: int) -> None:
        self.lib.cudaFree(ctypes.c_void_p(ptr))

    def copy(self, dst: int, src: int, nbytes: int, kind: int) -> None:
        self.check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(dst), ctypes.c_void_p(src), nbytes, kind, self.stream), "cudaMemcpyAsync")

    def zero(self, ptr: int, nbytes: int) -> None:
        self.check(self.lib.cudaMemsetAsync(ctypes.c_void_p(ptr), 0, nbytes, self.stream), "cudaMemsetAsync")

    def sync(self) -> None:
        self.check(self.lib.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def compute_capability(self) -> tuple[int, int]:
        dev, major, minor = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
        self.check(self.lib.cudaGetDevice(ctypes.byref(dev)), "cudaGetDevice")
        self.check(self.lib.cudaDeviceGetAttribute(ctypes.byref(major), 75, dev.value), "cudaDeviceGetAttribute")  # ComputeCapabilityMajor
        self.check(self.lib.cudaDeviceGetAttribute(ctypes.byref(minor), 76, dev.value), "cudaDeviceGetAttribute")  # ComputeCapabilityMinor
        return major.value, minor.value


class DeviceBuffer:
    """`nbytes` of device memory, freed when the object is collected."""

    def __init__(self, cuda: CudaRuntime, nbytes: int) -> None:
        self.cuda = cuda
        self.nbytes = nbytes
        self.ptr = cuda.malloc(nbytes)
        weakref.finalize(self, cuda.free, self.ptr)

    def upload(self, array: np.ndarray, offset: int = 0) -> None:
        a = np.ascontiguousarray(array)
        if offset + a.nbytes > self.nbytes:
            raise ValueError(f"upload of {a.nbytes} bytes at {offset} overflows a {self.nbytes}-byte buffer")
        self.cuda.copy(self.ptr + offset, a.ctypes.data, a.nbytes, H2D)
        self.cuda.sync()  # `a` may be a temporary: finish before it is freed

    def download(self, out: np.ndarray, offset: int = 0) -> np.ndarray:
        if offset + out.nbytes > self.nbytes:
            raise ValueError(f"download of {out.nbytes} bytes at {offset} overruns a {self.nbytes}-byte buffer")
        self.cuda.copy(out.ctypes.data, self.ptr + offset, out.nbytes, D2H)
        self.cuda.sync()
        return out
