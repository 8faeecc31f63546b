"""Generate amsu_contract.h from astroedge/contract/amsu.json at build time.

The C++ wrappers (ONNX Runtime op, TensorRT plugin) take the op's name, domain, version, port
order and attribute names from this header, so the JSON stays the one definition of the op.
Usage: python gen_contract_header.py CONTRACT_JSON OUT_HEADER
"""

import json
import sys
from pathlib import Path


def main() -> None:
    contract = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    lines = [
        "/* Generated from astroedge/contract/amsu.json by gen_contract_header.py. Do not edit. */",
        "#ifndef ASTROEDGE_AMSU_CONTRACT_H_",
        "#define ASTROEDGE_AMSU_CONTRACT_H_",
        f'#define AMSU_OP_NAME "{contract["name"]}"',
        f'#define AMSU_OP_DOMAIN "{contract["domain"]}"',
        f'#define AMSU_OP_VERSION {int(contract["version"])}',
        f'#define AMSU_OP_VERSION_STRING "{int(contract["version"])}"',
        f"#define AMSU_NUM_INPUTS {len(contract['inputs'])}",
        f"#define AMSU_NUM_OUTPUTS {len(contract['outputs'])}",
    ]
    for i, port in enumerate(contract["inputs"]):
        lines.append(f"#define AMSU_INPUT_{port['name'].upper()} {i}")
    for i, port in enumerate(contract["outputs"]):
        lines.append(f"#define AMSU_OUTPUT_{port['name'].upper()} {i}")
    for attr in contract["attributes"]:
        lines.append(f'#define AMSU_ATTR_{attr["name"].upper()} "{attr["name"]}"')
        if "default" in attr:
            lines.append(f'#define AMSU_ATTR_{attr["name"].upper()}_DEFAULT "{attr["default"]}"')
    lines.append("#endif")
    tmp = out.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
