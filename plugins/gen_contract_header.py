"""Generate an op's C header (amsu_contract.h, spikematmul_contract.h) from its JSON contract at build time.

The C++ wrappers (ONNX Runtime ops, TensorRT plugins) take every fact about an op from this header: name,
domain, version, port order, port names, ranks, symbolic shapes and dtypes, optional ports, attribute names
and defaults, and (SpikeMatMul) the weight formats. A wrapper that needs a fact the header does not give
should add it here, so the JSON in astroedge/contract/ stays the one definition of the op.

Usage: python gen_contract_header.py CONTRACT_JSON OUT_HEADER
The macro prefix is the contract's "c_prefix" (AMSU, SPIKEMATMUL), so an edited contract renames nothing
in C++ silently: a port or attribute that the wrappers use and the contract drops stops the build.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

# ONNX TensorProto element types (= ONNXTensorElementDataType in onnxruntime_c_api.h); 0 marks a type parameter.
ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "float16": 10}

# Shared by every generated header: one table row per port / weight format, for loops over the contract.
COMMON = """#ifndef ASTROEDGE_CONTRACT_SPECS_DEFINED_
#define ASTROEDGE_CONTRACT_SPECS_DEFINED_
/* One port of an op. onnx_type: ONNX element type (1 float32, 2 uint8, 3 int8, 10 float16) or 0 when the
 * dtype is a type parameter (dtype names it). rank -1 and dims NULL: the shape depends on the weight format. */
typedef struct AstroedgePortSpec {
  const char* name;
  const char* dtype;
  int onnx_type;
  int rank;
  const char* shape;
  const char* const* dims;
  int optional;
} AstroedgePortSpec;

/* One weight format of an op with quantised weights. scale_rank 0: no scale input. */
typedef struct AstroedgeWeightFormatSpec {
  const char* name;
  int weight_onnx_type;
  const char* weight_shape;
  const char* const* weight_dims;
  int scale_rank;
  const char* scale_shape;
  const char* const* scale_dims;
} AstroedgeWeightFormatSpec;
#endif"""


def ident(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def shape_text(shape: list[str] | None) -> str:
    return "[" + ", ".join(shape) + "]" if shape is not None else "per weight format"


def onnx_type(dtype: str, contract: dict[str, Any]) -> int:
    if dtype in contract.get("type_constraints", {}):
        return 0
    return ONNX_TYPES[dtype]


def dims_array(name: str, shape: list[str] | None) -> tuple[list[str], str]:
    """The static array of dimension symbols for one shape, and the expression that names it (NULL when none)."""
    if not shape:
        return [], "NULL"
    items = ", ".join(f'"{d}"' for d in shape)
    return [f"static const char* const {name}[] = {{{items}}};"], name


def ports(prefix: str, kind: str, items: list[dict[str, Any]], contract: dict[str, Any]) -> list[str]:
    lines = [f"#define {prefix}_NUM_{kind}S {len(items)}"]
    rows = []
    for i, port in enumerate(items):
        p = f"{prefix}_{kind}_{ident(port['name'])}"
        shape = port.get("shape")
        rank = len(shape) if shape is not None else -1
        optional = 1 if port.get("optional", False) else 0
        lines += [
            f"#define {p} {i}",
            f'#define {p}_NAME "{port["name"]}"',
            f"#define {p}_RANK {rank}",
            f'#define {p}_SHAPE "{shape_text(shape)}"',
            f'#define {p}_DTYPE "{port["dtype"]}"',
            f"#define {p}_ONNX_TYPE {onnx_type(port['dtype'], contract)}",
            f"#define {p}_OPTIONAL {optional}",
        ]
        decl, ref = dims_array(f"{p}_DIMS", shape)
        lines += decl
        rows.append(f"  {{{p}_NAME, {p}_DTYPE, {p}_ONNX_TYPE, {p}_RANK, {p}_SHAPE, {ref}, {p}_OPTIONAL}},")
    lines.append(f"static const AstroedgePortSpec {prefix}_{kind}_SPECS[{prefix}_NUM_{kind}S] = {{")
    lines += rows
    lines.append("};")
    return lines


def attribute_default(attr: dict[str, Any]) -> str:
    value = attr["default"]
    return f'"{value}"' if attr["type"] == "string" else repr(value)


def weight_formats(prefix: str, contract: dict[str, Any]) -> list[str]:
    formats = contract.get("weight_formats", [])
    if not formats:
        return []
    lines = [f"#define {prefix}_NUM_FORMATS {len(formats)}"]
    rows = []
    for i, fmt in enumerate(formats):
        p = f"{prefix}_FORMAT_{ident(fmt['name'])}"
        scale = fmt["scale_shape"]
        lines += [
            f"#define {p} {i}",
            f'#define {p}_NAME "{fmt["name"]}"',
            f'#define {p}_WEIGHT_DTYPE "{fmt["weight_dtype"]}"',
            f"#define {p}_WEIGHT_ONNX_TYPE {ONNX_TYPES[fmt['weight_dtype']]}",
            f'#define {p}_WEIGHT_SHAPE "{shape_text(fmt["weight_shape"])}"',
            f"#define {p}_SCALE_RANK {len(scale) if scale else 0}",
            f'#define {p}_SCALE_SHAPE "{shape_text(scale) if scale else "none"}"',
        ]
        wdecl, wref = dims_array(f"{p}_WEIGHT_DIMS", fmt["weight_shape"])
        sdecl, sref = dims_array(f"{p}_SCALE_DIMS", scale)
        lines += wdecl + sdecl
        rows.append(f"  {{{p}_NAME, {p}_WEIGHT_ONNX_TYPE, {p}_WEIGHT_SHAPE, {wref}, {p}_SCALE_RANK, {p}_SCALE_SHAPE, {sref}}},")
    lines.append(f"static const AstroedgeWeightFormatSpec {prefix}_FORMAT_SPECS[{prefix}_NUM_FORMATS] = {{")
    lines += rows
    lines.append("};")
    return lines


def render(contract: dict[str, Any], source: str) -> str:
    prefix = contract["c_prefix"]
    guard = f"ASTROEDGE_{prefix}_CONTRACT_H_"
    version = int(contract["version"])
    lines = [
        f"/* Generated from {source} by plugins/gen_contract_header.py. Do not edit. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "#include <stddef.h>",
        COMMON,
        f'#define {prefix}_OP_NAME "{contract["name"]}"',
        f'#define {prefix}_OP_DOMAIN "{contract["domain"]}"',
        f"#define {prefix}_OP_VERSION {version}",
        f'#define {prefix}_OP_VERSION_STRING "{version}"',
    ]
    lines += ports(prefix, "INPUT", contract["inputs"], contract)
    lines += ports(prefix, "OUTPUT", contract["outputs"], contract)
    for attr in contract["attributes"]:
        a = f"{prefix}_ATTR_{ident(attr['name'])}"
        lines.append(f'#define {a} "{attr["name"]}"')
        lines.append(f"#define {a}_REQUIRED {1 if attr['required'] else 0}")
        if "default" in attr:
            lines.append(f"#define {a}_DEFAULT {attribute_default(attr)}")
    lines += weight_formats(prefix, contract)
    lines.append("#endif")
    return "\n".join(lines) + "\n"


def main() -> None:
    source, out = Path(sys.argv[1]), Path(sys.argv[2])
    text = render(json.loads(source.read_text()), f"astroedge/contract/{source.name}")
    tmp = out.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(out)


if __name__ == "__main__":
    main()
