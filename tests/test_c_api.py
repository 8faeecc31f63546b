"""The C API (runtime/include/astroedge.h) and the C sample app (samples/c_app/ae_generate.c).

The sample runs as a subprocess on the tiny random-weight package; the API is driven in-process via
ctypes. Both are checked against the PyTorch reference (step form) and the Python runtime: same
greedy tokens, same logits, same streamed text. One test rebuilds runtime + sample with
AddressSanitizer + UBSan and runs the sample under it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "build" / "runtime"
ASAN_BUILD = REPO / "build" / "runtime-asan"
CMAKE = str(Path(sys.executable).with_name("cmake"))
PROMPT = "Hello, world"

AE_OK, AE_ERR_INVALID_ARGUMENT, AE_ERR_IO, AE_ERR_FORMAT, AE_ERR_CHECKSUM, AE_ERR_VERSION, AE_ERR_MISMATCH, AE_ERR_UNSUPPORTED = range(8)
AE_ERR_BUFFER_TOO_SMALL, AE_ERR_NO_LOGITS, AE_ERR_POSITION = 8, 9, 10


def build_runtime(build_dir: Path, *extra: str) -> Path:
    """Configure (once) and build runtime + sample into build_dir; incremental, so cheap after `make setup`."""
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


def run_sample(build_dir: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(build_dir / "ae_generate"), *args], capture_output=True, timeout=120, env=env)


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


def python_runtime_greedy(package: Path, prompt: str, n: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], str]:
    from astroedge.runtime.engine import Engine

    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")  # the fallback function, like the sample without --library
    engine = Engine(package, device="cpu")
    pairs = list(engine.create_stream().generate(prompt, max_new_tokens=n, temperature=0.0))
    return [t for t, _ in pairs], "".join(p for _, p in pairs)


# ------------------------------------------------------------------------------------------------
# The sample app


def test_sample_greedy_equals_pytorch_reference_and_python_runtime(
    build: Path, package: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ids_of(run_sample(build, str(package), PROMPT, "40", "--ids"))
    ref, _ = reference_greedy(tiny_checkpoint, list(PROMPT.encode()), 40)
    assert ids == ref
    py_ids, py_text = python_runtime_greedy(package, PROMPT, 40, monkeypatch)
    assert ids == py_ids
    text = run_sample(build, str(package), PROMPT, "40")
    assert text.returncode == 0
    assert text.stdout == py_text.encode("utf-8") + b"\n"  # same UTF-8 repair of random bytes
    stats = text.stderr.decode()
    assert "tok/s" in stats and "AMSU fallback" in stats and "generated 40 tokens" in stats


def test_sample_state_save_and_load_continue_exactly(build: Path, package: Path, tmp_path: Path) -> None:
    state = tmp_path / "s.aestate"
    whole = ids_of(run_sample(build, str(package), PROMPT, "30", "--ids"))
    first = ids_of(run_sample(build, str(package), PROMPT, "12", "--ids", "--save-state", str(state)))
    rest = ids_of(run_sample(build, str(package), "", "18", "--ids", "--load-state", str(state)))
    assert first + rest == whole
    assert [p.name for p in tmp_path.iterdir()] == ["s.aestate"]  # no temp file left behind


def test_sample_with_the_native_amsu_library(build: Path, package: Path) -> None:
    lib = REPO / "build" / "plugins" / "libastroedge_ort.so"
    if not lib.is_file():
        pytest.skip("build/plugins/libastroedge_ort.so is not built (make plugins)")
    proc = run_sample(build, str(package), PROMPT, "40", "--ids", "--library", str(lib))
    assert "AMSU library" in proc.stderr.decode()
    assert ids_of(proc) == ids_of(run_sample(build, str(package), PROMPT, "40", "--ids"))


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


def test_sample_bad_inputs_give_one_line_errors(build: Path, package: Path, tmp_path: Path) -> None:
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
    assert "max_tokens" in one_line_error(run_sample(build, str(package), PROMPT, "-3"))
    assert "non-empty prompt" in one_line_error(run_sample(build, str(package), ""))
    assert "not an astroedge state file" in one_line_error(
        run_sample(build, str(package), PROMPT, "--load-state", str(package / "manifest.json"))
    )


@pytest.mark.slow
def test_sample_under_address_and_undefined_behaviour_sanitizers(build: Path, package: Path, tmp_path: Path) -> None:
    """ASan + UBSan build of runtime and sample. onnxruntime itself is not instrumented. Leak checking
    stays on (detect_leaks=1) for the fallback runs: the runtime releases everything it creates. With
    the native AMSU library it is off (detect_leaks=0): that library keeps its op domain in statics
    that outlive sessions (docs/toolchain-notes.md), which LeakSanitizer reports at exit."""
    asan = build_runtime(ASAN_BUILD, "-DASTROEDGE_SANITIZE=ON", "-DCMAKE_BUILD_TYPE=Debug")
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=99",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
    }
    state = tmp_path / "s.aestate"
    plain = ids_of(run_sample(build, str(package), PROMPT, "24", "--ids"))
    assert ids_of(run_sample(asan, str(package), PROMPT, "12", "--ids", "--save-state", str(state), env=env)) == plain[:12]
    assert ids_of(run_sample(asan, str(package), "", "12", "--ids", "--load-state", str(state), env=env)) == plain[12:]
    sampled = run_sample(asan, str(package), PROMPT, "24", "--temperature", "0.9", "--top-k", "40", "--top-p", "0.9", env=env)
    assert sampled.returncode == 0, sampled.stderr.decode()
    one_line_error(run_sample(asan, str(tmp_path / "missing"), PROMPT, env=env))
    lib = REPO / "build" / "plugins" / "libastroedge_ort.so"
    if lib.is_file():
        env["ASAN_OPTIONS"] = env["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
        assert ids_of(run_sample(asan, str(package), PROMPT, "24", "--ids", "--library", str(lib), env=env)) == plain


# ------------------------------------------------------------------------------------------------
# The API, in-process through ctypes


class EngineConfig(ctypes.Structure):
    _fields_ = [
        ("package_dir", ctypes.c_char_p),
        ("device", ctypes.c_char_p),
        ("num_threads", ctypes.c_int32),
        ("amsu_library", ctypes.c_char_p),
        ("verify_checksums", ctypes.c_int32),
    ]


class GenerateConfig(ctypes.Structure):
    _fields_ = [
        ("max_tokens", ctypes.c_int32),
        ("temperature", ctypes.c_float),
        ("top_k", ctypes.c_int32),
        ("top_p", ctypes.c_float),
        ("repetition_penalty", ctypes.c_float),
        ("seed", ctypes.c_uint64),
    ]


CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int32, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)  # piece: may hold NUL
P = ctypes.c_void_p


@pytest.fixture(scope="module")
def lib(build: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build / "libastroedge.so"))
    sigs = {
        "ae_last_error": (ctypes.c_char_p, []),
        "ae_status_string": (ctypes.c_char_p, [ctypes.c_int]),
        "ae_engine_config_default": (EngineConfig, []),
        "ae_engine_config_validate": (ctypes.c_int, [ctypes.POINTER(EngineConfig)]),
        "ae_engine_config_print": (ctypes.c_int, [ctypes.POINTER(EngineConfig), ctypes.c_char_p, ctypes.c_size_t]),
        "ae_engine_create": (ctypes.c_int, [ctypes.POINTER(EngineConfig), ctypes.POINTER(P)]),
        "ae_engine_destroy": (None, [P]),
        "ae_engine_vocab_size": (ctypes.c_int32, [P]),
        "ae_engine_state_size": (ctypes.c_size_t, [P]),
        "ae_engine_state_file_size": (ctypes.c_size_t, [P]),
        "ae_engine_kernel": (ctypes.c_char_p, [P]),
        "ae_engine_model_sha256": (ctypes.c_char_p, [P]),
        "ae_tokenize": (
            ctypes.c_int,
            [P, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        ),
        "ae_detokenize": (
            ctypes.c_int,
            [P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
        ),
        "ae_stream_create": (ctypes.c_int, [P, ctypes.POINTER(P)]),
        "ae_stream_destroy": (None, [P]),
        "ae_stream_reset": (ctypes.c_int, [P]),
        "ae_stream_clone": (ctypes.c_int, [P, ctypes.POINTER(P)]),
        "ae_stream_position": (ctypes.c_uint64, [P]),
        "ae_stream_feed": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_int32), ctypes.c_size_t, ctypes.POINTER(ctypes.c_float)]),
        "ae_stream_step": (ctypes.c_int, [P, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)]),
        "ae_stream_logits": (ctypes.c_int, [P, ctypes.POINTER(ctypes.c_float)]),
        "ae_generate_config_default": (GenerateConfig, []),
        "ae_generate_config_validate": (ctypes.c_int, [ctypes.POINTER(GenerateConfig)]),
        "ae_generate_config_print": (ctypes.c_int, [ctypes.POINTER(GenerateConfig), ctypes.c_char_p, ctypes.c_size_t]),
        "ae_generate": (
            ctypes.c_int,
            [
                P,
                ctypes.POINTER(ctypes.c_int32),
                ctypes.c_size_t,
                ctypes.POINTER(GenerateConfig),
                CALLBACK,
                P,
                ctypes.POINTER(ctypes.c_size_t),
            ],
        ),
        "ae_stream_save_state": (ctypes.c_int, [P, ctypes.c_char_p]),
        "ae_stream_load_state": (ctypes.c_int, [P, ctypes.c_char_p]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class Api:
    """Small typed helpers over the ctypes handles, raising on unexpected statuses."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib = lib

    def ok(self, status: int) -> None:
        assert status == AE_OK, (self.lib.ae_status_string(status), self.lib.ae_last_error())

    def engine(self, package: Path, **fields: object) -> P:
        cfg = self.lib.ae_engine_config_default()
        cfg.package_dir = str(package).encode()
        for k, v in fields.items():
            setattr(cfg, k, v)
        handle = P()
        self.ok(self.lib.ae_engine_create(ctypes.byref(cfg), ctypes.byref(handle)))
        return handle

    def stream(self, engine: P) -> P:
        handle = P()
        self.ok(self.lib.ae_stream_create(engine, ctypes.byref(handle)))
        return handle

    def feed(self, stream: P, tokens: list[int]) -> np.ndarray:
        logits = (ctypes.c_float * 256)()
        self.ok(self.lib.ae_stream_feed(stream, (ctypes.c_int32 * len(tokens))(*tokens), len(tokens), logits))
        return np.array(logits)

    def generate(self, stream: P, prompt: list[int], stop_after: int = 0, **fields: object) -> tuple[list[int], list[bytes]]:
        cfg = self.lib.ae_generate_config_default()
        for k, v in fields.items():
            setattr(cfg, k, v)
        got: list[tuple[int, bytes]] = []

        def on_token(token: int, piece: int, n: int, _: object) -> int:
            got.append((token, ctypes.string_at(piece, n)))
            return int(stop_after > 0 and len(got) >= stop_after)

        n = ctypes.c_size_t()
        cb = CALLBACK(on_token)
        self.ok(
            self.lib.ae_generate(stream, (ctypes.c_int32 * len(prompt))(*prompt), len(prompt), ctypes.byref(cfg), cb, None, ctypes.byref(n))
        )
        assert n.value == len(got)
        return [t for t, _ in got], [p for _, p in got]


