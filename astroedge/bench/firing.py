"""Firing rates at the spike products' inputs, measured on text by the exported graph itself (torch-free).

The sparse floor and the sparse kernel's speed depend on how many neurons fire, so the bench reads
the rates off the package it times: the spike tensors feeding W_O and W_2 are made extra graph
outputs, the text runs through onnxruntime from zero state, and each tensor's mean is its rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from astroedge.errors import UserError

RATE_TOKENS = 512  # the sample's held-out text, enough for rates stable to ~0.01


@dataclass(frozen=True)
class SiteRate:
    layer: int
    site: str  # "w_o" or "w_2"
    spikes: str  # graph tensor name
    rate: float


def text_ids(package: Path, tokens: int = RATE_TOKENS) -> tuple[np.ndarray, str]:
    """Token ids of the sample's held-out text in the package's tokenizer (what rates and decode use)."""
    from astroedge.quantize.perplexity import eval_tokens
    from astroedge.runtime.package import load_package

    ids, source = eval_tokens(load_package(package, verify=False).tokenizer, None, max(tokens, 256))
    return ids[:tokens], source


def firing_rates(package: Path, ids: np.ndarray) -> list[SiteRate]:
    """Mean spike rate at every spike product's input over `ids` (one stream from zero state)."""
    import onnx
    from onnx import TensorProto, helper

    from astroedge.export.spike_matmul import spike_products
    from astroedge.runtime.ort_session import create_session
    from astroedge.runtime.package import load_package

    pkg = load_package(package, verify=False)
    if pkg.precision != "fp32":
        raise UserError(f"{package}: is {pkg.precision}; firing rates are measured on the fp32 package")
    model = onnx.load(str(pkg.onnx_path))
    products = spike_products(model.graph)
    names = list(dict.fromkeys(p.spikes for p in products))
    model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
    session = create_session(model.SerializeToString(), "cpu").session
    feed = {pkg.tokens_input: ids.reshape(1, -1).astype(np.int64), pkg.position_input: np.zeros(1, np.int64)}
    feed.update({s.input: np.zeros(s.concrete_shape(1), np.float32) for s in pkg.state})
    values = session.run(names, feed)
    mean = {n: float(np.mean(v)) for n, v in zip(names, values, strict=True)}
    return [SiteRate(p.layer, p.site, p.spikes, mean[p.spikes]) for p in products]
