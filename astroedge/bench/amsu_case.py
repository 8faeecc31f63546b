"""One AMSU problem: random inputs with non-zero initial state, the float64 reference, and a
single-node ONNX model, shared by the kernel tests and the benchmarks so both measure the same op.

Inputs are numpy (the ORT and ctypes paths need no torch); the reference imports torch lazily.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from astroedge.contract import amsu_contract

THRESHOLD = 0.5
EPS = 1e-5
ONNX_OPSET = 18
ONNX_IR_VERSION = 10  # onnxruntime 1.23 reads IR <= 11; onnx 1.23 would write 12+


@dataclass(frozen=True)
class AmsuCase:
    batch: int
    seq: int
    dim: int
    heads: int
    dtype: str = "float32"  # type T of x, q, k, v and s: float32 or float16

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def describe(self) -> str:
        return f"B={self.batch} T={self.seq} D={self.dim} NH={self.heads} {self.dtype}"


def random_inputs(case: AmsuCase, seed: int = 0) -> dict[str, np.ndarray]:
    """Feeds named as the contract's inputs. State is non-zero so that carry-in paths are exercised;
    gamma spans fast and slow heads like a trained model; k is scaled by 1/sqrt(HD) like the model's."""
    rng = np.random.default_rng(seed)
    b, t, d, nh, hd = case.batch, case.seq, case.dim, case.heads, case.head_dim

    def normal(*shape: int, scale: float = 1.0) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    feeds = {
        "x": normal(b, t, d),
        "q": normal(b, t, d),
        "k": normal(b, t, d, scale=hd**-0.5),
        "v": normal(b, t, d),
        "w_o": normal(d, scale=0.5),
        "gamma": np.exp(-1.0 / np.geomspace(4.0, 4096.0, nh)).astype(np.float32),
        "beta": rng.uniform(0.3, 0.9, d).astype(np.float32),
        "h_in": normal(b, nh, hd, hd, scale=0.3),
        "u_in": normal(b, d, scale=0.5),
    }
    for name in ("x", "q", "k", "v"):
        feeds[name] = feeds[name].astype(case.dtype)
    return feeds


@dataclass
class Reference:
    s: np.ndarray  # spikes [B, T, D] float64
    h: np.ndarray  # [B, NH, HD, HD]
    u: np.ndarray  # [B, D]
    drive: np.ndarray  # u + o_hat - threshold [B, T, D]; spikes may flip only where this is ~0


def reference(feeds: dict[str, np.ndarray], heads: int) -> Reference:
    """astroedge.model.amsu_step_form in float64 on exactly the values the kernels see."""
    import torch

    from astroedge.model import AMSUParams, amsu_step_form

    t = {k: torch.from_numpy(v.astype(np.float64)) for k, v in feeds.items()}
    assert t["gamma"].shape[0] == heads
    p = AMSUParams(t["w_o"], t["gamma"], t["beta"], THRESHOLD, EPS, 1.0)
    with torch.no_grad():
        out = amsu_step_form(t["x"], t["q"], t["k"], t["v"], t["h_in"], t["u_in"], p)
    return Reference(out.s.numpy(), out.h.numpy(), out.u.numpy(), out.drive.numpy())


def single_node_model(
    dtype: str = "float32",
    heads: int | None = 4,
    attributes: dict[str, object] | None = None,
    with_fallback: bool = False,
    dim: int | None = None,
) -> bytes:
    """A model whose graph is one astroedge::AMSU node with the contract's inputs and outputs.

    heads=None leaves num_heads out and `attributes` overrides, adds or (value None) removes attributes,
    to test the errors for bad models; with_fallback attaches the standard-ops function so stock onnxruntime can run it.
    dim declares the input shapes (B and S symbolic), which the fallback's Scan needs; without it
    shapes are left open so that the library's own shape checks are what a wrong feed meets.
    """
    import onnx
    from onnx import TensorProto, helper

    c = amsu_contract()
    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}

    sizes: dict[str, str | int] = {"B": "B", "S": "S"}
    if dim is not None and heads:
        sizes |= {"D": dim, "NH": heads, "HD": dim // heads}

    def value(name: str, port_dtype: str, shape: tuple[str, ...] | None) -> onnx.ValueInfoProto:
        dims = [sizes[d] for d in shape] if dim is not None and shape is not None else None
        return helper.make_tensor_value_info(name, elem[dtype] if port_dtype == "T" else elem[port_dtype], dims)

    attrs: dict[str, Any] = {"threshold": THRESHOLD, "eps": EPS}  # make_node's **kwargs: Any, one ONNX attribute each
    if heads is not None:
        attrs["num_heads"] = heads
    attrs.update(attributes or {})
    attrs = {k: v for k, v in attrs.items() if v is not None}
    node = helper.make_node(c.name, c.input_names, c.output_names, name="amsu0", domain=c.domain, **attrs)
    graph = helper.make_graph(
        [node], "amsu", [value(p.name, p.dtype, p.shape) for p in c.inputs], [value(p.name, p.dtype, p.shape) for p in c.outputs]
    )
    functions = []
    if with_fallback:
        from astroedge.export.fallback import amsu_function

        functions.append(amsu_function(ONNX_OPSET))
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid(c.domain, c.version)],
        functions=functions,
        ir_version=ONNX_IR_VERSION,
    )
    return model.SerializeToString()
