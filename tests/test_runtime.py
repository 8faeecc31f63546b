"""The torch-free runtime (astroedge.runtime) against the PyTorch reference, in process.

Fixtures: tests/conftest.py (a random-weight tiny model exported to a package).
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from astroedge.errors import UserError
from astroedge.runtime import Engine, load_package
from astroedge.runtime.ort_session import LIBRARY_ENV, library_path
from astroedge.runtime.stats import parse_tegrastats, proc_status_kib

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


# -- package ---------------------------------------------------------------------------------------


def test_load_package_reads_the_manifest(tiny_package: Path) -> None:
    pkg = load_package(tiny_package)
    cfg = pkg.config
    assert (cfg.d_model, cfg.n_layers, cfg.n_heads) == (40, 2, 5)
    assert [s.name for s in pkg.state] == ["h.0", "u.0", "h.1", "u.1"]
    assert pkg.state[0].shape == ("batch", 5, 8, 8) and pkg.state[0].concrete_shape(3) == (3, 5, 8, 8)
    assert pkg.state_bytes_per_stream == 2 * (5 * 8 * 8 + 40) * 4
    assert pkg.onnx_path == tiny_package / "model.onnx" and pkg.precision == "fp32"
    assert pkg.tokenizer.encode("é") == [0xC3, 0xA9]


def _copy(src: Path, dst: Path, edit: dict | None = None) -> Path:
    shutil.copytree(src, dst)
    if edit is not None:
        m = json.loads((dst / "manifest.json").read_text())
        m.update(edit)
        (dst / "manifest.json").write_text(json.dumps(m))
    return dst


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"format_version": 2}, "newer than this astroedge reads"),
        ({"format": "zip"}, "field 'format'"),
        ({"precision": "fp8"}, "field 'precision'"),
        ({"state_bytes_per_stream": 1}, "field 'state_bytes_per_stream'"),
        ({"state": [{"name": "h.0", "input": "a", "output": "b", "dtype": "float16", "shape": ["batch", 2]}]}, "state[0].dtype"),
        ({"files": {}}, "is not listed in 'files'"),
    ],
)
def test_bad_manifest_names_the_field(tiny_package: Path, tmp_path: Path, edit: dict, message: str) -> None:
    bad = _copy(tiny_package, tmp_path / "bad.aepkg", edit)
    with pytest.raises(UserError, match=re.escape(message)):
        load_package(bad)


def test_missing_field_and_missing_file(tiny_package: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_package, tmp_path / "a.aepkg")
    m = json.loads((bad / "manifest.json").read_text())
    del m["max_position"]
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match="required field 'max_position' is missing"):
        load_package(bad)
    gone = _copy(tiny_package, tmp_path / "b.aepkg")
    (gone / "model.onnx").unlink()
    with pytest.raises(UserError, match="model.onnx: missing from the package"):
        load_package(gone)


def test_corrupted_byte_fails_the_checksum_unless_verify_is_off(tiny_package: Path, tmp_path: Path) -> None:
    bad = _copy(tiny_package, tmp_path / "c.aepkg")
    data = bytearray((bad / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bad / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(UserError, match="sha256 does not match"):
        load_package(bad)
    assert load_package(bad, verify=False).path == bad


# -- one function: runtime == reference --------------------------------------------------------------


@pytest.mark.parametrize("kernel", ["library", "fallback"])
def test_greedy_output_equals_the_pytorch_reference(
    tiny_package: Path, tiny_checkpoint: Path, kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both AMSU implementations the CPU engine can run: the native library (built by `make setup`) and the fallback function."""
    if kernel == "fallback":
        monkeypatch.setenv(LIBRARY_ENV, "")
    elif library_path("cpu") is None:
        pytest.skip("build/plugins/libastroedge_ort.so is not built (make setup builds it)")
    engine = Engine(tiny_package)
    assert engine.kernel == kernel
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
        for x, y in zip(s.state, whole.state, strict=True):
            np.testing.assert_allclose(x, y, atol=2e-5)


# -- streams -----------------------------------------------------------------------------------------


def test_save_and_restore_continue_bit_identically(engine: Engine, tmp_path: Path) -> None:
    stream = engine.create_stream()
    stream.feed(PROMPT)
    stream.save_state(tmp_path / "s.npz")
    first = [t for t, _ in stream.generate(None, 25, temperature=0.9, seed=3)]
    after = stream.state

    resumed = engine.create_stream()
    resumed.load_state(tmp_path / "s.npz")
    assert resumed.position == len(PROMPT.encode())
    again = [t for t, _ in resumed.generate(None, 25, temperature=0.9, seed=3)]
    assert again == first
    for x, y in zip(resumed.state, after, strict=True):
        assert np.array_equal(x, y)
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file


