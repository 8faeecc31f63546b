"""Integer quantisation of the ordinary ops around the AMSU nodes, with onnxruntime.quantization.

Three methods (docs/quantize.md):
- weight-only: MatMulNBits (int8 or int4, blockwise symmetric scales), activations stay float: the
  decode step is bound by reading weights, so fewer weight bytes is what makes it faster.
- dynamic: int8 weights, activations quantised per call and per row (MatMulInteger), so a stream's
  result never depends on the other streams in its batch.
- static-qdq: QuantizeLinear/DequantizeLinear pairs with activation ranges from calibration text,
  symmetric int8 as TensorRT wants it.
All of them skip the custom AMSU node (toolchain notes) and keep its attached fallback function;
quant_pre_process is never run because it inlines that function.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx

WEIGHT_OPS = ("MatMul",)
# MatMulNBits compute type: 4 = int8 activations x int-N weights (MLAS's fast path on x86 and ARM);
# 0 (fp32 compute) dequantises every weight per call and made int8 4x slower than fp32 here.
ACCURACY_LEVEL = 4  # the projections, the FFN and the head; Gather (embedding) stays fp32


@contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs every node it visits at INFO; keep only warnings."""
    loggers = [logging.getLogger(n) for n in ("onnxruntime.quantization", "onnxruntime.quantization.matmul_nbits_quantizer")]
    levels = [lg.level for lg in loggers]
    root = logging.getLogger()
    root_level = root.level
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    root.setLevel(max(root_level, logging.ERROR))  # "consider pre-processing": skipped on purpose (module docstring)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        root.setLevel(root_level)


def weight_only(model: onnx.ModelProto, bits: int, block_size: int) -> onnx.ModelProto:
    """MatMulNBits with `bits` (4 or 8) and symmetric scales per `block_size` weights; activations stay float at the graph level."""
    with _quiet():  # importing the quantizer calls logging.basicConfig(level=INFO): keep that inside
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        cfg = DefaultWeightOnlyQuantConfig(
            block_size=block_size, is_symmetric=True, bits=bits, accuracy_level=ACCURACY_LEVEL, op_types_to_quantize=WEIGHT_OPS
        )
        quantizer = MatMulNBitsQuantizer(model, algo_config=cfg)
        quantizer.process()
    return quantizer.model.model


def _through_files(model: onnx.ModelProto, run: Callable[[onnx.ModelProto, Path, bool], None]) -> onnx.ModelProto:
    """quantize_dynamic / quantize_static write to a path: run them in a temp dir and read the result back."""
    with tempfile.TemporaryDirectory(prefix="astroedge-quant-") as tmp:
        out = Path(tmp) / "q.onnx"
        run(model, out, model.ByteSize() > (1 << 30))  # protobuf cannot hold > 2 GB: large models go external
        return onnx.load(str(out))


def dynamic_int8(model: onnx.ModelProto) -> onnx.ModelProto:
    """int8 weights per channel, activations quantised on the fly, with one scale per row (token of a stream).

    onnxruntime's quantize_dynamic quantises each activation tensor with ONE scale and zero point taken
    over the whole [batch, seq, D] tensor, so a stream's result would depend on which other streams
    share its batch call (measured: logits off by up to 5.8, 105 of 800 greedy tokens changed). Each
    DynamicQuantizeLinear is therefore replaced by a per-row symmetric quantiser (_per_row_quantizer):
    a row's scale is max|x| / 127 over its own D values, so batching changes nothing.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def run(m: onnx.ModelProto, out: Path, external: bool) -> None:
        with _quiet():
            quantize_dynamic(
                m,
                out,
                op_types_to_quantize=list(WEIGHT_OPS),
                per_channel=True,
                weight_type=QuantType.QInt8,
                use_external_data_format=external,
            )

    quantized = _through_files(model, run)
    _per_row_quantizer(quantized)
    return quantized


def _per_row_quantizer(model: onnx.ModelProto) -> None:
    """Replace every DynamicQuantizeLinear(x) -> (x_q, scale, zero_point) by per-row symmetric quantisation.

    scale = max(|x|, over the last axis, keepdims) / 127 (floored at a tiny value for an all-zero row),
    x_q = uint8(round(x / scale) + 128), zero_point = 128: the same uint8 x int8 MatMulInteger as
    before, and the Mul(scale, weight_scale) that follows broadcasts [..., 1] x [N] as it did a scalar.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    nodes = [n for n in graph.node if n.op_type == "DynamicQuantizeLinear" and n.domain in ("", "ai.onnx")]
    if not nodes:
        return
    consts: dict[str, np.ndarray] = {
        "axes": np.array([-1], np.int64),
        "qmax": np.array(127.0, np.float32),
        "tiny": np.array(1e-30, np.float32),
        "offset": np.array(128.0, np.float32),
        "zero_point": np.array(128, np.uint8),
    }
    for name, value in consts.items():
        graph.initializer.append(numpy_helper.from_array(value, f"per_row_quant.{name}"))
    c = {name: f"per_row_quant.{name}" for name in consts}
    for node in nodes:
        x, (x_q, scale, zero_point) = node.input[0], node.output
        p = f"{node.name or x}.per_row"
        new = [
            helper.make_node("Abs", [x], [f"{p}.abs"], name=f"{p}.abs"),
            helper.make_node("ReduceMax", [f"{p}.abs", c["axes"]], [f"{p}.max"], name=f"{p}.max", keepdims=1),
            helper.make_node("Max", [f"{p}.max", c["tiny"]], [f"{p}.max_pos"], name=f"{p}.max_pos"),
            helper.make_node("Div", [f"{p}.max_pos", c["qmax"]], [scale], name=f"{p}.scale"),
            helper.make_node("Div", [x, scale], [f"{p}.scaled"], name=f"{p}.scaled"),
            helper.make_node("Round", [f"{p}.scaled"], [f"{p}.round"], name=f"{p}.round"),
            helper.make_node("Add", [f"{p}.round", c["offset"]], [f"{p}.shift"], name=f"{p}.shift"),
            helper.make_node("Cast", [f"{p}.shift"], [x_q], name=f"{p}.cast", to=TensorProto.UINT8),
            helper.make_node("Identity", [c["zero_point"]], [zero_point], name=f"{p}.zero_point"),
        ]
        at = list(graph.node).index(node)
        graph.node.remove(node)
        for i, n in enumerate(new):
            graph.node.insert(at + i, n)


class FeedReader:
    """onnxruntime's CalibrationDataReader protocol over a list of prepared graph feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:  # not needed by MinMax calibration, part of the protocol
        pass


def static_qdq(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]) -> onnx.ModelProto:
    """QDQ int8 (symmetric activations and per-channel weights, for TensorRT), ranges from `feeds`.

    The calibration session is onnxruntime's own, without the AMSU library: it runs the attached
    fallback function (toolchain notes), so the ranges are those of the same function.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    def run(m: onnx.ModelProto, out: Path, external: bool) -> None:
        with _quiet():
            quantize_static(
                m,
                out,
                FeedReader(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(WEIGHT_OPS),
                per_channel=True,
                activation_type=QuantType.QInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                use_external_data_format=external,
                extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
            )

    return _through_files(model, run)
