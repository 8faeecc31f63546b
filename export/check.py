"""`astroedge check`: does the package compute what the checkpoint computes?

PyTorch (step and chunkwise forms) against onnxruntime with the native AMSU library (when built) and
with the attached fallback function, token by token and in prefill chunks of varying size, from zero
state and from random non-zero state at large positions (10**7 and 4*10**9, where float32 RoPE
angles would already be wrong). Reported: max |dlogits|, max |dstate|, spike flips (the AMSU spikes
are exposed as extra graph outputs of a probe copy of the package graph, so flips are counted, not
guessed from logits), and whether N greedy tokens match. Each run is judged against the PyTorch form
it matches best (the forms themselves may flip a spike at a rounding boundary; see _best_matches).
Also onnx.checker's full check and one short input through onnx's reference evaluator (slow: a few
tokens only).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from astroedge.contract import amsu_contract
from astroedge.errors import UserError

if TYPE_CHECKING:  # torch stays a lazy import: the module loads without it
    from astroedge.model import AMSNet
    from astroedge.runtime.package import Package

PREFILL_CHUNKS = (5, 1, 8, 3, 16)  # prefill call sizes, cycled: odd sizes and a seq=1 call in between
RANDOM_POSITIONS = (10**7, 4 * 10**9)


@dataclass(frozen=True)
class Tolerances:
    logits: float = 1e-3  # max |dlogits| against every PyTorch form
    state: float = 1e-3  # max |dstate| / max(1, max |state|) of each final present_* tensor (h grows with 1/(1-gamma))
    flip_rate: float = 1e-3  # spike flips / spikes compared
    greedy: float = 1.0  # fraction of the N greedy tokens that must match PyTorch's


@dataclass
class Trace:
    """One run over a token sequence: logits [B, T, V], final state, AMSU spikes per layer [B, T, D]."""

    logits: np.ndarray
    state: list[np.ndarray]  # h.0, u.0, h.1, u.1, ...
    spikes: list[np.ndarray]


def _compare(ref: Trace, got: Trace) -> dict[str, Any]:
    flips = sum(int((a != b).sum()) for a, b in zip(ref.spikes, got.spikes, strict=True))
    compared = sum(a.size for a in ref.spikes)
    dstate = [(float(np.abs(a - b).max()), max(1.0, float(np.abs(a).max()))) for a, b in zip(ref.state, got.state, strict=True)]
    return {
        "max_abs_dlogits": float(np.abs(ref.logits - got.logits).max()),
        "max_abs_dstate": max(d for d, _ in dstate),
        "max_scaled_dstate": max(d / scale for d, scale in dstate),
        "spike_flips": flips,
        "spikes_compared": compared,
    }


# ---------------------------------------------------------------------------------------------
# PyTorch side


def _torch_trace(model: AMSNet, tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray], form: str) -> Trace:
    """Run the reference `form` over all tokens in one call, recording the AMSU spikes of each layer."""
    import torch

    from astroedge.model import StreamState

    spikes: list[np.ndarray] = []

    def record(layer: int, kind: str, s: Any, drive: Any) -> None:
        if kind == "amsu":
            spikes.append(s.numpy().copy())

    st = StreamState(torch.from_numpy(position), [torch.from_numpy(a) for a in state[0::2]], [torch.from_numpy(a) for a in state[1::2]])
    with torch.no_grad():
        out = model(torch.from_numpy(tokens), st, form=form, recorder=record)
    present = [t.numpy() for pair in zip(out.state.h, out.state.u, strict=True) for t in pair]
    return Trace(out.logits.numpy(), present, spikes)


def _torch_greedy(model: AMSNet, prompt: np.ndarray, n: int) -> list[int]:
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(prompt), model.init_state(1), form="step")
        tokens = []
        for _ in range(n):
            nxt = int(out.logits[0, -1].argmax())
            tokens.append(nxt)
            out = model(torch.tensor([[nxt]]), out.state, form="step")
    return tokens


# ---------------------------------------------------------------------------------------------
# onnxruntime side


@contextmanager
def _probe_model(pkg: Package) -> Iterator[Path]:
    """The package graph with every AMSU node's spike output added as a graph output, in a temp dir.

    The computation is untouched (only outputs are added). External weights are hard-linked beside it
    (copied across file systems): onnxruntime refuses external data reached through a symlink that
    leaves the model's folder.
    """
    import onnx
    from onnx import TensorProto, helper

    c = amsu_contract()
    proto = onnx.load(str(pkg.onnx_path), load_external_data=False)
    spike_type = TensorProto.FLOAT16 if pkg.precision == "fp16" else TensorProto.FLOAT
    amsu_nodes = [n for n in proto.graph.node if n.domain == c.domain and n.op_type == c.name]
    for i, n in enumerate(amsu_nodes):
        # through an Identity: onnxruntime 1.23 crashes creating a session whose graph output is
        # directly an inlined function's output that other nodes also consume
        proto.graph.node.append(helper.make_node("Identity", [n.output[0]], [f"probe_spikes.{i}"]))
        proto.graph.output.append(helper.make_tensor_value_info(f"probe_spikes.{i}", spike_type, ["batch", "seq", pkg.config.d_model]))
    with tempfile.TemporaryDirectory(prefix="astroedge-check-") as tmp:
        external = pkg.manifest["onnx"].get("external_data")
        if external:
            try:
                os.link(pkg.path / external, Path(tmp) / external)
            except OSError:
                shutil.copyfile(pkg.path / external, Path(tmp) / external)
        probe = Path(tmp) / pkg.onnx_path.name
        onnx.save_model(proto, str(probe))
        yield probe


class _OrtModel:
    def __init__(self, session: Any, pkg: Package) -> None:
        self.session = session
        self.pkg = pkg
        self.n_state = len(pkg.state)

    def run(self, tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray]) -> Trace:
        feed = {self.pkg.tokens_input: tokens, self.pkg.position_input: position}
        feed.update({s.input: a for s, a in zip(self.pkg.state, state, strict=True)})
        out = self.session.run(None, feed)
        logits, present, spikes = out[0], out[1 : 1 + self.n_state], out[1 + self.n_state :]
        return Trace(logits, list(present), [s.astype(np.float32) for s in spikes])

    def run_chunked(self, tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray], sizes: Callable[[], Iterator[int]]) -> Trace:
        """Feed `tokens` in calls of the given sizes, carrying state and position like a runtime does."""
        logits, spikes = [], []
        start = 0
        for size in sizes():
            if start >= tokens.shape[1]:
                break
            chunk = tokens[:, start : start + size]
            t = self.run(chunk, position + start, state)
            state = t.state
            logits.append(t.logits)
            spikes.append(t.spikes)
            start += chunk.shape[1]
        return Trace(np.concatenate(logits, 1), state, [np.concatenate(layer, 1) for layer in zip(*spikes, strict=True)])

    def greedy(self, prompt: np.ndarray, n: int) -> list[int]:
        state = [np.zeros(s.concrete_shape(1), np.float32) for s in self.pkg.state]
        t = self.run(prompt, np.zeros(1, np.int64), state)
        position = prompt.shape[1]
        tokens = []
        for _ in range(n):
            nxt = int(t.logits[0, -1].argmax())
            tokens.append(nxt)
            t = self.run(np.array([[nxt]], np.int64), np.array([position], np.int64), t.state)
            position += 1
        return tokens


def _decode_sizes() -> Iterator[int]:
    while True:
        yield 1


def _prefill_sizes() -> Iterator[int]:
    while True:
        yield from PREFILL_CHUNKS


# ---------------------------------------------------------------------------------------------
# the check


def _scenarios(pkg: Package, tokens: int, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """zero: two streams from zero state at position 0; random: non-zero state at large positions."""
    batch = len(RANDOM_POSITIONS)
    toks = rng.integers(0, pkg.config.vocab_size, size=(batch, tokens), dtype=np.int64)
    zero = [np.zeros(s.concrete_shape(batch), np.float32) for s in pkg.state]
    return {
        "zero": (toks, np.zeros(batch, np.int64), zero),
        "random": (toks, np.array(RANDOM_POSITIONS, np.int64), _random_state(pkg, batch, rng)),
    }


def _random_state(pkg: Package, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Astrocyte h ~ N(0, 0.3^2), membrane u ~ U(0, 1) (where sigmoid currents leave it): a mid-stream state."""
    state = []
    for s in pkg.state:
        shape = s.concrete_shape(batch)
        value = rng.standard_normal(shape) * 0.3 if s.name.startswith("h.") else rng.uniform(0, 1, shape)
        state.append(value.astype(np.float32))
    return state


