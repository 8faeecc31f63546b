"""The C API v3 (runtime/include/astroedge.h) and the C samples (samples/c_app/ae_generate.c, ae_batch.c).

The samples run as subprocesses on the tiny random-weight package; the API is driven in-process via
ctypes. Logits and greedy tokens are checked against the PyTorch reference (step form) from non-zero
state; batched decoding against single-stream decoding, bit for bit. One test rebuilds runtime and
samples with AddressSanitizer + UBSan and runs both samples under it.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "runtime"
ASAN_BUILD = REPO / "build" / "runtime-asan"
CMAKE = str(Path(sys.executable).with_name("cmake"))
AMSU_LIB = REPO / "build" / "plugins" / "libastroedge_ort.so"
PROMPT = "Hello, world"

(
    AE_OK,
    AE_ERR_INVALID_ARGUMENT,
    AE_ERR_IO,
    AE_ERR_FORMAT,
    AE_ERR_CHECKSUM,
    AE_ERR_VERSION,
    AE_ERR_MISMATCH,
    AE_ERR_UNSUPPORTED,
    AE_ERR_BUFFER_TOO_SMALL,
    AE_ERR_NO_LOGITS,
    AE_ERR_POSITION,
    AE_ERR_RUNTIME,
    AE_ERR_OUT_OF_MEMORY,
    AE_ERR_NON_FINITE,
) = range(14)


def build_runtime(build_dir: Path, *extra: str) -> Path:
    """Configure (once) and build runtime + samples into build_dir; incremental, so cheap after `make setup`."""
    subprocess.run([str(REPO / "plugins" / "scripts" / "get_ort_headers.sh")], check=True, stdout=subprocess.DEVNULL)
    if not (build_dir / "CMakeCache.txt").is_file():
        subprocess.run(
            [CMAKE, "-S", str(REPO / "runtime"), "-B", str(build_dir), f"-DPython3_EXECUTABLE={sys.executable}", *extra],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    subprocess.run([CMAKE, "--build", str(build_dir), "-j2"], check=True, stdout=subprocess.DEVNULL)
    return build_dir


@pytest.fixture(scope="module")
def build() -> Path:
    return build_runtime(BUILD)


@pytest.fixture(scope="module")
def package(tiny_package: Path) -> Path:
    return tiny_package


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without ASTROEDGE_ORT_LIBRARY (so the fallback function runs unless a test asks)."""
    env = {k: v for k, v in os.environ.items() if k != "ASTROEDGE_ORT_LIBRARY"}
    env.update(extra)
    return env


def run_sample(
    build_dir: Path, *args: str, env: dict[str, str] | None = None, app: str = "ae_generate"
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(build_dir / app), *args], capture_output=True, timeout=120, env=env or clean_env())


def greedy(build_dir: Path, *args: str, env: dict[str, str] | None = None) -> list[int]:
    return ids_of(run_sample(build_dir, *args, "--ids", "--temperature", "0", env=env))


def ids_of(proc: subprocess.CompletedProcess[bytes]) -> list[int]:
    assert proc.returncode == 0, proc.stderr.decode()
    return [int(t) for t in proc.stdout.split()]


def reference_greedy(checkpoint: Path, prompt: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """Greedy continuation by the PyTorch reference (step form), and the logits after the prompt."""
    import torch

    from astroedge import checkpoint as ckpt

    model = ckpt.load(checkpoint).model
    with torch.no_grad():
        out = model(torch.tensor([prompt]), None, form="step")
        first = out.logits[0, -1].numpy().copy()
        state, logits, gen = out.state, out.logits[0, -1], []
        for _ in range(n):
            gen.append(int(torch.argmax(logits)))
            out = model(torch.tensor([[gen[-1]]]), state, form="step")
            state, logits = out.state, out.logits[0, -1]
    return gen, first


def utf8_pieces(ids: list[int]) -> list[bytes]:
    """What each byte token completes, by Python's incremental UTF-8 decoder with errors="replace"."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return [decoder.decode(bytes([t])).encode() for t in ids]


def copy_package(src: Path, dst: Path, manifest_edit: dict | None = None) -> Path:
    shutil.copytree(src, dst)
    if manifest_edit:
        m = json.loads((dst / "manifest.json").read_text())
        m.update(manifest_edit)
        (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    assert proc.returncode == 2, proc
    err = proc.stderr.decode()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert proc.stdout == b""
    return lines[0]


# ------------------------------------------------------------------------------------------------
# The samples


def test_sample_greedy_equals_pytorch_reference(build: Path, package: Path, tiny_checkpoint: Path) -> None:
    ids = greedy(build, str(package), PROMPT, "40")
    ref, _ = reference_greedy(tiny_checkpoint, list(PROMPT.encode()), 40)
    assert ids == ref
    text = run_sample(build, str(package), PROMPT, "40", "--temperature", "0")
    assert text.returncode == 0
    assert text.stdout == b"".join(utf8_pieces(ids)) + b"\n"  # same UTF-8 repair of random bytes as Python's
    stats = text.stderr.decode()
    assert "tok/s" in stats and "AMSU fallback" in stats and "generated 40 tokens" in stats


def test_sample_defaults_are_the_teams(build: Path, package: Path) -> None:
    """No options: 200 tokens at temperature 0.8, seed 0, so two runs print the same sampled ids."""
    first = ids_of(run_sample(build, str(package), PROMPT, "--ids"))
    assert len(first) == 200
    assert ids_of(run_sample(build, str(package), PROMPT, "--ids")) == first
    assert first != greedy(build, str(package), PROMPT, "200")
    assert ids_of(run_sample(build, str(package), PROMPT, "--ids", "--seed", "1")) != first


def test_sample_state_save_and_load_continue_exactly(build: Path, package: Path, tmp_path: Path) -> None:
    state = tmp_path / "s.aestate"
    whole = greedy(build, str(package), PROMPT, "30")
    first = greedy(build, str(package), PROMPT, "12", "--save-state", str(state))
    rest = greedy(build, str(package), "", "18", "--load-state", str(state))
    assert first + rest == whole
    assert [p.name for p in tmp_path.iterdir()] == ["s.aestate"]  # no temp file left behind


def test_sample_with_the_native_amsu_library(build: Path, package: Path) -> None:
    if not AMSU_LIB.is_file():
        pytest.skip("build/plugins/libastroedge_ort.so is not built (make plugins)")
    proc = run_sample(build, str(package), PROMPT, "40", "--ids", "--temperature", "0", "--library", str(AMSU_LIB))
    assert "AMSU library" in proc.stderr.decode()
    assert ids_of(proc) == greedy(build, str(package), PROMPT, "40")
    by_env = run_sample(
        build, str(package), PROMPT, "40", "--ids", "--temperature", "0", env=clean_env(ASTROEDGE_ORT_LIBRARY=str(AMSU_LIB))
    )
    assert "AMSU library" in by_env.stderr.decode() and ids_of(by_env) == ids_of(proc)


def until_stop(pieces: list[bytes], stops: list[bytes]) -> bytes:
    """The rule: generation ends after the first token whose piece makes the text end with a stop string."""
    text = b""
    for piece in pieces:
        text += piece
        if any(text.endswith(s) for s in stops):
            break
    return text


def test_sample_stop_string_ends_generation_with_the_stop_text(build: Path, package: Path) -> None:
    pieces = utf8_pieces(greedy(build, str(package), PROMPT, "60"))
    stop = b"".join(pieces[:25]).decode()[-2:].encode()  # the text's last two characters after 25 tokens
    if b"\x00" in stop:
        pytest.skip("the greedy text holds a NUL byte where the stop string would be taken")
    proc = run_sample(build, str(package), PROMPT, "60", "--temperature", "0", "--stop", stop.decode("utf-8"))
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout[:-1]
    assert out == until_stop(pieces, [stop]) and out.endswith(stop) and len(out) < len(b"".join(pieces))
    assert "stopped at a stop string" in proc.stderr.decode()


def test_sample_refusals_are_one_line_with_exit_2(build: Path, package: Path, tmp_path: Path) -> None:
    msg = one_line_error(run_sample(build, str(tmp_path / "nope.aepkg"), PROMPT))
    assert "nope.aepkg" in msg and "not found" in msg

    bad_sha = copy_package(package, tmp_path / "sha.aepkg")
    data = bytearray((bad_sha / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad_sha / "model.onnx").write_bytes(bytes(data))
    msg = one_line_error(run_sample(build, str(bad_sha), PROMPT))
    assert "model.onnx" in msg and "sha256" in msg and "re-export" in msg

    newer = copy_package(package, tmp_path / "newer.aepkg", {"format_version": 2})
    msg = one_line_error(run_sample(build, str(newer), PROMPT))
    assert "format_version 2 is newer" in msg and "upgrade" in msg

    broken = copy_package(package, tmp_path / "broken.aepkg")
    (broken / "manifest.json").write_text('{"format": "astroedge-package", ')
    assert "not valid JSON" in one_line_error(run_sample(build, str(broken), PROMPT))

    msg = one_line_error(run_sample(build, str(package), PROMPT, "--library", str(tmp_path / "x.so")))
    assert "x.so: no such file" in msg and "make plugins" in msg
    msg = one_line_error(run_sample(build, str(package), PROMPT, env=clean_env(ASTROEDGE_ORT_LIBRARY=str(tmp_path / "y.so"))))
    assert "ASTROEDGE_ORT_LIBRARY" in msg and "y.so" in msg  # named in the environment: refused, never the fallback
    not_a_lib = tmp_path / "notalib.so"
    not_a_lib.write_bytes(b"\x7fELF garbage")
    msg = one_line_error(run_sample(build, str(package), PROMPT, "--library", str(not_a_lib)))
    assert "notalib.so could not be loaded" in msg
    msg = one_line_error(run_sample(build, str(package), PROMPT, "--device", "cuda"))
    assert 'device "cuda"' in msg and "CUDA execution provider" in msg  # this machine: CPU onnxruntime only
    assert "TensorRT" in one_line_error(run_sample(build, str(package), PROMPT, "--device", "tensorrt"))
    assert "must be one of" in one_line_error(run_sample(build, str(package), PROMPT, "--device", "tpu"))
    assert "max_tokens" in one_line_error(run_sample(build, str(package), PROMPT, "-3"))
    assert "max_tokens" in one_line_error(run_sample(build, str(package), PROMPT, "2147483648"))
    assert "--seed" in one_line_error(run_sample(build, str(package), PROMPT, "--seed", "-1"))
    assert "--temperature" in one_line_error(run_sample(build, str(package), PROMPT, "--temperature", "1e-310"))
    assert "temperature" in one_line_error(run_sample(build, str(package), PROMPT, "--temperature", "1e-9"))
    assert "repetition_penalty" in one_line_error(run_sample(build, str(package), PROMPT, "--repetition-penalty", "0"))
    assert "non-empty prompt" in one_line_error(run_sample(build, str(package), ""))
    assert "not an astroedge state file" in one_line_error(
        run_sample(build, str(package), PROMPT, "--load-state", str(package / "manifest.json"))
    )
    msg = one_line_error(run_sample(build, str(package), PROMPT, "--save-state", str(tmp_path)))
    assert "is a folder" in msg  # refused before generating: nothing printed


def test_batch_sample_equals_single_streams_bitwise(build: Path, package: Path) -> None:
    """ae_batch decodes N streams (different prompts and positions) in one call per step and checks
    every stream's logits against the same stream decoded alone: bit for bit (exit 3 otherwise)."""
    for n in ("1", "5", "16"):
        proc = run_sample(build, str(package), n, "24", app="ae_batch")
        assert proc.returncode == 0, proc.stderr.decode()
        assert "batched == single: bitwise" in proc.stderr.decode()
        lines = proc.stdout.decode().splitlines()
        assert len(lines) == int(n) and all(len(line.split()) == 25 for line in lines)
    if AMSU_LIB.is_file():
        proc = run_sample(build, str(package), "7", "24", "--library", str(AMSU_LIB), app="ae_batch")
        assert proc.returncode == 0 and "AMSU library" in proc.stderr.decode(), proc.stderr.decode()
    assert "N 0" in one_line_error(run_sample(build, str(package), "0", app="ae_batch"))


@pytest.mark.slow
def test_samples_under_address_and_undefined_behaviour_sanitizers(build: Path, package: Path, tmp_path: Path) -> None:
    """ASan + UBSan build of runtime and samples. onnxruntime itself is not instrumented. Leak checking
    stays on (detect_leaks=1) for the fallback runs: the runtime releases everything it creates. With
    the native AMSU library it is off (detect_leaks=0): that library keeps its op domain in statics
    that outlive sessions (docs/toolchain-notes.md), which LeakSanitizer reports at exit."""
    asan = build_runtime(ASAN_BUILD, "-DASTROEDGE_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug")
    env = clean_env(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    state = tmp_path / "s.aestate"
    plain = greedy(build, str(package), PROMPT, "24")
    assert greedy(asan, str(package), PROMPT, "12", "--save-state", str(state), env=env) == plain[:12]
    assert greedy(asan, str(package), "", "12", "--load-state", str(state), env=env) == plain[12:]
    sampled = run_sample(
        asan, str(package), PROMPT, "24", "--temperature", "0.9", "--top-k", "40", "--top-p", "0.9", "--stop", "x", env=env
    )
    assert sampled.returncode == 0, sampled.stderr.decode()
    one_line_error(run_sample(asan, str(tmp_path / "missing"), PROMPT, env=env))
    one_line_error(run_sample(asan, str(package), PROMPT, "--load-state", str(package / "manifest.json"), env=env))
    batch = run_sample(asan, str(package), "6", "16", env=env, app="ae_batch")
    assert batch.returncode == 0 and "bitwise" in batch.stderr.decode(), batch.stderr.decode()
    one_line_error(run_sample(asan, str(package), "2", "--library", str(tmp_path / "x.so"), env=env, app="ae_batch"))
    if AMSU_LIB.is_file():
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
        assert greedy(asan, str(package), PROMPT, "24", "--library", str(AMSU_LIB), env=env) == plain
        batch = run_sample(asan, str(package), "3", "8", "--library", str(AMSU_LIB), env=env, app="ae_batch")
        assert batch.returncode == 0, batch.stderr.decode()


# ------------------------------------------------------------------------------------------------
# The API, in-process through ctypes

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)  # piece: may hold NUL
P = ctypes.c_void_p
I32P, F32P, SZP = ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_size_t)
c_int, c_i32, c_u64, c_sz, c_f, c_str = ctypes.c_int, ctypes.c_int32, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_float, ctypes.c_char_p

SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "ae_last_error": (c_str, []),
    "ae_status_string": (c_str, [c_int]),
    "ae_api_version": (c_int, []),
    "ae_engine_params_create": (c_int, [ctypes.POINTER(P)]),
    "ae_engine_params_destroy": (None, [P]),
    "ae_engine_params_set_package_dir": (c_int, [P, c_str]),
    "ae_engine_params_set_device": (c_int, [P, c_str]),
    "ae_engine_params_set_device_id": (c_int, [P, c_i32]),
    "ae_engine_params_set_num_threads": (c_int, [P, c_i32]),
    "ae_engine_params_set_amsu_library": (c_int, [P, c_str]),
    "ae_engine_params_set_verify_checksums": (c_int, [P, c_i32]),
    "ae_engine_params_set_cache_dir": (c_int, [P, c_str]),
    "ae_engine_params_validate": (c_int, [P]),
    "ae_engine_params_print": (c_int, [P, c_str, c_sz]),
    "ae_engine_create": (c_int, [P, ctypes.POINTER(P)]),
    "ae_engine_destroy": (None, [P]),
    "ae_engine_vocab_size": (c_i32, [P]),
    "ae_engine_max_position": (c_u64, [P]),
    "ae_engine_state_size": (c_sz, [P]),
    "ae_engine_state_count": (c_sz, [P]),
    "ae_engine_state_name": (c_str, [P, c_sz]),
    "ae_engine_state_shape": (c_sz, [P, c_sz, ctypes.POINTER(ctypes.c_int64), c_sz]),
    "ae_engine_kernel": (c_str, [P]),
    "ae_engine_device": (c_str, [P]),
    "ae_engine_precision": (c_str, [P]),
    "ae_engine_tokenizer": (c_str, [P]),
    "ae_engine_tokenizer_data": (P, [P, SZP]),
    "ae_engine_manifest_sha256": (c_str, [P]),
    "ae_engine_state_file_size": (c_sz, [P]),
    "ae_tokenize": (c_int, [P, c_str, c_sz, I32P, c_sz, SZP]),
    "ae_detokenize": (c_int, [P, I32P, c_sz, c_str, c_sz, SZP]),
    "ae_stream_create": (c_int, [P, ctypes.POINTER(P)]),
    "ae_stream_destroy": (None, [P]),
    "ae_stream_reset": (c_int, [P]),
    "ae_stream_clone": (c_int, [P, ctypes.POINTER(P)]),
    "ae_stream_position": (c_u64, [P]),
    "ae_stream_feed": (c_int, [P, I32P, c_sz, F32P]),
    "ae_stream_step": (c_int, [P, c_i32, F32P]),
    "ae_stream_logits": (c_int, [P, F32P]),
    "ae_decode_batch": (c_int, [ctypes.POINTER(P), I32P, c_sz, F32P]),
    "ae_stream_state_size": (c_sz, [P]),
    "ae_stream_get_state": (c_int, [P, F32P, c_sz]),
    "ae_stream_set_state": (c_int, [P, F32P, c_sz, c_u64, F32P]),
    "ae_stream_save_state": (c_int, [P, c_str]),
    "ae_stream_load_state": (c_int, [P, c_str]),
    "ae_generate_params_create": (c_int, [ctypes.POINTER(P)]),
    "ae_generate_params_destroy": (None, [P]),
    "ae_generate_params_set_max_tokens": (c_int, [P, c_i32]),
    "ae_generate_params_set_temperature": (c_int, [P, c_f]),
    "ae_generate_params_set_top_k": (c_int, [P, c_i32]),
    "ae_generate_params_set_top_p": (c_int, [P, c_f]),
    "ae_generate_params_set_repetition_penalty": (c_int, [P, c_f]),
    "ae_generate_params_set_seed": (c_int, [P, c_u64]),
    "ae_generate_params_add_stop": (c_int, [P, c_str, c_sz]),
    "ae_generate_params_clear_stops": (c_int, [P]),
    "ae_generate_params_max_tokens": (c_i32, [P]),
    "ae_generate_params_temperature": (c_f, [P]),
    "ae_generate_params_top_k": (c_i32, [P]),
    "ae_generate_params_top_p": (c_f, [P]),
    "ae_generate_params_repetition_penalty": (c_f, [P]),
    "ae_generate_params_seed": (c_u64, [P]),
    "ae_generate_params_stop_count": (c_sz, [P]),
    "ae_generate_params_stop": (c_str, [P, c_sz, SZP]),
    "ae_generate_params_validate": (c_int, [P]),
    "ae_generate_params_print": (c_int, [P, c_str, c_sz]),
    "ae_sampler_create": (c_int, [P, ctypes.POINTER(P)]),
    "ae_sampler_destroy": (None, [P]),
    "ae_stream_sample": (c_int, [P, P, I32P]),
    "ae_sampler_pick": (c_int, [P, F32P, c_sz, ctypes.POINTER(ctypes.c_uint8), I32P]),
    "ae_generator_create": (c_int, [P, P, I32P, c_sz, ctypes.POINTER(P)]),
    "ae_generator_destroy": (None, [P]),
    "ae_generator_next": (c_int, [P, I32P, ctypes.POINTER(ctypes.c_void_p), SZP, I32P]),
    "ae_generator_set_piece": (c_int, [P, c_str, c_sz]),
    "ae_generator_stop_index": (c_i32, [P]),
    "ae_generate": (c_int, [P, I32P, c_sz, P, CALLBACK, P, SZP, I32P]),
}


@pytest.fixture(scope="module")
def lib(build: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build / "libastroedge.so.1"))
    for name, (res, args) in SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


def header_functions() -> set[str]:
    import re

    text = (REPO / "runtime" / "include" / "astroedge.h").read_text()
    return set(re.findall(r"AE_API [^;(]*?\b(ae_\w+)\(", text))


def test_every_header_function_is_exported_and_bound_here(lib: ctypes.CDLL) -> None:
    declared = header_functions()
    assert declared == set(SIGNATURES), declared ^ set(SIGNATURES)
    exported = subprocess.run(
        ["nm", "-D", "--defined-only", str(BUILD / "libastroedge.so.1")], capture_output=True, text=True, check=True
    ).stdout
    names = {line.split()[-1] for line in exported.splitlines() if " T " in line}
    assert names == declared  # nothing else leaks out of the library
    assert lib.ae_api_version() == 3
    soname = subprocess.run(["objdump", "-p", str(BUILD / "libastroedge.so.1")], capture_output=True, text=True, check=True).stdout
    assert "SONAME               libastroedge.so.1" in soname


