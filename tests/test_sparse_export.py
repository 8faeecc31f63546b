"""W_O and W_2 as astroedge::SpikeMatMul: two per layer in an exported package, the same function as the
dense export (spikes equal, logits within 1e-5 relative up to the first threshold tie), every weight
format's fallback equal to the contract's dequantisation, and quantised sparse packages that pass the
perplexity gate and run in the runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from astroedge.contract import spikematmul_contract

TEXT = (
    "Now is the winter of our discontent made glorious summer by this sun of York; and all the clouds that "
    "lour'd upon our house in the deep bosom of the ocean buried. "
) * 12


def _spike_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    c = spikematmul_contract()
    return [n for n in model.graph.node if n.domain == c.domain and n.op_type == c.name]


@pytest.fixture(scope="module")
def dense_package(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from astroedge.export.package import export_package

    return export_package(tiny_checkpoint, tmp_path_factory.mktemp("dense") / "model.aepkg", dense=True)


def test_two_spikematmul_per_layer(tiny_package: Path) -> None:
    """Each layer's W_O takes the AMSU spikes, its W_2 the FFN spikes; W^T is stored [K, N] float32; the fallback is attached."""
    from astroedge.config import preset

    cfg = preset("tiny")
    model = onnx.load(str(tiny_package / "model.onnx"))
    nodes = _spike_nodes(model)
    assert [n.name for n in nodes] == [f"layers.{i}.{site}" for i in range(cfg.n_layers) for site in ("w_o", "w_2")]
    inits = {t.name: t for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    for node in nodes:
        w = inits[node.input[1]]
        k = cfg.d_model if node.name.endswith("w_o") else cfg.ffn_hidden
        assert list(w.dims) == [k, cfg.d_model] and w.data_type == TensorProto.FLOAT and len(node.input) == 2
        assert producer[node.input[0]].op_type == ("AMSU" if node.name.endswith("w_o") else "Cast")
        assert helper.get_attribute_value(next(a for a in node.attribute if a.name == "out_features")) == cfg.d_model
    c = spikematmul_contract()
    assert [f.name for f in model.functions if f.domain == c.domain] == ["AMSU", "SpikeMatMul"]


def test_dense_export_keeps_matmul(dense_package: Path) -> None:
    model = onnx.load(str(dense_package / "model.onnx"))
    assert not _spike_nodes(model) and [f.name for f in model.functions] == ["AMSU"]


def _session(model: onnx.ModelProto, library: Path | None) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if library is not None:
        opts.register_custom_ops_library(str(library))
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _with_spike_outputs(path: Path) -> tuple[onnx.ModelProto, list[str]]:
    from astroedge.export.spike_matmul import spike_products

    model = onnx.load(str(path / "model.onnx"))
    names = [p.spikes for p in spike_products(model.graph)]
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    return model, names


def test_sparse_equals_dense_and_kernel(tiny_package: Path, dense_package: Path) -> None:
    """From a non-zero state at a large position, token by token: the sparse package (fallback function, and the
    native kernel when the library has one) gives the dense export's spikes exactly and its logits within 1e-5
    relative; a kernel's different summation order may flip a spike sitting on the threshold, after which the
    streams are different functions' outputs and the comparison stops there (counted, at most one tie per run)."""
    from astroedge.bench.model import spikematmul_kernel_available
    from astroedge.native import get_library_path
    from astroedge.runtime.package import load_package

    pkg = load_package(tiny_package)
    rng = np.random.default_rng(7)
    state = {
        s.input: (
            rng.standard_normal(s.concrete_shape(2)) * 0.3 if s.name.startswith("h.") else rng.uniform(0, 1, s.concrete_shape(2))
        ).astype(np.float32)
        for s in pkg.state
    }
    tokens = rng.integers(0, 256, (2, 16))
    library = get_library_path("cpu")
    runs = {"fallback": None} | ({"kernel": library} if spikematmul_kernel_available(library) else {})
    dense_model, dense_spikes = _with_spike_outputs(dense_package)
    dense = _session(dense_model, None)
    for label, lib in runs.items():
        sparse_model, sparse_spikes = _with_spike_outputs(tiny_package)
        sparse = _session(sparse_model, lib)
        sd, ss = dict(state), dict(state)
        position = np.array([10**6, 3 * 10**9])
        for t in range(tokens.shape[1]):
            feed = {pkg.tokens_input: tokens[:, t : t + 1], pkg.position_input: position + t}
            a = dense.run(None, {**feed, **sd})  # type: ignore[attr-defined]
            b = sparse.run(None, {**feed, **ss})  # type: ignore[attr-defined]
            n_state = len(pkg.state)
            spikes_a, spikes_b = a[1 + n_state :], b[1 + n_state :]
            if any((x != y).any() for x, y in zip(spikes_a, spikes_b, strict=True)):
                assert label == "kernel", f"{label}: spikes differ from the dense export at token {t}"
                break
            assert np.abs(a[0] - b[0]).max() <= 1e-5 * max(1.0, float(np.abs(a[0]).max())), (label, t)
            sd = {s.input: v for s, v in zip(pkg.state, a[1 : 1 + n_state], strict=True)}
            ss = {s.input: v for s, v in zip(pkg.state, b[1 : 1 + n_state], strict=True)}
        assert len(dense_spikes) == len(sparse_spikes) == 4


@pytest.mark.parametrize(
    ("fmt", "k", "n", "block"), [("float32", 7, 5, 32), ("float16", 6, 9, 32), ("int8", 9, 7, 32), ("int4", 5, 7, 2), ("int4", 8, 37, 16)]
)
def test_fallback_is_the_contract(fmt: str, k: int, n: int, block: int) -> None:
    """One SpikeMatMul node with its fallback, on stock onnxruntime, equals the contract's dequantise-and-add in numpy
    at firing rates 0, 0.14, 0.5 and 1, odd K and N included."""
    from astroedge.contract.spikematmul import dequantize, quantize
    from astroedge.export.fallback import spikematmul_function

    rng = np.random.default_rng(k * n)
    w = rng.standard_normal((k, n)).astype(np.float32)
    c = spikematmul_contract()
    attrs: dict[str, int] = {"out_features": n}
    t_type = TensorProto.FLOAT16 if fmt == "float16" else TensorProto.FLOAT
    if fmt in ("int8", "int4"):
        q, scale = quantize(w, fmt, block)
        assert scale is not None
        if fmt == "int4":
            assert q.shape == (k, (n + 1) // 2) and scale.shape == (k, -(-n // block))
            attrs["block_size"] = block
        ref_w = dequantize(q, scale, n, block)
        assert np.abs(ref_w - w).max() <= 0.5 * float(scale.max()) + 1e-6
        inits = [numpy_helper.from_array(q, "w"), numpy_helper.from_array(scale, "scale")]
    else:
        wt = w.astype(np.float16) if fmt == "float16" else w
        inits, ref_w = [numpy_helper.from_array(wt, "w")], wt.astype(np.float32)
    node = helper.make_node(c.name, ["s", *[t.name for t in inits]], ["y"], domain=c.domain, **attrs)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("s", t_type, [None, None, k])],
        [helper.make_tensor_value_info("y", t_type, [None, None, n])],
        inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(c.domain, c.version)],
        functions=[spikematmul_function(18, fmt)],
        ir_version=10,
    )
    onnx.checker.check_model(model, full_check=True)
    session = _session(model, None)
    for rate in (0.0, 0.14, 0.5, 1.0):
        s = (rng.uniform(0, 1, (2, 3, k)) < rate).astype(np.float16 if fmt == "float16" else np.float32)
        (y,) = session.run(None, {"s": s})  # type: ignore[attr-defined]
        ref = s.astype(np.float64) @ ref_w.astype(np.float64)
        tol = 2e-3 * max(1.0, float(np.abs(ref).max())) if fmt == "float16" else 1e-5 * max(1.0, float(np.abs(ref).max()))
        assert np.abs(y.astype(np.float64) - ref).max() <= tol, (fmt, rate)