def _onnx_checker(path: Path) -> str:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        return f"failed: {str(exc).strip().splitlines()[0]}"
    return "ok"


def _reference_evaluator(pkg: Package, model: AMSNet, rng: np.random.Generator, tokens: int = 2) -> dict[str, Any]:
    """onnx.reference on one stream, a few tokens, random state at position 4e9: the spec's own reading.

    Graphs with onnxruntime's contrib ops (MatMulNBits of the int8/int4 packages) are outside the ONNX
    standard, so the reference evaluator cannot read them: the step is reported as skipped.
    """
    import onnx
    from onnx.reference import ReferenceEvaluator

    proto = onnx.load(str(pkg.onnx_path))
    contrib = sorted({n.op_type for n in proto.graph.node if n.domain == "com.microsoft"})
    if contrib:
        return {"skipped": f"onnxruntime contrib ops ({', '.join(contrib)}) are not in the ONNX standard"}

    toks = rng.integers(0, pkg.config.vocab_size, size=(1, tokens), dtype=np.int64)
    position = np.array([RANDOM_POSITIONS[-1]], np.int64)
    state = _random_state(pkg, 1, rng)
    ref = _torch_trace(model, toks, position, state, "step")
    start = time.perf_counter()
    evaluator = ReferenceEvaluator(proto)
    feed = {pkg.tokens_input: toks, pkg.position_input: position, **{s.input: a for s, a in zip(pkg.state, state, strict=True)}}
    out = evaluator.run(None, feed)
    got = Trace(out[0], list(out[1 : 1 + len(pkg.state)]), ref.spikes)
    result = _compare(ref, got)
    del result["spike_flips"], result["spikes_compared"]
    return {"tokens": tokens, "position": int(position[0]), **result, "seconds": round(time.perf_counter() - start, 2)}