class Api:
    """Small typed helpers over the ctypes handles, asserting on unexpected statuses."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def ok(self, status: int) -> None:
        assert status == AE_OK, (self.lib.ae_status_string(status), self.lib.ae_last_error())

    def engine_params(self, package: Path | None, **fields: object) -> P:
        p = P()
        self.ok(self.lib.ae_engine_params_create(ctypes.byref(p)))
        if package is not None:
            self.ok(self.lib.ae_engine_params_set_package_dir(p, str(package).encode()))
        for k, v in fields.items():
            self.ok(getattr(self.lib, f"ae_engine_params_set_{k}")(p, v))
        return p

    def create_engine(self, package: Path, **fields: object) -> tuple[int, P]:
        params = self.engine_params(package, **fields)
        handle = P(1234)
        try:
            status = self.lib.ae_engine_create(params, ctypes.byref(handle))
        finally:
            self.lib.ae_engine_params_destroy(params)
        return status, handle

    def engine(self, package: Path, **fields: object) -> P:
        status, handle = self.create_engine(package, **fields)
        self.ok(status)
        return handle

    def stream(self, engine: P) -> P:
        handle = P()
        self.ok(self.lib.ae_stream_create(engine, ctypes.byref(handle)))
        return handle

    def feed(self, stream: P, tokens: list[int]) -> np.ndarray:
        logits = (ctypes.c_float * 256)()
        self.ok(self.lib.ae_stream_feed(stream, (ctypes.c_int32 * len(tokens))(*tokens), len(tokens), logits))
        return np.array(logits)

    def logits(self, stream: P) -> np.ndarray:
        out = (ctypes.c_float * 256)()
        self.ok(self.lib.ae_stream_logits(stream, out))
        return np.array(out)

    def gen_params(self, stops: tuple[bytes, ...] = (), **fields: object) -> P:
        p = P()
        self.ok(self.lib.ae_generate_params_create(ctypes.byref(p)))
        for k, v in fields.items():
            self.ok(getattr(self.lib, f"ae_generate_params_set_{k}")(p, v))
        for s in stops:
            self.ok(self.lib.ae_generate_params_add_stop(p, s, len(s)))
        return p

    def generate(
        self, stream: P, prompt: list[int], stop_after: int = 0, stops: tuple[bytes, ...] = (), **fields: object
    ) -> tuple[list[int], list[bytes], int]:
        params = self.gen_params(stops, **fields)
        got: list[tuple[int, bytes]] = []

        def on_token(token: int, piece: int, n: int, _: object) -> int:
            got.append((token, ctypes.string_at(piece, n)))
            return int(stop_after > 0 and len(got) >= stop_after)

        n, stop = ctypes.c_size_t(), ctypes.c_int32()
        cb = CALLBACK(on_token)
        try:
            ids = (ctypes.c_int32 * max(1, len(prompt)))(*prompt)
            self.ok(self.lib.ae_generate(stream, ids, len(prompt), params, cb, None, ctypes.byref(n), ctypes.byref(stop)))
        finally:
            self.lib.ae_generate_params_destroy(params)
        assert n.value == len(got)
        return [t for t, _ in got], [p for _, p in got], stop.value

    def pull(
        self, stream: P, prompt: list[int], stops: tuple[bytes, ...] = (), text_of: object = None, **fields: object
    ) -> tuple[list[int], list[bytes | None], int]:
        """The pull loop over ae_generator_next; `text_of(token)` pushes each token's text ("hf" packages)."""
        params, gen = self.gen_params(stops, **fields), P()
        got: list[tuple[int, bytes | None]] = []
        try:
            ids = (ctypes.c_int32 * max(1, len(prompt)))(*prompt)
            self.ok(self.lib.ae_generator_create(stream, params, ids, len(prompt), ctypes.byref(gen)))
            token, done, piece, size = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_void_p(), ctypes.c_size_t()
            while True:
                self.ok(self.lib.ae_generator_next(gen, ctypes.byref(token), ctypes.byref(piece), ctypes.byref(size), ctypes.byref(done)))
                if done.value:
                    assert token.value == -1 and piece.value is None and size.value == 0
                    break
                got.append((token.value, None if piece.value is None else ctypes.string_at(piece.value, size.value)))
                if text_of is not None:
                    text = text_of(token.value)  # type: ignore[operator]
                    self.ok(self.lib.ae_generator_set_piece(gen, text, len(text)))
            stop = self.lib.ae_generator_stop_index(gen)
            self.ok(self.lib.ae_generator_next(gen, ctypes.byref(token), None, None, ctypes.byref(done)))
            assert done.value == 1  # done stays done
        finally:
            self.lib.ae_generator_destroy(gen)
            self.lib.ae_generate_params_destroy(params)
        return [t for t, _ in got], [p for _, p in got], stop


@pytest.fixture(scope="module")
def api(lib: ctypes.CDLL) -> Api:
    return Api(lib)


@pytest.fixture(scope="module")
def engine(api: Api, package: Path) -> Iterator[P]:
    os.environ.pop("ASTROEDGE_ORT_LIBRARY", None)
    handle = api.engine(package)
    yield handle
    api.lib.ae_engine_destroy(handle)


def printed(fn: object, handle: P) -> str:
    needed = fn(handle, None, 0)  # type: ignore[operator]
    buf = ctypes.create_string_buffer(needed + 1)
    assert fn(handle, buf, len(buf)) == needed  # type: ignore[operator]
    return buf.value.decode()


def test_engine_params_set_validate_and_print(api: Api, package: Path) -> None:
    lib = api.lib
    p = api.engine_params(None)
    try:
        assert lib.ae_engine_params_validate(p) == AE_ERR_INVALID_ARGUMENT and b"package_dir" in lib.ae_last_error()
        assert printed(lib.ae_engine_params_print, p) == (
            "package_dir=(unset) device=cpu device_id=0 num_threads=0 amsu_library=(env ASTROEDGE_ORT_LIBRARY) "
            "verify_checksums=1 cache_dir=(default)"
        )
        api.ok(lib.ae_engine_params_set_package_dir(p, str(package).encode()))
        api.ok(lib.ae_engine_params_validate(p))
        for setter, value, word in (
            (lib.ae_engine_params_set_device, b"tpu", b"device"),
            (lib.ae_engine_params_set_num_threads, -1, b"num_threads"),
            (lib.ae_engine_params_set_num_threads, 2**31 - 1, b"num_threads"),
            (lib.ae_engine_params_set_device_id, -2, b"device_id"),
            (lib.ae_engine_params_set_package_dir, b"", b"package_dir"),
        ):
            assert setter(p, value) == AE_ERR_INVALID_ARGUMENT and word in lib.ae_last_error()
        api.ok(lib.ae_engine_params_set_device(p, b"cuda"))
        api.ok(lib.ae_engine_params_set_amsu_library(p, b""))
        assert printed(lib.ae_engine_params_print, p) == (
            f"package_dir={package} device=cuda device_id=0 num_threads=0 amsu_library=(fallback) verify_checksums=1 cache_dir=(default)"
        )
        assert lib.ae_engine_params_print(None, None, 0) == -1
        assert lib.ae_engine_params_set_device(None, b"cpu") == AE_ERR_INVALID_ARGUMENT
    finally:
        lib.ae_engine_params_destroy(p)
        lib.ae_engine_params_destroy(None)


def test_generate_params_defaults_setters_and_print(api: Api) -> None:
    lib = api.lib
    p = api.gen_params()
    try:
        defaults = (
            lib.ae_generate_params_max_tokens(p),
            lib.ae_generate_params_temperature(p),
            lib.ae_generate_params_top_k(p),
            lib.ae_generate_params_top_p(p),
            lib.ae_generate_params_repetition_penalty(p),
            lib.ae_generate_params_seed(p),
        )
        assert defaults == (200, pytest.approx(0.8), 0, 1.0, 1.0, 0)  # the team's one set (COMMON.md)
        assert (
            printed(lib.ae_generate_params_print, p) == "max_tokens=200 temperature=0.8 top_k=0 top_p=1 repetition_penalty=1 seed=0 stop=[]"
        )
        buf = ctypes.create_string_buffer(16)
        assert lib.ae_generate_params_print(p, buf, 16) > 15 and len(buf.value) == 15  # truncated, NUL-terminated
        for name, value in (
            ("top_p", 0.0),
            ("top_p", 1.5),
            ("top_p", float("nan")),
            ("temperature", -1.0),
            ("temperature", 1e-30),
            ("temperature", float("inf")),
            ("max_tokens", -1),
            ("max_tokens", 2**31 - 1),
            ("top_k", -1),
            ("repetition_penalty", 0.0),
            ("repetition_penalty", float("inf")),
        ):
            assert getattr(lib, f"ae_generate_params_set_{name}")(p, value) == AE_ERR_INVALID_ARGUMENT, name
            assert name.encode() in lib.ae_last_error()
        assert printed(lib.ae_generate_params_print, p).startswith("max_tokens=200 temperature=0.8 ")  # refused setters changed nothing
        api.ok(lib.ae_generate_params_set_repetition_penalty(p, 0.5))  # > 0 is allowed: < 1 favours repeats
        api.ok(lib.ae_generate_params_add_stop(p, b'a"\n', 3))
        assert lib.ae_generate_params_add_stop(p, b"", 0) == AE_ERR_INVALID_ARGUMENT
        n = ctypes.c_size_t()
        assert lib.ae_generate_params_stop_count(p) == 1 and lib.ae_generate_params_stop(p, 0, ctypes.byref(n)) == b'a"\n' and n.value == 3
        assert lib.ae_generate_params_stop(p, 1, None) is None
        assert printed(lib.ae_generate_params_print, p).endswith('repetition_penalty=0.5 seed=0 stop=["a\\"\\x0a"]')
        api.ok(lib.ae_generate_params_clear_stops(p))
        assert lib.ae_generate_params_stop_count(p) == 0
        api.ok(lib.ae_generate_params_validate(p))
    finally:
        lib.ae_generate_params_destroy(p)


def test_engine_facts_follow_the_manifest(api: Api, engine: P, package: Path) -> None:
    raw = (package / "manifest.json").read_bytes()
    m = json.loads(raw)
    lib = api.lib
    assert lib.ae_engine_vocab_size(engine) == m["model"]["vocab_size"] == 256
    assert lib.ae_engine_max_position(engine) == m["max_position"]
    assert lib.ae_engine_state_size(engine) == m["state_bytes_per_stream"]
    assert lib.ae_engine_kernel(engine) == b"fallback" and lib.ae_engine_device(engine) == b"cpu"
    assert lib.ae_engine_precision(engine) == b"fp32" and lib.ae_engine_tokenizer(engine) == b"bytes"
    assert lib.ae_engine_manifest_sha256(engine).decode() == hashlib.sha256(raw).hexdigest()
    n = ctypes.c_size_t(7)
    assert lib.ae_engine_tokenizer_data(engine, ctypes.byref(n)) is None and n.value == 0
    assert lib.ae_engine_state_count(engine) == len(m["state"])
    for i, s in enumerate(m["state"]):
        dims = (ctypes.c_int64 * 8)()
        assert lib.ae_engine_state_name(engine, i).decode() == s["name"]
        rank = lib.ae_engine_state_shape(engine, i, dims, 8)
        assert list(dims[:rank]) == s["shape"][1:]
    assert lib.ae_engine_state_name(engine, len(m["state"])) is None and lib.ae_engine_state_shape(engine, 99, None, 0) == 0
    assert lib.ae_engine_vocab_size(None) == 0 and lib.ae_engine_kernel(None) is None
    lib.ae_engine_destroy(None)
    lib.ae_stream_destroy(None)
    lib.ae_sampler_destroy(None)


