"""SpikeMatMul's weight formats and semantics in numpy, straight from ``spikematmul.json``.

Why here, beside the contract: the packing of the int8/int4 formats is part of the op's definition. The
quantiser that writes packages, the exporter's fallback function, the kernel tests and the benchmarks
must all pack and dequantise exactly as the native kernels read, so they share these functions instead
of each re-deriving the bit layout. numpy only (the device side never imports torch); ``onnx`` is
imported lazily by the one function that builds a model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from astroedge.contract import spikematmul_contract

# The weight's element type picks the format (contract: weight_formats).
FORMAT_OF_DTYPE = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.int8): "int8", np.dtype(np.uint8): "int4"}
FORMATS = tuple(FORMAT_OF_DTYPE.values())
INT4_ZERO_POINT = 8


def weight_format(weight: np.ndarray) -> str:
    """The contract's format name for a weight array, from its element type."""
    try:
        return FORMAT_OF_DTYPE[weight.dtype]
    except KeyError:
        raise ValueError(f"SpikeMatMul weight of dtype {weight.dtype}: the formats are float32, float16, int8 and int4 (uint8)") from None


def scale_blocks(out_features: int, block_size: int) -> int:
    """NB: int4 scale blocks per weight row (the last one may be partial)."""
    return -(-out_features // block_size)


def quantize(w: np.ndarray, fmt: str, block_size: int = 32) -> tuple[np.ndarray, np.ndarray | None]:
    """W^T [K, N] (float) -> (weight, scale) in `fmt`. Symmetric round-to-nearest: int8 with one scale per
    output channel (max |w| -> 127), int4 with one scale per (row, block of `block_size` columns)
    (max |w| -> 7, codes -8..7 stored as q + 8, two per byte, low nibble = even column)."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2:
        raise ValueError(f"SpikeMatMul weights are W^T of rank 2 [K, N], got shape {w.shape}")
    if fmt == "float32":
        return w.copy(), None
    if fmt == "float16":
        return w.astype(np.float16), None
    if fmt == "int8":
        amax = np.abs(w).max(axis=0)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        return q, scale
    if fmt == "int4":
        if block_size < 2 or block_size % 2:
            raise ValueError(f"int4 block_size {block_size}: must be even and >= 2")
        k, n = w.shape
        nb = scale_blocks(n, block_size)
        padded = np.zeros((k, nb * block_size), dtype=np.float32)
        padded[:, :n] = w
        blocks = padded.reshape(k, nb, block_size)
        amax = np.abs(blocks).max(axis=2)
        scale = np.where(amax > 0, amax / 7.0, 1.0).astype(np.float32)
        q = np.clip(np.rint(blocks / scale[:, :, None]), -8, 7).astype(np.int16).reshape(k, -1)[:, :n]
        return pack_int4(q), scale
    raise ValueError(f"unknown SpikeMatMul weight format '{fmt}'; formats: {', '.join(FORMATS)}")


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Signed codes -8..7 [K, N] -> uint8 [K, (N + 1) / 2]: q + 8 per nibble, the even column in the low nibble."""
    k, n = q.shape
    codes = np.full((k, n + (n % 2)), INT4_ZERO_POINT, dtype=np.uint8)  # an odd row's unused last nibble codes 0
    codes[:, :n] = (q + INT4_ZERO_POINT).astype(np.uint8)
    return (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)


def dequantize(weight: np.ndarray, scale: np.ndarray | None, out_features: int, block_size: int = 32) -> np.ndarray:
    """The float64 W^T [K, N] the contract's `dequantize` rule gives for a weight in any format."""
    fmt = weight_format(weight)
    if fmt in ("float32", "float16"):
        return weight.astype(np.float64)
    assert scale is not None, f"{fmt} weights need a scale"
    if fmt == "int8":
        return weight.astype(np.float64) * scale.astype(np.float64)[None, :]
    lo = (weight & 15).astype(np.int64) - INT4_ZERO_POINT
    hi = (weight >> 4).astype(np.int64) - INT4_ZERO_POINT
    q = np.stack([lo, hi], axis=2).reshape(weight.shape[0], -1)[:, :out_features]
    cols = np.arange(out_features) // block_size
    return q.astype(np.float64) * scale.astype(np.float64)[:, cols]


def reference(
    spikes: np.ndarray,
    weight: np.ndarray,
    scale: np.ndarray | None,
    bias: np.ndarray | None,
    out_features: int,
    block_size: int = 32,
) -> np.ndarray:
    """y = spikes @ W + bias in float64: the contract's semantics, every spike value multiplying its row."""
    y = spikes.astype(np.float64) @ dequantize(weight, scale, out_features, block_size)
    return y + bias.astype(np.float64) if bias is not None else y


def single_node_model(
    act_dtype: str,
    fmt: str,
    in_features: int,
    out_features: int,
    block_size: int = 32,
    with_bias: bool = False,
    weights: dict[str, np.ndarray] | None = None,
    attributes: dict[str, Any] | None = None,
) -> bytes:
    """An ONNX model of one astroedge::SpikeMatMul node, for tests and benchmarks.

    Graph inputs: spikes [B, T, K] (dynamic B, T) and, unless `weights` gives them as initializers, the
    weight (and scale, bias) in the contract's port order. `attributes` overrides node attributes
    (None as a value drops one), to provoke load errors.
    """
    from onnx import TensorProto, helper, numpy_helper

    c = spikematmul_contract()
    spikes_name, weight_name, scale_name, bias_name = c.input_names
    elem = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16, "int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
    f = c.weight_format(fmt)
    dims = {"K": in_features, "N": out_features, "N2": (out_features + 1) // 2, "NB": scale_blocks(out_features, block_size)}
    weights = weights or {}
    graph_inputs = [helper.make_tensor_value_info(spikes_name, elem[act_dtype], ["B", "T", in_features])]
    initializers = []

    def port(name: str, dtype: str, shape: tuple[str, ...]) -> str:
        if name in weights:
            initializers.append(numpy_helper.from_array(weights[name], name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, elem[dtype], [dims[d] for d in shape]))
        return name

    node_inputs = [spikes_name, port(weight_name, f.weight_dtype, f.weight_shape)]
    node_inputs.append(port(scale_name, "float32", f.scale_shape) if f.scale_shape else "")
    if with_bias:
        node_inputs.append(port(bias_name, "float32", ("N",)))
    while node_inputs[-1] == "":
        node_inputs.pop()
    attrs: dict[str, Any] = {"out_features": out_features, "plugin_namespace": "astroedge", "plugin_version": str(c.version)}
    if fmt == "int4":
        attrs["block_size"] = block_size
    for key, value in (attributes or {}).items():
        if value is None:
            attrs.pop(key, None)
        else:
            attrs[key] = value
    node = helper.make_node(c.name, node_inputs, c.output_names, domain=c.domain, name="smm0", **attrs)
    out = helper.make_tensor_value_info(c.output_names[0], elem[act_dtype], ["B", "T", out_features])
    graph = helper.make_graph([node], "spikematmul", graph_inputs, [out], initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(c.domain, c.version)])
    model.ir_version = 9
    return model.SerializeToString()
