"""Export, inspect and check: the ONNX graph, the fallback function, the package and its errors.

The tiny package is exported once per session (tests/conftest.py); one odd-shaped model and one
external-data package are exported here. Every numerical comparison starts from non-zero state.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from astroedge import checkpoint
from astroedge.config import ModelConfig, preset
from astroedge.contract import amsu_contract
from astroedge.errors import UserError
from astroedge.export import onnx_export
from astroedge.export.check import check_package
from astroedge.export.fallback import amsu_function
from astroedge.export.inspect_package import inspect_package
from astroedge.export.package import export_package
from astroedge.model import AMSNet, AMSUParams, StreamState, amsu_step_form
from astroedge.runtime.ort_session import create_session
from astroedge.runtime.package import load_package
from astroedge.tokenizer import ByteTokenizer

BIG_POSITIONS = (10**7, 4 * 10**9, 2**32 - 1)


def _random_state(model: AMSNet, positions: list[int], seed: int) -> StreamState:
    g = torch.Generator().manual_seed(seed)
    st = model.init_state(len(positions))
    return StreamState(
        torch.tensor(positions, dtype=torch.int64),
        [torch.randn(h.shape, generator=g) * 0.3 for h in st.h],
        [torch.rand(u.shape, generator=g) for u in st.u],
    )


def _feed(tokens: torch.Tensor, st: StreamState) -> dict[str, np.ndarray]:
    feed = {"tokens": tokens.numpy(), "position": st.position.numpy()}
    for i, (h, u) in enumerate(zip(st.h, st.u, strict=True)):
        feed[f"past_h.{i}"] = h.numpy()
        feed[f"past_u.{i}"] = u.numpy()
    return feed


def _assert_matches_torch(session: object, model: AMSNet, tokens: torch.Tensor, st: StreamState, atol: float = 1e-4) -> None:
    with torch.no_grad():
        ref = model(tokens, st, form="step")
    out = session.run(None, _feed(tokens, st))  # type: ignore[attr-defined]
    np.testing.assert_allclose(out[0], ref.logits.numpy(), atol=atol, rtol=0)
    for i in range(model.cfg.n_layers):
        np.testing.assert_allclose(out[1 + 2 * i], ref.state.h[i].numpy(), atol=atol, rtol=1e-5)
        np.testing.assert_allclose(out[2 + 2 * i], ref.state.u[i].numpy(), atol=atol, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_model(tiny_checkpoint: Path) -> AMSNet:
    return checkpoint.load(tiny_checkpoint).model


@pytest.fixture(scope="module")
def fallback_session(tiny_package: Path) -> object:
    """Stock onnxruntime, no AMSU library: the attached function is what runs."""
    info = create_session(tiny_package / "model.onnx", use_library=False)
    assert info.kernel == "fallback"
    return info.session


# ---------------------------------------------------------------------------------------------
# the graph


def test_one_amsu_node_per_layer_with_contract_attributes(tiny_package: Path) -> None:
    proto = onnx.load(str(tiny_package / "model.onnx"))
    c = amsu_contract()
    cfg = preset("tiny")
    nodes = [n for n in proto.graph.node if n.domain == c.domain and n.op_type == c.name]
    assert [n.name for n in nodes] == [f"layers.{i}.amsu" for i in range(cfg.n_layers)]
    assert all(n.domain in ("", c.domain) for n in proto.graph.node)  # everything else is standard ONNX
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        assert attrs["num_heads"] == cfg.n_heads
        assert attrs["threshold"] == pytest.approx(cfg.threshold)
        assert attrs["eps"] == pytest.approx(cfg.norm_eps)
        assert attrs["plugin_namespace"] == b"astroedge" and attrs["plugin_version"] == b"1"
        assert len(n.input) == len(c.inputs) and len(n.output) == len(c.outputs)
    (fn,) = [f for f in proto.functions if f.domain == c.domain and f.name == c.name]
    assert list(fn.input) == c.input_names and list(fn.output) == c.output_names
    assert {o.domain: o.version for o in proto.opset_import}[c.domain] == c.version
    onnx.checker.check_model(proto, full_check=True)


def test_graph_io_names_and_dynamic_dims(tiny_package: Path) -> None:
    proto = onnx.load(str(tiny_package / "model.onnx"))
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*proto.graph.input, *proto.graph.output]}
    assert [i.name for i in proto.graph.input] == ["tokens", "position", "past_h.0", "past_u.0", "past_h.1", "past_u.1"]
    assert [o.name for o in proto.graph.output] == ["logits", "present_h.0", "present_u.0", "present_h.1", "present_u.1"]
    assert dims["tokens"] == ["batch", "seq"] and dims["position"] == ["batch"]
    assert dims["past_h.0"] == ["batch", 5, 8, 8] and dims["present_u.1"] == ["batch", 40]
    assert dims["logits"] == ["batch", "seq", 256]
    assert proto.graph.input[0].type.tensor_type.elem_type == TensorProto.INT64


@pytest.mark.parametrize("batch,seq", [(1, 1), (3, 1), (2, 7), (1, 13)])
def test_stock_onnxruntime_matches_torch(fallback_session: object, tiny_model: AMSNet, batch: int, seq: int) -> None:
    """Dynamic batch and seq (seq=1 decode), non-zero state, positions up to 2**32 - 1."""
    positions = [BIG_POSITIONS[b % 3] if b else 0 for b in range(batch)] if batch > 1 else [4 * 10**9]
    st = _random_state(tiny_model, positions, seed=batch * 100 + seq)
    tokens = torch.randint(0, 256, (batch, seq), generator=torch.Generator().manual_seed(seq))
    _assert_matches_torch(fallback_session, tiny_model, tokens, st)


def test_prefill_equals_single_steps(fallback_session: object, tiny_model: AMSNet) -> None:
    """Prefill of n tokens == n decode calls carrying present_* -> past_* and position += 1."""
    st = _random_state(tiny_model, [123, 10**7], seed=7)
    tokens = torch.randint(0, 256, (2, 9), generator=torch.Generator().manual_seed(1))
    run = fallback_session.run  # type: ignore[attr-defined]
    prefill = run(None, _feed(tokens, st))
    feed = _feed(tokens[:, :1], st)
    logits = []
    for t in range(tokens.shape[1]):
        feed["tokens"] = tokens[:, t : t + 1].numpy()
        out = run(None, feed)
        logits.append(out[0])
        feed["position"] = feed["position"] + 1
        for i in range(tiny_model.cfg.n_layers):
            feed[f"past_h.{i}"], feed[f"past_u.{i}"] = out[1 + 2 * i], out[2 + 2 * i]
    np.testing.assert_allclose(np.concatenate(logits, 1), prefill[0], atol=1e-5, rtol=0)
    for got, want in zip(out[1:], prefill[1:], strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_odd_config_exports_and_matches(tmp_path: Path) -> None:
    """Head width 2, three layers, odd vocab and FFN width, one head per pair of channels."""
    cfg = ModelConfig(vocab_size=11, d_model=6, n_layers=3, n_heads=3, ffn_mult=1.5, tau_a_max=64.0, threshold=0.3)
    torch.manual_seed(3)
    model = AMSNet(cfg).eval()
    path = tmp_path / "odd.onnx"
    onnx_export.export_onnx(model, path)
    session = create_session(path, use_library=False).session
    for batch, seq in ((1, 1), (2, 6)):
        st = _random_state(model, [2**32 - 1 - seq, 5][:batch], seed=seq)
        _assert_matches_torch(session, model, torch.randint(0, 11, (batch, seq)), st)


# ---------------------------------------------------------------------------------------------
# the fallback function on its own


def _single_node_model(elem: int, nh: int) -> onnx.ModelProto:
    c = amsu_contract()
    node = helper.make_node(c.name, c.input_names, c.output_names, domain=c.domain, num_heads=nh, threshold=0.5, eps=1e-5)
    ranks = {"x": 3, "q": 3, "k": 3, "v": 3, "w_o": 1, "gamma": 1, "beta": 1, "h_in": 4, "u_in": 2}
    types = {n: elem if ranks[n] == 3 else TensorProto.FLOAT for n in c.input_names}
    inputs = [helper.make_tensor_value_info(n, types[n], [f"{n}{i}" for i in range(ranks[n])]) for n in c.input_names]
    outputs = [
        helper.make_tensor_value_info("s", elem, ["b", "t", "d"]),
        helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["b", "n", "i", "j"]),
        helper.make_tensor_value_info("u_out", TensorProto.FLOAT, ["b", "d"]),
    ]
    graph = helper.make_graph([node], "amsu", inputs, outputs)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid(c.domain, c.version)]
    return helper.make_model(graph, opset_imports=opsets, functions=[amsu_function(18)], ir_version=10)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("seq", [1, 6])
def test_fallback_function_equals_pytorch(dtype: type, seq: int) -> None:
    """The function alone, onnxruntime and onnx.reference, vs amsu_step_form from non-zero state."""
    from onnx.reference import ReferenceEvaluator

    b, d, nh = 2, 12, 3
    g = torch.Generator().manual_seed(seq)
    # inputs representable in `dtype`, so that the reference sees exactly what the function sees
    x, q, k, v = (torch.from_numpy(torch.randn(b, seq, d, generator=g).numpy().astype(dtype).astype(np.float32)) for _ in range(4))
    h, u = torch.randn(b, nh, d // nh, d // nh, generator=g) * 0.3, torch.rand(b, d, generator=g)
    w_o, gamma, beta = torch.rand(d, generator=g) + 0.5, torch.rand(nh, generator=g) * 0.5 + 0.5, torch.rand(d, generator=g) * 0.5 + 0.3
    p = AMSUParams(w_o, gamma, beta, 0.5, 1e-5, 1.0)
    ref = amsu_step_form(x, q, k, v, h, u, p)
    feed = {
        "x": x.numpy().astype(dtype), "q": q.numpy().astype(dtype), "k": k.numpy().astype(dtype), "v": v.numpy().astype(dtype),
        "w_o": p.w_o.numpy(), "gamma": p.gamma.numpy(), "beta": p.beta.numpy(), "h_in": h.numpy(), "u_in": u.numpy(),
    }  # fmt: skip
    model = _single_node_model(TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT, nh)
    onnx.checker.check_model(model, full_check=True)
    session = create_session(model.SerializeToString(), use_library=False).session
    for s, h_out, u_out in (session.run(None, feed), ReferenceEvaluator(model).run(None, feed)):
        assert s.dtype == dtype and set(np.unique(s)) <= {0, 1}
        assert int((s.astype(np.float32) != ref.s.numpy()).sum()) == 0
        np.testing.assert_allclose(h_out, ref.h.numpy(), atol=1e-6, rtol=1e-6)
        np.testing.assert_allclose(u_out, ref.u.numpy(), atol=1e-6, rtol=1e-6)


def test_fallback_refuses_old_opset() -> None:
    with pytest.raises(ValueError, match="opset >= 18"):
        amsu_function(17)


# ---------------------------------------------------------------------------------------------
# the package


def test_manifest_describes_the_package(tiny_package: Path) -> None:
    manifest = json.loads((tiny_package / "manifest.json").read_text())
    cfg = preset("tiny")
    assert manifest["format"] == "astroedge-package" and manifest["format_version"] == 1
    assert manifest["precision"] == "fp32" and manifest["model"] == cfg.to_dict()
    assert manifest["op"] == {"name": "AMSU", "domain": "astroedge", "version": 1}
    assert manifest["onnx"] == {"file": "model.onnx", "opset": 18, "external_data": None}
    assert manifest["tokenizer"] == {"type": "bytes", "vocab_size": 256, "file": None}
    assert manifest["state_bytes_per_stream"] == cfg.n_layers * (cfg.n_heads * cfg.head_dim**2 + cfg.d_model) * 4
    assert manifest["state"][0] == {
        "name": "h.0", "input": "past_h.0", "output": "present_h.0", "dtype": "float32", "shape": ["batch", 5, 8, 8], "init": "zeros",
    }  # fmt: skip
    assert sorted(os.listdir(tiny_package)) == ["manifest.json", "model.onnx"]
    assert manifest["files"]["model.onnx"]["bytes"] == (tiny_package / "model.onnx").stat().st_size
    pkg = load_package(tiny_package, verify=True)  # the runtime's reader re-hashes every file
    assert pkg.config == cfg and pkg.max_position == 2**32


def test_inspect_reports_graph_and_state(tiny_package: Path) -> None:
    report = inspect_package(tiny_package)
    assert report["layers"] == 2 and report["precision"] == "fp32"
    assert report["parameters"] == AMSNet(preset("tiny")).num_parameters()
    assert report["state_bytes_per_stream"] == 2880
    graph = report["graph"]
    assert graph["op_histogram"]["astroedge::AMSU"] == 2 and graph["fallback_attached"]
    assert graph["op_histogram"]["astroedge::SpikeMatMul"] == 4  # W_O and W_2 of each layer
    assert [n["name"] for n in graph["custom_nodes"]] == [f"layers.{i}.{op}" for i in range(2) for op in ("amsu", "w_o", "w_2")]
    assert report["files"]["model.onnx"] > 0


def test_inspect_runs_without_torch(tiny_package: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from astroedge.export.inspect_package import inspect_package\n"
        f"print(inspect_package({str(tiny_package)!r})['graph']['op_histogram']['astroedge::AMSU'])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"


def test_check_passes_and_reports(tiny_checkpoint: Path, tiny_package: Path) -> None:
    report = check_package(tiny_checkpoint, tiny_package, tokens=8)
    assert report["passed"], report["failures"]
    assert report["kernels"]["fallback"]["available"]
    runs = {(r["kernel"], r["scenario"], r["mode"]) for r in report["runs"]}
    assert ("fallback", "random", "decode") in runs and ("fallback", "zero", "prefill") in runs
    assert {r["kernel"] for r in report["torch_fp32"]} == {"torch-step", "torch-chunkwise"}
    s = report["summary"]
    assert s["max_rel_logits_before_tie"] < 1e-5 and s["errors"] == 0 and s["greedy_agreement"] == 1.0
    # AMSU and FFN spikes, every one: 2 scenarios x 2 call patterns x 2 streams x 8 tokens x 2 layers x (40 + 80), per kernel
    per_kernel = 2 * 2 * 2 * 8 * 2 * (40 + 80)
    fallback = report["implementations"]["fallback"]
    assert fallback["ties"] == fallback["errors"] == 0 and fallback["spikes_compared"] == per_kernel  # nothing flipped: all compared
    assert report["greedy"]["fallback"]["match"] and report["onnx_checker"] == "ok"
    assert report["tolerances"]["tie"] == pytest.approx(40 * 2**-23)  # d_model * eps(float32)
    ref = report["reference_evaluator"]
    assert "skipped" in ref or ref["max_abs_dlogits"] < 1e-4


def _call(groups: list[np.ndarray]) -> object:
    """A one-stream call with these spikes (or, for the reference, drives) per group and fixed logits."""
    from astroedge.export.check import Call

    logits = np.zeros((1, groups[0].shape[1], 3))
    logits[..., 0] = 1.0
    return Call(logits, [np.zeros((1, 2))], groups)


def test_flips_are_told_apart_by_the_float64_drive() -> None:
    """A flip where the float64 drive is within the tie tolerance is a tie; beyond it an error. Only a call's first
    flip is classified (later ones are its consequences); logits and state count up to it; the stream is re-synced."""
    from astroedge.export.check import Tally, _judge_call

    drive_amsu = np.array([[[0.3, -0.2], [0.4, 3e-6], [0.1, -0.5]]])  # [B=1, t=3, N=2]
    drive_ffn = np.array([[[-0.7], [0.2], [0.9]]])
    ref = _call([drive_amsu, drive_ffn])
    tie_flip = (drive_amsu > 0).astype(np.float32)
    tie_flip[0, 1, 1] = 0.0  # token 1, drive 3e-6: a tie
    consequence = (drive_ffn > 0).astype(np.float32)
    consequence[0, 2, 0] = 0.0  # token 2: after the tie, not classified
    tally = Tally()
    resync = _judge_call(ref, _call([tie_flip, consequence]), 100, 1e-5, 1e-4, ["amsu.0", "ffn.0"], tally, {})
    assert resync == [0] and tally.ties == 1 and tally.errors == 0 and tally.unjudged_flips == 1
    assert tally.first_tie is not None and tally.first_tie["token"] == 101 and tally.first_tie["group"] == "amsu.0"
    assert tally.spikes_compared == 3 + 2  # token 0 (2 + 1 spikes), token 1 up to the flipped group
    assert tally.positions_judged == 1

    error_flip = (drive_amsu > 0).astype(np.float32)
    error_flip[0, 0, 0] = 0.0  # drive 0.3: a real error
    tally = Tally()
    _judge_call(ref, _call([error_flip, consequence]), 0, 1e-5, 1e-4, ["amsu.0", "ffn.0"], tally, {})
    assert tally.errors == 1 and tally.ties == 0 and tally.max_flip_margin == pytest.approx(0.3)
    assert tally.first_error is not None and tally.first_error["token"] == 0

    clean = Tally()
    assert _judge_call(ref, _call([(drive_amsu > 0) * 1.0, (drive_ffn > 0) * 1.0]), 0, 1e-5, 1e-4, ["amsu.0", "ffn.0"], clean, {}) == []
    assert clean.spikes_compared == 9 and clean.ties == clean.errors == 0 and clean.positions_judged == 3


def test_check_fails_a_perturbed_weight_as_an_error(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A package whose FFN weights differ slightly from the checkpoint's (one row of W_1 scaled by 1.2): the flips it causes
    lie far beyond the tie tolerance, so the CLI calls them errors and exits 1."""
    ck = checkpoint.load(tiny_checkpoint)
    with torch.no_grad():
        ck.model.layers[0].ffn.up.weight[3] *= 1.2
    perturbed = tmp_path / "perturbed.pt"
    checkpoint.save(perturbed, ck.model, ck.tokenizer)
    package = export_package(perturbed, tmp_path / "perturbed.aepkg")
    code, out, err = _cli(capsys, "check", str(tiny_checkpoint), str(package), "--json", "--tokens", "16")
    assert code == 1, err
    report = json.loads(out)
    s = report["summary"]
    assert not report["passed"] and s["errors"] > 0 and s["first_error"]["group"] == "ffn.0"
    assert s["max_flip_margin"] > 100 * report["tolerances"]["tie"]
    assert any("beyond the tie tolerance" in f for f in report["failures"])