def test_tokenize_and_detokenize_bytes(api: Api, engine: P) -> None:
    lib, text = api.lib, "héllo ☃".encode()
    n = ctypes.c_size_t()
    assert lib.ae_tokenize(engine, text, len(text), None, 0, ctypes.byref(n)) == AE_ERR_BUFFER_TOO_SMALL
    assert n.value == len(text)
    ids = (ctypes.c_int32 * n.value)()
    api.ok(lib.ae_tokenize(engine, text, len(text), ids, n.value, ctypes.byref(n)))
    assert list(ids) == list(text)
    out = ctypes.create_string_buffer(len(text))
    api.ok(lib.ae_detokenize(engine, ids, len(ids), out, len(out), ctypes.byref(n)))
    assert out.raw[: n.value] == text
    ids[0] = 300
    assert lib.ae_detokenize(engine, ids, len(ids), out, len(out), ctypes.byref(n)) == AE_ERR_INVALID_ARGUMENT
    assert b"300" in lib.ae_last_error()


def test_feed_and_step_logits_equal_the_reference_with_nonzero_state(api: Api, engine: P, tiny_checkpoint: Path) -> None:
    prompt = list(PROMPT.encode())
    gen, first = reference_greedy(tiny_checkpoint, prompt, 3)
    stream = api.stream(engine)
    try:
        logits = api.feed(stream, prompt)
        np.testing.assert_allclose(logits, first, rtol=1e-4, atol=1e-4)
        step = (ctypes.c_float * 256)()
        for tok in gen:  # the state is non-zero from here on
            api.ok(api.lib.ae_stream_step(stream, tok, step))
        assert list(step) == list(api.logits(stream))
        assert api.lib.ae_stream_position(stream) == len(prompt) + 3
        ref_next, _ = reference_greedy(tiny_checkpoint, prompt + gen, 1)
        assert int(np.argmax(np.array(step))) == ref_next[0]
    finally:
        api.lib.ae_stream_destroy(stream)


def test_bad_calls_leave_the_stream_unchanged(api: Api, engine: P) -> None:
    lib, stream = api.lib, api.stream(engine)
    try:
        logits = (ctypes.c_float * 256)()
        assert lib.ae_stream_logits(stream, logits) == AE_ERR_NO_LOGITS
        assert lib.ae_stream_feed(stream, (ctypes.c_int32 * 2)(65, 256), 2, logits) == AE_ERR_INVALID_ARGUMENT
        assert b"token 256 at index 1" in lib.ae_last_error()
        assert lib.ae_stream_position(stream) == 0
        assert lib.ae_stream_step(None, 1, None) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_generate(stream, None, 0, None, CALLBACK(), None, None, None) == AE_ERR_NO_LOGITS
        assert b"prompt" in lib.ae_last_error()
        sampler, token = P(), ctypes.c_int32()
        api.ok(lib.ae_sampler_create(None, ctypes.byref(sampler)))
        assert lib.ae_stream_sample(stream, sampler, ctypes.byref(token)) == AE_ERR_NO_LOGITS
        lib.ae_sampler_destroy(sampler)
    finally:
        lib.ae_stream_destroy(stream)


def test_generate_streams_pieces_that_decode_like_python(api: Api, engine: P) -> None:
    stream = api.stream(engine)
    try:
        prompt = list(PROMPT.encode())
        ids, pieces, stop = api.generate(stream, prompt, max_tokens=300, temperature=1.5, seed=7)
        assert len(ids) == 300 and stop == -1 and api.lib.ae_stream_position(stream) == len(prompt) + 300
        assert pieces == utf8_pieces(ids)  # random bytes: U+FFFD repair matches Python's
        api.ok(api.lib.ae_stream_reset(stream))
        assert api.generate(stream, prompt, max_tokens=300, temperature=1.5, seed=7)[0] == ids  # seeded
        api.ok(api.lib.ae_stream_reset(stream))
        greedy_ids, _, _ = api.generate(stream, prompt, max_tokens=20, temperature=0.0)
        api.ok(api.lib.ae_stream_reset(stream))
        assert api.generate(stream, prompt, max_tokens=20, temperature=1.0, top_k=1, seed=3)[0] == greedy_ids  # top_k = 1 is greedy
        api.ok(api.lib.ae_stream_reset(stream))
        ids, _, _ = api.generate(stream, prompt, stop_after=5, max_tokens=50)
        assert len(ids) == 5 and api.lib.ae_stream_position(stream) == len(prompt) + 5  # stopped, all consumed
    finally:
        api.lib.ae_stream_destroy(stream)


def test_generate_stops_at_the_first_stop_string_and_reports_it(api: Api, engine: P) -> None:
    stream = api.stream(engine)
    try:
        prompt = list(PROMPT.encode())
        ids, pieces, _ = api.generate(stream, prompt, max_tokens=80, temperature=1.0, seed=11)
        stop = b"".join(pieces[:30]).decode()[-2:].encode()
        expected = until_stop(pieces, [stop])
        api.ok(api.lib.ae_stream_reset(stream))
        got, got_pieces, index = api.generate(stream, prompt, max_tokens=80, temperature=1.0, seed=11, stops=(b"never-there", stop))
        assert index == 1 and b"".join(got_pieces) == expected and len(got) <= 30  # the stop text is part of the output
        assert got == ids[: len(got)] and api.lib.ae_stream_position(stream) == len(prompt) + len(got)
    finally:
        api.lib.ae_stream_destroy(stream)


def test_sampler_drives_generation_token_by_token_exactly_as_generate(api: Api, engine: P) -> None:
    """What a binding with an HF tokenizer does: ae_stream_sample + ae_stream_step, same tokens as ae_generate."""
    lib, prompt = api.lib, list(PROMPT.encode())
    settings = {"temperature": 0.9, "top_k": 50, "top_p": 0.9, "repetition_penalty": 1.3, "seed": 42}
    stream = api.stream(engine)
    params, sampler = api.gen_params(**settings), P()
    try:
        expected, _, _ = api.generate(stream, prompt, max_tokens=64, **settings)
        api.ok(lib.ae_stream_reset(stream))
        api.ok(lib.ae_sampler_create(params, ctypes.byref(sampler)))
        api.feed(stream, prompt)
        got, token = [], ctypes.c_int32()
        for _ in range(64):
            api.ok(lib.ae_stream_sample(stream, sampler, ctypes.byref(token)))
            api.ok(lib.ae_stream_step(stream, token.value, None))
            got.append(token.value)
        assert got == expected
    finally:
        lib.ae_sampler_destroy(sampler)
        lib.ae_generate_params_destroy(params)
        lib.ae_stream_destroy(stream)


@pytest.mark.parametrize(
    "settings",
    [{"temperature": 0.0}, {"temperature": 1.2, "top_k": 60, "top_p": 0.95, "repetition_penalty": 1.3, "seed": 5}],
)
def test_generator_pulls_exactly_what_generate_pushes(api: Api, engine: P, settings: dict[str, object]) -> None:
    """ae_generate is a loop over AeGenerator: same tokens, pieces, stop index; the pull form stops at the same token."""
    lib, prompt = api.lib, list(PROMPT.encode())
    stream = api.stream(engine)
    try:
        ids, pieces, stop = api.generate(stream, prompt, max_tokens=90, **settings)
        api.ok(lib.ae_stream_reset(stream))
        assert api.pull(stream, prompt, max_tokens=90, **settings) == (ids, pieces, stop) and stop == -1
        assert lib.ae_stream_position(stream) == len(prompt) + 90
        stops = (b"@@none@@", b"".join(pieces[:40])[-3:])  # the first occurrence of these three bytes ends both loops
        api.ok(lib.ae_stream_reset(stream))
        ids, pieces, stop = api.generate(stream, prompt, max_tokens=90, stops=stops, **settings)
        api.ok(lib.ae_stream_reset(stream))
        assert api.pull(stream, prompt, stops=stops, max_tokens=90, **settings) == (ids, pieces, stop)
        assert stop == 1 and b"".join(pieces) == until_stop(pieces, [stops[1]]) and len(ids) <= 40
        assert lib.ae_stream_position(stream) == len(prompt) + len(ids)
        assert api.pull(stream, [], max_tokens=0) == ([], [], -1)  # max_tokens 0: done at once, nothing fed
        assert lib.ae_stream_position(stream) == len(prompt) + len(ids)
    finally:
        lib.ae_stream_destroy(stream)


