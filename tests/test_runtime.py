"""astroedge.runtime, the ctypes binding over libastroedge, in process: against the PyTorch reference,
against the C library driven directly (C's ae_generate, C's state files), and on bad input. Since the binding
pulls from C's generation loop (AeGenerator) and the host sampler is C's, the "C and Python agree" tests are
regression tests of that single implementation.

Fixtures: tests/conftest.py (a random-weight tiny model exported to a package). The C library is the
shared build/runtime/libastroedge.so (make setup builds it).
"""

from __future__ import annotations

import ctypes
import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from astroedge.errors import UserError
from astroedge.runtime import Engine
from astroedge.runtime._capi import TOKEN_CALLBACK, lib
from astroedge.runtime.stats import parse_tegrastats, proc_status_kib
from astroedge.sampling import DEFAULTS

PROMPT = "ROMEO: But soft, what light"


@pytest.fixture(scope="module")
def engine(tiny_package: Path) -> Engine:
    return Engine(tiny_package, device="cpu")


def reference_greedy(checkpoint: Path, prompt: str, n: int) -> tuple[list[int], np.ndarray]:
    """Greedy tokens from the PyTorch step form, and the logits after the prompt."""
    import torch

    from astroedge import checkpoint as ckpt

    ck = ckpt.load(checkpoint)
    ids = ck.tokenizer.encode(prompt)
    with torch.no_grad():
        out = ck.model(torch.tensor([ids]), form="step")
        first = out.logits[0, -1].numpy().copy()
        tokens = []
        for _ in range(n):
            tokens.append(int(out.logits[0, -1].argmax()))
            out = ck.model(torch.tensor([[tokens[-1]]]), out.state, form="step")
    return tokens, first


def _copy(src: Path, dst: Path, edit: dict | None = None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        m = json.loads((dst / "manifest.json").read_text())
        m.update(edit)
        (dst / "manifest.json").write_text(json.dumps(m))
    return dst


# -- the engine reads what the C core loaded ---------------------------------------------------------


def test_engine_reports_the_package(engine: Engine) -> None:
    assert engine.state_names == ["h.0", "u.0", "h.1", "u.1"]
    assert engine.state_shapes == [(5, 8, 8), (40,), (5, 8, 8), (40,)]
    assert engine.state_bytes == 2 * (5 * 8 * 8 + 40) * 4
    assert (engine.vocab_size, engine.precision, engine.device) == (256, "fp32", "cpu")
    assert engine.max_position == 2**32 and len(engine.manifest_sha256) == 64
    assert engine.tokenizer.encode("é") == [0xC3, 0xA9]
    s = engine.create_stream()
    assert s.position == 0 and s.last_logits is None
    assert [a.shape for a in s.state] == [(1, 5, 8, 8), (1, 40), (1, 5, 8, 8), (1, 40)]


def test_sampling_defaults_are_the_c_librarys() -> None:
    """One set of defaults: astroedge.sampling.DEFAULTS (CLI option defaults) == ae_generate_params_create's."""
    c = lib()
    p = c.new(c.ae_generate_params_create)
    try:
        got = (
            c.ae_generate_params_max_tokens(p),
            c.ae_generate_params_temperature(p),
            c.ae_generate_params_top_k(p),
            c.ae_generate_params_top_p(p),
            c.ae_generate_params_repetition_penalty(p),
            c.ae_generate_params_seed(p),
        )
    finally:
        c.ae_generate_params_destroy(p)
    want = (DEFAULTS.max_new_tokens, DEFAULTS.temperature, DEFAULTS.top_k, DEFAULTS.top_p, DEFAULTS.repetition_penalty, DEFAULTS.seed)
    assert got == pytest.approx(want, rel=1e-7)
    import inspect

    from astroedge.runtime import Stream

    sig = inspect.signature(Stream.generate).parameters
    assert (sig["max_new_tokens"].default, sig["temperature"].default, sig["top_k"].default) == want[:3]
    assert (sig["top_p"].default, sig["repetition_penalty"].default, sig["seed"].default) == want[3:]


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        ({"format_version": 2}, "format_version"),
        ({"precision": "fp8"}, "precision"),
        ({"state_bytes_per_stream": 1}, "state_bytes_per_stream"),
        ({"files": {}}, "model.onnx"),
        ({"format": "zip"}, "format"),
        ({"state": [{"name": "h.0", "input": "a", "output": "b", "dtype": "float16", "shape": ["batch", 2]}]}, "state"),
    ],
)
def test_bad_manifest_is_refused_naming_the_field(tiny_package: Path, tmp_path: Path, edit: dict, fragment: str) -> None:
    bad = _copy(tiny_package, tmp_path / "bad.aepkg", edit)
    with pytest.raises(UserError, match=re.escape(fragment)):
        Engine(bad)