def check_package(
    checkpoint: str | Path, package: str | Path, tokens: int = 32, tolerances: Tolerances | None = None, seed: int = 0
) -> dict[str, Any]:
    """Compare `package` with `checkpoint`; the report's "passed" is False when a tolerance is exceeded."""
    from astroedge import checkpoint as ckpt
    from astroedge.runtime.ort_session import create_session, library_path
    from astroedge.runtime.package import load_package

    if tokens < 1:
        raise UserError(f"--tokens {tokens}: must be at least 1")
    tol = tolerances or Tolerances()
    pkg = load_package(package, verify=True)
    model = ckpt.load(checkpoint).model.eval()
    if model.cfg != pkg.config:
        raise UserError(f"{package}: its model config differs from {checkpoint}'s; re-export the package from this checkpoint")
    rng = np.random.default_rng(seed)
    scenarios = _scenarios(pkg, tokens, rng)
    refs = {(name, form): _torch_trace(model, *sc, form) for name, sc in scenarios.items() for form in ("step", "chunkwise")}
    prompt = scenarios["zero"][0][:1, : min(4, tokens)]
    torch_greedy = _torch_greedy(model, prompt, tokens)

    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "package": str(pkg.path),
        "tokens": tokens,
        "seed": seed,
        "tolerances": asdict(tol),
        "torch_step_vs_chunkwise": {name: _compare(refs[(name, "step")], refs[(name, "chunkwise")]) for name in scenarios},
        "kernels": {},
        "runs": [],
        "greedy": {"reference": torch_greedy},
    }
    with _probe_model(pkg) as probe:
        sessions = {"fallback": create_session(probe, use_library=False)}
        lib = library_path("cpu")
        if lib is not None:
            sessions["library"] = create_session(probe, use_library=True)
        else:
            report["kernels"]["library"] = {"available": False, "reason": "libastroedge_ort.so not built (make plugins)"}
        for kernel, info in sessions.items():
            report["kernels"][kernel] = {"available": True, "describe": info.describe()}
            ort_model = _OrtModel(info.session, pkg)
            for name, (toks, position, state) in scenarios.items():
                for mode, sizes in (("decode", _decode_sizes), ("prefill", _prefill_sizes)):
                    got = ort_model.run_chunked(toks, position, state, sizes)
                    for form in ("step", "chunkwise"):
                        run = {"kernel": kernel, "scenario": name, "mode": mode, "reference": form}
                        report["runs"].append({**run, **_compare(refs[(name, form)], got)})
            ort_greedy = ort_model.greedy(prompt, tokens)
            matched = sum(a == b for a, b in zip(torch_greedy, ort_greedy, strict=True))
            report["greedy"][kernel] = {"tokens": ort_greedy, "matched": matched, "of": tokens, "match": matched == tokens}
    report["onnx_checker"] = _onnx_checker(pkg.onnx_path)
    report["reference_evaluator"] = _reference_evaluator(pkg, model, rng)
    report.update(_verdict(report, tol))
    return report