def test_state_file_of_another_package_or_newer_version_is_refused(engine: Engine, tiny_package: Path, tmp_path: Path) -> None:
    stream = engine.create_stream()
    stream.feed("abc")
    stream.save_state(tmp_path / "s.npz")
    other_dir = _copy(tiny_package, tmp_path / "other.aepkg", {"created_by": "someone else"})
    other = Engine(other_dir).create_stream()
    with pytest.raises(UserError, match="belongs to another package"):
        other.load_state(tmp_path / "s.npz")

    with np.load(tmp_path / "s.npz") as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays["__header__"]))
    header["format_version"] = 9
    arrays["__header__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "new.npz", **arrays)
    with pytest.raises(UserError, match="newer than this astroedge reads"):
        stream.load_state(tmp_path / "new.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UserError, match="not a readable astroedge state file"):
        stream.load_state(tmp_path / "junk.npz")


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
    assert a.position == 0 and all(not x.any() for x in a.state)
    assert b.position == len(PROMPT.encode()) + 3


def test_batch_of_four_equals_four_single_streams(engine: Engine) -> None:
    prompts = ["To be", "or not", "to be: that", "is the question"]
    batched = [engine.create_stream() for _ in prompts]
    singles = [engine.create_stream() for _ in prompts]
    for s, t, p in zip(batched, singles, prompts, strict=True):
        s.feed(p)
        t.feed(p)
    for step in range(6):
        tokens = [int(np.argmax(s.last_logits)) for s in batched]
        logits = engine.step_batch(batched, tokens)
        assert logits.shape == (4, 256)
        for i, t in enumerate(singles):
            assert int(np.argmax(t.last_logits)) == tokens[i], f"stream {i} diverged at step {step}"
            np.testing.assert_allclose(logits[i], t.step(tokens[i]), atol=1e-5)
    for s, t in zip(batched, singles, strict=True):
        assert s.position == t.position
        for x, y in zip(s.state, t.state, strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)


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


# -- bad input ---------------------------------------------------------------------------------------


def test_bad_tokens_and_prompts_raise_user_errors(engine: Engine) -> None:
    s = engine.create_stream()
    with pytest.raises(UserError, match=r"token id 256 \(index 1\) is outside the vocabulary \[0, 256\)"):
        s.feed([1, 256])
    with pytest.raises(UserError, match="token id -1"):
        s.step(-1)
    with pytest.raises(UserError, match="empty prompt"):
        s.feed("")
    with pytest.raises(UserError, match="empty prompt"):
        list(s.generate(None, 3))
    with pytest.raises(UserError, match="--temperature"):
        s.generate("a", 3, temperature=-1)
    with pytest.raises(UserError, match="one token per stream"):
        engine.step_batch([s], [1, 2])
    assert s.position == 0  # nothing was consumed by the failed calls


def test_position_past_max_position_is_refused(engine: Engine) -> None:
    s = engine.create_stream()
    s.position = engine.package.max_position - 1
    s.step(65)
    with pytest.raises(UserError, match="exceeds the package's max_position"):
        s.step(65)


def test_unknown_device_is_refused(tiny_package: Path) -> None:
    with pytest.raises(UserError, match="device 'tpu' is unknown"):
        Engine(tiny_package, device="tpu")


# -- stats helpers -----------------------------------------------------------------------------------


def test_memory_readers() -> None:
    line = "RAM 2345/7620MB (lfb 4x4MB) SWAP 0/3810MB (cached 0MB) CPU [5%@1190,2%@1190] GR3D_FREQ 0%"
    assert parse_tegrastats(line) == (2345, 7620)
    assert parse_tegrastats("no memory here") is None
    hwm, rss = proc_status_kib("VmHWM"), proc_status_kib("VmRSS")
    assert hwm is not None and rss is not None and hwm >= rss > 1000


@pytest.mark.gpu
def test_cuda_device_keeps_state_on_gpu_and_matches_cpu(tiny_package: Path, engine: Engine) -> None:
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with the CUDA provider is not installed")
    gpu = Engine(tiny_package, device="cuda")
    a, b = gpu.create_stream(), engine.create_stream()
    np.testing.assert_allclose(a.feed(PROMPT), b.feed(PROMPT), atol=1e-4)
    assert type(a.device_state[0]).__name__ == "OrtValue" and a.device_state[0].device_name().lower() == "cuda"
    assert [t for t, _ in a.generate(None, 20, temperature=0)] == [t for t, _ in b.generate(None, 20, temperature=0)]


@pytest.mark.gpu
def test_cuda_memory_round_trip_for_the_tensorrt_backend() -> None:
    """The ctypes libcudart layer that feeds TensorRT raw device pointers (TensorRT itself is not testable here)."""
    from astroedge.runtime.cuda_memory import D2D, CudaRuntime, DeviceBuffer

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
