"""The op contracts reach C++ only through plugins/gen_contract_header.py: its tables must say what the JSON says.

Compiles a small program against both generated headers (amsu_contract.h, spikematmul_contract.h) that prints
every port (name, dtype, ONNX type, rank, symbolic shape, optional), every attribute default and the weight
formats, and compares that with astroedge.contract's reading of the same JSON files, the reader the exporter
uses. So the exporter and the native wrappers cannot disagree on names, order, ranks or dtypes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from astroedge.contract import CONTRACT_DIR, amsu_contract, spikematmul_contract

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = ROOT / "plugins" / "gen_contract_header.py"
CXX = os.environ.get("CXX", "g++")
ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "float16": 10}

DRIVER = r"""
#include <cstdio>
#include "amsu_contract.h"
#include "spikematmul_contract.h"
static void ports(const char* op, const char* kind, const AstroedgePortSpec* specs, int n) {
  for (int i = 0; i < n; ++i) {
    const AstroedgePortSpec& p = specs[i];
    std::printf("%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%d\t", op, kind, i, p.name, p.dtype, p.onnx_type, p.rank, p.shape, p.optional);
    for (int d = 0; d < p.rank; ++d) std::printf("%s%s", d ? "," : "", p.dims[d]);
    std::printf("\n");
  }
}
int main() {
  std::printf("op\tAMSU\t%s\t%s\t%d\n", AMSU_OP_NAME, AMSU_OP_DOMAIN, AMSU_OP_VERSION);
  std::printf("op\tSPIKEMATMUL\t%s\t%s\t%d\n", SPIKEMATMUL_OP_NAME, SPIKEMATMUL_OP_DOMAIN, SPIKEMATMUL_OP_VERSION);
  ports("AMSU", "in", AMSU_INPUT_SPECS, AMSU_NUM_INPUTS);
  ports("AMSU", "out", AMSU_OUTPUT_SPECS, AMSU_NUM_OUTPUTS);
  ports("SPIKEMATMUL", "in", SPIKEMATMUL_INPUT_SPECS, SPIKEMATMUL_NUM_INPUTS);
  ports("SPIKEMATMUL", "out", SPIKEMATMUL_OUTPUT_SPECS, SPIKEMATMUL_NUM_OUTPUTS);
  for (int f = 0; f < SPIKEMATMUL_NUM_FORMATS; ++f) {
    const AstroedgeWeightFormatSpec& s = SPIKEMATMUL_FORMAT_SPECS[f];
    std::printf("format\t%d\t%s\t%d\t%s\t%d\t%s\n", f, s.name, s.weight_onnx_type, s.weight_shape, s.scale_rank, s.scale_shape);
  }
  std::printf("attr\t%s\t%d\t%d\n", SPIKEMATMUL_ATTR_BLOCK_SIZE, SPIKEMATMUL_ATTR_BLOCK_SIZE_DEFAULT,
              SPIKEMATMUL_ATTR_OUT_FEATURES_REQUIRED);
  std::printf("attr\t%s\t%s\t%d\n", AMSU_ATTR_PLUGIN_NAMESPACE, AMSU_ATTR_PLUGIN_NAMESPACE_DEFAULT, AMSU_ATTR_NUM_HEADS_REQUIRED);
  return 0;
}
"""


@pytest.mark.skipif(shutil.which(CXX) is None, reason=f"needs a C++17 compiler ({CXX})")
def test_generated_headers_match_the_python_reader(tmp_path: Path) -> None:
    for op in ("amsu", "spikematmul"):
        subprocess.run([sys.executable, str(GENERATOR), str(CONTRACT_DIR / f"{op}.json"), str(tmp_path / f"{op}_contract.h")], check=True)
    (tmp_path / "driver.cc").write_text(DRIVER)
    build = subprocess.run(
        [CXX, "-std=c++17", "-Wall", "-Wextra", "-Werror", f"-I{tmp_path}", str(tmp_path / "driver.cc"), "-o", str(tmp_path / "driver")],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stderr
    rows = [
        line.split("\t")
        for line in subprocess.run([str(tmp_path / "driver")], capture_output=True, text=True, check=True).stdout.splitlines()
    ]

    for prefix, c in (("AMSU", amsu_contract()), ("SPIKEMATMUL", spikematmul_contract())):
        assert ["op", prefix, c.name, c.domain, str(c.version)] in rows
        for kind, ports in (("in", c.inputs), ("out", c.outputs)):
            got = [r[3:] for r in rows if r[:2] == [prefix, kind]]
            want = [
                [
                    p.name,
                    p.dtype,
                    str(0 if p.dtype in c.type_constraints else ONNX_TYPES[p.dtype]),
                    str(len(p.shape) if p.shape else -1),
                    "[" + ", ".join(p.shape) + "]" if p.shape else "per weight format",
                    str(int(p.optional)),
                    ",".join(p.shape or ()),
                ]
                for p in ports
            ]
            assert got == want, (prefix, kind)

    smm = spikematmul_contract()
    formats = [r[1:] for r in rows if r[0] == "format"]
    assert formats == [
        [
            str(i),
            f.name,
            str(ONNX_TYPES[f.weight_dtype]),
            "[" + ", ".join(f.weight_shape) + "]",
            str(len(f.scale_shape or ())),
            "[" + ", ".join(f.scale_shape) + "]" if f.scale_shape else "none",
        ]
        for i, f in enumerate(smm.weight_formats)
    ]
    assert ["attr", "block_size", str(smm.attribute("block_size").default), "1"] in rows
    assert ["attr", "plugin_namespace", str(amsu_contract().attribute("plugin_namespace").default), "1"] in rows


def test_spikematmul_contract_reader() -> None:
    c = spikematmul_contract()
    assert c.input_names == ["spikes", "weight", "scale", "bias"] and c.output_names == ["y"]
    assert [p.optional for p in c.inputs] == [False, False, True, True]
    assert [f.name for f in c.weight_formats] == ["float32", "float16", "int8", "int4"]
    assert c.weight_format("int4").weight_dtype == "uint8" and c.weight_format("int8").scale_shape == ("N",)
    assert c.attribute("out_features").required and c.attribute("block_size").default == 32
    with pytest.raises(KeyError, match="no weight format 'int2'"):
        c.weight_format("int2")
