"""The AMSU fallback: an ONNX FunctionProto whose body of standard ops computes the op contract.

The exporter emits one bare ``astroedge::AMSU`` node per layer; this function is attached to the
model so that a runtime without the native kernels (stock onnxruntime, onnx's reference evaluator,
quantisers that open their own sessions) inlines it and computes the same thing. It is built by hand
with onnx.helper rather than onnxscript because the exporter inlines every onnxscript function it
sees, and a hand-built body keeps the float32 arithmetic order of the reference step form exactly
(so that spikes flip only where the reference itself sits within rounding of the threshold).

Body, following the semantics in astroedge/contract/amsu.json:
    cast x, q, k, v to float32; move time to the front; split q, k, v into heads
    Scan over tokens with state (h, u):
        h = gamma * h + v k^T;  o = h q;  o_hat = o / sqrt(mean(o^2) + eps) * w_o
        u = beta * u + (1 - beta) * sigmoid(x);  s = (u + o_hat - threshold > 0)
    spikes back to [B, S, D] in the input type T.
"""

from __future__ import annotations

import onnx
from onnx import FunctionProto, TensorProto, helper

from astroedge.contract import OpContract, amsu_contract
from astroedge.contract.spikematmul import FORMATS, INT4_ZERO_POINT

MIN_OPSET = 18  # ReduceMean takes its axes as an input from opset 18 on


def _attr_ref(name: str, attr_type: onnx.AttributeProto.AttributeType) -> onnx.AttributeProto:
    """An attribute of a body node that takes its value from the function's attribute `name`."""
    ref = onnx.AttributeProto()
    ref.name = {onnx.AttributeProto.INT: "value_int", onnx.AttributeProto.FLOAT: "value_float"}[attr_type]
    ref.ref_attr_name = name
    ref.type = attr_type
    return ref


def _const_from_attr(output: str, attr: str, attr_type: onnx.AttributeProto.AttributeType) -> onnx.NodeProto:
    node = helper.make_node("Constant", [], [output])
    node.attribute.append(_attr_ref(attr, attr_type))
    return node


def _const_ints(output: str, values: list[int]) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], value=helper.make_tensor(output, TensorProto.INT64, [len(values)], values))


def _step_graph() -> onnx.GraphProto:
    """One token of the recurrence. Inputs: state h, u; scan slices x_t, q_t, k_t, v_t.

    gamma4 [1,NH,1,1], beta, one_minus_beta, w_o, eps, threshold, zero, shape_bd come from the
    enclosing function body (outer scope, as ONNX subgraphs allow).
    """
    nodes = [
        # h = gamma * h + v k^T   (v_t, k_t: [B, NH, HD])
        helper.make_node("Mul", ["gamma4", "h_prev"], ["h_decay"]),
        helper.make_node("Unsqueeze", ["v_t", "axis_last"], ["v_col"]),
        helper.make_node("Unsqueeze", ["k_t", "axis_prev"], ["k_row"]),
        helper.make_node("Mul", ["v_col", "k_row"], ["vk"]),
        helper.make_node("Add", ["h_decay", "vk"], ["h_next"]),
        # o = h q
        helper.make_node("Unsqueeze", ["q_t", "axis_last"], ["q_col"]),
        helper.make_node("MatMul", ["h_next", "q_col"], ["o_col"]),
        helper.make_node("Squeeze", ["o_col", "axis_last"], ["o"]),
        # o_hat = o * rsqrt(mean(o^2) + eps) * w_o
        helper.make_node("Mul", ["o", "o"], ["o_sq"]),
        helper.make_node("ReduceMean", ["o_sq", "axis_last"], ["o_ms"], keepdims=1),
        helper.make_node("Add", ["o_ms", "eps"], ["o_ms_eps"]),
        helper.make_node("Sqrt", ["o_ms_eps"], ["o_rms"]),
        helper.make_node("Reciprocal", ["o_rms"], ["o_inv_rms"]),
        helper.make_node("Mul", ["o", "o_inv_rms"], ["o_norm"]),
        helper.make_node("Reshape", ["o_norm", "shape_bd"], ["o_flat"]),
        helper.make_node("Mul", ["o_flat", "w_o"], ["o_hat"]),
        # u = beta * u + (1 - beta) * sigmoid(x)
        helper.make_node("Mul", ["beta", "u_prev"], ["u_decay"]),
        helper.make_node("Sigmoid", ["x_t"], ["current"]),
        helper.make_node("Mul", ["one_minus_beta", "current"], ["u_in_step"]),
        helper.make_node("Add", ["u_decay", "u_in_step"], ["u_next"]),
        # s = (u + o_hat - threshold) > 0
        helper.make_node("Add", ["u_next", "o_hat"], ["u_plus_o"]),
        helper.make_node("Sub", ["u_plus_o", "threshold"], ["drive"]),
        helper.make_node("Greater", ["drive", "zero"], ["fired"]),
        helper.make_node("Cast", ["fired"], ["s_t"], to=TensorProto.FLOAT),
    ]
    f32 = TensorProto.FLOAT

    def vi(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, f32, None)

    return helper.make_graph(
        nodes,
        "amsu_step",
        inputs=[vi("h_prev"), vi("u_prev"), vi("x_t"), vi("q_t"), vi("k_t"), vi("v_t")],
        outputs=[vi("h_next"), vi("u_next"), vi("s_t")],
    )


