"""fp32 -> fp16 graph conversion that respects the AMSU op contract.

Written here rather than taken from a generic converter because the contract is specific: an AMSU
node takes x, q, k, v (and gives s) in T = float16, but its w_o, gamma, beta, h_in, u_in and its
h_out, u_out stay float32 (a recurrent state accumulated in fp16 drifts). Graph I/O stays float32
too (state and logits), so a runtime drives an fp16 package exactly like an fp32 one. Weights beyond
the fp16 range are clipped and counted, never silently turned into inf.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from astroedge.contract import amsu_contract

FP16_MAX = float(np.finfo(np.float16).max)  # 65504
FP16_SMALLEST = float(np.finfo(np.float16).smallest_subnormal)


@dataclass
class Fp16Report:
    """What the conversion changed: tensors converted, values clipped to +-65504, values flushed to 0."""

    converted_tensors: int = 0
    clipped_values: int = 0
    clipped_tensors: list[str] = field(default_factory=list)
    flushed_to_zero: int = 0


def _to_fp16(array: np.ndarray, name: str, report: Fp16Report) -> np.ndarray:
    """Clip to the fp16 range (counting what was clipped), then round to fp16."""
    over = np.abs(array) > FP16_MAX
    if over.any():
        report.clipped_values += int(over.sum())
        report.clipped_tensors.append(name)
        array = np.clip(array, -FP16_MAX, FP16_MAX)
    report.flushed_to_zero += int(((array != 0) & (np.abs(array) < FP16_SMALLEST / 2)).sum())
    report.converted_tensors += 1
    return array.astype(np.float16)


def _tensor_fp16(t: TensorProto, report: Fp16Report) -> TensorProto:
    return numpy_helper.from_array(_to_fp16(numpy_helper.to_array(t), t.name, report), t.name)


def _fp32_slots(node: onnx.NodeProto) -> tuple[set[int], set[int]]:
    """For an AMSU node: the input and output positions the contract fixes to float32; else empty."""
    c = amsu_contract()
    if node.domain != c.domain or node.op_type != c.name:
        return set(), set()
    return (
        {i for i, p in enumerate(c.inputs) if p.dtype == "float32"},
        {i for i, p in enumerate(c.outputs) if p.dtype == "float32"},
    )


def convert_fp16(model: onnx.ModelProto) -> Fp16Report:
    """Convert `model` in place: float32 weights and activations -> float16, except what must stay float32.

    Stays float32: graph inputs and outputs (a Cast to float32 is added before each float output
    computed in fp16), and the AMSU inputs/outputs the contract types float32. A float32 tensor that
    also feeds an fp16 consumer gets a Cast for that consumer. The attached AMSU function is left as it
    is: it widens x, q, k, v to float32 itself and returns s in x's type.
    """
    g = model.graph
    report = Fp16Report()
    float_inputs = {i.name for i in g.input if i.type.tensor_type.elem_type == TensorProto.FLOAT}
    inits = {t.name: t for t in g.initializer}

    fp32_needed: set[str] = set()  # tensors some consumer requires in float32
    fp32_made: set[str] = set(float_inputs)  # tensors that are float32 whatever happens (graph inputs, AMSU fp32 outputs)
    for node in g.node:
        ins, outs = _fp32_slots(node)
        fp32_needed.update(node.input[i] for i in ins if i < len(node.input))
        fp32_made.update(node.output[i] for i in outs if i < len(node.output))

    keep_init = {name for name in inits if name in fp32_needed}
    for name, t in inits.items():
        if t.data_type == TensorProto.FLOAT and name not in keep_init:
            t.CopyFrom(_tensor_fp16(t, report))
    fp32_made |= {n for n in keep_init if inits[n].data_type == TensorProto.FLOAT}

    new_nodes: list[onnx.NodeProto] = []
    casts: dict[str, str] = {}  # float32 tensor -> its fp16 copy, made once

    def fp16_copy(name: str) -> str:
        if name not in casts:
            casts[name] = f"{name}__fp16"
            new_nodes.append(helper.make_node("Cast", [name], [casts[name]], to=TensorProto.FLOAT16, name=f"{name}__to_fp16"))
        return casts[name]

    for node in g.node:
        ins, _ = _fp32_slots(node)
        for i, name in enumerate(node.input):
            if name in fp32_made and i not in ins:
                node.input[i] = fp16_copy(name)
        if node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.FLOAT16
        elif node.op_type in ("Constant", "ConstantOfShape"):
            for a in node.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(_tensor_fp16(a.t, report))
        new_nodes.append(node)

    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT or out.name in fp32_made:
            continue
        half = f"{out.name}__fp16"
        for node in new_nodes:
            node.output[:] = [half if o == out.name else o for o in node.output]
            node.input[:] = [half if i == out.name else i for i in node.input]
        new_nodes.append(helper.make_node("Cast", [half], [out.name], to=TensorProto.FLOAT, name=f"{out.name}__to_fp32"))

    del g.node[:]
    g.node.extend(new_nodes)
    del g.value_info[:]  # intermediate types changed; onnxruntime infers them again
    return report
