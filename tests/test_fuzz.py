"""The project fuzzes itself (issue 13, docs/security.md): seeded mutants of packages, state files and checkpoints.

Every mutant goes through the Python reader in-process (`inspect_package`, in a worker process so that a crash or
hang is caught) and through the C sample app (build/runtime/ae_generate); every CLI_EVERY-th one also through the
`astroedge inspect` and `astroedge run` commands. Checkpoint mutants go through `checkpoint.load` in a worker (and
a few through `astroedge export`). Asserted for every run: no traceback, no death by signal, no hang (timeout),
exit 0 or a one-line refusal with exit 2, and nothing accepted whose bytes disagree with their listed sha256 or
that names a file outside the package.

Size: ASTROEDGE_FUZZ_N mutants per family group (default 80, about a minute in `make test`; `make fuzz` runs
10,000), seed ASTROEDGE_FUZZ_SEED (default 0), ASTROEDGE_FUZZ_REPORT=PATH writes the counts per target and class.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import random
import selectors
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
C_APP = Path(os.environ.get("ASTROEDGE_FUZZ_C_APP", ROOT / "build" / "runtime" / "ae_generate"))  # a copy, for long runs beside a rebuild
ASTROEDGE = Path(sys.executable).with_name("astroedge")
SEED = int(os.environ.get("ASTROEDGE_FUZZ_SEED", "0"))
N = int(os.environ.get("ASTROEDGE_FUZZ_N", "80"))
CLI_EVERY = int(os.environ.get("ASTROEDGE_FUZZ_CLI_EVERY", "25"))
RUN_TIMEOUT_S = 30.0
HF_TEXT_IN_HOST = 'ae_tokenize: the package\'s tokenizer is "hf"'  # the C app's refusal to tokenize, after loading
FAILURES = ("traceback", "signal", "hang", "bad_exit", "multiline_refusal", "accepted_tampered", "accepted_outside")

# Values a hostile or careless manifest may hold; the *_outside ones name a file beyond the package.
OUTSIDE = ["../secret.bin", "/etc/passwd", "/dev/zero", "/proc/self/environ", "..", "sub/../model.onnx"]
HOSTILE = [None, True, False, -1, 0, 1, 2**31, 2**63, 1e308, -1e308, 0.5, "", "x" * 5000, "batch", [], {}, [1, 2], {"a": 1}, *OUTSIDE]


@dataclass
class Mutant:
    """A mutated package (or file) and what a correct reader must do with it."""

    family: str
    path: Path
    must_refuse: str | None = None  # "accepted_tampered" / "accepted_outside" if acceptance would be that failure
    extra_args: list[str] = field(default_factory=list)  # for the C app / run (e.g. --load-state FILE)


@dataclass
class Tally:
    counts: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    examples: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, target: str, family: str, outcome: str, detail: str) -> None:
        self.counts[(target, outcome)] += 1
        if outcome in FAILURES or outcome.startswith("python-ok"):
            self.examples.setdefault((target, outcome), f"[{family}] {detail[:300]}")

    def failures(self) -> dict[str, int]:
        return {f"{t}:{o}": n for (t, o), n in sorted(self.counts.items()) if o in FAILURES}

    def report(self) -> dict[str, Any]:
        return {
            "seed": SEED,
            "n": N,
            "counts": {f"{t}:{o}": n for (t, o), n in sorted(self.counts.items())},
            "examples": {f"{t}:{o}": e for (t, o), e in sorted(self.examples.items())},
        }


def classify(rc: int | None, stderr: str, must_refuse: str | None) -> str:
    if rc is None:
        return "hang"
    if rc < 0:
        return "signal"
    if "Traceback (most recent call last)" in stderr:
        return "traceback"
    if rc == 0:
        return must_refuse or "ok"
    if rc == 2:
        return "refused" if len(stderr.strip().splitlines()) == 1 else "multiline_refusal"
    return "bad_exit"


def classify_api(out: dict[str, Any], must_refuse: str | None) -> str:
    """A Worker's answer: rc 1 is an exception other than UserError (a traceback on the CLI)."""
    rc = out["rc"]
    if rc == 1:
        return "traceback"
    return classify(rc, out.get("msg", "") if rc == 2 else "", must_refuse)