@pytest.fixture(scope="module")
def api(lib: ctypes.CDLL) -> Api:
    return Api(lib)


@pytest.fixture(scope="module")
def engine(api: Api, package: Path):  # noqa: ANN201 - a ctypes handle
    handle = api.engine(package)
    yield handle
    api.lib.ae_engine_destroy(handle)


def test_configs_validate_and_print(lib: ctypes.CDLL, package: Path) -> None:
    cfg = lib.ae_engine_config_default()
    assert lib.ae_engine_config_validate(ctypes.byref(cfg)) == AE_ERR_INVALID_ARGUMENT
    assert b"package_dir" in lib.ae_last_error()
    cfg.package_dir = str(package).encode()
    assert lib.ae_engine_config_validate(ctypes.byref(cfg)) == AE_OK
    cfg.device = b"cuda"
    assert lib.ae_engine_config_validate(ctypes.byref(cfg)) == AE_ERR_UNSUPPORTED
    assert b"device" in lib.ae_last_error()
    needed = lib.ae_engine_config_print(ctypes.byref(cfg), None, 0)
    buf = ctypes.create_string_buffer(needed + 1)
    assert lib.ae_engine_config_print(ctypes.byref(cfg), buf, len(buf)) == needed
    assert buf.value.decode() == f"package_dir={package} device=cuda num_threads=0 amsu_library=(fallback) verify_checksums=1"

    gen = lib.ae_generate_config_default()
    assert (gen.max_tokens, gen.temperature, gen.top_k, gen.top_p, gen.repetition_penalty) == (128, 0.0, 0, 1.0, 1.0)
    buf = ctypes.create_string_buffer(16)
    assert lib.ae_generate_config_print(ctypes.byref(gen), buf, 16) > 15 and len(buf.value) == 15  # truncated, NUL-terminated
    for field, value in (("top_p", 0.0), ("temperature", -1.0), ("max_tokens", -1), ("repetition_penalty", 0.0)):
        bad = lib.ae_generate_config_default()
        setattr(bad, field, value)
        assert lib.ae_generate_config_validate(ctypes.byref(bad)) == AE_ERR_INVALID_ARGUMENT
        assert field.encode() in lib.ae_last_error()