def test_missing_field_and_missing_file(tiny_package: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_package, tmp_path / "a.aepkg")
    m = json.loads((bad / "manifest.json").read_text())
    del m["max_position"]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="max_position"):
        Engine(bad)
    gone = _copy(tiny_package, tmp_path / "b.aepkg")
    (gone / "model.onnx").unlink()
    with pytest.raises(UserError, match="model.onnx"):
        Engine(gone)


def test_corrupted_byte_fails_the_checksum_unless_verify_is_off(tiny_package: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_package, tmp_path / "c.aepkg")
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256"):
        Engine(bad)
    with pytest.raises(UserError):  # the flipped byte is in the graph: loading it may still fail, but not on the checksum
        try:
            Engine(bad, verify=False)
        except UserError as exc:
            assert "sha256" not in str(exc)
            raise
        raise UserError("loaded")


def test_a_named_library_that_cannot_load_is_refused_never_replaced(
    tiny_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(UserError, match="nope.so"):
        Engine(tiny_package, library=tmp_path / "nope.so")
    junk = tmp_path / "junk.so"
    junk.write_bytes(b"not a shared library")
    with pytest.raises(UserError, match="junk.so"):
        Engine(tiny_package, library=junk)
    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", str(junk))
    with pytest.raises(UserError, match="ASTROEDGE_ORT_LIBRARY"):
        Engine(tiny_package)
    monkeypatch.setenv("ASTROEDGE_ORT_LIBRARY", "")
    assert Engine(tiny_package).kernel == "fallback"  # "" asks for the fallback function: not a failure


# -- one function: runtime == reference --------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["library", "fallback"])
def test_greedy_output_equals_the_pytorch_reference(tiny_package: Path, tiny_checkpoint: Path, kernel: str) -> None:
    """Both AMSU implementations: the native library (built by `make setup`) and the fallback function."""
    engine = Engine(tiny_package, library="" if kernel == "fallback" else None)
    if engine.kernel != kernel:
        pytest.skip("build/plugins/libastroedge_ort.so is not built (make setup builds it)")
    want, ref_logits = reference_greedy(tiny_checkpoint, PROMPT, 40)
    stream = engine.create_stream()
    logits = stream.feed(PROMPT, chunk=7)  # chunked prefill: state carried between graph calls
    np.testing.assert_allclose(logits, ref_logits, rtol=0, atol=2e-4)
    got = [t for t, _ in stream.generate(None, max_new_tokens=40, temperature=0)]
    assert got == want
    assert stream.position == len(PROMPT.encode()) + 40


def test_prefill_chunking_does_not_change_the_function(engine: Engine) -> None:
    whole, chunked, stepped = (engine.create_stream() for _ in range(3))
    a = whole.feed(PROMPT)
    b = chunked.feed(PROMPT, chunk=5)
    for t in PROMPT.encode():
        c = stepped.step(t)
    for x in (b, c):
        np.testing.assert_allclose(x, a, atol=2e-5)
    for s in (chunked, stepped):
        assert s.position == whole.position
        np.testing.assert_allclose(s.last_logits, a, atol=2e-5)
        for x, y in zip(s.state, whole.state, strict=True):
            np.testing.assert_allclose(x, y, atol=2e-5)


# -- streams -----------------------------------------------------------------------------------------


def test_save_and_restore_continue_bit_identically(engine: Engine, tmp_path: Path) -> None:
    stream = engine.create_stream()
    stream.feed(PROMPT)
    stream.save_state(tmp_path / "s.aestate")
    first = [t for t, _ in stream.generate(None, 25, temperature=0.9, seed=3)]
    after = stream.state

    resumed = engine.create_stream()
    resumed.load_state(tmp_path / "s.aestate")
    assert resumed.position == len(PROMPT.encode())
    again = [t for t, _ in resumed.generate(None, 25, temperature=0.9, seed=3)]
    assert again == first
    for x, y in zip(resumed.state, after, strict=True):
        assert np.array_equal(x, y)
    assert [p.name for p in tmp_path.iterdir()] == ["s.aestate"]  # atomic write left no temp file


def test_state_in_memory_round_trips_and_is_checked(engine: Engine) -> None:
    a = engine.create_stream()
    logits = a.feed(PROMPT)
    b = engine.create_stream()
    b.set_state(a.state, a.position, a.last_logits)
    assert b.position == a.position and np.array_equal(b.last_logits, logits)
    assert all(np.array_equal(x, y) for x, y in zip(b.state, a.state, strict=True))
    np.testing.assert_array_equal(a.step(65), b.step(65))
    flat = np.concatenate([x.ravel() for x in a.state])
    with pytest.raises(UserError, match="bytes of state"):
        b.set_state(flat[:-1], 0)
    flat[3] = np.nan
    with pytest.raises(UserError):
        b.set_state(flat, 0)
    assert b.position == a.position  # the refused set changed nothing


def test_state_file_of_another_package_or_newer_version_is_refused(engine: Engine, tiny_package: Path, tmp_path: Path) -> None:
    stream = engine.create_stream()
    stream.feed("abc")
    stream.save_state(tmp_path / "s.aestate")
    other = Engine(_copy(tiny_package, tmp_path / "other.aepkg", {"created_by": "someone else"}), verify=False).create_stream()
    with pytest.raises(UserError, match="another package"):
        other.load_state(tmp_path / "s.aestate")
    raw = bytearray((tmp_path / "s.aestate").read_bytes())
    raw[8:12] = (99).to_bytes(4, "little")
    (tmp_path / "new.aestate").write_bytes(bytes(raw))
    with pytest.raises(UserError, match="newer"):
        stream.load_state(tmp_path / "new.aestate")
    (tmp_path / "junk.aestate").write_bytes(b"not a state file")
    with pytest.raises(UserError, match="junk.aestate"):
        stream.load_state(tmp_path / "junk.aestate")
    assert stream.position == 3


def test_clones_are_independent(engine: Engine) -> None:
    a = engine.create_stream()
    a.feed(PROMPT)
    b = a.clone()
    before = [x.copy() for x in b.state]
    la = a.feed("xyz")
    assert all(np.array_equal(x, y) for x, y in zip(b.state, before, strict=True))
    assert b.position == len(PROMPT.encode())
    lb = b.feed("xyz")
    np.testing.assert_array_equal(la, lb)
    a.reset()
    assert a.position == 0 and a.last_logits is None and all(not x.any() for x in a.state)
    assert b.position == len(PROMPT.encode()) + 3


@pytest.mark.parametrize("kernel", ["library", "fallback"])
def test_batch_equals_single_streams_bitwise(tiny_package: Path, kernel: str) -> None:
    """step_batch (ae_decode_batch: one graph call) == one step per stream, bit for bit, streams at different positions."""
    engine = Engine(tiny_package, library="" if kernel == "fallback" else None)
    prompts = ["To be", "or not", "to be: that", "is the question"]
    batched = [engine.create_stream() for _ in prompts]
    singles = [engine.create_stream() for _ in prompts]
    for s, t, p in zip(batched, singles, prompts, strict=True):
        s.feed(p)
        t.feed(p)
    for _ in range(6):
        tokens = [int(np.argmax(s.last_logits)) for s in batched]
        logits = engine.step_batch(batched, tokens)
        assert logits.shape == (4, 256)
        for i, t in enumerate(singles):
            assert np.array_equal(logits[i], t.step(tokens[i]))
    for s, t in zip(batched, singles, strict=True):
        assert s.position == t.position
        assert all(np.array_equal(x, y) for x, y in zip(s.state, t.state, strict=True))


def test_eight_streams_on_eight_threads_share_one_engine(engine: Engine) -> None:
    prompts = [f"thread {i}: " + "abc" * i for i in range(8)]

    def run(p: str) -> list[int]:
        return [t for t, _ in engine.create_stream().generate(p, 30, temperature=0.7, seed=len(p))]

    serial = [run(p) for p in prompts]
    results: list[list[int] | None] = [None] * 8
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = run(prompts[i])
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == serial


def test_generate_streams_text_and_honours_stop(engine: Engine) -> None:
    stream = engine.create_stream()
    out = list(stream.generate(PROMPT, 30, temperature=0))
    tokens = [t for t, _ in out]
    text = "".join(piece for _, piece in out)
    assert text == bytes(tokens).decode("utf-8", errors="replace")[: len(text)]
    stop_at = next(i for i, (_, piece) in enumerate(out) if piece)  # first token that completes a character
    stop = out[stop_at][1]
    short = list(engine.create_stream().generate(PROMPT, 30, temperature=0, stop=[stop]))
    assert [t for t, _ in short] == tokens[: stop_at + 1]


def test_stop_strings_on_an_hf_package_are_matched_in_c_on_the_text_the_binding_hands_back(hf_tiny_package: Path) -> None:
    """HF packages: C picks the tokens, the binding decodes them and pushes each piece back (ae_generator_set_piece);
    generation ends after the first token whose piece makes the text end with a stop string."""
    hf = Engine(hf_tiny_package)
    out = list(hf.create_stream().generate("ROMEO:", 120, temperature=1.0, seed=9))
    text = "".join(p for _, p in out)
    stops = ("@@never@@", text[60:63])
    want, so_far = [], ""
    for token, piece in out:
        want.append(token)
        so_far += piece
        if so_far.endswith(stops[1]):
            break
    assert len(want) < 120
    short = list(hf.create_stream().generate("ROMEO:", 120, temperature=1.0, seed=9, stop=stops))
    assert [t for t, _ in short] == want and "".join(p for _, p in short).endswith(stops[1])


def test_generate_refuses_a_stream_closed_between_tokens(engine: Engine) -> None:
    stream = engine.create_stream()
    tokens = stream.generate(PROMPT, 10, temperature=0)
    next(tokens)
    stream.close()
    with pytest.raises(UserError, match="closed"):
        next(tokens)


# -- C and Python: one library, one RNG ---------------------------------------------------------------


def c_generate(engine: Engine, prompt: bytes, n: int, stop: tuple[str, ...] = (), **settings: float) -> tuple[list[int], bytes]:
    """C's own generation loop (ae_generate, as C apps call it) on a new stream of this engine."""
    c = lib()
    params = c.new(c.ae_generate_params_create)
    stream = c.new(c.ae_stream_create, engine.handle)
    tokens: list[int] = []
    text = bytearray()

    def on_token(token: int, piece: int, size: int, _: int) -> int:
        tokens.append(token)
        text.extend(ctypes.string_at(piece, size))
        return 0

    try:
        c.check(c.ae_generate_params_set_max_tokens(params, n))
        c.check(c.ae_generate_params_set_temperature(params, settings.get("temperature", DEFAULTS.temperature)))
        c.check(c.ae_generate_params_set_top_k(params, int(settings.get("top_k", 0))))
        c.check(c.ae_generate_params_set_top_p(params, settings.get("top_p", 1.0)))
        c.check(c.ae_generate_params_set_repetition_penalty(params, settings.get("repetition_penalty", 1.0)))
        c.check(c.ae_generate_params_set_seed(params, int(settings.get("seed", 0))))
        for text_stop in stop:
            raw = text_stop.encode()
            c.check(c.ae_generate_params_add_stop(params, raw, len(raw)))
        ids = (ctypes.c_int32 * len(prompt))(*prompt)
        c.check(c.ae_generate(stream, ctypes.addressof(ids), len(prompt), params, TOKEN_CALLBACK(on_token), None, None, None))
    finally:
        c.ae_stream_destroy(stream)
        c.ae_generate_params_destroy(params)
    return tokens, bytes(text)


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.0},
        {"temperature": 0.8, "seed": 0},
        {"temperature": 1.3, "top_k": 40, "top_p": 0.9, "repetition_penalty": 1.2, "seed": 12345},
        {"temperature": 0.7, "repetition_penalty": 0.8, "seed": 2**63 + 5},
    ],
)
def test_one_seed_picks_the_same_tokens_in_c_and_python(engine: Engine, settings: dict[str, float]) -> None:
    want_tokens, want_text = c_generate(engine, PROMPT.encode(), 60, **settings)
    out = list(engine.create_stream().generate(PROMPT, 60, **settings))  # type: ignore[arg-type]
    assert [t for t, _ in out] == want_tokens
    assert "".join(p for _, p in out).encode() == want_text


