"""The products whose input is a spike: W_O (after each AMSU) and W_2 (after each spiking FFN).

Their input is 0/1 and known before the product, so y = s W^T is the sum of the rows of W^T of the
neurons that fired: the reason for the ``astroedge::SpikeMatMul`` op. This module finds them in an
exported graph by where their input comes from, not by name: output 0 of an ``astroedge::AMSU`` node
(the AMSU spikes) or a Cast of a Greater (the FFN's ``spike(W_1 z - theta_f)``, as torch.onnx writes
the Heaviside step). Whatever op computes the product (MatMul, MatMulNBits, SpikeMatMul), its other
initializer inputs are the weights it reads. Used by the exporter (rewrite to SpikeMatMul, or back for
``--dense``), the quantiser (the op's int8 and int4 weight formats) and the bench (bytes at the
measured firing rates).

The rewrite is a graph rewrite of the exported ONNX, not a change to the model: torch.onnx writes each
product as MatMul(spikes, W^T) with W^T already an initializer [K, N], which is exactly the op's
weight layout (one contiguous row per input neuron), so SpikeMatMul takes the same two inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import onnx
from onnx import TensorProto, helper, numpy_helper

from astroedge.contract import amsu_contract, spikematmul_contract
from astroedge.contract.spikematmul import quantize

SITES = ("w_o", "w_2")  # per layer, in this order


@dataclass(frozen=True)
class SpikeProduct:
    node: onnx.NodeProto
    site: str  # "w_o" (input: AMSU spikes) or "w_2" (input: FFN spikes)
    layer: int
    spikes: str  # the graph tensor holding the 0/1 input
    weights: tuple[str, ...]  # initializer inputs of the node (weight, scales, bias)


def spike_sources(graph: onnx.GraphProto) -> dict[str, str]:
    """Spike tensor name -> site, for every spike tensor in `graph` (graph order)."""
    c = amsu_contract()
    producer = {o: n for n in graph.node for o in n.output}
    out: dict[str, str] = {}
    for node in graph.node:
        if node.domain == c.domain and node.op_type == c.name:
            out[node.output[0]] = "w_o"
        elif node.op_type == "Cast" and node.input[0] in producer and producer[node.input[0]].op_type == "Greater":
            out[node.output[0]] = "w_2"
    return out


def spike_products(graph: onnx.GraphProto) -> list[SpikeProduct]:
    """The products fed by spikes, in graph order, numbered per site (graph order is layer order)."""
    sources = spike_sources(graph)
    inits = {t.name for t in graph.initializer}
    counts = dict.fromkeys(SITES, 0)
    found = []
    for node in graph.node:
        if not node.input or node.input[0] not in sources:
            continue
        weights = tuple(name for name in node.input[1:] if name in inits)
        if not weights:
            continue
        site = sources[node.input[0]]
        found.append(SpikeProduct(node, site, counts[site], node.input[0], weights))
        counts[site] += 1
    return found


def _is_spikematmul(node: onnx.NodeProto) -> bool:
    c = spikematmul_contract()
    return node.domain == c.domain and node.op_type == c.name


def count_spikematmul(model: onnx.ModelProto) -> int:
    return sum(_is_spikematmul(n) for n in model.graph.node)


def weight_format(model: onnx.ModelProto) -> str | None:
    """The weight format of the model's SpikeMatMul nodes (all share one), None when it has none."""
    inits = {t.name: t for t in model.graph.initializer}
    by_type = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.INT8: "int8", TensorProto.UINT8: "int4"}
    formats = {by_type.get(inits[n.input[1]].data_type, "?") for n in model.graph.node if _is_spikematmul(n)}
    if len(formats) > 1:
        raise ValueError(f"SpikeMatMul nodes with mixed weight formats {sorted(formats)}: a package has one")
    return formats.pop() if formats else None


