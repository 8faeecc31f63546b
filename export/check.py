"""`astroedge check`: does the package compute what the checkpoint computes?

A spiking model is a threshold function: wherever a spike's drive (u + o_hat - theta for the AMSU,
W_1 z - theta_f for the FFN) lies within rounding of zero, two correct implementations may disagree
on that spike, and from there their streams part. So "logits within X over a stream" is the wrong
test. This check instead runs every implementation (PyTorch fp32 step and chunkwise forms,
onnxruntime with the native AMSU library when built and with the attached fallback function) in
lock-step with a float64 PyTorch reference, call by call, and

- compares every AMSU and FFN spike with the reference (the package's spikes are exposed as extra
  outputs of a probe copy of its graph, so flips are counted, not guessed from logits);
- classifies the first flip of each call and stream by the reference's drive there: |drive| within
  the tie tolerance (derived from the compute dtype, docs/model.md) is a rounding tie, reported and
  passed; beyond it, an error, which fails the check;
- judges logits (relative error), argmax and state only up to that first flip, then re-synchronises
  that stream's state from the reference, so one tie never hides or fakes anything after it.

Calls come token by token (decode) and in prefill chunks of varying size, from zero state and from
random non-zero state at large positions (10**7 and 4*10**9, where float32 RoPE angles would
already be wrong). `--long N` adds a teacher-forced run over N tokens of a text from a warmed-up
state at a small and a huge position, and compares each implementation's free-running perplexity.
Also onnx.checker's full check and a few tokens through onnx's reference evaluator.
"""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
LONG_POSITIONS = (0, 4 * 10**9)  # --long: where the warm-up starts, a small and a huge position
LONG_WARMUP = 256  # --long: tokens of text read (by the float64 reference) to make the non-zero start state
LONG_CHUNK = 64  # --long: call size of the free-running perplexity runs
DEFAULT_TEXT = Path(__file__).resolve().parents[1] / "samples" / "shakespeare" / "input.txt"


@dataclass(frozen=True)
class Tolerances:
    logits: float = 1e-4  # max |dlogits| / max(1, max |logits|) per position, before the first tie
    state: float = 1e-3  # max |dstate| / max(1, max |state|) at call ends without a flip (h grows with 1/(1-gamma))
    flip_rate: float = 0.0  # flips beyond the tie tolerance per spike compared: none for an fp32 package
    greedy: float = 1.0  # fraction of judged positions whose argmax matches the reference's (logit near-ties excepted)
    perplexity: float = 1e-3  # --long: |ppl / ppl_reference - 1| of each implementation
    tie: float | None = None  # |float64 drive| up to which a flip is a rounding tie; None = tie_tolerance()


def tie_tolerance(precision: str, d_model: int) -> float:
    """d_model * eps of the compute dtype (int8/int4 graphs compute in float32): 3.1e-5 for the fp32 sample (D = 256).

    A drive is a D-term dot product of RMS-normalised inputs (W_1 z for the FFN; the AMSU's u + o_hat
    is smaller). Its rounding error is ~ sqrt(D) * eps * sum|w_i z_i| (the probabilistic bound), and
    sum|w_i z_i| ~ sqrt(D) for weights of scale 1/sqrt(D): D * eps. Measured on the sample: error at
    most 6.3e-6, a fifth of this (docs/model.md, "The tie tolerance").
    """
    eps = np.finfo(np.float16 if precision == "fp16" else np.float32).eps
    return float(d_model * eps)


# ---------------------------------------------------------------------------------------------
# One call of one implementation, and the float64 reference's


@dataclass
class Call:
    """One call over [B, t] tokens: logits, state after it (h.0, u.0, h.1, ...), spikes per group.

    Groups are (layer, kind) in forward order: amsu.0, ffn.0, amsu.1, ... For the reference, `spikes`
    holds the float64 drives instead (spike = drive > 0).
    """

    logits: np.ndarray
    state: list[np.ndarray]
    spikes: list[np.ndarray]