def amsu_function(opset: int) -> FunctionProto:
    """The AMSU FunctionProto (domain/name/attributes from the contract), using ONNX opset `opset`.

    T may be float32 or float16: x, q, k, v are widened to float32 on entry and the spikes are cast
    back to x's type, so state and arithmetic stay float32 as the contract requires.
    """
    if opset < MIN_OPSET:
        raise ValueError(f"the AMSU fallback function needs ONNX opset >= {MIN_OPSET}, got {opset}")
    c = amsu_contract()
    f32 = TensorProto.FLOAT
    nodes = [
        _const_from_attr("num_heads", "num_heads", onnx.AttributeProto.INT),
        _const_from_attr("eps", "eps", onnx.AttributeProto.FLOAT),
        _const_from_attr("threshold", "threshold", onnx.AttributeProto.FLOAT),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("zero", f32, [], [0.0])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", f32, [], [1.0])),
        _const_ints("axis_last", [-1]),
        _const_ints("axis_prev", [-2]),
        _const_ints("keep_bs", [0, 0]),
        _const_ints("minus_one", [-1]),
        _const_ints("shape_bd", [0, -1]),
        _const_ints("shape_gamma", [1, -1, 1, 1]),
        helper.make_node("Unsqueeze", ["num_heads", "minus_one"], ["num_heads_1d"]),
        helper.make_node("Concat", ["keep_bs", "num_heads_1d", "minus_one"], ["shape_heads"], axis=0),
        # per-layer constants, shaped for the step body
        helper.make_node("Reshape", ["gamma", "shape_gamma"], ["gamma4"]),
        helper.make_node("Sub", ["one", "beta"], ["one_minus_beta"]),
    ]
    # x, q, k, v: [B, S, D] in T -> float32, time-major [S, B, D]; q, k, v split into heads [S, B, NH, HD]
    for name in ("x", "q", "k", "v"):
        nodes.append(helper.make_node("Cast", [name], [f"{name}_f"], to=f32))
        nodes.append(helper.make_node("Transpose", [f"{name}_f"], [f"{name}_tm"], perm=[1, 0, 2]))
    for name in ("q", "k", "v"):
        nodes.append(helper.make_node("Reshape", [f"{name}_tm", "shape_heads"], [f"{name}_th"]))
    nodes.append(
        helper.make_node(
            "Scan",
            ["h_in", "u_in", "x_tm", "q_th", "k_th", "v_th"],
            ["h_out", "u_out", "s_tm"],
            num_scan_inputs=4,
            body=_step_graph(),
        )
    )
    nodes.append(helper.make_node("Transpose", ["s_tm"], ["s_f"], perm=[1, 0, 2]))
    nodes.append(helper.make_node("CastLike", ["s_f", "x"], ["s"]))

    return _contract_function(
        c, nodes, opset, f"AMSU v{c.version} fallback: the op contract as a Scan of standard ops (astroedge/contract/amsu.json)"
    )


# ----------------------------------------------------------------------------------------------
# SpikeMatMul: y = spikes W (+ bias) with W^T stored [K, N] in one of the contract's weight formats.
#
# The fallback body dequantises the whole weight and multiplies densely (the kernels read only the
# rows of the neurons that fired; the result is the same sum). ONNX functions cannot branch on an
# input's element type, and every SpikeMatMul node of a package has the same weight format (the
# package's precision), so the function attached to a model is the one for its format:
#   float32 / float16: W = float32(weight)
#   int8:  W = float32(weight) * scale[N]
#   int4:  codes = low, high nibbles of weight [K, N2] interleaved -> [K, 2 * N2], cut to N;
#          W = (codes - 8) * scale [K, NB] repeated block_size times along N, cut to N
# then y = CastLike(float32(spikes) @ W, spikes). The astroedge exporter never passes a bias (AM-SNet's
# products have none), so the fallback bodies take spikes, weight and, when quantised, scale. The formats and
# the int4 zero point (8 above) are astroedge.contract.spikematmul's, the one copy the packing uses too.