def test_stop_strings_end_generation_at_the_same_token_in_c_and_python(engine: Engine) -> None:
    _, text = c_generate(engine, PROMPT.encode(), 120, temperature=0.9, seed=4)
    decoded = text.decode("utf-8", errors="replace")
    stops = ("@@never@@", decoded[50:53])  # three characters from the middle: the first occurrence ends both
    want_tokens, want_text = c_generate(engine, PROMPT.encode(), 120, stops, temperature=0.9, seed=4)
    assert len(want_tokens) < 120 and want_text.decode("utf-8", errors="replace").endswith(stops[1])
    out = list(engine.create_stream().generate(PROMPT, 120, temperature=0.9, seed=4, stop=stops))
    assert [t for t, _ in out] == want_tokens
    assert "".join(p for _, p in out).encode() == want_text


@pytest.mark.parametrize(
    "settings",
    [
        {"temperature": 0.0, "repetition_penalty": 1.3},
        {"temperature": 0.8, "seed": 0},
        {"temperature": 1.7, "top_k": 30, "top_p": 0.85, "repetition_penalty": 1.2, "seed": 99},
        {"temperature": 0.3, "top_k": 1000, "top_p": 0.5, "repetition_penalty": 0.7, "seed": 2**64 - 1},
    ],
)
def test_host_sampler_picks_what_the_c_sampler_picks(engine: Engine, settings: dict[str, float]) -> None:
    """astroedge.sampling.Sampler (host `astroedge generate`, PyTorch logits) is libastroedge's sampler (ae_sampler_pick):
    300 draws from the same logits and history, same seed, same tokens as ae_stream_sample (regression test)."""
    from astroedge.sampling import Sampler, SamplingConfig

    stream = engine.create_stream()
    history = list(PROMPT.encode())
    logits = stream.feed(history)
    c = lib()
    params = c.new(c.ae_generate_params_create)
    c.check(c.ae_generate_params_set_temperature(params, settings.get("temperature", DEFAULTS.temperature)))
    c.check(c.ae_generate_params_set_top_k(params, int(settings.get("top_k", 0))))
    c.check(c.ae_generate_params_set_top_p(params, settings.get("top_p", 1.0)))
    c.check(c.ae_generate_params_set_repetition_penalty(params, settings.get("repetition_penalty", 1.0)))
    c.check(c.ae_generate_params_set_seed(params, int(settings.get("seed", 0))))
    sampler = c.new(c.ae_sampler_create, params)
    token = ctypes.c_int32()
    want = []
    for _ in range(300):
        c.check(c.ae_stream_sample(stream.handle, sampler, ctypes.byref(token)))
        want.append(token.value)
    c.ae_sampler_destroy(sampler)
    c.ae_generate_params_destroy(params)
    host = Sampler(SamplingConfig(**{k: v for k, v in settings.items()}))  # type: ignore[arg-type]
    assert [host(logits, history) for _ in range(300)] == want
    assert len(set(want)) > (1 if settings.get("temperature") else 0)