def test_check_long_teacher_forced(tiny_checkpoint: Path, tiny_package: Path, tmp_path: Path) -> None:
    """--long: teacher-forced on a text from a warmed-up state at a small and a huge position; perplexities agree."""
    text = tmp_path / "long.txt"
    text.write_text("Shall I compare thee to a summer's day? Thou art more lovely and more temperate. " * 8, encoding="utf-8")
    report = check_package(tiny_checkpoint, tiny_package, tokens=2, long=40, text=text)
    assert report["passed"], report["failures"]
    long = report["long"]
    assert long["tokens"] == 40 and long["positions"][1] > 4 * 10**9
    assert set(long["perplexity"]) >= {"reference", "fallback", "torch-chunkwise"}
    assert all(abs(d) < 1e-3 for d in long["perplexity_rel_diff"].values())
    assert long["implementations"]["fallback"]["spikes_compared"] > 0
    with pytest.raises(UserError, match="--long 4000 needs"):
        check_package(tiny_checkpoint, tiny_package, tokens=2, long=4000, text=text)


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `astroedge ARGS` in-process through the real entry point: (exit code, stdout, stderr)."""
    from astroedge.cli import main

    old_argv = sys.argv
    sys.argv = ["astroedge", *args]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old_argv
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_fails_for_other_weights(tiny_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint with the same config but other weights: the CLI reports errors (not ties) and exits 1."""
    torch.manual_seed(99)
    other = tmp_path / "other.pt"
    checkpoint.save(other, AMSNet(preset("tiny")), ByteTokenizer())
    code, out, err = _cli(capsys, "check", str(other), str(tiny_package), "--json", "--tokens", "4")
    assert code == 1, err
    report = json.loads(out)
    assert not report["passed"] and any("beyond the tie tolerance" in f for f in report["failures"])