def _contract_function(c: OpContract, nodes: list[onnx.NodeProto], opset: int, doc: str) -> FunctionProto:
    """The op's fallback FunctionProto: its name, ports and attributes (defaults included) all from its contract."""
    required = [a.name for a in c.attributes if a.required]
    defaults = [helper.make_attribute(a.name, a.default) for a in c.attributes if not a.required]
    return helper.make_function(
        c.domain,
        c.name,
        inputs=c.input_names,
        outputs=c.output_names,
        nodes=nodes,
        opset_imports=[helper.make_opsetid("", opset)],
        attributes=required,
        attribute_protos=defaults,
        doc_string=doc,
    )


def _int4_weight(nodes: list[onnx.NodeProto]) -> str:
    """Body nodes that turn the packed int4 weight and its block scales into float32 W [K, N]."""
    u8 = TensorProto.UINT8
    nodes += [
        helper.make_node("Constant", [], ["c15"], value=helper.make_tensor("c15", u8, [], [15])),
        helper.make_node("Constant", [], ["c4"], value=helper.make_tensor("c4", u8, [], [4])),
        helper.make_node("Constant", [], ["c8"], value=helper.make_tensor("c8", TensorProto.FLOAT, [], [float(INT4_ZERO_POINT)])),
        _const_from_attr("n", "out_features", onnx.AttributeProto.INT),
        _const_from_attr("bs", "block_size", onnx.AttributeProto.INT),
        _const_ints("axis_last", [-1]),
        _const_ints("zero_1d", [0]),
        _const_ints("one_1d", [1]),
        _const_ints("shape_k_rest", [0, -1]),
        _const_ints("ones_2", [1, 1]),
        helper.make_node("Unsqueeze", ["n", "zero_1d"], ["n_1d"]),
        helper.make_node("Unsqueeze", ["bs", "zero_1d"], ["bs_1d"]),
        # codes: low nibble = even n, high nibble = odd n
        helper.make_node("BitwiseAnd", ["weight", "c15"], ["lo"]),
        helper.make_node("BitShift", ["weight", "c4"], ["hi"], direction="RIGHT"),
        helper.make_node("Unsqueeze", ["lo", "axis_last"], ["lo3"]),
        helper.make_node("Unsqueeze", ["hi", "axis_last"], ["hi3"]),
        helper.make_node("Concat", ["lo3", "hi3"], ["pairs"], axis=-1),
        helper.make_node("Reshape", ["pairs", "shape_k_rest"], ["codes_all"]),
        helper.make_node("Slice", ["codes_all", "zero_1d", "n_1d", "one_1d"], ["codes"]),
        helper.make_node("Cast", ["codes"], ["codes_f"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["codes_f", "c8"], ["q"]),
        # scales [K, NB] -> [K, NB, block_size] -> [K, NB * block_size] -> [K, N]
        helper.make_node("Unsqueeze", ["scale", "axis_last"], ["scale3"]),
        helper.make_node("Concat", ["ones_2", "bs_1d"], ["rep"], axis=0),
        helper.make_node("Expand", ["scale3", "rep"], ["scale_rep"]),
        helper.make_node("Reshape", ["scale_rep", "shape_k_rest"], ["scale_all"]),
        helper.make_node("Slice", ["scale_all", "zero_1d", "n_1d", "one_1d"], ["scale_n"]),
        helper.make_node("Mul", ["q", "scale_n"], ["w_f"]),
    ]
    return "w_f"


def spikematmul_function(opset: int, weight_format: str) -> FunctionProto:
    """The SpikeMatMul FunctionProto for one weight format (see the comment above), in ONNX opset `opset`."""
    from astroedge.contract import spikematmul_contract

    if opset < MIN_OPSET:
        raise ValueError(f"the SpikeMatMul fallback function needs ONNX opset >= {MIN_OPSET}, got {opset}")
    if weight_format not in FORMATS:
        raise ValueError(f"SpikeMatMul has no weight format '{weight_format}'; formats: {', '.join(FORMATS)}")
    c = spikematmul_contract()
    f32 = TensorProto.FLOAT
    nodes: list[onnx.NodeProto] = [helper.make_node("Cast", ["spikes"], ["s_f"], to=f32)]
    if weight_format == "int4":
        w = _int4_weight(nodes)
    else:
        nodes.append(helper.make_node("Cast", ["weight"], ["w_cast"], to=f32))
        w = "w_cast"
        if weight_format == "int8":
            nodes.append(helper.make_node("Mul", ["w_cast", "scale"], ["w_f"]))
            w = "w_f"
    nodes += [helper.make_node("MatMul", ["s_f", w], ["y_f"]), helper.make_node("CastLike", ["y_f", "spikes"], ["y"])]
    return _contract_function(
        c,
        nodes,
        opset,
        f"SpikeMatMul v{c.version} fallback, {weight_format} weights: dequantise + MatMul (astroedge/contract/spikematmul.json)",
    )
