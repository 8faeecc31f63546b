"""The runtime as a device sees it: separate processes, torch unavailable, and `astroedge run`.

Every failure path must end in one `error: ...` line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASTROEDGE = Path(sys.executable).parent / "astroedge"

# Installed first in the child: any attempt to import torch fails as on a device without it.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test (device without torch)")
        return None
sys.meta_path.insert(0, _NoTorch())
"""


def python(code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH + code], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([str(ASTROEDGE), "run", *map(str, args)], capture_output=True, text=True, timeout=120, env=env)


def assert_user_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_runtime_imports_and_runs_without_torch(tiny_package: Path) -> None:
    proc = python(f"""
import json
import astroedge.runtime as rt
import astroedge.cli  # the CLI module too: `astroedge run` must not need torch
engine = rt.Engine({str(tiny_package)!r})
tokens = [t for t, _ in engine.create_stream().generate("hello", 10, temperature=0)]
print(json.dumps({{"tokens": tokens, "torch": "torch" in sys.modules, "kernel": engine.kernel}}))
""")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["tokens"]) == 10 and not out["torch"] and out["kernel"] in ("library", "fallback")


def test_streaming_20k_tokens_keeps_memory_flat(hf_tiny_package: Path) -> None:
    """Constant-size state and constant-work text: 20k tokens generated from a HuggingFace-tokenizer package
    (ids from libastroedge, text from the binding's stream decoder) must not grow the process (RSS < 2 MB
    after warm-up). 100k tokens through the decoder alone: tests/test_runtime_tokenizer.py."""
    proc = python(
        f"""
from astroedge.runtime import Engine
from astroedge.runtime.stats import proc_status_kib
stream = Engine({str(hf_tiny_package)!r}, threads=1).create_stream()
for _ in stream.generate("warm up", 2000, temperature=0.8, top_k=40, seed=1):
    pass
before = proc_status_kib("VmRSS")
n = chars = 0
for _, piece in stream.generate(None, 20000, temperature=0.8, top_k=40, repetition_penalty=1.1, seed=2):
    n += 1
    chars += len(piece)
print(n, chars, before, proc_status_kib("VmRSS"), stream.position - len(stream.engine.tokenizer.encode("warm up")))
""",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    n, chars, before, after, generated = map(int, proc.stdout.split())
    assert n == 20000 and generated == 22000 and chars > 10000
    assert after - before < 2048, f"RSS grew by {after - before} KiB over 20k tokens"


def test_cli_run_streams_text_and_prints_stats(tiny_package: Path, tmp_path: Path) -> None:
    greedy = ("--temperature", "0")
    proc = cli(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "12", *greedy, "--stats", "--save-state", tmp_path / "s.aestate")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ROMEO:")
    for label in ("time to first token ms", "latency p50 ms", "latency p99 ms", "tokens per s", "peak rss mib", "state bytes per stream"):
        assert label in proc.stderr
    assert "2880" in proc.stderr  # tiny: 2 layers x (5*8*8 + 40) floats
    whole = cli(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0")
    resumed = cli(tiny_package, "--load-state", tmp_path / "s.aestate", "--max-new-tokens", "8", "--temperature", "0")
    assert resumed.returncode == 0, resumed.stderr
    # the fixture's 12th token ends a character, so the two halves' texts concatenate exactly
    assert proc.stdout.rstrip("\n") + resumed.stdout.rstrip("\n") == whole.stdout.rstrip("\n")


def test_cli_empty_prompt(tiny_package: Path) -> None:
    assert_user_error(cli(tiny_package, "--prompt", ""), "empty prompt")


def test_cli_corrupted_package(tiny_package: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.aepkg"
    shutil.copytree(tiny_package, bad)
    data = bytearray((bad / "model.onnx").read_bytes())
    data[100] ^= 0x01
    (bad / "model.onnx").write_bytes(bytes(data))
    assert_user_error(cli(bad, "--prompt", "x"), "model.onnx", "sha256")


def test_cli_state_file_of_another_model(tiny_package: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.aepkg"
    shutil.copytree(tiny_package, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["created_by"] = "another export"
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert cli(other, "--prompt", "x", "--max-new-tokens", "1", "--save-state", tmp_path / "o.aestate").returncode == 0
    assert_user_error(cli(tiny_package, "--load-state", tmp_path / "o.aestate"), "o.aestate", "another package")


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--device", "tensorrt"], ["tensorrt", "TensorRT"]),
        (["--device", "jetson"], ["jetson"]),
        (["--device", "npu"], ["device 'npu' is unknown"]),
        (["--temperature", "-1"], ["temperature"]),
        (["--repetition-penalty", "0"], ["repetition"]),
        (["--seed", "-1"], ["--seed -1"]),
        (["--temperature", "1e-310"], ["--temperature"]),
        (["--threads", "2147483648"], ["--threads 2147483648"]),
        (["--max-new-tokens", "2147483648"], ["--max-new-tokens 2147483648", "0..2147483647"]),
        (["--save-state", "/tmp"], ["--save-state /tmp", "folder"]),
    ],
)
def test_cli_bad_options(tiny_package: Path, args: list[str], fragments: list[str]) -> None:
    assert_user_error(cli(tiny_package, "--prompt", "x", *args), *fragments)


def test_cli_invalid_utf8_prompt_is_one_line(tiny_package: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    argv = [os.fsencode(ASTROEDGE), b"run", os.fsencode(tiny_package), b"--prompt", b"ab\xffcd"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env)
    assert_user_error(proc, "--prompt", "not valid UTF-8", "0xff")


def test_cli_cuda_without_the_gpu_build_is_refused_not_run_on_cpu(tiny_package: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed here; the refusal path needs the CPU build")
    assert_user_error(cli(tiny_package, "--prompt", "x", "--device", "cuda"), "cuda", "onnxruntime-gpu")


def test_cli_missing_package(tmp_path: Path) -> None:
    assert_user_error(cli(tmp_path / "none.aepkg", "--prompt", "x"), "none.aepkg", "not found")


def test_sample_app_continues_one_conversation(tiny_package: Path, tmp_path: Path) -> None:
    app = ROOT / "samples" / "python_app" / "chat.py"
    args = [
        sys.executable,
        str(app),
        str(tiny_package),
        "--max-new-tokens",
        "5",
        "--stop",
        "@@never@@",
        "--state",
        str(tmp_path / "c.aestate"),
    ]
    first = subprocess.run([*args, "ROMEO:", "JULIET:"], capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "> ROMEO:" in first.stdout and "[11 tokens in the conversation" in first.stdout and "[23 tokens" in first.stdout
    again = subprocess.run(args, input="KING:\n", capture_output=True, text=True, timeout=120)  # stdin, resumed state
    assert again.returncode == 0, again.stderr
    assert "[34 tokens in the conversation, state 2880 bytes]" in again.stdout


# -- --json, --stop, --library ------------------------------------------------------------------------


def test_cli_json_and_stop(tiny_package: Path) -> None:
    proc = cli(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "30", "--temperature", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert len(out["tokens"]) == 30 and out["prompt_tokens"] == list(b"ROMEO:") and out["position"] == 36
    assert out["text"] == bytes(out["tokens"]).decode("utf-8", errors="replace")[: len(out["text"])]
    assert out["stats"]["generated_tokens"] == 30 and out["stats"]["state_bytes_per_stream"] == 2880
    stop = out["text"][5:7]
    first = out["text"].index(stop) + len(stop)
    stopped = json.loads(cli(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "30", "--temperature", "0", "--json",
                             "--stop", "@@never@@", "--stop", stop).stdout)  # fmt: skip
    assert stopped["text"] == out["text"][:first] and stopped["tokens"] == out["tokens"][: len(stopped["tokens"])]


def test_cli_refuses_a_named_library_that_cannot_load(tiny_package: Path, tmp_path: Path) -> None:
    assert_user_error(cli(tiny_package, "--prompt", "x", "--library", tmp_path / "nope.so"), "nope.so")
    env = {**os.environ, "ASTROEDGE_ORT_LIBRARY": str(tmp_path / "gone.so")}
    proc = subprocess.run([str(ASTROEDGE), "run", str(tiny_package), "--prompt", "x"], capture_output=True, text=True, timeout=120, env=env)
    assert_user_error(proc, "ASTROEDGE_ORT_LIBRARY", "gone.so")


# -- the C sample app and the Python binding: one state format, one RNG ------------------------------


@pytest.fixture(scope="module")
def c_app() -> Path:
    from astroedge.native import runtime_library_path

    lib = runtime_library_path()
    app = None if lib is None else lib.parent / "ae_generate"
    if app is None or not app.is_file():
        pytest.skip("the C sample app (build/runtime/ae_generate) is not built: make setup")
    return app


def same_library() -> list[str]:
    """The AMSU implementation both sides run: the native library where built, else the fallback function."""
    from astroedge.native import get_library_path

    return ["--library", str(get_library_path() or "")]


def c_ids(app: Path, *args: str | Path) -> list[int]:
    proc = subprocess.run([str(app), *map(str, args), "--ids", *same_library()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [int(t) for t in proc.stdout.split()]


def py_ids(*args: str | Path) -> list[int]:
    proc = cli(*args, "--json", *same_library())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["tokens"]


def test_one_seed_samples_the_same_tokens_in_the_c_app_and_python(c_app: Path, tiny_package: Path) -> None:
    settings = ["--temperature", "0.9", "--top-k", "50", "--top-p", "0.95", "--repetition-penalty", "1.1", "--seed", "77"]
    want = c_ids(c_app, tiny_package, "ROMEO:", "40", *settings)
    assert py_ids(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "40", *settings) == want
    other = c_ids(c_app, tiny_package, "ROMEO:", "40", *settings[:-1], "78")
    assert other != want  # the seed matters


def test_state_files_cross_between_the_c_app_and_python(c_app: Path, tiny_package: Path, tmp_path: Path) -> None:
    greedy = ["--temperature", "0"]
    whole = c_ids(c_app, tiny_package, "ROMEO:", "20", *greedy)
    c_state, py_state = tmp_path / "c.aestate", tmp_path / "py.aestate"
    assert c_ids(c_app, tiny_package, "ROMEO:", "12", *greedy, "--save-state", c_state) == whole[:12]
    assert py_ids(tiny_package, "--load-state", c_state, "--max-new-tokens", "8", *greedy) == whole[12:]  # C -> Python
    assert py_ids(tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "12", *greedy, "--save-state", py_state) == whole[:12]
    assert c_ids(c_app, tiny_package, "", "8", *greedy, "--load-state", py_state) == whole[12:]  # Python -> C
    assert c_state.read_bytes() == py_state.read_bytes()  # one format: the same stream saves the same bytes


def test_cli_runs_an_hf_tokenizer_package(hf_tiny_package: Path) -> None:
    """Prompt encoded and text decoded by the binding with `tokenizers`; ids and sampling from libastroedge; --stop on that text."""
    from astroedge.tokenizer import HFTokenizer

    tok = HFTokenizer.from_file(hf_tiny_package / "tokenizer.json")
    proc = cli(hf_tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "80", "--seed", "3", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["prompt_tokens"] == tok.encode("ROMEO:") and len(out["tokens"]) == 80
    full = tok.decode(out["tokens"])
    assert full.startswith(out["text"]) and set(full[len(out["text"]) :]) <= {"\ufffd"}
    stop = out["text"][20:22]
    stopped = json.loads(
        cli(hf_tiny_package, "--prompt", "ROMEO:", "--max-new-tokens", "80", "--seed", "3", "--json", "--stop", stop).stdout
    )
    assert stopped["text"].endswith(stop) and stopped["tokens"] == out["tokens"][: len(stopped["tokens"])] and len(stopped["tokens"]) < 80
