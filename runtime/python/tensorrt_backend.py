"""TensorRT 10 backend (`--device tensorrt` and `--device jetson`).

The engine is built from the package's model.onnx by TensorRT's ONNX parser, which maps every
astroedge::AMSU node to our IPluginV3 creator (namespace "astroedge", version "1") loaded from
libastroedge_trt.so. Two optimization profiles: decode (seq = 1, batch 1..MAX_BATCH) and prefill
(batch 1, seq 2..PREFILL_MAX). Building takes minutes on a Jetson, so the serialized plan is cached
next to the package, keyed by TensorRT version, GPU and package manifest sha256.

State stays fp32 on the GPU: each stream owns two buffers per state tensor and the graph reads one
and writes the other (ping-pong), the arrangement NVIDIA's own edge runtime uses. An execution
context is not thread-safe, so calls are serialised by a lock.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from astroedge.errors import UserError
from astroedge.fileio import atomic_file
from astroedge.runtime.backends import Backend
from astroedge.runtime.cuda_memory import D2D, CudaRuntime, DeviceBuffer
from astroedge.runtime.package import Package

TRT_LIBRARY_ENV = "ASTROEDGE_TRT_LIBRARY"
TRT_LIB_NAME = "libastroedge_trt.so"
TRT_CACHE_ENV = "ASTROEDGE_TRT_CACHE"
_SEARCH_DIRS = (Path(__file__).resolve().parents[2] / "build" / "plugins", Path(__file__).resolve().parent / "lib")
MAX_BATCH = 16
PREFILL_MAX = 256
TEGRA_RELEASE = Path("/etc/nv_tegra_release")


def import_tensorrt() -> Any:
    try:
        import tensorrt
    except ImportError:
        raise UserError(
            "device 'tensorrt' needs TensorRT's Python module, which is not installed: on a Jetson install JetPack "
            "(sudo apt install nvidia-jetpack / python3-libnvinfer); on a PC pip install tensorrt from NVIDIA's index "
            "(pip install --extra-index-url https://pypi.nvidia.com 'astroedge[tensorrt]')"
        ) from None
    return tensorrt


def plugin_library() -> Path:
    env = os.environ.get(TRT_LIBRARY_ENV)
    if env:
        if not Path(env).is_file():
            raise UserError(f"{TRT_LIBRARY_ENV}={env}: no such file; unset it or point it at {TRT_LIB_NAME}")
        return Path(env)
    for d in _SEARCH_DIRS:
        if (d / TRT_LIB_NAME).is_file():
            return d / TRT_LIB_NAME
    raise UserError(
        f"the AMSU TensorRT plugin ({TRT_LIB_NAME}) is not built; build it on this machine with 'make plugins' "
        f"(needs the TensorRT headers, e.g. JetPack's libnvinfer-dev) or set {TRT_LIBRARY_ENV} to its path"
    )


def cache_path(package: Package, trt_version: str, gpu: str) -> Path:
    """Where the plan for this (TensorRT, GPU, package) lives; $ASTROEDGE_TRT_CACHE overrides the folder."""
    folder = Path(os.environ[TRT_CACHE_ENV]) if os.environ.get(TRT_CACHE_ENV) else package.path.parent / f"{package.path.name}.trtcache"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", f"trt{trt_version}-{gpu}")
    return folder / f"{slug}-{package.manifest_sha256[:16]}.plan"


class _State:
    """Per-stream (or per-batch) device state: `cur` holds it, `spare` receives the next call's output."""

    def __init__(self, cur: list[DeviceBuffer], spare: list[DeviceBuffer], batch: int) -> None:
        self.cur, self.spare, self.batch = cur, spare, batch