Impl = Callable[[np.ndarray, np.ndarray, list[np.ndarray]], Call]


def group_names(n_layers: int) -> list[str]:
    return [f"{kind}.{i}" for i in range(n_layers) for kind in ("amsu", "ffn")]


def torch_impl(model: AMSNet, form: str) -> Impl:
    """PyTorch `model` (float32, or float64 for the reference: then drives instead of spikes) as an Impl."""
    import torch

    from astroedge.model import StreamState

    dtype = next(model.parameters()).dtype
    reference = dtype == torch.float64

    def run(tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray]) -> Call:
        seen: list[np.ndarray] = []

        def record(layer: int, kind: str, s: Any, drive: Any) -> None:
            seen.append((drive if reference else s).numpy().copy())

        st = StreamState(
            torch.from_numpy(position),
            [torch.from_numpy(a).to(dtype) for a in state[0::2]],
            [torch.from_numpy(a).to(dtype) for a in state[1::2]],
        )
        with torch.no_grad():
            out = model(torch.from_numpy(tokens), st, form=form, recorder=record)
        present = [t.numpy() for pair in zip(out.state.h, out.state.u, strict=True) for t in pair]
        return Call(out.logits.numpy(), present, seen)

    return run


# ---------------------------------------------------------------------------------------------
# onnxruntime side


def _ffn_spike_nodes(graph: Any) -> list[Any]:
    """The FFN's spike comparisons: the main graph's Greater nodes (W_1 z - theta_f > 0), one per layer, in layer order.

    Everything else that thresholds (the AMSU) is inside the custom node or its function.
    """
    return [n for n in graph.node if n.op_type == "Greater" and n.domain in ("", "ai.onnx")]