# -- bad input ---------------------------------------------------------------------------------------


def test_bad_tokens_and_prompts_raise_user_errors(engine: Engine) -> None:
    s = engine.create_stream()
    with pytest.raises(UserError, match="256"):
        s.feed([1, 256])
    with pytest.raises(UserError, match="256"):
        s.feed([1] * 10 + [256], chunk=4)  # several graph calls: checked whole before the first
    with pytest.raises(UserError, match="-1"):
        s.step(-1)
    with pytest.raises(UserError, match="32-bit"):
        s.step(2**40)
    with pytest.raises(UserError, match="empty prompt"):
        s.feed("")
    with pytest.raises(UserError, match="empty prompt"):
        list(s.generate(None, 3))
    with pytest.raises(UserError, match="temperature"):
        s.generate("a", 3, temperature=-1)
    with pytest.raises(UserError, match="repetition"):
        s.generate("a", 3, repetition_penalty=0)
    with pytest.raises(UserError, match="one token per stream"):
        engine.step_batch([s], [1, 2])
    with pytest.raises(UserError):
        engine.step_batch([s, s], [1, 2])  # the same stream twice
    assert s.position == 0 and s.last_logits is None  # nothing was consumed by the failed calls


def test_position_past_max_position_is_refused(engine: Engine) -> None:
    s = engine.create_stream()
    s.feed("a")
    s.position = engine.max_position - 1
    s.step(65)
    with pytest.raises(UserError, match="max_position"):
        s.step(65)
    assert s.position == engine.max_position