def run_cmd(cmd: list[str]) -> tuple[int | None, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None, ""
    return proc.returncode, proc.stderr


# --- a persistent in-process worker (crash and hang safe) -------------------------------------------------------------

_WORKER = r"""
import json, sys, traceback
from astroedge.errors import UserError
mode = sys.argv[1]
if mode == "inspect":
    from astroedge.export.inspect_package import inspect_package as target
    check = lambda p, r: True
else:
    from astroedge import checkpoint
    original = sys.argv[2]
    target = checkpoint.load
    ref = checkpoint.weights_sha256(checkpoint.load(original).model.state_dict())
    check = lambda p, ck: checkpoint.weights_sha256(ck.model.state_dict()) == ref
for line in sys.stdin:
    path = line.rstrip("\n")
    try:
        result = target(path)
        out = {"rc": 0, "same": bool(check(path, result))}
    except UserError as exc:
        out = {"rc": 2, "msg": str(exc)}
    except BaseException:
        out = {"rc": 1, "msg": traceback.format_exc()}
    print(json.dumps(out), flush=True)
"""


class Worker:
    """Runs mutants through a Python API in a child process: a crash or a hang costs a restart, not the test run."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _WORKER, *self.args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
            )
        return self.proc

    def run(self, path: Path) -> dict[str, Any]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(timeout=RUN_TIMEOUT_S)
        sel.close()
        line = proc.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        hung = not ready
        proc.kill()
        proc.wait()
        self.proc = None
        return {"rc": None if hung else proc.returncode or -9, "msg": "hang" if hung else "worker died"}

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


# --- packages to mutate ------------------------------------------------------------------------------------------------


def _rehash(pkg: Path, name: str) -> None:
    m = json.loads((pkg / "manifest.json").read_text())
    data = (pkg / name).read_bytes()
    m["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (pkg / "manifest.json").write_text(json.dumps(m, indent=2))


@pytest.fixture(scope="module")
def bases(tiny_package: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The byte-tokenizer package, one with external data, one with an HF tokenizer, and a file outside them all."""
    import onnx
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers

    from astroedge import checkpoint
    from astroedge.config import preset
    from astroedge.export.package import export_package
    from astroedge.model import AMSNet
    from astroedge.tokenizer import HFTokenizer

    root = tmp_path_factory.mktemp("fuzz_bases")
    ext = root / "ext.aepkg"
    shutil.copytree(tiny_package, ext)
    model = onnx.load(str(ext / "model.onnx"))
    onnx.save_model(
        model,
        str(ext / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=256,
    )
    m = json.loads((ext / "manifest.json").read_text())
    m["onnx"]["external_data"] = "model.onnx.data"
    (ext / "manifest.json").write_text(json.dumps(m, indent=2))
    _rehash(ext, "model.onnx")
    _rehash(ext, "model.onnx.data")
    shutil.copy(ext / "model.onnx.data", root / "secret.bin")  # same bytes: only the path rule can refuse it

    vocab = {w: i for i, w in enumerate(["[UNK]", *sorted(set("to be or not that is the question ROMEO JULIET".split()))])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    torch.manual_seed(0)
    ck = root / "hf.pt"
    checkpoint.save(ck, AMSNet(preset("tiny")).eval(), HFTokenizer(tok.to_str()))
    hf = export_package(ck, root / "hf.aepkg")
    return {"bytes": tiny_package, "ext": ext, "hf": hf, "secret": root / "secret.bin"}


# --- mutators ----------------------------------------------------------------------------------------------------------


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def mutate_manifest(rng: random.Random, pkg: Path) -> str | None:
    m = json.loads((pkg / "manifest.json").read_text())
    path = rng.choice(_paths(m))
    parent = m
    for key in path[:-1]:
        parent = parent[key]
    op = rng.random()
    outside = False
    if op < 0.15:
        del parent[path[-1]]
    elif op < 0.25 and isinstance(parent, dict):  # rename a key (a files entry: maybe a name outside the package)
        key = rng.choice([*OUTSIDE, "x", ""])
        parent[key] = parent.pop(path[-1])
        outside = key in OUTSIDE and path[:-1] == ("files",)
    elif op < 0.35 and isinstance(parent, list) and len(parent) > 1:  # swap two entries (state layers)
        j = rng.randrange(len(parent))
        parent[path[-1]], parent[j] = parent[j], parent[path[-1]]
    else:
        value = rng.choice(HOSTILE)
        parent[path[-1]] = value
        outside = isinstance(value, str) and value in OUTSIDE and path[-1] in ("file", "external_data")
    (pkg / "manifest.json").write_text(json.dumps(m, indent=2))
    return "accepted_outside" if outside else None


def _flip(rng: random.Random, path: Path, rehash: bool) -> str | None:
    data = bytearray(path.read_bytes())
    kind = rng.random()
    if kind < 0.3 and len(data) > 1:
        data = data[: rng.randrange(1, len(data))]
    elif kind < 0.4:
        start = rng.randrange(len(data))
        data[start : start + 64] = bytes(len(data[start : start + 64]))  # zeroed
    elif kind < 0.5 and len(data) > 8:
        start = rng.randrange(len(data) - 8) & ~3
        data[start : start + 8] = data[start : start + 8][::-1]  # byte-swapped
    else:
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    if bytes(data) == path.read_bytes():
        return None
    path.write_bytes(bytes(data))
    if rehash:
        _rehash(path.parent, path.name)
        return None
    return "accepted_tampered"


def mutate_file_bytes(name: str) -> Callable[[random.Random, Path], str | None]:
    return lambda rng, pkg: _flip(rng, pkg / name, rehash=rng.random() < 0.5)


def mutate_manifest_bytes(rng: random.Random, pkg: Path) -> str | None:
    _flip(rng, pkg / "manifest.json", rehash=False)
    return None  # the manifest is the root of trust: a still-valid mutant may load


def mutate_fs(secret: Path) -> Callable[[random.Random, Path], str | None]:
    def apply(rng: random.Random, pkg: Path) -> str | None:
        names = sorted(p.name for p in pkg.iterdir())
        target = pkg / rng.choice(names)
        target.unlink()
        kind = rng.choice(["fifo", "devzero", "outside", "dir"])
        if kind == "fifo":
            os.mkfifo(target)
        elif kind == "devzero":
            target.symlink_to("/dev/zero")
        elif kind == "outside":
            target.symlink_to(secret if target.name == "model.onnx.data" else os.path.relpath(secret, pkg))
        else:
            target.mkdir()
        return "accepted_outside"

    return apply


def mutate_external_location(secret: Path) -> Callable[[random.Random, Path], str | None]:
    """model.onnx rewritten (and re-listed) so that a tensor's data lives outside the package: must be refused."""

    def apply(rng: random.Random, pkg: Path) -> str | None:
        import onnx

        model = onnx.load(str(pkg / "model.onnx"), load_external_data=False)
        ext = [t for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
        tensor = rng.choice(ext)
        location = rng.choice([os.path.relpath(secret, pkg), str(secret), "/dev/zero", "sub/x.bin", "missing.bin"])
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
        (pkg / "model.onnx").write_bytes(model.SerializeToString())
        _rehash(pkg, "model.onnx")
        return "accepted_outside"

    return apply


def mutate_graph_attributes(rng: random.Random, pkg: Path) -> str | None:
    """A node attribute (AMSU's first among them) set to a hostile value, the graph re-listed: a valid-looking package."""
    import onnx

    model = onnx.load(str(pkg / "model.onnx"))
    nodes = [n for n in model.graph.node if n.attribute]
    custom = [n for n in nodes if n.domain not in ("", "ai.onnx")]
    node = rng.choice(custom if custom and rng.random() < 0.7 else nodes)
    attr = rng.choice(list(node.attribute))
    if attr.type == onnx.AttributeProto.INT:
        attr.i = rng.choice([0, -1, 2**31, 2**63 - 1, -(2**63)])
    elif attr.type == onnx.AttributeProto.FLOAT:
        attr.f = rng.choice([float("nan"), float("inf"), -1e38, 0.0])
    elif attr.type == onnx.AttributeProto.STRING:
        attr.s = rng.choice([b"", b"\xff\xfe", b"x" * 1000, b"../../etc/passwd"])
    else:
        node.attribute.remove(attr)
    (pkg / "model.onnx").write_bytes(model.SerializeToString())
    _rehash(pkg, "model.onnx")
    return None


def mutate_unlisted_tokenizer(rng: random.Random, pkg: Path) -> str | None:
    """The tokenizer's manifest entry removed and its bytes changed: an unlisted file must never be read."""
    m = json.loads((pkg / "manifest.json").read_text())
    del m["files"]["tokenizer.json"]
    (pkg / "manifest.json").write_text(json.dumps(m, indent=2))
    text = (pkg / "tokenizer.json").read_text()
    (pkg / "tokenizer.json").write_text(text.replace('"be"', '"eb"') if rng.random() < 0.5 else text)
    return "accepted_tampered"


# --- the harness -------------------------------------------------------------------------------------------------------


def _package_families(bases: dict[str, Path]) -> list[tuple[str, str, Callable[[random.Random, Path], str | None]]]:
    secret = bases["secret"]
    return [
        ("manifest-field", "bytes", mutate_manifest),
        ("manifest-field-hf", "hf", mutate_manifest),
        ("manifest-bytes", "bytes", mutate_manifest_bytes),
        ("graph-bytes", "bytes", mutate_file_bytes("model.onnx")),
        ("graph-attributes", "bytes", mutate_graph_attributes),
        ("external-data-bytes", "ext", mutate_file_bytes("model.onnx.data")),
        ("external-location", "ext", mutate_external_location(secret)),
        ("tokenizer-bytes", "hf", mutate_file_bytes("tokenizer.json")),
        ("tokenizer-unlisted", "hf", mutate_unlisted_tokenizer),
        ("special-files", "ext", mutate_fs(secret)),
    ]


def _c_app_args(pkg: Path, extra: list[str]) -> list[str]:
    return [str(C_APP), str(pkg), "a", "2", "--temperature", "0", *extra]


def _run_targets(m: Mutant, index: int, worker: Worker | None, tally: Tally) -> None:
    api = c_app = None
    if worker is not None:
        out = worker.run(m.path)
        api = classify_api(out, m.must_refuse)
        tally.add("python-api", m.family, api, out.get("msg", ""))
    if C_APP.is_file():
        rc, err = run_cmd(_c_app_args(m.path, m.extra_args))
        if rc == 2 and HF_TEXT_IN_HOST in err:  # the engine loaded the package; only text is the host's job (astroedge.h)
            rc = 0
        c_app = classify(rc, err, m.must_refuse)
        tally.add("c-app", m.family, c_app, err)
        if api == "ok" and c_app == "refused":  # not a failure: inspect does not run the graph; counted to see the gap
            tally.add("readers", m.family, "python-ok-c-refused", err)
    if index % CLI_EVERY == 0:
        if worker is not None:
            rc, err = run_cmd([str(ASTROEDGE), "inspect", "--json", str(m.path)])
            tally.add("cli-inspect", m.family, classify(rc, err, m.must_refuse), err)
        run_args = ["--prompt", "a", "--max-new-tokens", "2", "--temperature", "0", *m.extra_args]
        rc, err = run_cmd([str(ASTROEDGE), "run", str(m.path), *run_args])
        tally.add("cli-run", m.family, classify(rc, err, m.must_refuse), err)


def _finish(tally: Tally, name: str) -> None:
    report = tally.report()
    print(f"\nfuzz {name}: " + json.dumps(report["counts"]))
    path = os.environ.get("ASTROEDGE_FUZZ_REPORT")
    if path:
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        old = json.loads(out.read_text()) if out.is_file() else {}
        old[name] = report
        out.write_text(json.dumps(old, indent=1) + "\n")
    failures = tally.failures()
    assert not failures, f"{name}: {failures}; first of each: " + json.dumps(report["examples"], indent=1)


def test_fuzz_packages(bases: dict[str, Path], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    families = _package_families(bases)
    worker = Worker("inspect")
    tally = Tally()
    try:
        for i in range(N):
            family, base, mutate = families[i % len(families)]
            pkg = tmp_path / f"m{i}.aepkg"
            shutil.copytree(bases[base], pkg)
            must_refuse = mutate(rng, pkg)
            _run_targets(Mutant(family, pkg, must_refuse), i, worker, tally)
            shutil.rmtree(pkg, ignore_errors=True)
    finally:
        worker.close()
    _finish(tally, "packages")


def test_fuzz_state_files(bases: dict[str, Path], tmp_path: Path) -> None:
    """A state file saved by the C app, mutated, loaded by the C app and `astroedge run`: never a crash, traceback or hang."""
    if not C_APP.is_file():
        pytest.skip(f"{C_APP} is not built (make runtime)")
    good = tmp_path / "good.state"
    rc, err = run_cmd(_c_app_args(bases["bytes"], ["--save-state", str(good)]))
    assert rc == 0 and good.is_file(), f"the C app could not save a state file: {err}"
    rng = random.Random(SEED + 1)
    tally = Tally()
    for i in range(max(1, N // 3)):
        state = tmp_path / f"s{i}.state"
        shutil.copy(good, state)
        if rng.random() < 0.2:
            data = bytearray(state.read_bytes())
            at = rng.randrange(0, min(len(data) - 8, 64))
            data[at : at + 8] = rng.choice([b"\xff" * 8, (2**42).to_bytes(8, "little"), bytes(8)])  # absurd header sizes
            state.write_bytes(bytes(data))
        else:
            _flip(rng, state, rehash=False)
        _run_targets(Mutant("state-file", bases["bytes"], None, ["--load-state", str(state)]), i, None, tally)
        state.unlink()
    _finish(tally, "state-files")


def test_fuzz_checkpoints(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Bit-flipped, truncated, zeroed checkpoints: refused in one line, or loaded with exactly the original weights."""
    rng = random.Random(SEED + 2)
    worker = Worker("checkpoint", str(tiny_checkpoint))
    tally = Tally()
    try:
        for i in range(max(1, N // 2)):
            ck = tmp_path / f"c{i}.pt"
            shutil.copy(tiny_checkpoint, ck)
            _flip(rng, ck, rehash=False)
            out = worker.run(ck)
            outcome = classify_api(out, None if out.get("same", True) else "accepted_tampered")
            tally.add("python-api", "checkpoint", outcome, out.get("msg", ""))
            if i % (CLI_EVERY * 2) == 0:
                rc2, err = run_cmd([str(ASTROEDGE), "export", str(ck), "-o", str(tmp_path / f"c{i}.aepkg")])
                tally.add("cli-export", "checkpoint", classify(rc2, err, None), err)
            ck.unlink()
    finally:
        worker.close()
    _finish(tally, "checkpoints")


# --- deterministic hostile-input checks (sizes, checkpoints, killed writers) ----------------------------------------


@pytest.mark.parametrize("name", ["model.onnx", "model.onnx.data"])
def test_a_sparse_terabyte_is_refused_at_once(name: str, bases: dict[str, Path], tmp_path: Path) -> None:
    """A listed file that claims (and, sparse, has) 1 TiB: refused before it is hashed or allocated, in one line, exit 2."""
    from astroedge.errors import UserError
    from astroedge.manifest import open_package

    pkg = tmp_path / "huge.aepkg"
    shutil.copytree(bases["ext"], pkg)
    os.truncate(pkg / name, 2**40)
    m = json.loads((pkg / "manifest.json").read_text())
    m["files"][name]["bytes"] = 2**40
    (pkg / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError) as info:
        open_package(pkg)
    assert "\n" not in str(info.value)
    if C_APP.is_file():
        rc, err = run_cmd(_c_app_args(pkg, []))
        assert classify(rc, err, "accepted_tampered") == "refused", f"C app: exit {rc}: {err.strip()[:300]}"


def test_checkpoint_refusals_are_one_short_line(tiny_checkpoint: Path, tmp_path: Path) -> None:
    import pickle

    import torch

    from astroedge import checkpoint
    from astroedge.errors import UserError

    good = torch.load(tiny_checkpoint, weights_only=True)
    assert good["format_version"] == checkpoint.FORMAT_VERSION and isinstance(good["weights_sha256"], str)

    def refused(edit: Callable[[dict[str, Any]], None], needle: str) -> None:
        payload = {**good, "weights": dict(good["weights"])}
        edit(payload)
        path = tmp_path / "bad.pt"
        torch.save(payload, path)
        with pytest.raises(UserError, match=needle) as info:
            checkpoint.load(path)
        assert "\n" not in str(info.value) and len(str(info.value)) < 300

    def flip_one_bit(p: dict[str, Any]) -> None:
        name = sorted(p["weights"])[0]
        t = p["weights"][name].clone()
        t.view(-1).view(torch.uint8)[0] ^= 1
        p["weights"][name] = t

    refused(flip_one_bit, "checksum")

    def nan_weight(p: dict[str, Any]) -> None:
        name = sorted(p["weights"])[0]
        t = p["weights"][name].clone()
        t.view(-1)[0] = float("nan")
        p["weights"][name] = t
        p["weights_sha256"] = checkpoint.weights_sha256(p["weights"])

    refused(nan_weight, "NaN")
    refused(lambda p: p.pop("weights_sha256"), "weights_sha256")
    for version in (0, -1, True, "1"):
        refused(lambda p, v=version: p.__setitem__("format_version", v), "format_version")
    for config in (None, "tiny", [1, 2]):
        refused(lambda p, c=config: p.__setitem__("config", c), "config")
    refused(lambda p: p.__setitem__("config", {**p["config"], "vocab_size": 2**40}), "config.vocab_size")

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "astroedge-checkpoint", "format_version": 1, "x": Payload()}, evil, pickle_module=pickle)
    with pytest.raises(UserError, match="pickled") as info:
        checkpoint.load(evil)
    assert len(str(info.value)) < 200


def test_bundled_sample_without_checksum_still_loads() -> None:
    """Format version 1 (the bundled sample) has no weights_sha256: it loads with the check skipped."""
    import torch

    from astroedge import checkpoint

    sample = ROOT / "samples" / "shakespeare" / "model.pt"
    payload = torch.load(sample, weights_only=True)
    assert payload["format_version"] == 1 and "weights_sha256" not in payload
    assert checkpoint.load(sample).model.cfg.n_layers == 4


def test_stale_temp_folders_of_killed_writers_are_removed(tmp_path: Path) -> None:
    """A writer killed by SIGKILL leaves .NAME.PID-*.tmp behind; the next writer into the folder removes it, not a live one's."""
    code = (
        "import sys, time\nfrom astroedge.fileio import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n    (tmp / 'half').write_text('x')\n    print(tmp, flush=True)\n    time.sleep(60)\n"
    )
    out = tmp_path / "out.aepkg"
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    killed_tmp = Path(proc.stdout.readline().strip())
    live = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    assert live.stdout is not None
    live_tmp = Path(live.stdout.readline().strip())
    proc.kill()
    proc.wait()
    old_untagged = tmp_path / ".out.aepkg.abc123.tmp"
    old_untagged.mkdir()
    os.utime(old_untagged, (time.time() - 7200, time.time() - 7200))
    try:
        from astroedge.fileio import atomic_dir

        with atomic_dir(out) as tmp:
            (tmp / "manifest.json").write_text("{}")
        assert not killed_tmp.exists() and not old_untagged.exists(), "stale temps of killed writers must go"
        assert live_tmp.is_dir(), "a live writer's temp must be left alone"
    finally:
        live.kill()
        live.wait()


def test_force_replaces_only_a_package(tmp_path: Path) -> None:
    """`-o ~ --force` or `-o model.pt --force` by mistake: refused in one line, nothing deleted."""
    from astroedge.errors import UserError
    from astroedge.fileio import atomic_dir

    folder = tmp_path / "home"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    afile = tmp_path / "model.pt"
    afile.write_text("weights")
    for target in (folder, afile):
        with pytest.raises(UserError, match="not a package"), atomic_dir(target, force=True):
            pass
    assert (folder / "notes.txt").read_text() == "mine" and afile.read_text() == "weights"
    package = tmp_path / "old.aepkg"
    package.mkdir()
    (package / "manifest.json").write_text("{}")
    with atomic_dir(package, force=True) as tmp:
        (tmp / "manifest.json").write_text('{"new": 1}')
    assert json.loads((package / "manifest.json").read_text()) == {"new": 1}
