"""The AMSU op contract, read from ``amsu.json`` beside this file: the single definition that the
exporter, the ONNX fallback function, the native kernels and the TensorRT plugin all follow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CONTRACT_PATH = Path(__file__).with_name("amsu.json")


@dataclass(frozen=True)
class Port:
    name: str
    dtype: str
    shape: tuple[str, ...]
    doc: str


@dataclass(frozen=True)
class Attribute:
    name: str
    type: str
    required: bool
    default: str | int | float | None
    doc: str


@dataclass(frozen=True)
class OpContract:
    name: str
    domain: str
    version: int
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    attributes: tuple[Attribute, ...]

    @property
    def input_names(self) -> list[str]:
        return [p.name for p in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [p.name for p in self.outputs]


@cache
def amsu_contract() -> OpContract:
    raw = json.loads(CONTRACT_PATH.read_text())
    return OpContract(
        name=raw["name"],
        domain=raw["domain"],
        version=int(raw["version"]),
        inputs=tuple(Port(p["name"], p["dtype"], tuple(p["shape"]), p["doc"]) for p in raw["inputs"]),
        outputs=tuple(Port(p["name"], p["dtype"], tuple(p["shape"]), p["doc"]) for p in raw["outputs"]),
        attributes=tuple(
            Attribute(a["name"], a["type"], a["required"], a.get("default"), a["doc"])
            for a in raw["attributes"]
        ),
    )