def attach_function(model: onnx.ModelProto) -> None:
    """(Re)attach the SpikeMatMul fallback function for the model's weight format; drop it when no node needs it."""
    from astroedge.export.fallback import spikematmul_function

    c = spikematmul_contract()
    kept = [f for f in model.functions if not (f.domain == c.domain and f.name == c.name)]
    del model.functions[:]
    model.functions.extend(kept)
    fmt = weight_format(model)
    if fmt is None:
        return
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    model.functions.append(spikematmul_function(opset, fmt))
    if not any(o.domain == c.domain for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(c.domain, c.version))


def _spike_node(product: SpikeProduct, inputs: list[str], out_features: int, **attrs: int) -> onnx.NodeProto:
    c = spikematmul_contract()
    defaults = {a.name: a.default for a in c.attributes if not a.required and a.type == "string"}  # plugin_namespace, plugin_version
    attributes: dict[str, Any] = {"out_features": out_features, **attrs, **defaults}  # make_node's **kwargs: Any, one attribute each
    return helper.make_node(
        c.name, inputs, list(product.node.output), name=f"layers.{product.layer}.{product.site}", domain=c.domain, **attributes
    )


def to_sparse(model: onnx.ModelProto) -> int:
    """Rewrite every float32 MatMul fed by spikes into SpikeMatMul, in place; returns how many."""
    inits = {t.name: t for t in model.graph.initializer}
    done = 0
    for p in spike_products(model.graph):
        w = inits[p.weights[0]]
        if p.node.op_type != "MatMul" or p.node.domain not in ("", "ai.onnx") or w.data_type != TensorProto.FLOAT or len(w.dims) != 2:
            continue
        p.node.CopyFrom(_spike_node(p, [p.spikes, w.name], int(w.dims[1])))
        done += 1
    attach_function(model)
    return done


def to_dense(model: onnx.ModelProto) -> int:
    """Rewrite float SpikeMatMul nodes back into MatMul (the --dense export, the bench's dense rows); returns how many."""
    inits = {t.name: t for t in model.graph.initializer}
    done = 0
    for node in model.graph.node:
        if _is_spikematmul(node) and inits[node.input[1]].data_type in (TensorProto.FLOAT, TensorProto.FLOAT16):
            node.CopyFrom(helper.make_node("MatMul", list(node.input[:2]), list(node.output), name=node.name))
            done += 1
    attach_function(model)
    return done


def quantize_weights(model: onnx.ModelProto, weight_format: str, block_size: int = 32) -> int:
    """Put every float32 SpikeMatMul weight into the op's int8 or int4 format, in place; returns how many nodes.

    The packing is the contract module's (astroedge.contract.spikematmul.quantize), the one copy that the
    kernel tests and benchmarks also use, so a package holds exactly the bits the native kernels read.
    """
    if weight_format not in ("int8", "int4"):
        raise ValueError(f"quantize_weights makes int8 or int4, not {weight_format}")
    inits = {t.name: t for t in model.graph.initializer}
    made: dict[str, list[str]] = {}  # float weight -> its quantised inputs (an initializer shared by two nodes is quantised once)
    done = 0
    for node in model.graph.node:
        if not _is_spikematmul(node) or inits[node.input[1]].data_type != TensorProto.FLOAT:
            continue
        name = node.input[1]
        if name not in made:
            w = numpy_helper.to_array(inits[name])
            q, scale = quantize(w, weight_format, block_size)
            assert scale is not None  # int8 and int4 always have scales
            qname, sname = f"{name}.{weight_format}", f"{name}.{weight_format}.scale"
            model.graph.initializer.extend([numpy_helper.from_array(q, qname), numpy_helper.from_array(scale, sname)])
            made[name] = [qname, sname]
        del node.input[1:]
        node.input.extend(made[name])
        if weight_format == "int4":
            node.attribute.append(helper.make_attribute("block_size", block_size))
        done += 1
    used = {i for n in model.graph.node for i in n.input}
    kept = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    attach_function(model)
    return done