@contextmanager
def _probe_model(pkg: Package) -> Iterator[Path]:
    """The package graph with every AMSU and FFN spike added as a graph output, in a temp dir.

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
    ffn_nodes = _ffn_spike_nodes(proto.graph)
    if len(ffn_nodes) != len(amsu_nodes):
        raise UserError(
            f"{pkg.onnx_path}: found {len(ffn_nodes)} FFN spike comparisons (Greater) for {len(amsu_nodes)} layers; "
            "this graph was not exported by astroedge export; re-export it"
        )
    d, f = pkg.config.d_model, pkg.config.ffn_hidden
    for i, (a, g) in enumerate(zip(amsu_nodes, ffn_nodes, strict=True)):
        # through an Identity: onnxruntime 1.23 crashes creating a session whose graph output is
        # directly an inlined function's output that other nodes also consume
        proto.graph.node.append(helper.make_node("Identity", [a.output[0]], [f"probe_spikes.amsu.{i}"]))
        proto.graph.output.append(helper.make_tensor_value_info(f"probe_spikes.amsu.{i}", spike_type, ["batch", "seq", d]))
        proto.graph.node.append(helper.make_node("Identity", [g.output[0]], [f"probe_spikes.ffn.{i}"]))
        proto.graph.output.append(helper.make_tensor_value_info(f"probe_spikes.ffn.{i}", TensorProto.BOOL, ["batch", "seq", f]))
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


def ort_impl(session: Any, pkg: Package) -> Impl:
    n_state = len(pkg.state)

    def run(tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray]) -> Call:
        feed = {pkg.tokens_input: tokens, pkg.position_input: position}
        feed.update({s.input: a for s, a in zip(pkg.state, state, strict=True)})
        out = session.run(None, feed)
        spikes = [s.astype(np.float32) for s in out[1 + n_state :]]  # amsu.0, ffn.0, amsu.1, ... (probe order)
        return Call(out[0], list(out[1 : 1 + n_state]), spikes)

    return run


# ---------------------------------------------------------------------------------------------
# Judging an implementation call by call against the reference


@dataclass
class Tally:
    """What one implementation did over one or more runs (see the module docstring for the rules)."""

    spikes_compared: int = 0
    ties: int = 0  # flips with |float64 drive| <= tie tolerance
    errors: int = 0  # flips beyond it
    unjudged_flips: int = 0  # flips after the first one of a call (consequences of it; the stream is re-synced)
    resyncs: int = 0
    max_flip_margin: float = 0.0  # largest |float64 drive| of any classified flip
    max_rel_logits: float = 0.0  # before the first flip of each call
    max_scaled_dstate: float = 0.0  # at call ends without a flip
    positions_judged: int = 0
    argmax_matched: int = 0
    argmax_near_ties: int = 0  # judged positions whose reference top-2 logits are within the logit tolerance: not counted
    first_tie: dict[str, Any] | None = None
    first_error: dict[str, Any] | None = None

    def merge(self, other: Tally) -> None:
        for name in (
            "spikes_compared",
            "ties",
            "errors",
            "unjudged_flips",
            "resyncs",
            "positions_judged",
            "argmax_matched",
            "argmax_near_ties",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("max_flip_margin", "max_rel_logits", "max_scaled_dstate"):
            setattr(self, name, max(getattr(self, name), getattr(other, name)))
        self.first_tie = self.first_tie or other.first_tie
        self.first_error = self.first_error or other.first_error

    def summary(self) -> dict[str, Any]:
        compared = max(self.spikes_compared, 1)
        greedy_of = self.positions_judged - self.argmax_near_ties
        return {
            **asdict(self),
            "ties_per_million_spikes": round(1e6 * self.ties / compared, 3),
            "error_rate": self.errors / compared,
            "greedy_agreement": self.argmax_matched / greedy_of if greedy_of > 0 else 1.0,
        }


def _judge_call(
    ref: Call, got: Call, start: int, tie: float, logit_tol: float, names: list[str], tally: Tally, where: dict[str, Any]
) -> list[int]:
    """Compare one call; update `tally`; return the streams whose state must be re-synced (they flipped)."""
    resync = []
    batch, t = ref.logits.shape[:2]
    for b in range(batch):
        flips = [got.spikes[g][b] != (ref.spikes[g][b] > 0) for g in range(len(names))]  # [t, N] each
        first_t = min((int(np.argmax(f.any(-1))) for f in flips if f.any()), default=t)
        if first_t < t:
            g0 = next(g for g, f in enumerate(flips) if f[first_t].any())
            margins = np.abs(ref.spikes[g0][b, first_t][flips[g0][first_t]])
            n_tie = int((margins <= tie).sum())
            tally.ties += n_tie
            tally.errors += margins.size - n_tie
            tally.max_flip_margin = max(tally.max_flip_margin, float(margins.max()))
            tally.unjudged_flips += sum(int(f.sum()) for f in flips) - margins.size
            tally.spikes_compared += sum(f.shape[1] for f in flips) * first_t + sum(f.shape[1] for f in flips[: g0 + 1])
            info = {
                **where,
                "stream": b,
                "token": start + first_t,
                "group": names[g0],
                "margin": float(margins.max()),
                "flips": int(margins.size),
            }
            if n_tie and tally.first_tie is None:
                tally.first_tie = {**info, "margin": float(margins[margins <= tie].max())}
            if n_tie < margins.size and tally.first_error is None:
                tally.first_error = info
            resync.append(b)
        else:
            tally.spikes_compared += sum(f.size for f in flips)
            for a, r in zip(got.state, ref.state, strict=True):
                scaled = float(np.abs(a[b] - r[b]).max()) / max(1.0, float(np.abs(r[b]).max()))
                tally.max_scaled_dstate = max(tally.max_scaled_dstate, scaled)
        if first_t:
            rl, gl = ref.logits[b, :first_t], got.logits[b, :first_t]
            scale = np.maximum(1.0, np.abs(rl).max(-1))
            tally.max_rel_logits = max(tally.max_rel_logits, float((np.abs(gl - rl).max(-1) / scale).max()))
            top2 = np.sort(rl, -1)[:, -2:]
            near = (top2[:, 1] - top2[:, 0]) <= 2 * logit_tol * scale
            same = gl.argmax(-1) == rl.argmax(-1)
            tally.positions_judged += first_t
            tally.argmax_near_ties += int(near.sum())
            tally.argmax_matched += int((same & ~near).sum())
    return resync


def _schedule(kind: str) -> Iterator[int]:
    while True:
        if kind == "decode":
            yield 1
        else:
            yield from PREFILL_CHUNKS


def lockstep(
    reference: Impl,
    impls: dict[str, Impl],
    tokens: np.ndarray,
    position: np.ndarray,
    state: list[np.ndarray],
    mode: str,
    tie: float,
    logit_tol: float,
    names: list[str],
    where: dict[str, Any],
) -> dict[str, Tally]:
    """Run the reference and every implementation over `tokens` in calls of `mode`'s sizes, each carrying its
    own state, judging each call and re-syncing a stream's state from the reference after a flip."""
    ref_state = [a.astype(np.float64) for a in state]
    states = {name: [a.copy() for a in state] for name in impls}
    tallies = {name: Tally() for name in impls}
    start = 0
    for size in _schedule(mode):
        if start >= tokens.shape[1]:
            break
        chunk = tokens[:, start : start + size]
        ref = reference(chunk, position + start, ref_state)
        for name, impl in impls.items():
            got = impl(chunk, position + start, states[name])
            states[name] = [np.array(a, dtype=np.float32, copy=True) for a in got.state]
            for b in _judge_call(ref, got, start, tie, logit_tol, names, tallies[name], {**where, "mode": mode}):
                tallies[name].resyncs += 1
                for a, r in zip(states[name], ref.state, strict=True):
                    a[b] = r[b]
        ref_state = ref.state
        start += chunk.shape[1]
    return tallies