def test_engine_facts_follow_the_manifest(api: Api, engine: P, package: Path) -> None:
    m = json.loads((package / "manifest.json").read_text())
    lib = api.lib
    assert lib.ae_engine_vocab_size(engine) == m["model"]["vocab_size"] == 256
    assert lib.ae_engine_state_size(engine) == m["state_bytes_per_stream"]
    assert lib.ae_engine_kernel(engine) == b"fallback"
    assert lib.ae_engine_model_sha256(engine).decode() == m["files"]["model.onnx"]["sha256"]
    assert lib.ae_engine_vocab_size(None) == 0 and lib.ae_engine_kernel(None) is None
    lib.ae_engine_destroy(None)
    lib.ae_stream_destroy(None)


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
        again = (ctypes.c_float * 256)()
        api.ok(api.lib.ae_stream_logits(stream, again))
        assert list(step) == list(again)
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
        cfg = lib.ae_generate_config_default()
        assert lib.ae_generate(stream, None, 0, ctypes.byref(cfg), CALLBACK(), None, None) == AE_ERR_NO_LOGITS
        assert b"prompt" in lib.ae_last_error()
    finally:
        lib.ae_stream_destroy(stream)


def test_generate_streams_pieces_that_decode_like_python(api: Api, engine: P) -> None:
    from astroedge.tokenizer import ByteTokenizer

    stream = api.stream(engine)
    try:
        prompt = list(PROMPT.encode())
        ids, pieces = api.generate(stream, prompt, max_tokens=300, temperature=1.5, seed=7)
        assert len(ids) == 300 and api.lib.ae_stream_position(stream) == len(prompt) + 300
        decoder = ByteTokenizer().stream_decoder()
        assert pieces == [decoder.push(t).encode() for t in ids]  # random bytes: U+FFFD repair matches Python's
        api.ok(api.lib.ae_stream_reset(stream))
        assert api.generate(stream, prompt, max_tokens=300, temperature=1.5, seed=7)[0] == ids  # seeded
        api.ok(api.lib.ae_stream_reset(stream))
        greedy, _ = api.generate(stream, prompt, max_tokens=20)
        api.ok(api.lib.ae_stream_reset(stream))
        assert api.generate(stream, prompt, max_tokens=20, temperature=1.0, top_k=1, seed=3)[0] == greedy  # top_k = 1 is greedy
        api.ok(api.lib.ae_stream_reset(stream))
        ids, _ = api.generate(stream, prompt, stop_after=5, max_tokens=50)
        assert len(ids) == 5 and api.lib.ae_stream_position(stream) == len(prompt) + 5  # stopped, all consumed
    finally:
        api.lib.ae_stream_destroy(stream)


