"""Execution backends: one call of the graph, `(tokens, position, state) -> (logits, new state)`.

A backend owns the device-side representation of state. The engine and streams never look inside
it except through `to_host` / `from_host`, so the CUDA backend can keep state on the GPU between
steps (the present_* outputs of one call are bound as the past_* inputs of the next) while the CPU
backend simply keeps numpy arrays. Torch-free.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from astroedge.errors import UserError
from astroedge.runtime.ort_session import create_session
from astroedge.runtime.package import Package

DEVICES = ("cpu", "cuda", "tensorrt", "jetson")


class Backend(ABC):
    """Runs the package's graph. `run` must be safe to call from several threads at once."""

    device: str
    kernel: str  # which AMSU implementation runs: "library", "fallback" or "tensorrt-plugin"

    def __init__(self, package: Package) -> None:
        self.package = package

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    def run(self, tokens: np.ndarray, position: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """tokens int64 [B, S], position int64 [B], state for batch B -> logits fp32 [B, S, V] (host), new state."""

    def zeros(self, batch: int = 1) -> Any:
        return self.from_host([np.zeros(s.concrete_shape(batch), dtype=np.float32) for s in self.package.state])

    @abstractmethod
    def to_host(self, state: Any) -> list[np.ndarray]:
        """State as fp32 numpy arrays in manifest order (the caller must not modify them)."""

    @abstractmethod
    def from_host(self, arrays: list[np.ndarray]) -> Any:
        """Device state holding a private copy of `arrays`."""

    def stack(self, states: list[Any]) -> Any:
        """Batch B single-stream states into one (through the host unless a backend knows better)."""
        hosts = [self.to_host(s) for s in states]
        return self.from_host([np.concatenate(parts, axis=0) for parts in zip(*hosts, strict=True)])

    def unstack(self, state: Any, batch: int) -> list[Any]:
        host = self.to_host(state)
        return [self.from_host([a[i : i + 1] for a in host]) for i in range(batch)]

    def close(self) -> None:  # noqa: B027 - optional hook: ORT sessions free themselves
        """Release device resources held outside Python objects (TensorRT buffers)."""


class OrtCpuBackend(Backend):
    """ONNX Runtime on the CPU; state is a list of numpy arrays (a fresh set after every call)."""

    device = "cpu"

    def __init__(self, package: Package, threads: int = 0) -> None:
        super().__init__(package)
        self.info = create_session(package.onnx_path, "cpu", threads=threads)
        self.session: Any = self.info.session
        self.kernel = self.info.kernel
        self._outputs = [package.logits_output] + [s.output for s in package.state]

    def describe(self) -> str:
        return self.info.describe()

    def run(self, tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
        p = self.package
        feeds = {p.tokens_input: tokens, p.position_input: position}
        feeds.update({s.input: a for s, a in zip(p.state, state, strict=True)})
        logits, *new_state = self.session.run(self._outputs, feeds)
        return logits, new_state

    def to_host(self, state: list[np.ndarray]) -> list[np.ndarray]:
        return state

    def from_host(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        return [np.array(a, dtype=np.float32, copy=True, order="C") for a in arrays]


class OrtCudaBackend(Backend):
    """ONNX Runtime's CUDA provider with I/O binding: state lives in GPU OrtValues between steps.

    Each call binds the stream's present state OrtValues as past_* inputs and lets ORT allocate the
    present_* outputs on the GPU; only tokens, position (in) and logits (out) cross the bus.
    """

    device = "cuda"

    def __init__(self, package: Package, threads: int = 0) -> None:
        super().__init__(package)
        import onnxruntime as ort

        self._ort = ort
        self.info = create_session(package.onnx_path, "cuda", threads=threads)
        self.session: Any = self.info.session
        self.kernel = self.info.kernel

    def describe(self) -> str:
        return self.info.describe() + "; state stays on the GPU (I/O binding)"

    def run(self, tokens: np.ndarray, position: np.ndarray, state: list[Any]) -> tuple[np.ndarray, list[Any]]:
        p = self.package
        binding = self.session.io_binding()
        binding.bind_cpu_input(p.tokens_input, tokens)
        binding.bind_cpu_input(p.position_input, position)
        for spec, value in zip(p.state, state, strict=True):
            binding.bind_ortvalue_input(spec.input, value)
        binding.bind_output(p.logits_output, "cpu")
        for spec in p.state:
            binding.bind_output(spec.output, "cuda", 0)
        self.session.run_with_iobinding(binding)
        logits, *new_state = binding.get_outputs()
        return logits.numpy(), new_state

    def to_host(self, state: list[Any]) -> list[np.ndarray]:
        return [v.numpy() for v in state]

    def from_host(self, arrays: list[np.ndarray]) -> list[Any]:
        return [self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(a, dtype=np.float32), "cuda", 0) for a in arrays]


def open_backend(package: Package, device: str, threads: int = 0) -> Backend:
    """The backend for `device`; never a silent fall-back to another device."""
    if device == "cpu":
        return OrtCpuBackend(package, threads)
    if device == "cuda":
        return OrtCudaBackend(package, threads)
    if device in ("tensorrt", "jetson"):
        from astroedge.runtime.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(package, jetson=device == "jetson")
    raise UserError(f"device '{device}' is unknown; choose one of: {', '.join(DEVICES)}")
