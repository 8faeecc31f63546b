"""ctypes binding of the SpikeMatMul CPU kernel ABI (plugins/spikematmul/kernels/spikematmul_kernels.h).

Loads build/plugins/libspikematmul_kernels.so (or the path given), which exports only the spikematmul_*
entry points. Used by tests/test_kernels_spikematmul.py and plugins/scripts/bench_spikematmul.py; needs
numpy only.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIBRARY = ROOT / "build" / "plugins" / "libspikematmul_kernels.so"
CUDA_TEST_LIBRARY = ROOT / "build" / "plugins" / "libspikematmul_kernels_cuda_test.so"  # CPU + CUDA entry points

# Same order as the contract's weight_formats and SmmWeightFormat.
FORMAT_CODES = {"float32": 0, "float16": 1, "int8": 2, "int4": 3}
ACT_CODES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}


class SmmShape(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in ("batch", "seq", "in_features", "out_features", "block_size")]


class SmmBuffers(ctypes.Structure):
    _fields_ = [(n, ctypes.c_void_p) for n in ("spikes", "weight", "scale", "bias", "y")]


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else a.ctypes.data


class SpikeMatMulKernels:
    """The CPU entry point; arrays must be C-contiguous in the contract's dtypes."""

    def __init__(self, path: Path = DEFAULT_LIBRARY) -> None:
        self.lib = ctypes.CDLL(str(path))
        self.lib.spikematmul_cpu_forward.argtypes = [
            ctypes.POINTER(SmmShape),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(SmmBuffers),
            ctypes.c_int,
        ]
        self.lib.spikematmul_cpu_forward.restype = ctypes.c_int
        self.lib.spikematmul_error_string.argtypes = [ctypes.c_int]
        self.lib.spikematmul_error_string.restype = ctypes.c_char_p
        self.has_cuda = hasattr(self.lib, "spikematmul_cuda_forward")
        if self.has_cuda:
            self.lib.spikematmul_cuda_forward.argtypes = [
                ctypes.POINTER(SmmShape),
                ctypes.c_int,
                ctypes.c_int,
                ctypes.POINTER(SmmBuffers),
                ctypes.c_void_p,
            ]
            self.lib.spikematmul_cuda_forward.restype = ctypes.c_int
            self.lib.spikematmul_cuda_last_error.restype = ctypes.c_char_p

    def cuda_forward(
        self, shape: tuple[int, int, int, int, int], act: str, fmt: str, pointers: dict[str, int | None], stream: int | None
    ) -> None:
        """Enqueue on `stream` with device pointers {spikes, weight, scale, bias, y} (None for absent ones)."""
        buf = SmmBuffers(*(pointers.get(n) for n in ("spikes", "weight", "scale", "bias", "y")))
        rc = self.lib.spikematmul_cuda_forward(
            ctypes.byref(SmmShape(*shape)), ACT_CODES[np.dtype(act)], FORMAT_CODES[fmt], ctypes.byref(buf), stream
        )
        if rc != 0:
            raise RuntimeError(
                f"spikematmul_cuda_forward failed: {self.lib.spikematmul_error_string(rc).decode()}: "
                f"{self.lib.spikematmul_cuda_last_error().decode()}"
            )

    def forward(
        self,
        spikes: np.ndarray,
        weight: np.ndarray,
        scale: np.ndarray | None,
        bias: np.ndarray | None,
        out_features: int,
        fmt: str,
        block_size: int = 32,
        threads: int = 0,
        out: np.ndarray | None = None,
    ) -> np.ndarray:
        """y [B, T, N] in the spikes' dtype; `out` (preallocated) avoids an allocation per call in benchmarks."""
        b, t, k = spikes.shape
        arrays = [spikes, weight] + [a for a in (scale, bias) if a is not None]
        assert all(a.flags.c_contiguous for a in arrays), "arrays must be C-contiguous"
        y = out if out is not None else np.empty((b, t, out_features), dtype=spikes.dtype)
        shape = SmmShape(b, t, k, out_features, block_size)
        buf = SmmBuffers(_ptr(spikes), _ptr(weight), _ptr(scale), _ptr(bias), _ptr(y))
        rc = self.lib.spikematmul_cpu_forward(ctypes.byref(shape), ACT_CODES[spikes.dtype], FORMAT_CODES[fmt], ctypes.byref(buf), threads)
        if rc != 0:
            raise RuntimeError(f"spikematmul_cpu_forward failed: {self.lib.spikematmul_error_string(rc).decode()}")
        return y