def test_clone_is_independent_and_reset_restarts(api: Api, engine: P) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    a = api.stream(engine)
    b = P()
    try:
        api.feed(a, prompt)
        api.ok(lib.ae_stream_clone(a, ctypes.byref(b)))
        ids_a, _ = api.generate(a, [], max_tokens=16)
        ids_b, _ = api.generate(b, [], max_tokens=16)
        assert ids_a == ids_b and lib.ae_stream_position(b) == len(prompt) + 16
        api.ok(lib.ae_stream_reset(a))
        assert lib.ae_stream_position(a) == 0
        assert api.generate(a, prompt, max_tokens=16)[0] == ids_a
    finally:
        lib.ae_stream_destroy(a)
        lib.ae_stream_destroy(b)


def test_state_files_round_trip_and_refuse_foreign_newer_or_damaged(api: Api, engine: P, tmp_path: Path) -> None:
    lib, prompt = api.lib, list(PROMPT.encode())
    s = api.stream(engine)
    try:
        api.feed(s, prompt)
        path = tmp_path / "s.aestate"
        api.ok(lib.ae_stream_save_state(s, str(path).encode()))
        assert path.stat().st_size == lib.ae_engine_state_file_size(engine)
        expect, _ = api.generate(s, [], max_tokens=10)
        api.ok(lib.ae_stream_reset(s))
        api.ok(lib.ae_stream_load_state(s, str(path).encode()))
        assert lib.ae_stream_position(s) == len(prompt)
        assert api.generate(s, [], max_tokens=10)[0] == expect

        import hashlib

        def variant(name: str, edit) -> bytes:  # noqa: ANN001
            raw = bytearray(path.read_bytes())
            edit(raw)
            raw[-32:] = hashlib.sha256(bytes(raw[:-32])).digest()  # a consistent file, only the field differs
            (tmp_path / name).write_bytes(bytes(raw))
            return str(tmp_path / name).encode()

        position = lib.ae_stream_position(s)
        foreign = variant("foreign", lambda r: r.__setitem__(slice(16, 48), b"\x01" * 32))
        assert lib.ae_stream_load_state(s, foreign) == AE_ERR_MISMATCH
        assert b"another package" in lib.ae_last_error()
        newer = variant("newer", lambda r: r.__setitem__(slice(8, 12), (2).to_bytes(4, "little")))
        assert lib.ae_stream_load_state(s, newer) == AE_ERR_VERSION
        assert b"version 2 is newer" in lib.ae_last_error()
        (tmp_path / "cut").write_bytes(path.read_bytes()[:-1])
        assert lib.ae_stream_load_state(s, str(tmp_path / "cut").encode()) == AE_ERR_FORMAT
        damaged = bytearray(path.read_bytes())
        damaged[100] ^= 1
        (tmp_path / "damaged").write_bytes(bytes(damaged))
        assert lib.ae_stream_load_state(s, str(tmp_path / "damaged").encode()) == AE_ERR_FORMAT
        assert b"checksum" in lib.ae_last_error()
        assert lib.ae_stream_position(s) == position  # refused loads changed nothing
        assert lib.ae_stream_save_state(s, str(tmp_path / "no" / "dir" / "s").encode()) == AE_ERR_IO
        assert lib.ae_stream_load_state(s, str(tmp_path / "missing").encode()) == AE_ERR_IO
    finally:
        lib.ae_stream_destroy(s)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut", "damaged", "foreign", "newer", "s.aestate"]