def _best_matches(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (kernel, state, calls), the comparison against the PyTorch form it agrees with best.

    The step and chunkwise forms are one function but round differently, so where u + o_hat sits
    within rounding of the threshold they flip different spikes, and from there their logits part.
    An onnxruntime run that reproduces either form is correct; the forms' own disagreement is
    reported beside it (torch_step_vs_chunkwise).
    """
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["kernel"], r["scenario"], r["mode"]), []).append(r)
    return [min(group, key=lambda r: (r["spike_flips"], r["max_abs_dlogits"])) for group in groups.values()]


def _verdict(report: dict[str, Any], tol: Tolerances) -> dict[str, Any]:
    runs = _best_matches(report["runs"])
    flips = sum(r["spike_flips"] for r in runs)
    compared = sum(r["spikes_compared"] for r in runs)
    summary = {
        "judged_against": [f"{r['kernel']}/{r['scenario']}/{r['mode']}: {r['reference']}" for r in runs],
        "max_abs_dlogits": max(r["max_abs_dlogits"] for r in runs),
        "max_abs_dstate": max(r["max_abs_dstate"] for r in runs),
        "max_scaled_dstate": max(r["max_scaled_dstate"] for r in runs),
        "spike_flips": flips,
        "spikes_compared": compared,
        "flip_rate": flips / compared if compared else 0.0,
        "greedy_min_match": min(g["matched"] / g["of"] for k, g in report["greedy"].items() if k != "reference"),
    }
    ref = report["reference_evaluator"]
    failures = []
    if summary["max_abs_dlogits"] > tol.logits:
        failures.append(f"max |dlogits| {summary['max_abs_dlogits']:.3g} > {tol.logits:g}")
    if summary["max_scaled_dstate"] > tol.state:
        failures.append(f"max |dstate| / max(1, |state|) {summary['max_scaled_dstate']:.3g} > {tol.state:g}")
    if summary["flip_rate"] > tol.flip_rate:
        failures.append(f"spike flip rate {summary['flip_rate']:.3g} > {tol.flip_rate:g}")
    if summary["greedy_min_match"] < tol.greedy:
        failures.append(f"greedy tokens matched {summary['greedy_min_match']:.0%} < {tol.greedy:.0%}")
    if report["onnx_checker"] != "ok":
        failures.append(f"onnx.checker {report['onnx_checker']}")
    if "skipped" not in ref and (ref["max_abs_dlogits"] > tol.logits or ref["max_scaled_dstate"] > tol.state):
        failures.append(f"reference evaluator differs: |dlogits| {ref['max_abs_dlogits']:.3g}, |dstate| {ref['max_abs_dstate']:.3g}")
    return {"summary": summary, "failures": failures, "passed": not failures}


def print_check(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for kernel, info in report["kernels"].items():
        console.print(f"[bold]{kernel}[/bold]: {info.get('describe') or info.get('reason')}")
    table = Table(title=f"{report['package']} vs {report['checkpoint']} ({report['tokens']} tokens, 2 streams)")
    for col in ("kernel", "state", "calls", "vs torch", "max |dlogits|", "max |dstate|", "spike flips"):
        table.add_column(col, justify="right" if col.startswith(("max", "spike")) else "left")
    for r in report["runs"]:
        table.add_row(
            r["kernel"], r["scenario"], r["mode"], r["reference"], f"{r['max_abs_dlogits']:.2e}", f"{r['max_abs_dstate']:.2e}",
            f"{r['spike_flips']} / {r['spikes_compared']}",
        )
    console.print(table)
    for name, d in report["torch_step_vs_chunkwise"].items():
        console.print(
            f"PyTorch step vs chunkwise ({name} state): max |dlogits| {d['max_abs_dlogits']:.2e}, "
            f"{d['spike_flips']} spike flips (each run above is judged against the form it matches best)"
        )
    for kernel, g in report["greedy"].items():
        if kernel != "reference":
            console.print(f"greedy ({kernel}): {g['matched']}/{g['of']} tokens match PyTorch")
    ref = report["reference_evaluator"]
    console.print(f"onnx.checker full check: {report['onnx_checker']}")
    if "skipped" in ref:
        console.print(f"onnx reference evaluator: skipped, {ref['skipped']}")
    else:
        console.print(
            f"onnx reference evaluator ({ref['tokens']} tokens at position {ref['position']}): "
            f"max |dlogits| {ref['max_abs_dlogits']:.2e}, max |dstate| {ref['max_abs_dstate']:.2e} ({ref['seconds']} s)"
        )
    if report["passed"]:
        console.print("[green]PASS[/green]: within tolerances " + json.dumps(report["tolerances"]))
    else:
        console.print("[red]FAIL[/red]: " + "; ".join(report["failures"]))
