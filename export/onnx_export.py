"""AMSNet -> fp32 ONNX: one bare ``astroedge::AMSU`` node per layer plus the attached fallback function.

The math stays in astroedge/model.py: this module only adds one more AMSU form, ``amsu_onnx_form``,
which ExportWrapper hands to the model's forward as its ``form`` argument (nothing is patched). During
``torch.onnx.export`` it emits the custom node (inputs, outputs and attributes from the op contract);
otherwise it runs the step form. Everything around the recurrence (embedding, RoPE,
projections, norms, FFN, head) is traced as ordinary ops, so quantisers can work on it.

torch's dynamo exporter inlines every local function it is handed, so the node is emitted bare and
the FunctionProto from export/fallback.py is appended to the model after export.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import onnx
import torch
from torch import Tensor, nn

from astroedge.contract import amsu_contract
from astroedge.errors import UserError
from astroedge.export.fallback import amsu_function
from astroedge.model import AMSNet, AMSUOut, AMSUParams, StreamState, amsu_step_form

OPSET = 18
EXTERNAL_DATA_BYTES = 100 * 1024 * 1024  # weights beyond this go to model.onnx.data (protobuf caps files at 2 GB)
EXTERNAL_DATA_FILE = "model.onnx.data"
INPUT_TOKENS = "tokens"
INPUT_POSITION = "position"
OUTPUT_LOGITS = "logits"


def state_names(n_layers: int) -> tuple[list[str], list[str]]:
    """Graph names of the per-layer state: (inputs past_h.0, past_u.0, ...; outputs present_h.0, ...)."""
    past = [f"past_{kind}.{i}" for i in range(n_layers) for kind in ("h", "u")]
    present = [f"present_{kind}.{i}" for i in range(n_layers) for kind in ("h", "u")]
    return past, present


def amsu_onnx_form(x: Tensor, q: Tensor, k: Tensor, v: Tensor, h: Tensor, u: Tensor, p: AMSUParams) -> AMSUOut:
    """The AMSU as the exporter should see it: one custom node; eagerly, the step form.

    The contract's op has no drive output (it exists in the reference only to count spike flips);
    AMSNet.forward reads s, h and u only, so the spikes stand in for it here.
    """
    if not torch.onnx.is_in_onnx_export():
        return amsu_step_form(x, q, k, v, h, u, p)
    c = amsu_contract()
    inputs = dict(x=x, q=q, k=k, v=v, w_o=p.w_o, gamma=p.gamma, beta=p.beta, h_in=h, u_in=u)
    defaults = {a.name: a.default for a in c.attributes if not a.required and a.default is not None}  # plugin_namespace, plugin_version
    s, h_out, u_out = torch.onnx.ops.symbolic_multi_out(
        f"{c.domain}::{c.name}",
        [inputs[name] for name in c.input_names],
        {**defaults, "num_heads": int(p.gamma.shape[0]), "threshold": float(p.threshold), "eps": float(p.eps)},
        dtypes=[x.dtype, torch.float32, torch.float32],
        shapes=[x.shape, h.shape, u.shape],
        version=c.version,
    )
    return AMSUOut(s, h_out, u_out, s)


def _div_mode(self: Any, other: Any, rounding_mode: str | None = None) -> Any:
    """aten.div.Tensor_mode with exact integer floor division (the RoPE digits of int64 positions).

    torchlib divides integers through float32, which is wrong beyond 2**24 (positions go to 2**32).
    Here a - mod(a, b) is an exact multiple of b (ONNX integer Mod with fmod=0 takes the divisor's
    sign, as Python does), so the truncating integer Div of it is exact. Everything else: torchlib's.
    The values are the exporter's traced tensors, which onnxscript's opset signatures (typed for its
    script language) do not describe: hence Any.
    """
    from onnxscript import opset18 as op
    from onnxscript.function_libs.torch_lib.ops.core import aten_div_mode

    if not self.dtype.is_integer() or rounding_mode != "floor":
        return aten_div_mode(self, other, rounding_mode)
    other = op.CastLike(other, self)
    return op.Div(op.Sub(self, op.Mod(self, other, fmod=0)), other)


class ExportWrapper(nn.Module):
    """The graph's signature: tokens, position, past_h.i, past_u.i -> logits, present_h.i, present_u.i."""

    def __init__(self, model: AMSNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: Tensor, position: Tensor, *past: Tensor) -> tuple[Tensor, ...]:
        state = StreamState(position, list(past[0::2]), list(past[1::2]))
        out = self.model(tokens, state, form=amsu_onnx_form)
        present = [t for pair in zip(out.state.h, out.state.u, strict=True) for t in pair]
        return (out.logits, *present)