@pytest.fixture(scope="module")
def eval_text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("text") / "eval.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("precision", "weight_type", "scale_rank"),
    [("int8", TensorProto.INT8, 1), ("int4", TensorProto.UINT8, 2), ("fp16", TensorProto.FLOAT16, 0)],
)
def test_quantised_sparse_package(
    tiny_package: Path, eval_text: Path, tmp_path: Path, precision: str, weight_type: int, scale_rank: int
) -> None:
    """The SpikeMatMul weights take the op's formats (MatMulNBits no longer touches them), the package passes the
    perplexity gate, and the runtime runs it (fallback functions and, when built, the library)."""
    from astroedge.quantize.package import quantize_package
    from astroedge.runtime import Engine

    out = tmp_path / f"{precision}.aepkg"
    report = quantize_package(tiny_package, out, precision, eval_text=eval_text, eval_tokens=256, max_ppl_increase=50.0, block_size=16)
    assert report["passed"] and report["quality"]["increase_percent"] <= 50.0
    model = onnx.load(str(out / "model.onnx"))
    nodes = _spike_nodes(model)
    assert len(nodes) == 4
    inits = {t.name: t for t in model.graph.initializer}
    for node in nodes:
        assert inits[node.input[1]].data_type == weight_type
        assert (len(inits[node.input[2]].dims) if len(node.input) > 2 else 0) == scale_rank
    if precision != "fp16":
        assert report["spikematmul"] == {"format": precision, "nodes": 4}
        assert all(not (n.op_type == "MatMulNBits" and n.input[0] in {s.input[0] for s in nodes}) for n in model.graph.node)
    for library in ("", None):
        engine = Engine(out, library=library)
        stream = engine.create_stream()
        logits = stream.feed(list(TEXT[:40].encode()))
        assert logits.shape == (256,) and np.isfinite(logits).all()
        engine.close()