def test_generator_refusals_change_nothing(api: Api, engine: P) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    stream, gen, token, done = api.stream(engine), P(99), ctypes.c_int32(), ctypes.c_int32()
    try:
        assert lib.ae_generator_create(stream, None, None, 0, ctypes.byref(gen)) == AE_ERR_NO_LOGITS and gen.value is None
        assert b"prompt" in lib.ae_last_error()
        bad = (ctypes.c_int32 * 2)(65, 256)
        assert lib.ae_generator_create(stream, None, bad, 2, ctypes.byref(gen)) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_stream_position(stream) == 0
        assert lib.ae_generator_create(None, None, None, 0, ctypes.byref(gen)) == AE_ERR_INVALID_ARGUMENT
        ids = (ctypes.c_int32 * len(prompt))(*prompt)
        api.ok(lib.ae_generator_create(stream, None, ids, len(prompt), ctypes.byref(gen)))
        assert lib.ae_generator_next(gen, None, None, None, ctypes.byref(done)) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_generator_next(None, ctypes.byref(token), None, None, ctypes.byref(done)) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_generator_set_piece(gen, b"x", 1) == AE_ERR_INVALID_ARGUMENT and b"byte-level" in lib.ae_last_error()
        assert lib.ae_generator_stop_index(None) == -1
        # a token the stream refuses (past max_position) is not consumed and does not move the RNG
        state = np.zeros(lib.ae_stream_state_size(stream) // 4, dtype=np.float32)
        api.ok(lib.ae_stream_get_state(stream, state.ctypes.data_as(F32P), state.nbytes))
        logits = (ctypes.c_float * 256)(*api.logits(stream))
        end = lib.ae_engine_max_position(engine)
        api.ok(lib.ae_stream_set_state(stream, state.ctypes.data_as(F32P), state.nbytes, end, logits))
        assert lib.ae_generator_next(gen, ctypes.byref(token), None, None, ctypes.byref(done)) == AE_ERR_POSITION
        assert lib.ae_stream_position(stream) == end
        api.ok(lib.ae_stream_set_state(stream, state.ctypes.data_as(F32P), state.nbytes, len(prompt), logits))
        api.ok(lib.ae_generator_next(gen, ctypes.byref(token), None, None, ctypes.byref(done)))
        first = token.value
        lib.ae_generator_destroy(gen)
        gen = P()
        api.ok(lib.ae_stream_reset(stream))
        assert api.pull(stream, prompt, max_tokens=1)[0] == [first]  # the RNG was where a fresh generator's is
    finally:
        lib.ae_generator_destroy(gen)
        lib.ae_generator_destroy(None)
        lib.ae_stream_destroy(stream)


@pytest.mark.parametrize(
    "settings", [{"temperature": 0.0, "repetition_penalty": 1.5}, {"temperature": 1.1, "top_k": 20, "top_p": 0.9, "seed": 8}]
)
def test_sampler_pick_on_caller_logits_equals_stream_sample(api: Api, engine: P, settings: dict[str, object]) -> None:
    """ae_sampler_pick (logits held by the caller, e.g. PyTorch) picks what ae_stream_sample picks from the stream's."""
    lib, prompt = api.lib, list(PROMPT.encode())
    stream, params = api.stream(engine), api.gen_params(**settings)
    a, b, token = P(), P(), ctypes.c_int32()
    try:
        logits = api.feed(stream, prompt).astype(np.float32)
        seen = np.zeros(256, dtype=np.uint8)
        seen[prompt] = 1
        api.ok(lib.ae_sampler_create(params, ctypes.byref(a)))
        api.ok(lib.ae_sampler_create(params, ctypes.byref(b)))
        want, got = [], []
        for _ in range(50):
            api.ok(lib.ae_stream_sample(stream, a, ctypes.byref(token)))
            want.append(token.value)
            seen_p = seen.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8))
            api.ok(lib.ae_sampler_pick(b, logits.ctypes.data_as(F32P), 256, seen_p, ctypes.byref(token)))
            got.append(token.value)
        assert got == want
        api.ok(lib.ae_sampler_pick(b, logits.ctypes.data_as(F32P), 256, None, ctypes.byref(token)))  # NULL seen: no history
        bad = logits.copy()
        bad[3] = np.nan
        assert lib.ae_sampler_pick(b, bad.ctypes.data_as(F32P), 256, None, ctypes.byref(token)) == AE_ERR_NON_FINITE
        assert lib.ae_sampler_pick(b, logits.ctypes.data_as(F32P), 0, None, ctypes.byref(token)) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_sampler_pick(None, logits.ctypes.data_as(F32P), 256, None, ctypes.byref(token)) == AE_ERR_INVALID_ARGUMENT
    finally:
        lib.ae_sampler_destroy(a)
        lib.ae_sampler_destroy(b)
        lib.ae_generate_params_destroy(params)
        lib.ae_stream_destroy(stream)


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits(api: Api, engine: P) -> None:
    """Greedy with a penalty, recomputed here from the stream's logits and its history."""
    lib, prompt = api.lib, list(PROMPT.encode())
    s = api.stream(engine)
    try:
        penalised, _, _ = api.generate(s, prompt, max_tokens=40, temperature=0.0, repetition_penalty=1.5)
        api.ok(lib.ae_stream_reset(s))
        plain, _, _ = api.generate(s, prompt, max_tokens=40, temperature=0.0)
        api.ok(lib.ae_stream_reset(s))
        seen, expected = set(prompt), []
        z = api.feed(s, prompt).astype(np.float64)
        for _ in range(40):
            idx = sorted(seen)
            z[idx] = np.where(z[idx] > 0, z[idx] / 1.5, z[idx] * 1.5)
            tok = int(np.argmax(z))
            expected.append(tok)
            seen.add(tok)
            z = api.feed(s, [tok]).astype(np.float64)
    finally:
        lib.ae_stream_destroy(s)
    assert penalised == expected
    assert penalised != plain  # the penalty changed the continuation