class TensorRTBackend(Backend):
    device = "tensorrt"
    kernel = "tensorrt-plugin"

    def __init__(self, package: Package, jetson: bool = False) -> None:
        super().__init__(package)
        if jetson:
            self.device = "jetson"
            if not TEGRA_RELEASE.is_file():
                raise UserError(f"device 'jetson': this machine is not a Jetson (no {TEGRA_RELEASE}); use --device tensorrt")
        trt = import_tensorrt()
        self.trt = trt
        self.library = plugin_library()
        self.logger = trt.Logger(trt.Logger.WARNING)
        registry = trt.get_plugin_registry()
        if registry.load_library(str(self.library)) is None:
            raise UserError(f"{self.library}: TensorRT could not load the plugin library; rebuild it against TensorRT {trt.__version__}")
        if registry.get_creator("AMSU", "1", "astroedge") is None:  # the name the ONNX parser will look up
            raise UserError(f"{self.library}: loaded, but it registers no AMSU plugin (version 1, namespace astroedge); rebuild it")
        trt.init_libnvinfer_plugins(self.logger, "")
        self.cuda = CudaRuntime()
        major, minor = self.cuda.compute_capability()
        self.gpu = f"sm{major}{minor}"
        self.plan_path = cache_path(package, trt.__version__, self.gpu)
        plan = self._load_or_build_plan()
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise UserError(f"{self.plan_path}: TensorRT could not deserialize the cached plan; delete it to rebuild")
        # one context per profile: switching a context's profile costs a synchronisation
        self.contexts = []
        for profile in range(self.engine.num_optimization_profiles):
            ctx = self.engine.create_execution_context()
            ctx.set_optimization_profile_async(profile, self.cuda.stream.value or 0)
            self.contexts.append(ctx)
        self.cuda.sync()
        self.lock = threading.Lock()
        vocab = package.vocab_size
        self.tokens_buf = DeviceBuffer(self.cuda, MAX_BATCH * PREFILL_MAX * 8)
        self.position_buf = DeviceBuffer(self.cuda, MAX_BATCH * 8)
        self.logits_buf = DeviceBuffer(self.cuda, max(MAX_BATCH, PREFILL_MAX) * vocab * 4)

    def describe(self) -> str:
        return f"AMSU runs on the TensorRT plugin {self.library}; TensorRT {self.trt.__version__} on {self.gpu}; plan {self.plan_path}"

    # -- plan ------------------------------------------------------------------------------------

    def _load_or_build_plan(self) -> bytes:
        if self.plan_path.is_file():
            return self.plan_path.read_bytes()
        plan = self._build_plan()
        try:
            self.plan_path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(self.plan_path) as tmp:
                tmp.write_bytes(plan)
        except (OSError, UserError) as exc:  # a read-only package folder only costs a rebuild next time
            print(f"warning: could not cache the TensorRT plan at {self.plan_path} ({exc}); set {TRT_CACHE_ENV}")
        return plan

    def _build_plan(self) -> bytes:
        trt, p = self.trt, self.package
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse_from_file(str(p.onnx_path)):
            errors = "; ".join(str(parser.get_error(i).desc()) for i in range(parser.num_errors))
            raise UserError(f"{p.onnx_path}: TensorRT's ONNX parser refused the graph ({errors[:300]}); fp32/fp16 packages are supported")
        config = builder.create_builder_config()
        if p.precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)  # weights fp16; state tensors stay float32 graph I/O
        for batch, seq in (((1, 1, MAX_BATCH), (1, 1, 1)), ((1, 1, 1), (2, PREFILL_MAX, PREFILL_MAX))):
            profile = builder.create_optimization_profile()
            profile.set_shape(p.tokens_input, *[(b, s) for b, s in zip(batch, seq, strict=True)])
            profile.set_shape(p.position_input, *[(b,) for b in batch])
            for spec in p.state:
                profile.set_shape(spec.input, *[spec.concrete_shape(b) for b in batch])
            config.add_optimization_profile(profile)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise UserError(f"{p.onnx_path}: TensorRT failed to build an engine (see the log above); rebuild {TRT_LIB_NAME} for it")
        return bytes(plan)

    # -- state -----------------------------------------------------------------------------------

    def _buffers(self, batch: int) -> list[DeviceBuffer]:
        return [DeviceBuffer(self.cuda, s.bytes_per_stream * batch) for s in self.package.state]

    def from_host(self, arrays: list[np.ndarray]) -> _State:
        batch = arrays[0].shape[0]
        cur = self._buffers(batch)
        for buf, a in zip(cur, arrays, strict=True):
            buf.upload(np.ascontiguousarray(a, dtype=np.float32))
        return _State(cur, self._buffers(batch), batch)

    def to_host(self, state: _State) -> list[np.ndarray]:
        specs = self.package.state
        return [buf.download(np.empty(s.concrete_shape(state.batch), np.float32)) for s, buf in zip(specs, state.cur, strict=True)]

    def stack(self, states: list[_State]) -> _State:
        """Gather single-stream states into batch buffers with device-to-device copies."""
        out = _State(self._buffers(len(states)), self._buffers(len(states)), len(states))
        for i, st in enumerate(states):
            for dst, src in zip(out.cur, st.cur, strict=True):
                self.cuda.copy(dst.ptr + i * src.nbytes, src.ptr, src.nbytes, D2D)
        self.cuda.sync()
        return out

    def unstack(self, state: _State, batch: int) -> list[_State]:
        parts = []
        for i in range(batch):
            one = _State(self._buffers(1), self._buffers(1), 1)
            for dst, src in zip(one.cur, state.cur, strict=True):
                self.cuda.copy(dst.ptr, src.ptr + i * dst.nbytes, dst.nbytes, D2D)
            parts.append(one)
        self.cuda.sync()
        return parts

    # -- run -------------------------------------------------------------------------------------

    def run(self, tokens: np.ndarray, position: np.ndarray, state: _State) -> tuple[np.ndarray, _State]:
        batch, seq = tokens.shape
        if batch > MAX_BATCH or (seq > 1 and batch > 1):
            raise UserError(f"TensorRT engine profiles allow decode batches up to {MAX_BATCH} and prefill of one stream; got {batch}x{seq}")
        if seq > PREFILL_MAX:  # split long prefills into profile-sized chunks
            logits = []
            for start in range(0, seq, PREFILL_MAX):
                part, state = self.run(tokens[:, start : start + PREFILL_MAX], position + start, state)
                logits.append(part)
            return np.concatenate(logits, axis=1), state
        p = self.package
        with self.lock:
            ctx = self.contexts[0 if seq == 1 else 1]
            self.tokens_buf.upload(np.ascontiguousarray(tokens, dtype=np.int64))
            self.position_buf.upload(np.ascontiguousarray(position, dtype=np.int64))
            ctx.set_input_shape(p.tokens_input, (batch, seq))
            ctx.set_tensor_address(p.tokens_input, self.tokens_buf.ptr)
            ctx.set_input_shape(p.position_input, (batch,))
            ctx.set_tensor_address(p.position_input, self.position_buf.ptr)
            for spec, src, dst in zip(p.state, state.cur, state.spare, strict=True):
                ctx.set_input_shape(spec.input, spec.concrete_shape(batch))
                ctx.set_tensor_address(spec.input, src.ptr)
                ctx.set_tensor_address(spec.output, dst.ptr)
            ctx.set_tensor_address(p.logits_output, self.logits_buf.ptr)
            if not ctx.execute_async_v3(self.cuda.stream.value or 0):
                raise UserError("TensorRT execution failed (see the log above)")
            logits = self.logits_buf.download(np.empty((batch, seq, p.vocab_size), np.float32))
        return logits, _State(state.spare, state.cur, batch)

    def close(self) -> None:
        self.contexts.clear()