# ---------------------------------------------------------------------------------------------
# Scenarios


def _random_state(pkg: Package, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Astrocyte h ~ N(0, 0.3^2), membrane u ~ U(0, 1) (where sigmoid currents leave it): a mid-stream state."""
    state = []
    for s in pkg.state:
        shape = s.concrete_shape(batch)
        value = rng.standard_normal(shape) * 0.3 if s.name.startswith("h.") else rng.uniform(0, 1, shape)
        state.append(value.astype(np.float32))
    return state


def _greedy_path(reference: Impl, prompt: np.ndarray, n: int, zero: list[np.ndarray]) -> np.ndarray:
    """The float64 reference's greedy continuation of `prompt` [1, P]: prompt + n tokens."""
    call = reference(prompt, np.zeros(1, np.int64), zero)
    tokens = list(prompt[0])
    for _ in range(n):
        tokens.append(int(call.logits[0, -1].argmax()))
        call = reference(np.array([[tokens[-1]]], np.int64), np.array([len(tokens) - 1], np.int64), call.state)
    return np.array(tokens, np.int64)


Scenario = tuple[np.ndarray, np.ndarray, list[np.ndarray]]  # tokens [B, T], positions [B], state


def _scenarios(pkg: Package, reference: Impl, tokens: int, rng: np.random.Generator) -> dict[str, Scenario]:
    """zero: stream 0 the reference's greedy path from a 4-token prompt, stream 1 random tokens, zero state;
    random: random tokens from a random non-zero state at large positions."""
    batch = len(RANDOM_POSITIONS)
    toks = rng.integers(0, pkg.config.vocab_size, size=(batch, tokens), dtype=np.int64)
    zero1 = [np.zeros(s.concrete_shape(1), np.float64) for s in pkg.state]
    prompt = min(4, tokens)
    greedy = _greedy_path(reference, toks[:1, :prompt], tokens - prompt, zero1)
    zero_toks = np.stack([greedy, toks[1]])
    zero = [np.zeros(s.concrete_shape(batch), np.float32) for s in pkg.state]
    return {
        "zero": (zero_toks, np.zeros(batch, np.int64), zero),
        "random": (toks, np.array(RANDOM_POSITIONS, np.int64), _random_state(pkg, batch, rng)),
    }


def _long_text(pkg: Package, text: Path | None, n: int) -> np.ndarray:
    """N + 1 + warm-up tokens of `text` (default: the held-out tail of the bundled Shakespeare sample)."""
    from astroedge.corpus import read_text, split_held_out

    path = text or DEFAULT_TEXT
    if text is None and not path.is_file():
        raise UserError(f"--long: the default text {path} is not here (installed package); give --text FILE")
    need = n + 1 + LONG_WARMUP
    ids = np.asarray(pkg.tokenizer.encode(read_text(path)), np.int64)
    if text is None:
        ids = split_held_out(ids)[1]
    if ids.size < need:
        raise UserError(
            f"--text {path}: {ids.size} tokens{' held out' if text is None else ''}, --long {n} needs {need} "
            f"({LONG_WARMUP} to warm the state up); give a longer text or a smaller --long"
        )
    return ids[:need]


def _nll(logits: np.ndarray, targets: np.ndarray) -> float:
    """Sum of -log softmax(logits)[target] over [B, t]."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, targets[..., None], -1).sum())


def _perplexity(impl: Impl, tokens: np.ndarray, position: np.ndarray, state: list[np.ndarray]) -> float:
    """Teacher-forced perplexity of tokens[:, 1:] given tokens[:, :-1], free-running (own state) in calls of LONG_CHUNK."""
    total, n = 0.0, tokens.shape[1] - 1
    for start in range(0, n, LONG_CHUNK):
        end = min(start + LONG_CHUNK, n)
        call = impl(tokens[:, start:end], position + start, state)
        state = call.state
        total += _nll(call.logits, tokens[:, start + 1 : end + 1])
    return math.exp(total / (n * tokens.shape[0]))


def _long_run(
    pkg: Package, reference: Impl, impls: dict[str, Impl], text: Path | None, n: int, tie: float, logit_tol: float, names: list[str]
) -> dict[str, Any]:
    ids = _long_text(pkg, text, n)
    batch = len(LONG_POSITIONS)
    warm = np.stack([ids[:LONG_WARMUP]] * batch)
    zero = [np.zeros(s.concrete_shape(batch), np.float64) for s in pkg.state]
    start_pos = np.array(LONG_POSITIONS, np.int64)
    state = [a.astype(np.float32) for a in reference(warm, start_pos, zero).state]
    tokens = np.stack([ids[LONG_WARMUP:]] * batch)  # n + 1 tokens: n judged inputs, n targets
    position = start_pos + LONG_WARMUP
    t0 = time.perf_counter()
    tallies = lockstep(reference, impls, tokens[:, :n], position, state, "prefill", tie, logit_tol, names, {"scenario": "long"})
    ppl = {"reference": _perplexity(reference, tokens, position, [a.astype(np.float64) for a in state])}
    ppl.update({name: _perplexity(impl, tokens, position, state) for name, impl in impls.items()})
    return {
        "tokens": n,
        "text": str(text or DEFAULT_TEXT) + ("" if text else " (held-out 10%)"),
        "positions": [int(p) for p in position],
        "warmup_tokens": LONG_WARMUP,
        "perplexity": ppl,
        "perplexity_rel_diff": {k: v / ppl["reference"] - 1 for k, v in ppl.items() if k != "reference"},
        "implementations": {name: t.summary() for name, t in tallies.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }


def _onnx_checker(path: Path) -> str:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        return f"failed: {str(exc).strip().splitlines()[0]}"
    return "ok"


def _reference_evaluator(pkg: Package, reference: Impl, rng: np.random.Generator, tokens: int = 2) -> dict[str, Any]:
    """onnx.reference on one stream, a few tokens, random state at position 4e9: the spec's own reading.

    Graphs with onnxruntime's contrib ops (MatMulNBits of the int8/int4 packages) are outside the ONNX
    standard, so the reference evaluator cannot read them: the step is reported as skipped, as it is
    (with onnx's message, printed) when the evaluator itself cannot run a graph that onnx.checker accepts.
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
    ref = reference(toks, position, state)
    start = time.perf_counter()
    feed = {pkg.tokens_input: toks, pkg.position_input: position, **{s.input: a for s, a in zip(pkg.state, state, strict=True)}}
    try:
        out = ReferenceEvaluator(proto).run(None, feed)
    except Exception as exc:  # noqa: BLE001 - onnx.reference's own limits (e.g. optional inputs of a local function): say so
        return {"skipped": f"onnx's reference evaluator cannot run this graph: {str(exc).strip().splitlines()[0]}"}
    assert isinstance(out, list)  # the graph's outputs in order (a dict only with intermediate=True)
    dstate = [
        (float(np.abs(a - b).max()), max(1.0, float(np.abs(a).max()))) for a, b in zip(ref.state, out[1 : 1 + len(pkg.state)], strict=True)
    ]
    return {
        "tokens": tokens,
        "position": int(position[0]),
        "max_abs_dlogits": float(np.abs(ref.logits - out[0]).max()),
        "max_rel_dlogits": float(np.abs(ref.logits - out[0]).max()) / max(1.0, float(np.abs(ref.logits).max())),
        "max_abs_dstate": max(d for d, _ in dstate),
        "max_scaled_dstate": max(d / scale for d, scale in dstate),
        "seconds": round(time.perf_counter() - start, 2),
    }


@dataclass
class _Setup:
    """The pieces a check runs on."""

    pkg: Any
    model: Any
    reference: Impl
    names: list[str]
    tie: float
    notes: dict[str, Any] = field(default_factory=dict)


def check_package(
    checkpoint: str | Path,
    package: str | Path,
    tokens: int = 32,
    tolerances: Tolerances | None = None,
    seed: int = 0,
    long: int = 0,
    text: str | Path | None = None,
) -> dict[str, Any]:
    """Compare `package` with `checkpoint`; the report's "passed" is False when a tolerance is exceeded.

    long > 0 adds the teacher-forced long-stream run over that many tokens of `text`.
    """
    if tokens < 1:
        raise UserError(f"--tokens {tokens}: must be at least 1")
    if long < 0:
        raise UserError(f"--long {long}: must be a positive number of tokens")
    tol = tolerances or Tolerances()
    with _one_thread():
        return _check(checkpoint, package, tokens, tol, seed, long, text)


@contextmanager
def _one_thread() -> Iterator[None]:
    """PyTorch on one thread while checking: every call is a few tokens, where a second thread only adds
    synchronisation (measured: a float64 [2, 7, 256] x [256, 1024] product took 5 ms on one thread and
    65 ms on two on a loaded 2-core machine). onnxruntime's sessions get one thread too (_check)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _check(
    checkpoint: str | Path, package: str | Path, tokens: int, tol: Tolerances, seed: int, long: int, text: str | Path | None
) -> dict[str, Any]:
    from astroedge import checkpoint as ckpt
    from astroedge.runtime.ort_session import create_session, library_path
    from astroedge.runtime.package import load_package

    pkg = load_package(package, verify=True)
    model = ckpt.load(checkpoint).model.eval().float()
    if model.cfg != pkg.config:
        raise UserError(f"{package}: its model config differs from {checkpoint}'s; re-export the package from this checkpoint")
    reference = torch_impl(copy.deepcopy(model).double(), "chunkwise")
    names = group_names(model.cfg.n_layers)
    tie = tol.tie if tol.tie is not None else tie_tolerance(pkg.precision, pkg.config.d_model)
    rng = np.random.default_rng(seed)
    scenarios = _scenarios(pkg, reference, tokens, rng)

    report: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "package": str(pkg.path),
        "precision": pkg.precision,
        "tokens": tokens,
        "seed": seed,
        "tolerances": {**asdict(tol), "tie": tie},
        "reference": "PyTorch float64 (chunkwise form), same weights",
        "kernels": {},
        "runs": [],
        "torch_fp32": [],
        "greedy": {"reference": [int(t) for t in scenarios["zero"][0][0]]},
    }
    with _probe_model(pkg) as probe:
        sessions = {"fallback": create_session(probe, use_library=False, threads=1)}
        if library_path("cpu") is not None:
            sessions["library"] = create_session(probe, use_library=True, threads=1)
        else:
            report["kernels"]["library"] = {"available": False, "reason": "libastroedge_ort.so not built (make plugins)"}
        impls: dict[str, Impl] = {}
        for kernel, info in sessions.items():
            report["kernels"][kernel] = {"available": True, "describe": info.describe()}
            impls[kernel] = ort_impl(info.session, pkg)
        torch_forms = {"decode": "step", "prefill": "chunkwise"}
        totals: dict[str, Tally] = {}
        for scenario, (toks, position, state) in scenarios.items():
            for mode, form in torch_forms.items():
                torch_name = f"torch-{form}"
                runs = lockstep(
                    reference,
                    {**impls, torch_name: torch_impl(model, form)},
                    toks,
                    position,
                    state,
                    mode,
                    tie,
                    tol.logits,
                    names,
                    {"scenario": scenario},
                )
                for name, tally in runs.items():
                    totals.setdefault(name, Tally()).merge(tally)
                    entry = {"kernel": name, "scenario": scenario, "mode": mode, **tally.summary()}
                    report["torch_fp32" if name.startswith("torch") else "runs"].append(entry)
        for kernel in impls:
            s = totals[kernel].summary()
            report["greedy"][kernel] = {
                "matched": s["argmax_matched"],
                "of": s["positions_judged"] - s["argmax_near_ties"],
                "agreement": s["greedy_agreement"],
                "match": s["greedy_agreement"] >= tol.greedy,
            }
        report["implementations"] = {name: t.summary() for name, t in totals.items()}
        if long:
            torch_long = {"torch-chunkwise": torch_impl(model, "chunkwise")}
            report["long"] = _long_run(pkg, reference, {**impls, **torch_long}, Path(text) if text else None, long, tie, tol.logits, names)
    report["onnx_checker"] = _onnx_checker(pkg.onnx_path)
    report["reference_evaluator"] = _reference_evaluator(pkg, reference, rng)
    report.update(_verdict(report, tol))
    return report


def _verdict(report: dict[str, Any], tol: Tolerances) -> dict[str, Any]:
    """Failures of the package's runs (the PyTorch fp32 forms are shown beside them, not judged: they are not the package)."""
    impls = {k: v for k, v in report["implementations"].items() if not k.startswith("torch")}
    long_impls = {k: v for k, v in report.get("long", {}).get("implementations", {}).items() if not k.startswith("torch")}
    every = list(impls.values()) + list(long_impls.values())
    compared = sum(s["spikes_compared"] for s in every)
    ties = sum(s["ties"] for s in every)
    summary = {
        "spikes_compared": compared,
        "ties": ties,
        "ties_per_million_spikes": round(1e6 * ties / max(compared, 1), 3),
        "errors": sum(s["errors"] for s in every),
        "error_rate": max(s["error_rate"] for s in every),
        "max_flip_margin": max(s["max_flip_margin"] for s in every),
        "max_rel_logits_before_tie": max(s["max_rel_logits"] for s in every),
        "max_scaled_dstate": max(s["max_scaled_dstate"] for s in every),
        "greedy_agreement": min(s["greedy_agreement"] for s in every),
        "first_tie": next((s["first_tie"] for s in every if s["first_tie"]), None),
        "first_error": next((s["first_error"] for s in every if s["first_error"]), None),
    }
    failures = []
    tie = report["tolerances"]["tie"]
    if summary["error_rate"] > tol.flip_rate:
        e = summary["first_error"]
        failures.append(
            f"{summary['errors']} spike flips beyond the tie tolerance {tie:.2g} (rate {summary['error_rate']:.3g} > "
            f"{tol.flip_rate:g}; first: {e['group']} token {e['token']} of {e['scenario']}/{e['mode']} stream {e['stream']}, "
            f"float64 drive {e['margin']:.3g} from the threshold)"
        )
    if summary["max_rel_logits_before_tie"] > tol.logits:
        failures.append(f"max relative logit error before the first tie {summary['max_rel_logits_before_tie']:.3g} > {tol.logits:g}")
    if summary["max_scaled_dstate"] > tol.state:
        failures.append(f"max |dstate| / max(1, |state|) {summary['max_scaled_dstate']:.3g} > {tol.state:g}")
    if summary["greedy_agreement"] < tol.greedy:
        failures.append(f"greedy (argmax) agreement {summary['greedy_agreement']:.1%} < {tol.greedy:.0%}")
    for name, diff in report.get("long", {}).get("perplexity_rel_diff", {}).items():
        if abs(diff) > tol.perplexity:
            failures.append(f"--long: {name} perplexity differs from the float64 reference's by {diff:+.3%} (> {tol.perplexity:.2%})")
    if report["onnx_checker"] != "ok":
        failures.append(f"onnx.checker {report['onnx_checker']}")
    ref = report["reference_evaluator"]
    if "skipped" not in ref and (ref["max_rel_dlogits"] > tol.logits or ref["max_scaled_dstate"] > tol.state):
        failures.append(f"reference evaluator differs: |dlogits| {ref['max_abs_dlogits']:.3g}, |dstate| {ref['max_abs_dstate']:.3g}")
    return {"summary": summary, "failures": failures, "passed": not failures}


def print_check(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print(json.dumps(report, indent=2))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console = Console(width=max(console.width, 110))  # the table needs ~100 columns; rich assumes 80 when piped
    for kernel, info in report["kernels"].items():
        console.print(f"[bold]{kernel}[/bold]: {info.get('describe') or info.get('reason')}")
    tie = report["tolerances"]["tie"]
    console.print(
        f"{report['package']} vs {report['checkpoint']} in float64: {report['tokens']} tokens x 2 streams per run; "
        f"a flip is a tie when |float64 drive| <= {tie:.2g}"
    )
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("impl", "run", "rel dlogit", "dstate", "spikes", "ties", "errors", "margin", "greedy"):
        table.add_column(col, justify="left" if col in ("impl", "run") else "right")
    for r in report["runs"] + report["torch_fp32"]:
        table.add_row(
            r["kernel"],
            f"{r['scenario']}/{r['mode']}",
            f"{r['max_rel_logits']:.1e}",
            f"{r['max_scaled_dstate']:.1e}",
            f"{r['spikes_compared']:,}",
            str(r["ties"]),
            str(r["errors"]),
            f"{r['max_flip_margin']:.1e}",
            f"{r['greedy_agreement']:.0%}",
        )
    console.print(table)
    if "long" in report:
        lg = report["long"]
        console.print(
            f"--long: {lg['tokens']:,} tokens of {lg['text']} at positions {lg['positions']} after a {lg['warmup_tokens']}-token "
            f"warm-up ({lg['seconds']} s)"
        )
        for name, s in lg["implementations"].items():
            first = s["first_tie"]
            where = "none" if first is None else f"token {first['token']} ({first['group']}, drive {first['margin']:.2g})"
            console.print(
                f"  {name}: ties {s['ties']} ({s['ties_per_million_spikes']:.3g} per million spikes), errors {s['errors']}, "
                f"max rel dlogits before a tie {s['max_rel_logits']:.2e}, greedy {s['greedy_agreement']:.2%}, first tie {where}"
            )
        console.print("  perplexity: " + ", ".join(f"{k} {v:.4f}" for k, v in lg["perplexity"].items()))
    s = report["summary"]
    console.print(
        f"package: {s['spikes_compared']:,} spikes compared, {s['ties']} rounding ties "
        f"({s['ties_per_million_spikes']:.3g} per million), {s['errors']} errors; "
        f"largest flip margin {s['max_flip_margin']:.2e}; max relative logit error before the first tie "
        f"{s['max_rel_logits_before_tie']:.2e}; greedy agreement {s['greedy_agreement']:.1%}"
    )
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