def test_streams_of_a_closed_engine_refuse_use(tiny_package: Path) -> None:
    engine = Engine(tiny_package)
    s = engine.create_stream()
    engine.close()
    with pytest.raises(UserError, match="closed"):
        s.step(1)
    with pytest.raises(UserError, match="closed"):
        engine.create_stream()


def test_unknown_device_is_refused(tiny_package: Path) -> None:
    with pytest.raises(UserError, match="device 'tpu' is unknown"):
        Engine(tiny_package, device="tpu")


def test_runtime_is_a_thin_binding() -> None:
    """The Python-only runtime is gone: no onnxruntime session, no state format of its own."""
    import astroedge.runtime.engine as engine_module

    src = Path(engine_module.__file__).read_text()
    assert "import onnxruntime" not in src and "np.savez" not in src and "default_rng" not in src


# -- stats helpers -----------------------------------------------------------------------------------


def test_memory_readers() -> None:
    line = "RAM 2345/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [5%@1190,2%@1190] GR3D_FREQ 0%"
    assert parse_tegrastats(line) == (2345, 7620)
    assert parse_tegrastats("no memory here") is None
    hwm, rss = proc_status_kib("VmHWM"), proc_status_kib("VmRSS")
    assert hwm is not None and rss is not None and hwm >= rss > 1000