def test_external_data_and_force(tiny_checkpoint: Path, tiny_package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large models put weights in model.onnx.data (threshold lowered here); --force replaces a package.

    The traced graph is reused from the session's package (tracing is tested above; this is packaging).
    """
    out = tmp_path / "big.aepkg"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    monkeypatch.setattr(onnx_export, "EXTERNAL_DATA_BYTES", 0)
    monkeypatch.setattr(onnx_export, "build_onnx", lambda model: onnx.load(str(tiny_package / "model.onnx")))
    export_package(tiny_checkpoint, out, force=True)
    assert sorted(os.listdir(out)) == ["manifest.json", "model.onnx", "model.onnx.data"]
    pkg = load_package(out, verify=True)
    assert pkg.manifest["onnx"]["external_data"] == "model.onnx.data" and "model.onnx.data" in pkg.manifest["files"]
    assert (out / "model.onnx").stat().st_size < 30_000 < 200_000 < (out / "model.onnx.data").stat().st_size
    report = check_package(tiny_checkpoint, out, tokens=3)
    assert report["passed"], report["failures"]


def test_hf_tokenizer_is_packaged(tmp_path: Path, tiny_package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A HuggingFace tokenizer travels as tokenizer.json, listed with its checksum; the runtime loads it."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    from astroedge.tokenizer import HFTokenizer

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "to": 1, "be": 2, "or": 3, "not": 4}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    ckpt = tmp_path / "hf.pt"
    checkpoint.save(ckpt, AMSNet(preset("tiny")), HFTokenizer(tok.to_str()))
    monkeypatch.setattr(onnx_export, "build_onnx", lambda model: onnx.load(str(tiny_package / "model.onnx")))
    out = export_package(ckpt, tmp_path / "hf.aepkg")
    pkg = load_package(out, verify=True)
    assert pkg.manifest["tokenizer"] == {"type": "hf", "vocab_size": 5, "file": "tokenizer.json"}
    assert "tokenizer.json" in pkg.manifest["files"]
    assert pkg.tokenizer.encode("to be or not") == [1, 2, 3, 4]


def test_dynamic_int8_stream_does_not_depend_on_its_batch(tiny_package: Path, tmp_path: Path) -> None:
    """--int8 --method dynamic quantises activations per row: 4 streams stepped in one batch call equal the same 4
    stepped alone (with one scale per batch tensor they differed by 0.01 here and by 5.8 on the sample)."""
    from astroedge.quantize.package import quantize_package
    from astroedge.runtime import Engine

    text = tmp_path / "eval.txt"
    text.write_text("To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer " * 12, encoding="utf-8")
    out = tmp_path / "dynamic.aepkg"
    quantize_package(tiny_package, out, "int8", "dynamic", eval_text=text, eval_tokens=512, max_ppl_increase=50.0)
    assert any(n.op_type == "MatMulInteger" for n in onnx.load(str(out / "model.onnx")).graph.node)
    engine = Engine(out)
    batched = [engine.create_stream() for _ in range(4)]
    for stream, prompt in zip(batched, ["ROMEO: ", "a", "What light through yonder window breaks?", "zzz"], strict=True):
        stream.feed(prompt)
    alone = [s.clone() for s in batched]
    rng = np.random.default_rng(0)
    for _ in range(12):
        tokens = [int(t) for t in rng.integers(0, 256, 4)]
        together = engine.step_batch(batched, tokens)
        separate = np.stack([s.step(t) for s, t in zip(alone, tokens, strict=True)])
        np.testing.assert_allclose(together, separate, rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# bad input: one clear error, nothing left behind


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_not_a_checkpoint(tmp_path: Path) -> None:
    bad = tmp_path / "model.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(UserError, match="model.pt"):
        export_package(bad, tmp_path / "out.aepkg")
    assert not (tmp_path / "out.aepkg").exists() and _leftovers(tmp_path) == []


def test_newer_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    model = AMSNet(preset("tiny"))
    torch.save({"format": "astroedge-checkpoint", "format_version": 99, "config": model.cfg.to_dict(), "weights": model.state_dict()}, path)
    with pytest.raises(UserError, match="newer"):
        export_package(path, tmp_path / "out.aepkg")
    assert not (tmp_path / "out.aepkg").exists()


def test_existing_output_refused_and_untouched(tiny_checkpoint: Path, tiny_package: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (tiny_package / "manifest.json").read_bytes()
    code, _, err = _cli(capsys, "export", str(tiny_checkpoint), "-o", str(tiny_package))
    assert code == 2
    assert err.startswith("error: ") and "--force" in err and len(err.strip().splitlines()) == 1
    assert (tiny_package / "manifest.json").read_bytes() == before


def test_unwritable_output(tiny_checkpoint: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out in (tmp_path / "missing" / "model.aepkg", blocker / "model.aepkg"):
        with pytest.raises(UserError, match="does not exist"):
            export_package(tiny_checkpoint, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failed_export_leaves_nothing(tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(model: AMSNet) -> None:
        raise RuntimeError("exporter crashed")

    monkeypatch.setattr(onnx_export, "build_onnx", broken)
    with pytest.raises(RuntimeError, match="crashed"):
        export_package(tiny_checkpoint, tmp_path / "out.aepkg")
    assert list(tmp_path.iterdir()) == []


def test_inspect_refuses_newer_package(tiny_package: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy.aepkg"
    shutil.copytree(tiny_package, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["format_version"] = 2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="newer"):
        inspect_package(copy)


def test_check_refuses_bad_tokens(tiny_checkpoint: Path, tiny_package: Path) -> None:
    with pytest.raises(UserError, match="--tokens 0"):
        check_package(tiny_checkpoint, tiny_package, tokens=0)
