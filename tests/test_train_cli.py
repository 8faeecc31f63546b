"""Training, checkpoints, generation and evaluation through the CLI, and their refusals of bad input."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from astroedge import checkpoint
from astroedge.config import preset
from astroedge.evaluate import score
from astroedge.model import AMSNet
from astroedge.tokenizer import ByteTokenizer
from astroedge.train import TrainOptions, run_training

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TEXT = ROOT / "samples" / "shakespeare" / "input.txt"


@pytest.fixture(scope="module")
def small_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "small.txt"
    path.write_bytes(SAMPLE_TEXT.read_bytes()[:40_000])
    return path


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "astroedge.cli", *map(str, args)], capture_output=True, text=True, timeout=300)


def train_tiny(text: Path, out: Path, steps: int, seed: int = 0, resume: bool = False) -> None:
    run_training(TrainOptions(text, out, "tiny", None, steps, seed, batch_size=8, seq_len=64, lr=1e-2, warmup=5, resume=resume))


def test_training_lowers_held_out_loss_and_round_trips(small_text: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ids = torch.tensor(ByteTokenizer().encode(small_text.read_text()))
    held = ids[int(len(ids) * 0.9) :].numpy()
    before = score(AMSNet(preset("tiny")), held, len(held)).nats_per_byte
    out = tmp_path / "m.pt"
    train_tiny(small_text, out, steps=60)
    ckpt = checkpoint.load(out)
    assert ckpt.meta["held_out_nats_per_byte"] < before - 1.0, (before, ckpt.meta)
    # round trip is exact: save what was loaded, load again, same tensors and same outputs
    again = tmp_path / "again.pt"
    checkpoint.save(again, ckpt.model, ckpt.tokenizer, ckpt.meta)
    reloaded = checkpoint.load(again)
    for (name, a), (_, b) in zip(ckpt.model.state_dict().items(), reloaded.model.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    tokens = torch.randint(0, 256, (1, 12))
    assert torch.equal(ckpt.model(tokens).logits, reloaded.model(tokens).logits)


def test_training_is_deterministic_and_resumes(small_text: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    train_tiny(small_text, a, steps=4, seed=7)
    train_tiny(small_text, b, steps=4, seed=7)
    wa, wb = checkpoint.load(a).model.state_dict(), checkpoint.load(b).model.state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    train_tiny(small_text, a, steps=6, seed=7, resume=True)
    assert checkpoint.load(a).meta["steps"] == 6


def test_generate_and_eval_cli(small_text: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    train_tiny(small_text, out, steps=2)
    gen = cli("generate", out, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.startswith("ROMEO:")
    again = cli("generate", out, "--prompt", "ROMEO:", "--max-new-tokens", "20", "--temperature", "0")
    assert again.stdout == gen.stdout  # greedy is deterministic
    ev = cli("eval", out, small_text, "--json", "--max-tokens", "2000")
    assert ev.returncode == 0, ev.stderr
    assert '"bits_per_byte"' in ev.stdout and '"firing_amsu"' in ev.stdout


def assert_clean_refusal(proc: subprocess.CompletedProcess[str], needle: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in lines[0], lines[0]


def test_bad_training_input_is_refused_cleanly(small_text: Path, tmp_path: Path) -> None:
    out = tmp_path / "never.pt"
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    short = tmp_path / "short.txt"
    short.write_text("to be or not to be")
    binary = tmp_path / "bin.txt"
    binary.write_bytes(b"\xff\xfe\x00abc" * 100)
    bad_json, wrong_type, unknown = tmp_path / "bad.json", tmp_path / "type.json", tmp_path / "unknown.json"
    bad_json.write_text('{"d_model": 64,')
    wrong_type.write_text('{"n_layers": "3"}')
    unknown.write_text('{"dmodel": 64}')
    cases = [
        (("train", tmp_path / "missing.txt", "-o", out, "--steps", "1"), "not found"),
        (("train", empty, "-o", out, "--steps", "1"), "only 0 tokens"),
        (("train", short, "-o", out, "--steps", "1"), "use a longer text"),
        (("train", binary, "-o", out, "--steps", "1"), "not UTF-8"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", "huge"), "unknown config 'huge'"),
        (("train", small_text, "-o", out, "--steps", "-3"), "--steps -3"),
        (("train", small_text, "-o", out), "--minutes N or --steps N"),
        (("train", small_text, "-o", tmp_path / "no" / "dir.pt", "--steps", "1", "--config", "tiny", "--seq-len", "16"), "does not exist"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", "tiny", "--d-model", "42"), "'d_model' = 42: must be divisible"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", "tiny", "--n-heads", "8"), "d_model/n_heads=5 must be even"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", tmp_path / "absent.json"), "file not found"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", bad_json), "not valid JSON"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", wrong_type), "'n_layers' = '3': must be an integer"),
        (("train", small_text, "-o", out, "--steps", "1", "--config", unknown), "unknown config field 'dmodel'"),
        (("train", small_text, "-o", out, "--steps", "1", "--firing-target", "1.5"), "--firing-target 1.5"),
        (("config", "show", "huge"), "unknown config 'huge'"),
    ]
    for args, needle in cases:
        assert_clean_refusal(cli(*args), needle)
    assert not out.exists() and not list(tmp_path.glob(".never.pt*"))


def test_bad_checkpoints_are_refused_cleanly(small_text: Path, tmp_path: Path) -> None:
    good = tmp_path / "good.pt"
    train_tiny(small_text, good, steps=1)

    class Payload:  # what a malicious checkpoint would carry
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "astroedge-checkpoint", "format_version": 1, "x": Payload()}, evil, pickle_module=pickle)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:5000])
    newer = tmp_path / "newer.pt"
    payload = torch.load(good, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, newer)
    text = tmp_path / "notckpt.pt"
    text.write_text("hello")
    cases = [
        (evil, "refused to load"),
        (truncated, "truncated or corrupt"),
        (newer, "newer than this astroedge reads"),
        (text, "not a readable astroedge checkpoint"),
        (tmp_path / "absent.pt", "checkpoint not found"),
    ]
    for path, needle in cases:
        proc = cli("generate", path, "--prompt", "a", "--max-new-tokens", "1")
        assert_clean_refusal(proc, needle)
        assert "pwned" not in proc.stdout
    assert_clean_refusal(cli("generate", good, "--prompt", "a", "--max-new-tokens", "-1"), "--max-new-tokens -1")
    assert_clean_refusal(cli("generate", good, "--prompt", "", "--max-new-tokens", "3"), "--prompt is empty")
    assert_clean_refusal(cli("generate", good, "--prompt", "a", "--top-p", "0"), "--top-p 0")


def test_odd_shape_from_the_cli_trains_exports_and_checks(small_text: Path, tmp_path: Path) -> None:
    """A shape of the user's own (D=200, 5 heads of 40, 3 layers: a JSON file from 'config show' plus an option)
    trains from the CLI, exports, and passes `astroedge check`, which counts its AMSU and FFN spikes and ties."""
    import json

    shown = cli("config", "show", "sample")
    assert shown.returncode == 0, shown.stderr
    cfg = json.loads(shown.stdout) | {"d_model": 200, "n_heads": 5}
    (tmp_path / "odd.json").write_text(json.dumps(cfg))
    model, package = tmp_path / "odd.pt", tmp_path / "odd.aepkg"
    trained = cli(
        "train",
        small_text,
        "-o",
        model,
        "--config",
        tmp_path / "odd.json",
        "--n-layers",
        "3",
        "--steps",
        "3",
        "--batch-size",
        "2",
        "--seq-len",
        "32",
        "--firing-target",
        "0.2",
    )
    assert trained.returncode == 0, trained.stderr
    assert "firing rate per layer" in trained.stderr
    ckpt = checkpoint.load(model)
    assert (ckpt.model.cfg.d_model, ckpt.model.cfg.n_heads, ckpt.model.cfg.n_layers) == (200, 5, 3)
    assert ckpt.meta["firing_target"] == 0.2 and len(ckpt.meta["firing_ffn"]) == 3
    exported = cli("export", model, "-o", package)
    assert exported.returncode == 0, exported.stderr
    checked = cli("check", model, package, "--json", "--tokens", "8")
    report = json.loads(checked.stdout)
    assert checked.returncode == 0 and report["passed"], report["failures"]
    s = report["summary"]
    assert s["errors"] == 0 and s["ties"] >= 0 and s["ties_per_million_spikes"] >= 0
    per_token = 3 * (200 + 800)  # AMSU and FFN spikes of every layer
    assert s["spikes_compared"] > per_token * 8


def test_firing_target_trades_loss_for_fewer_spikes(small_text: Path, tmp_path: Path) -> None:
    """Same seed and data, with and without the penalty: the penalised model fires less on held-out text."""
    plain, sparse = tmp_path / "plain.pt", tmp_path / "sparse.pt"
    run_training(TrainOptions(small_text, plain, "tiny", None, 30, 0, batch_size=8, seq_len=64, lr=1e-2, warmup=5))
    run_training(
        TrainOptions(
            small_text, sparse, "tiny", None, 30, 0, batch_size=8, seq_len=64, lr=1e-2, warmup=5, firing_target=0.02, firing_weight=5.0
        )
    )
    a, b = checkpoint.load(plain).meta, checkpoint.load(sparse).meta

    def rate(meta: dict) -> float:
        return sum(meta["firing_amsu"]) + sum(meta["firing_ffn"])

    assert rate(b) < 0.7 * rate(a), (a, b)
    assert b["firing_target"] == 0.02 and a["firing_target"] is None