def test_engine_create_errors(api: Api, package: Path, tmp_path: Path) -> None:
    lib = api.lib
    cfg = lib.ae_engine_config_default()
    handle = P(1234)
    cfg.package_dir = str(tmp_path / "missing").encode()
    assert lib.ae_engine_create(ctypes.byref(cfg), ctypes.byref(handle)) == AE_ERR_IO
    assert handle.value is None
    bad = copy_package(package, tmp_path / "bad.aepkg", {"state": [{"name": "h.0"}]})
    cfg.package_dir = str(bad).encode()
    assert lib.ae_engine_create(ctypes.byref(cfg), ctypes.byref(handle)) == AE_ERR_FORMAT
    assert b"state[0].input" in lib.ae_last_error()
    hf = copy_package(package, tmp_path / "hf.aepkg", {"tokenizer": {"type": "hf", "vocab_size": 256, "file": "tokenizer.json"}})
    engine = api.engine(hf)
    try:
        n = ctypes.c_size_t()
        assert lib.ae_tokenize(engine, b"x", 1, (ctypes.c_int32 * 1)(), 1, ctypes.byref(n)) == AE_ERR_UNSUPPORTED
        assert b"tokenizer.json" in lib.ae_last_error()
    finally:
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


def test_repetition_penalty_matches_the_python_runtime(api: Api, engine: P, package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from astroedge.runtime.engine import Engine

    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")
    py_stream = Engine(package, device="cpu").create_stream()
    expected = [t for t, _ in py_stream.generate(PROMPT, max_new_tokens=40, temperature=0.0, repetition_penalty=1.5)]
    s = api.stream(engine)
    try:
        penalised, _ = api.generate(s, list(PROMPT.encode()), max_tokens=40, repetition_penalty=1.5)
        api.ok(api.lib.ae_stream_reset(s))
        plain, _ = api.generate(s, list(PROMPT.encode()), max_tokens=40)
    finally:
        api.lib.ae_stream_destroy(s)
    assert penalised == expected
    assert penalised != plain  # the penalty changed the continuation