@pytest.mark.gpu
def test_cuda_device_matches_cpu(tiny_package: Path, engine: Engine) -> None:
    try:
        gpu = Engine(tiny_package, device="cuda")
    except UserError as exc:
        pytest.skip(f"no CUDA device for libastroedge here: {exc}")
    a, b = gpu.create_stream(), engine.create_stream()
    np.testing.assert_allclose(a.feed(PROMPT), b.feed(PROMPT), atol=1e-4)
    assert [t for t, _ in a.generate(None, 20, temperature=0)] == [t for t, _ in b.generate(None, 20, temperature=0)]


@pytest.mark.gpu
def test_cuda_memory_round_trip_for_the_tensorrt_plugin_test() -> None:
    """The ctypes libcudart layer tests/test_tensorrt_plugin.py feeds TensorRT through (TensorRT itself is not testable here)."""
    from cuda_memory import D2D, CudaRuntime, DeviceBuffer

    try:
        cuda = CudaRuntime()
    except UserError as exc:
        pytest.skip(f"no usable CUDA runtime and GPU: {exc}")
    a = np.arange(1000, dtype=np.float32)
    src = DeviceBuffer(cuda, 2 * a.nbytes)
    src.upload(a)
    src.upload(-a, offset=a.nbytes)
    dst = DeviceBuffer(cuda, 2 * a.nbytes)
    cuda.copy(dst.ptr, src.ptr, 2 * a.nbytes, D2D)
    cuda.zero(dst.ptr, 4 * 10)
    out = dst.download(np.empty(2000, np.float32))
    np.testing.assert_array_equal(out, np.concatenate([np.zeros(10, np.float32), a[10:], -a]))
    assert cuda.compute_capability()[0] >= 5