def example_inputs(model: AMSNet, batch: int = 2, seq: int = 3) -> tuple[Tensor, ...]:
    """Inputs for tracing: sizes > 1 so that the exporter keeps batch and seq symbolic."""
    state = model.init_state(batch)
    past = [t for pair in zip(state.h, state.u, strict=True) for t in pair]
    return (torch.zeros(batch, seq, dtype=torch.int64), state.position, *past)


def _dynamic_shapes(n_layers: int) -> tuple[object, ...]:
    """Dynamic batch and seq; the varargs state counts as one (tuple-valued) argument of forward."""
    batch = torch.export.Dim("batch", min=1, max=2**20)
    seq = torch.export.Dim("seq", min=1, max=2**20)
    return ({0: batch, 1: seq}, {0: batch}, tuple({0: batch} for _ in range(2 * n_layers)))


def _attach_fallback(proto: onnx.ModelProto) -> None:
    """Append the AMSU function (in the model's opset) and the astroedge opset import, once."""
    c = amsu_contract()
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), OPSET)
    if not any(f.domain == c.domain and f.name == c.name for f in proto.functions):
        proto.functions.append(amsu_function(opset))
    if not any(o.domain == c.domain for o in proto.opset_import):
        proto.opset_import.append(onnx.helper.make_opsetid(c.domain, c.version))


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's warnings (one per torchvision op it cannot register): noise for this model."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def build_onnx(model: AMSNet) -> onnx.ModelProto:
    """Trace `model` (eval mode, fp32) into a ModelProto with named I/O and the fallback functions attached.

    W_O and W_2, the products fed by spikes, become ``astroedge::SpikeMatMul`` nodes, two per layer
    (export/spike_matmul.py; its to_dense turns them back into MatMul: ``astroedge export --dense``).
    """
    model = model.eval().float()
    n_layers = model.cfg.n_layers
    past, present = state_names(n_layers)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            ExportWrapper(model),
            example_inputs(model),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_TOKENS, INPUT_POSITION, *past],
            output_names=[OUTPUT_LOGITS, *present],
            dynamic_shapes=_dynamic_shapes(n_layers),
            custom_translation_table={torch.ops.aten.div.Tensor_mode: _div_mode},
            verbose=False,
        )
    assert program is not None
    proto = program.model_proto
    for node in proto.graph.node:  # the exporter's stack traces: host paths, ~1 kB a node, no use on a device
        del node.metadata_props[:]
    _attach_fallback(proto)
    c = amsu_contract()
    amsu_nodes = [n for n in proto.graph.node if n.domain == c.domain and n.op_type == c.name]
    if len(amsu_nodes) != n_layers:
        raise RuntimeError(f"exported graph has {len(amsu_nodes)} {c.domain}::{c.name} nodes for {n_layers} layers")
    for i, node in enumerate(amsu_nodes):  # graph order is layer order
        node.name = f"layers.{i}.amsu"
    from astroedge.export.spike_matmul import to_sparse

    rewritten = to_sparse(proto)
    if rewritten != 2 * n_layers:
        raise RuntimeError(f"exported graph has {rewritten} spike products (W_O, W_2) for {n_layers} layers; expected {2 * n_layers}")
    return proto


def save_onnx(proto: onnx.ModelProto, path: Path) -> str | None:
    """Write `proto` to `path`; weights go to model.onnx.data beside it when the model is large.

    Returns the external data file name, or None when everything is in one file.
    """
    size = sum(len(t.raw_data) for t in proto.graph.initializer)
    if size <= EXTERNAL_DATA_BYTES:
        onnx.save_model(proto, str(path))
        return None
    onnx.save_model(
        proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True, location=EXTERNAL_DATA_FILE, size_threshold=1024
    )
    return EXTERNAL_DATA_FILE


def export_onnx(model: AMSNet, path: Path) -> None:
    """Export `model` to an fp32 model.onnx at `path` (plus model.onnx.data beside it when large)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist; create it or choose another path")
    save_onnx(build_onnx(model), path)