def test_decode_batch_equals_single_streams_bitwise(api: Api, engine: P) -> None:
    lib = api.lib
    prompts = [b"To be", b"or not to be,", b"that", b"is the question: whether"]  # different positions
    batch = [api.stream(engine) for _ in prompts]
    single = [api.stream(engine) for _ in prompts]
    try:
        for b, s, p in zip(batch, single, prompts, strict=True):
            api.feed(b, list(p))
            api.feed(s, list(p))
        handles = (P * len(batch))(*[h.value for h in batch])
        out = (ctypes.c_float * (256 * len(batch)))()
        tokens = [int(np.argmax(api.logits(b))) for b in batch]
        for _ in range(12):
            api.ok(lib.ae_decode_batch(handles, (ctypes.c_int32 * len(tokens))(*tokens), len(tokens), out))
            rows = np.array(out).reshape(len(batch), 256)
            for i, s in enumerate(single):
                one = api.feed(s, [tokens[i]])
                assert rows[i].tobytes() == one.tobytes()  # bit for bit
                assert api.logits(batch[i]).tobytes() == one.tobytes()
            tokens = [int(np.argmax(r)) for r in rows]
        size = lib.ae_stream_state_size(batch[0])
        for b, s in zip(batch, single, strict=True):
            x, y = (ctypes.c_float * (size // 4))(), (ctypes.c_float * (size // 4))()
            api.ok(lib.ae_stream_get_state(b, x, size))
            api.ok(lib.ae_stream_get_state(s, y, size))
            assert bytes(x) == bytes(y) and lib.ae_stream_position(b) == lib.ae_stream_position(s)

        # all or nothing: one bad token refuses the whole batch and changes no stream
        before = [lib.ae_stream_position(b) for b in batch]
        assert lib.ae_decode_batch(handles, (ctypes.c_int32 * 4)(1, 2, 999, 3), 4, None) == AE_ERR_INVALID_ARGUMENT
        assert b"stream 2" in lib.ae_last_error() and b"999" in lib.ae_last_error()
        twice = (P * 2)(batch[0].value, batch[0].value)
        assert lib.ae_decode_batch(twice, (ctypes.c_int32 * 2)(1, 2), 2, None) == AE_ERR_INVALID_ARGUMENT
        assert b"twice" in lib.ae_last_error()
        assert [lib.ae_stream_position(b) for b in batch] == before
        api.ok(lib.ae_decode_batch(None, None, 0, None))
    finally:
        for h in batch + single:
            lib.ae_stream_destroy(h)


def test_decode_batch_refuses_streams_of_two_engines(api: Api, engine: P, package: Path) -> None:
    other = api.engine(package)
    a, b = api.stream(engine), api.stream(other)
    try:
        api.feed(a, [1])
        api.feed(b, [1])
        assert api.lib.ae_decode_batch((P * 2)(a.value, b.value), (ctypes.c_int32 * 2)(1, 2), 2, None) == AE_ERR_MISMATCH
    finally:
        api.lib.ae_stream_destroy(a)
        api.lib.ae_stream_destroy(b)
        api.lib.ae_engine_destroy(other)


def test_state_in_memory_round_trips_and_refuses_bad_values(api: Api, engine: P) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    s, t = api.stream(engine), api.stream(engine)
    try:
        logits = api.feed(s, prompt)
        size = lib.ae_stream_state_size(s)
        assert size == lib.ae_engine_state_size(engine)
        state = (ctypes.c_float * (size // 4))()
        assert lib.ae_stream_get_state(s, state, size - 1) == AE_ERR_BUFFER_TOO_SMALL
        api.ok(lib.ae_stream_get_state(s, state, size))
        assert any(v != 0.0 for v in state)
        c_logits = (ctypes.c_float * 256)(*logits)
        api.ok(lib.ae_stream_set_state(t, state, size, len(prompt), c_logits))
        assert lib.ae_stream_position(t) == len(prompt)
        assert api.generate(t, [], max_tokens=16, seed=5)[0] == api.generate(s, [], max_tokens=16, seed=5)[0]

        api.ok(lib.ae_stream_set_state(t, state, size, 3, None))  # no logits: generate needs a prompt
        assert lib.ae_stream_logits(t, c_logits) == AE_ERR_NO_LOGITS
        position = lib.ae_stream_position(t)
        assert lib.ae_stream_set_state(t, state, size - 4, 0, None) == AE_ERR_INVALID_ARGUMENT
        assert lib.ae_stream_set_state(t, state, size, lib.ae_engine_max_position(engine) + 1, None) == AE_ERR_INVALID_ARGUMENT
        state[5] = float("nan")
        assert lib.ae_stream_set_state(t, state, size, 0, None) == AE_ERR_NON_FINITE
        state[5] = 0.0
        c_logits[7] = float("inf")
        assert lib.ae_stream_set_state(t, state, size, 0, c_logits) == AE_ERR_NON_FINITE
        assert b"logit 7" in lib.ae_last_error()
        assert lib.ae_stream_position(t) == position  # refused: unchanged
    finally:
        lib.ae_stream_destroy(s)
        lib.ae_stream_destroy(t)


def test_clone_is_independent_and_reset_restarts(api: Api, engine: P) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    a = api.stream(engine)
    b = P()
    try:
        api.feed(a, prompt)
        api.ok(lib.ae_stream_clone(a, ctypes.byref(b)))
        ids_a, _, _ = api.generate(a, [], max_tokens=16)
        ids_b, _, _ = api.generate(b, [], max_tokens=16)
        assert ids_a == ids_b and lib.ae_stream_position(b) == len(prompt) + 16
        api.ok(lib.ae_stream_reset(a))
        assert lib.ae_stream_position(a) == 0
        assert api.generate(a, prompt, max_tokens=16)[0] == ids_a
    finally:
        lib.ae_stream_destroy(a)
        lib.ae_stream_destroy(b)


def test_state_files_round_trip_and_refuse_foreign_newer_damaged_or_special(api: Api, engine: P, tmp_path: Path) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    s = api.stream(engine)
    try:
        api.feed(s, prompt)
        path = tmp_path / "s.aestate"
        api.ok(lib.ae_stream_save_state(s, str(path).encode()))
        raw = path.read_bytes()
        assert len(raw) == lib.ae_engine_state_file_size(engine)
        assert raw[:8] == b"AESTATE\0" and int.from_bytes(raw[8:12], "little") == 2
        assert raw[16:48].hex() == lib.ae_engine_manifest_sha256(engine).decode()  # tied to manifest.json
        expect, _, _ = api.generate(s, [], max_tokens=10)
        api.ok(lib.ae_stream_reset(s))
        api.ok(lib.ae_stream_load_state(s, str(path).encode()))
        assert lib.ae_stream_position(s) == len(prompt)
        assert api.generate(s, [], max_tokens=10)[0] == expect

        def variant(name: str, offset: int, value: bytes) -> bytes:
            data = bytearray(raw)
            data[offset : offset + len(value)] = value
            data[-32:] = hashlib.sha256(bytes(data[:-32])).digest()  # a consistent file, only the field differs
            (tmp_path / name).write_bytes(bytes(data))
            return str(tmp_path / name).encode()

        position = lib.ae_stream_position(s)
        assert lib.ae_stream_load_state(s, variant("foreign", 16, b"\x01" * 32)) == AE_ERR_MISMATCH
        assert b"another package" in lib.ae_last_error()
        assert lib.ae_stream_load_state(s, variant("newer", 8, (3).to_bytes(4, "little"))) == AE_ERR_VERSION
        assert b"version 3 is newer" in lib.ae_last_error()
        assert lib.ae_stream_load_state(s, variant("v1", 8, (1).to_bytes(4, "little"))) == AE_ERR_VERSION
        assert lib.ae_stream_load_state(s, variant("nan", 72 + 4 * 3, np.float32(np.nan).tobytes())) == AE_ERR_NON_FINITE
        assert lib.ae_stream_load_state(s, variant("far", 48, (2**62).to_bytes(8, "little"))) == AE_ERR_FORMAT
        (tmp_path / "cut").write_bytes(raw[:-1])
        assert lib.ae_stream_load_state(s, str(tmp_path / "cut").encode()) == AE_ERR_FORMAT
        (tmp_path / "huge").write_bytes(raw + bytes(1 << 20))
        assert lib.ae_stream_load_state(s, str(tmp_path / "huge").encode()) == AE_ERR_FORMAT
        damaged = bytearray(raw)
        damaged[100] ^= 1
        (tmp_path / "damaged").write_bytes(bytes(damaged))
        assert lib.ae_stream_load_state(s, str(tmp_path / "damaged").encode()) == AE_ERR_FORMAT
        assert b"checksum" in lib.ae_last_error()
        os.mkfifo(tmp_path / "fifo")
        assert lib.ae_stream_load_state(s, str(tmp_path / "fifo").encode()) == AE_ERR_IO  # no hang
        assert b"FIFO" in lib.ae_last_error()
        assert lib.ae_stream_load_state(s, b"/dev/zero") == AE_ERR_IO
        assert lib.ae_stream_load_state(s, str(tmp_path).encode()) == AE_ERR_IO
        assert lib.ae_stream_position(s) == position  # refused loads changed nothing
        assert lib.ae_stream_save_state(s, str(tmp_path / "no" / "dir" / "s").encode()) == AE_ERR_IO
        assert lib.ae_stream_save_state(s, str(tmp_path).encode()) == AE_ERR_IO
        assert lib.ae_stream_load_state(s, str(tmp_path / "missing").encode()) == AE_ERR_IO
    finally:
        lib.ae_stream_destroy(s)
    names = ["cut", "damaged", "far", "fifo", "foreign", "huge", "nan", "newer", "s.aestate", "v1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no temp file left behind


def test_engine_create_errors(api: Api, package: Path, tmp_path: Path) -> None:
    lib = api.lib
    status, handle = api.create_engine(tmp_path / "missing")
    assert status == AE_ERR_IO and handle.value is None
    p = P()
    api.ok(lib.ae_engine_params_create(ctypes.byref(p)))
    assert lib.ae_engine_create(p, ctypes.byref(handle)) == AE_ERR_INVALID_ARGUMENT and b"package_dir" in lib.ae_last_error()
    lib.ae_engine_params_destroy(p)
    bad = copy_package(package, tmp_path / "bad.aepkg", {"state": [{"name": "h.0"}]})
    assert api.create_engine(bad)[0] == AE_ERR_FORMAT and b"state[0].dtype" in lib.ae_last_error()
    status, _ = api.create_engine(package, amsu_library=str(tmp_path / "x.so").encode())
    assert status == AE_ERR_IO and b"x.so: no such file" in lib.ae_last_error()
    status, _ = api.create_engine(package, device=b"cuda")
    assert status == AE_ERR_UNSUPPORTED and b"CUDA execution provider" in lib.ae_last_error()
    assert b"\n" not in lib.ae_last_error()
    status, _ = api.create_engine(package, device=b"jetson")
    assert status == AE_ERR_UNSUPPORTED and b"TensorRT" in lib.ae_last_error()


def test_amsu_library_from_the_environment_is_never_silently_replaced(
    api: Api, package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = api.lib
    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", str(tmp_path / "gone.so"))
    status, handle = api.create_engine(package)
    assert status == AE_ERR_IO and b"ASTROEDGE_ORT_LIBRARY" in lib.ae_last_error() and handle.value is None
    engine = api.engine(package, amsu_library=b"")  # "" chooses the fallback on purpose, whatever the environment
    assert lib.ae_engine_kernel(engine) == b"fallback"
    lib.ae_engine_destroy(engine)
    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")
    engine = api.engine(package)
    assert lib.ae_engine_kernel(engine) == b"fallback"
    lib.ae_engine_destroy(engine)
    if AMSU_LIB.is_file():
        monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", str(AMSU_LIB))
        engine = api.engine(package)
        assert lib.ae_engine_kernel(engine) == b"library"
        lib.ae_engine_destroy(engine)


def test_one_engine_serves_streams_on_four_threads(api: Api, engine: P) -> None:
    prompts = ["To be", "or not", "to be:", "that is"]
    expected = []
    for p in prompts:
        s = api.stream(engine)
        expected.append(api.generate(s, list(p.encode()), max_tokens=24)[0])
        api.lib.ae_stream_destroy(s)
    got: dict[int, list[int]] = {}

    def work(i: int) -> None:
        s = api.stream(engine)
        got[i] = api.generate(s, list(prompts[i].encode()), max_tokens=24)[0]
        api.lib.ae_stream_destroy(s)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(4)] == expected


# ------------------------------------------------------------------------------------------------
# Hostile packages (issue 13, C side): paths, file types, checksums of every byte that runs


def rewrite_manifest(pkg: Path, edit: object) -> None:
    """Apply `edit(manifest)` and re-list every file's size and sha256 (a consistent, re-signed package)."""
    m = json.loads((pkg / "manifest.json").read_text())
    edit(m)  # type: ignore[operator]
    for name in m["files"]:
        if (pkg / name).is_file():
            data = (pkg / name).read_bytes()
            m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (pkg / "manifest.json").write_text(json.dumps(m, indent=1))


def external_data_package(src: Path, dst: Path) -> Path:
    """The package with its weights moved to model.onnx.data (as the exporter does for big models)."""
    import onnx

    shutil.copytree(src, dst)
    model = onnx.load(str(dst / "model.onnx"))
    onnx.save_model(
        model,
        str(dst / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=64,
    )

    def edit(m: dict) -> None:
        m["onnx"]["external_data"] = "model.onnx.data"
        m["files"]["model.onnx.data"] = {}

    rewrite_manifest(dst, edit)
    return dst


def hf_package(src: Path, dst: Path, text: bytes) -> Path:
    shutil.copytree(src, dst)
    (dst / "tokenizer.json").write_bytes(text)

    def edit(m: dict) -> None:
        m["tokenizer"] = {"type": "hf", "vocab_size": 256, "file": "tokenizer.json"}
        m["files"]["tokenizer.json"] = {}

    rewrite_manifest(dst, edit)
    return dst


def refused(api: Api, package: Path, status: int, *words: str) -> str:
    got, handle = api.create_engine(package)
    msg = api.lib.ae_last_error().decode()
    assert got == status and handle.value is None, (got, msg)
    assert "\n" not in msg and all(w in msg for w in words), msg
    return msg


def test_external_data_runs_and_every_byte_of_it_is_verified(api: Api, engine: P, package: Path, tmp_path: Path) -> None:
    ext = external_data_package(package, tmp_path / "ext.aepkg")
    assert (ext / "model.onnx.data").stat().st_size > (ext / "model.onnx").stat().st_size
    e = api.engine(ext)
    a, b = api.stream(e), api.stream(engine)
    try:
        assert api.feed(a, list(PROMPT.encode())).tobytes() == api.feed(b, list(PROMPT.encode())).tobytes()
    finally:
        api.lib.ae_stream_destroy(a)
        api.lib.ae_stream_destroy(b)
        api.lib.ae_engine_destroy(e)

    data = bytearray((ext / "model.onnx.data").read_bytes())
    data[len(data) // 3 : len(data) // 3 + 8] = bytes(8)  # zeroed weights, same size
    (ext / "model.onnx.data").write_bytes(bytes(data))
    refused(api, ext, AE_ERR_CHECKSUM, "model.onnx.data", "sha256")
    (ext / "model.onnx.data").write_bytes(bytes(data[:-4]))
    refused(api, ext, AE_ERR_CHECKSUM, "model.onnx.data", "bytes")

    unlisted = external_data_package(package, tmp_path / "unlisted.aepkg")

    def drop(m: dict) -> None:
        m["onnx"]["external_data"] = None
        del m["files"]["model.onnx.data"]

    rewrite_manifest(unlisted, drop)
    refused(api, unlisted, AE_ERR_FORMAT, "model.onnx", "keeps its data in 'model.onnx.data'", "not the package's listed")


def test_graph_external_data_location_outside_the_package_is_refused(api: Api, package: Path, tmp_path: Path) -> None:
    import onnx

    for i, location in enumerate(("../outside.data", "/etc/passwd", "sub/model.onnx.data")):
        pkg = external_data_package(package, tmp_path / f"loc{i}.aepkg")
        shutil.copy(pkg / "model.onnx.data", tmp_path / "outside.data")
        model = onnx.load(str(pkg / "model.onnx"), load_external_data=False)
        for t in model.graph.initializer:
            for entry in t.external_data:
                if entry.key == "location":
                    entry.value = location
        (pkg / "model.onnx").write_bytes(model.SerializeToString())
        rewrite_manifest(pkg, lambda m: None)
        refused(api, pkg, AE_ERR_FORMAT, "model.onnx", location, "not the package's listed")


@pytest.mark.parametrize("field", ["onnx.file", "onnx.external_data", "tokenizer.file", "files"])
@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "sub/model.onnx", "..", ".hidden"])
def test_every_manifest_field_that_names_a_file_refuses_traversal(api: Api, package: Path, tmp_path: Path, field: str, name: str) -> None:
    pkg = copy_package(package, tmp_path / "p.aepkg")
    m = json.loads((pkg / "manifest.json").read_text())
    if field == "onnx.file":
        m["onnx"]["file"] = name
    elif field == "onnx.external_data":
        m["onnx"]["external_data"] = name
    elif field == "tokenizer.file":
        m["tokenizer"] = {"type": "hf", "vocab_size": 256, "file": name}
    else:
        m["files"][name] = dict(m["files"]["model.onnx"])
    (pkg / "manifest.json").write_text(json.dumps(m))
    refused(api, pkg, AE_ERR_FORMAT, field)


def test_symlinks_fifos_and_devices_in_the_package_are_refused_without_a_hang(api: Api, package: Path, tmp_path: Path) -> None:
    ext = external_data_package(package, tmp_path / "ext.aepkg")
    hf = hf_package(package, tmp_path / "hf.aepkg", b'{"model": {"type": "BPE"}}')
    for pkg, name in ((package, "manifest.json"), (package, "model.onnx"), (ext, "model.onnx.data"), (hf, "tokenizer.json")):
        for kind in ("symlink-inside", "symlink-outside", "devzero", "fifo"):
            bad = tmp_path / f"{pkg.name}-{name}-{kind}"
            shutil.copytree(pkg, bad)
            target = bad / name
            target.unlink()
            if kind == "symlink-inside":  # same bytes, a link to a copy inside the package: still refused
                shutil.copy(pkg / name, bad / "copy")
                target.symlink_to("copy")
            elif kind == "symlink-outside":
                shutil.copy(pkg / name, tmp_path / f"{bad.name}.real")
                target.symlink_to(tmp_path / f"{bad.name}.real")
            elif kind == "devzero":
                target.symlink_to("/dev/zero")
            else:
                os.mkfifo(target)
            msg = refused(api, bad, AE_ERR_IO, name)
            assert ("symbolic link" in msg) if kind != "fifo" else ("FIFO" in msg), msg
    (tmp_path / "dir.aepkg").mkdir()
    (tmp_path / "dir.aepkg" / "manifest.json").mkdir()
    refused(api, tmp_path / "dir.aepkg", AE_ERR_IO, "a folder")
    refused(api, package / "manifest.json", AE_ERR_IO, "not a directory")


def test_hf_tokenizer_bytes_are_listed_verified_and_handed_over(api: Api, package: Path, tmp_path: Path) -> None:
    text = '{"version": "1.0", "model": {"type": "BPE", "vocab": {"é": 0}}}'.encode()
    hf = hf_package(package, tmp_path / "hf.aepkg", text)
    e = api.engine(hf)
    try:
        n = ctypes.c_size_t()
        data = api.lib.ae_engine_tokenizer_data(e, ctypes.byref(n))
        assert ctypes.string_at(data, n.value) == text and api.lib.ae_engine_tokenizer(e) == b"hf"
        count = ctypes.c_size_t()
        assert api.lib.ae_tokenize(e, b"x", 1, (ctypes.c_int32 * 1)(), 1, ctypes.byref(count)) == AE_ERR_UNSUPPORTED
        assert b"tokenizer.json" in api.lib.ae_last_error()
        s = api.stream(e)
        api.feed(s, [1, 2])
        params = api.gen_params(stops=(b"x",))
        assert api.lib.ae_generate(s, None, 0, params, CALLBACK(), None, None, None) == AE_ERR_UNSUPPORTED
        api.lib.ae_generate_params_destroy(params)
        ids, pieces, _ = api.generate(s, [], max_tokens=3)  # token-level: no pieces
        assert len(ids) == 3 and pieces == [b"", b"", b""]
        # the generator matches stop strings on the text the binding pushes back for each token
        api.ok(api.lib.ae_stream_reset(s))
        ids, none, stop = api.pull(s, [1, 2], max_tokens=40, temperature=1.0, seed=3)
        assert none == [None] * 40 and stop == -1
        text_of = lambda t: b"<%d>" % t  # noqa: E731 - a stand-in tokenizer: token 17 reads "<17>"
        stops = (b"@@", b"".join(text_of(t) for t in ids[:25])[-5:])
        api.ok(api.lib.ae_stream_reset(s))
        got, _, stop = api.pull(s, [1, 2], stops=stops, text_of=text_of, max_tokens=40, temperature=1.0, seed=3)
        want = until_stop([text_of(t) for t in ids], [stops[1]])
        assert stop == 1 and b"".join(text_of(t) for t in got) == want and got == ids[: len(got)] and len(got) <= 25
        gen = P()
        api.ok(api.lib.ae_generator_create(s, None, None, 0, ctypes.byref(gen)))
        assert api.lib.ae_generator_set_piece(gen, b"x", 1) == AE_ERR_INVALID_ARGUMENT  # no token waiting for its text
        api.lib.ae_generator_destroy(gen)
        api.lib.ae_stream_destroy(s)
    finally:
        api.lib.ae_engine_destroy(e)

    swapped = copy_package(hf, tmp_path / "swapped.aepkg")
    (swapped / "tokenizer.json").write_bytes(text.replace(b"BPE", b"WPE"))
    refused(api, swapped, AE_ERR_CHECKSUM, "tokenizer.json", "sha256")
    unlisted = copy_package(hf, tmp_path / "unlisted.aepkg")
    rewrite_manifest(unlisted, lambda m: m["files"].pop("tokenizer.json"))
    refused(api, unlisted, AE_ERR_FORMAT, "tokenizer.file", "not listed")
    latin1 = hf_package(package, tmp_path / "latin1.aepkg", '{"model": "é"}'.encode("latin-1"))
    refused(api, latin1, AE_ERR_FORMAT, "tokenizer.json", "UTF-8")


def test_non_finite_weights_are_an_error_not_a_token(api: Api, package: Path, tmp_path: Path) -> None:
    import onnx
    from onnx import numpy_helper

    pkg = copy_package(package, tmp_path / "nan.aepkg")
    model = onnx.load(str(pkg / "model.onnx"))
    biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(biggest).copy()
    values.flat[: values.size // 2] = np.nan
    biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
    onnx.save_model(model, str(pkg / "model.onnx"))
    rewrite_manifest(pkg, lambda m: None)
    e = api.engine(pkg)
    s = api.stream(e)
    try:
        logits = (ctypes.c_float * 256)()
        assert api.lib.ae_stream_feed(s, (ctypes.c_int32 * 3)(72, 105, 33), 3, logits) == AE_ERR_NON_FINITE
        assert b"non-finite" in api.lib.ae_last_error() and api.lib.ae_stream_position(s) == 0
        assert api.lib.ae_generate(s, (ctypes.c_int32 * 1)(72), 1, None, CALLBACK(), None, None, None) == AE_ERR_NON_FINITE
    finally:
        api.lib.ae_stream_destroy(s)
        api.lib.ae_engine_destroy(e)
    msg = one_line_error(run_sample(build_runtime(BUILD), str(pkg), PROMPT))
    assert "non-finite" in msg


def test_damaged_graphs_with_matching_checksums_give_one_line_refusals(build: Path, package: Path, tmp_path: Path) -> None:
    """Truncated and bit-flipped model.onnx, re-listed with the right sha256 (a careless re-signer): no
    crash, no hang, no multi-line onnxruntime dump: exit 0 (a flip that changes nothing that matters) or
    exit 2 with one line."""
    import random

    rng = random.Random(13)
    original = (package / "model.onnx").read_bytes()
    outcomes = {0: 0, 2: 0}
    for i in range(24):
        pkg = copy_package(package, tmp_path / f"m{i}.aepkg")
        data = bytearray(original[: rng.randrange(len(original))] if i % 3 == 0 else original)
        for _ in range(0 if i % 3 == 0 else 1 + i % 4):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (pkg / "model.onnx").write_bytes(bytes(data))
        rewrite_manifest(pkg, lambda m: None)
        proc = run_sample(build, str(pkg), PROMPT, "4", "--ids")
        assert proc.returncode in (0, 2), (i, proc.returncode, proc.stderr.decode())
        if proc.returncode == 2:
            one_line_error(proc)
        outcomes[proc.returncode] += 1
    assert outcomes[2] >= 8  # every truncation is refused


# ------------------------------------------------------------------------------------------------
# libFuzzer on the readers a package reaches first (runtime/fuzz/)

FUZZ_SECONDS = int(os.environ.get("ASTROEDGE_FUZZ_SECONDS", "10"))  # per target; longer runs: set it


def test_libfuzzer_on_the_manifest_reader_and_the_onnx_walker(package: Path, tmp_path: Path) -> None:
    """clang -fsanitize=fuzzer,address,undefined builds of the manifest.json reader and the model.onnx
    walker, seeded with the tiny package's files, FUZZ_SECONDS each: no crash, no sanitizer report, no
    leak, no timeout (5 s per input), no input over 1 GiB of memory, every refusal one line."""
    build_dir = REPO / "build" / "libfuzzer"
    proc = subprocess.run([str(REPO / "runtime" / "fuzz" / "build.sh"), str(build_dir)], capture_output=True, text=True)
    if proc.returncode == 3:
        pytest.skip(proc.stderr.strip())
    assert proc.returncode == 0, proc.stderr[-3000:]
    for target, seed in (("manifest_fuzzer", "manifest.json"), ("onnx_fuzzer", "model.onnx")):
        corpus = tmp_path / target
        corpus.mkdir()
        shutil.copy(package / seed, corpus / seed)
        run = subprocess.run(
            [
                str(build_dir / target),
                f"-max_total_time={FUZZ_SECONDS}",
                "-timeout=5",
                "-rss_limit_mb=4096",  # ASan shadow + libFuzzer buffers at max_len: 1.5 GiB seen at the first unit
                "-malloc_limit_mb=1024",  # still: no single allocation over 1 GiB
                "-max_len=400000",
                "-seed=13",
                f"-artifact_prefix={tmp_path}/",
                str(corpus),
            ],
            capture_output=True,
            text=True,
            timeout=FUZZ_SECONDS + 120,
        )
        assert run.returncode == 0, run.stderr[-4000:]
        assert "Done" in run.stderr and not list(tmp_path.glob("crash-*")) + list(tmp_path.glob("timeout-*")) + list(tmp_path.glob("oom-*"))


# ------------------------------------------------------------------------------------------------
# The TensorRT backend: its C ABI driven by a stand-in module (no TensorRT here), its refusals, and
# a compile check of the real module against TensorRT's public headers when they are given

FAKE_TRT_BACKEND = r"""
/* A stand-in for libastroedge_tensorrt.so with the same C ABI, in host memory: present = past + 1,
   and the logits make token t + 1 the greedy choice after token t. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tensorrt_backend.h"
struct AeTrtBackend { int64_t vocab; size_t row_floats; };
static AeTrtBackend* create(const AeTrtConfig* c, char* err, size_t n) {
  if (getenv("FAKE_TRT_FAIL")) { snprintf(err, n, "TensorRT 0.0: building the engine failed: %s\nsecond line", c->cache_key); return NULL; }
  AeTrtBackend* b = calloc(1, sizeof *b);
  b->vocab = c->vocab_size;
  for (size_t i = 0; i < c->n_state; ++i) {
    size_t k = 1;
    for (size_t d = 0; d < c->state_ranks[i]; ++d) k *= (size_t)c->state_dims[i][d];
    b->row_floats += k;
  }
  FILE* f = fopen(getenv("FAKE_TRT_LOG"), "w");
  fprintf(f, "%s %s %d %d %zu %s\n", c->plugin_library, c->cache_dir, c->max_batch, c->max_chunk, c->n_state, c->state_inputs[0]);
  fclose(f);
  return b;
}
static void destroy(AeTrtBackend* b) { free(b); }
static int run(AeTrtBackend* b, const int64_t* tokens, size_t batch, size_t n, const int64_t* pos, const float* past, float* present,
               float* logits, char* err, size_t size) {
  (void)pos; (void)err; (void)size;
  for (size_t i = 0; i < batch * b->row_floats; ++i) present[i] = past[i] + (float)n;
  memset(logits, 0, batch * n * (size_t)b->vocab * sizeof(float));
  for (size_t i = 0; i < batch * n; ++i) logits[i * (size_t)b->vocab + (size_t)((tokens[i] + 1) % b->vocab)] = 1.0f;
  return 0;
}
static void* alloc(AeTrtBackend* b, size_t bytes) { (void)b; return calloc(1, bytes); }
static void free_memory(AeTrtBackend* b, void* p) { (void)b; free(p); }
static int copy(AeTrtBackend* b, void* dst, const void* src, size_t bytes) { (void)b; memcpy(dst, src, bytes); return 0; }
static int zero(AeTrtBackend* b, void* p, size_t bytes) { (void)b; memset(p, 0, bytes); return 0; }
static const AeTrtApi kApi = {ABI, create, destroy, run, alloc, free_memory, copy, zero};
__attribute__((visibility("default"))) const AeTrtApi* ae_tensorrt_backend(void) { return &kApi; }
"""

TRT_DRIVER = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.ae_last_error.restype = ctypes.c_char_p
P = ctypes.c_void_p
params, engine, stream = P(), P(), P()
lib.ae_engine_params_create(ctypes.byref(params))
lib.ae_engine_params_set_package_dir(params, sys.argv[2].encode())
lib.ae_engine_params_set_device(params, b"tensorrt")
lib.ae_engine_params_set_amsu_library(params, sys.argv[3].encode())
lib.ae_engine_params_set_cache_dir(params, sys.argv[4].encode())
rc = lib.ae_engine_create(params, ctypes.byref(engine))
if rc:
    print("REFUSED", rc, lib.ae_last_error().decode())
    sys.exit(0)
lib.ae_engine_device.restype = lib.ae_engine_kernel.restype = ctypes.c_char_p
lib.ae_stream_create(engine, ctypes.byref(stream))
got = []
CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
cb = CB(lambda t, p, n, u: got.append(t) or 0)
gp = P()
lib.ae_generate_params_create(ctypes.byref(gp))
lib.ae_generate_params_set_temperature(gp, ctypes.c_float(0.0))
lib.ae_generate_params_set_max_tokens(gp, 5)
assert lib.ae_generate(stream, (ctypes.c_int32 * 2)(65, 66), 2, gp, cb, None, None, None) == 0, lib.ae_last_error()
size = lib.ae_engine_state_size(engine)
state = (ctypes.c_float * (size // 4))()
assert lib.ae_stream_get_state(stream, state, ctypes.c_size_t(size)) == 0
streams = (P * 3)()
for i in range(3):
    lib.ae_stream_create(engine, ctypes.byref(P.from_buffer(streams, i * ctypes.sizeof(P))))
assert lib.ae_decode_batch(streams, (ctypes.c_int32 * 3)(1, 2, 3), 3, None) == 0, lib.ae_last_error()
logits = (ctypes.c_float * 256)()
lib.ae_stream_logits(P(streams[2]), logits)
print("OK", lib.ae_engine_device(engine).decode(), lib.ae_engine_kernel(engine).decode(), got, state[0], state[-1], list(logits).index(1.0))
"""


def run_with_backend(tmp_path: Path, package: Path, abi: int, *, fail: bool = False, module: bytes | None = None) -> tuple[str, Path]:
    """libastroedge copied to a folder with a stand-in TensorRT module beside it, driven in a subprocess."""
    folder = tmp_path / f"lib{abi}{int(fail)}{int(module is not None)}"
    folder.mkdir()
    real = (BUILD / "libastroedge.so.1").resolve()
    shutil.copy(real, folder / "libastroedge.so.1")
    if module is not None:
        (folder / "libastroedge_tensorrt.so").write_bytes(module)
    else:
        src = folder / "fake.c"
        src.write_text(FAKE_TRT_BACKEND)
        subprocess.run(
            [
                "cc",
                "-std=c11",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-shared",
                "-fPIC",
                f"-DABI={abi}",
                f"-I{REPO / 'runtime' / 'src'}",
                str(src),
                "-o",
                str(folder / "libastroedge_tensorrt.so"),
            ],
            check=True,
        )
    plugin = tmp_path / "libastroedge_trt.so"
    plugin.write_bytes(b"stand-in plugin library")
    log = folder / "create.log"
    env = clean_env(FAKE_TRT_LOG=str(log), **({"FAKE_TRT_FAIL": "1"} if fail else {}))
    proc = subprocess.run(
        [sys.executable, "-c", TRT_DRIVER, str(folder / "libastroedge.so.1"), str(package), str(plugin), str(tmp_path / "cache" / "trt")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip(), log


def test_tensorrt_backend_abi_through_a_stand_in_module(package: Path, tmp_path: Path) -> None:
    if shutil.which("cc") is None:
        pytest.skip("needs a C compiler (cc) for the stand-in module")
    out, log = run_with_backend(tmp_path, package, 1)
    assert out.startswith("OK tensorrt library [67, 68, 69, 70, 71] ")  # greedy t + 1 after "AB", state in the module's memory
    *_, first, last, next_token = out.split(" ")
    assert float(first) == float(last) == 7.0 and int(next_token) == 4  # 2 prompt + 5 generated steps; batch row 2 after token 3
    plugin, cache, max_batch, max_chunk, n_state, first_input = log.read_text().split()
    assert plugin.endswith("libastroedge_trt.so") and cache.endswith("cache/trt") and (tmp_path / "cache" / "trt").is_dir()
    assert (max_batch, max_chunk, first_input) == ("64", "256", "past_h.0") and int(n_state) == len(
        json.loads((package / "manifest.json").read_text())["state"]
    )

    out, _ = run_with_backend(tmp_path, package, 1, fail=True)
    assert out.startswith(f'REFUSED {AE_ERR_RUNTIME} device "tensorrt": TensorRT 0.0: building the engine failed: ')
    assert "?second line" in out and "\n" not in out  # the module's text, kept to one line
    out, _ = run_with_backend(tmp_path, package, 99)
    assert out.startswith(f"REFUSED {AE_ERR_VERSION} ") and "backend ABI 99, expected 1" in out
    out, _ = run_with_backend(tmp_path, package, 1, module=b"\x7fELF not really")
    assert out.startswith(f"REFUSED {AE_ERR_UNSUPPORTED} ") and "could not be loaded" in out and "TensorRT or CUDA is missing" in out


def test_tensorrt_device_refused_in_one_line_without_the_module(build: Path, package: Path) -> None:
    for device in ("tensorrt", "jetson"):
        msg = one_line_error(run_sample(build, str(package), PROMPT, "--device", device, "--library", str(package / "model.onnx")))
        assert "libastroedge_tensorrt.so is missing" in msg and "built without TensorRT" in msg


def test_tensorrt_backend_compiles_against_tensorrt_headers() -> None:
    """runtime/src/tensorrt/check.sh: -Wall -Wextra -Werror against TensorRT's public headers (NVIDIA/TensorRT
    include/, fetched for the check and never committed) and the CUDA toolkit's; linked without TensorRT,
    it exports only ae_tensorrt_backend."""
    include = os.environ.get("TRT_INCLUDE_DIR")
    if not include:
        pytest.skip("set TRT_INCLUDE_DIR to a TensorRT include/ folder (NVIDIA/TensorRT on GitHub) to compile-check the backend")
    cuda = os.environ.get("CUDA_INCLUDE_DIR", "/usr/local/cuda/include")
    if not Path(cuda, "cuda_runtime_api.h").is_file():
        pytest.skip(f"{cuda}/cuda_runtime_api.h not found (set CUDA_INCLUDE_DIR)")
    proc = subprocess.run([str(REPO / "runtime" / "src" / "tensorrt" / "check.sh"), include, cuda], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "exports ae_tensorrt_backend only" in proc.stdout


def test_a_listed_sparse_terabyte_is_refused_before_allocation(build: Path, package: Path, tmp_path: Path) -> None:
    """Every listed file is read into memory once; one that claims (and, sparse, has) 1 TiB is refused up
    front in one line with exit 2, not attempted and failed with 'out of memory'."""
    pkg = copy_package(package, tmp_path / "huge.aepkg")
    os.truncate(pkg / "model.onnx", 2**40)
    m = json.loads((pkg / "manifest.json").read_text())
    m["files"]["model.onnx"]["bytes"] = 2**40
    (pkg / "manifest.json").write_text(json.dumps(m))
    msg = one_line_error(run_sample(build, str(pkg), PROMPT))
    assert "1099511627776 bytes, more than this machine's memory" in msg


def test_a_graph_that_loads_but_cannot_run_is_refused_with_exit_2(build: Path, package: Path, tmp_path: Path) -> None:
    """A hostile node attribute (Gather axis -2^63) passes every load-time check and fails inside
    onnxruntime's run: the package's fault, so AE_ERR_FORMAT, one shortened line, exit 2 (not 1)."""
    import onnx

    pkg = copy_package(package, tmp_path / "axis.aepkg")
    model = onnx.load(str(pkg / "model.onnx"))
    gather = next(n for n in model.graph.node if n.op_type == "Gather")
    next(a for a in gather.attribute if a.name == "axis").i = -(2**63)
    onnx.save(model, str(pkg / "model.onnx"))
    rewrite_manifest(pkg, lambda m: None)
    msg = one_line_error(run_sample(build, str(pkg), PROMPT, "4"))
    assert "model.onnx: the graph failed to run" in msg and "onnxruntime:" in msg and len(msg) < 600
