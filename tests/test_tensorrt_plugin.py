"""The TensorRT plugins (AMSU: plugins/amsu/tensorrt/, SpikeMatMul: plugins/spikematmul/tensorrt/) against
their op contracts and reference models.

Three levels, because TensorRT itself exists on none of our machines:
- always: each plugin's identity and field rules (*_trt_fields.cc, TensorRT-free) compiled against the
  header generated from the contract, for the real contract and (AMSU) for altered ones;
- with TensorRT's public headers ($TRT_INCLUDE_DIR): plugins/scripts/check_tensorrt_plugin.sh builds
  amsu_host_check and spikematmul_host_check, which drive the real plugin objects as TensorRT would, with
  the CPU kernels behind the CUDA entry points; their outputs must equal the references on random inputs;
- with TensorRT and the built plugin (`tensorrt` marker): an engine built from a one-node ONNX model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from astroedge.model import AMSUParams, amsu_step_form

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ROOT / "astroedge" / "contract" / "amsu.json"
GENERATOR = ROOT / "plugins" / "gen_contract_header.py"
TRT_COMMON = ROOT / "plugins" / "common" / "tensorrt"
CHECK_SCRIPT = ROOT / "plugins" / "scripts" / "check_tensorrt_plugin.sh"
CXX = os.environ.get("CXX", "g++")

# Exercises parse_fields/describe exactly as the creator calls them; prints one line per case.
FIELDS_DRIVER = r"""
#include <cstdint>
#include <cstdio>
#include "amsu_trt_fields.h"
using namespace astroedge::trt;
static void run(char const* label, FieldView const* f, int32_t n) {
  AmsuParams p; std::string ignored;
  std::string err = parse_fields(f, n, &p, &ignored);
  std::printf("%s\t%s\t%s\t%s\n", label, err.c_str(), err.empty() ? describe(p).c_str() : "", ignored.c_str());
}
int main() {
  std::printf("identity\t%s\t%s\t%s\n", kPluginName, kPluginVersion, kPluginNamespace);
  for (FieldSpec const& s : kFieldSpecs) std::printf("field\t%s\t%d\n", s.name, static_cast<int>(s.kind));
  int32_t heads = 4, zero = 0; int64_t heads64 = 2; float thr = 0.5f, eps = 1e-5f, neg = -1.0f; double thr64 = 0.25;
  char const* N = kFieldSpecs[0].name; char const* T = kFieldSpecs[1].name; char const* E = kFieldSpecs[2].name;
  FieldView good[] = {{N, FieldKind::kInt32, &heads, 1}, {T, FieldKind::kFloat32, &thr, 1}, {E, FieldKind::kFloat32, &eps, 1},
                      {"plugin_version", FieldKind::kOther, "1", 1}};
  run("good", good, 4);
  FieldView wide[] = {{E, FieldKind::kFloat32, &eps, 1}, {N, FieldKind::kInt64, &heads64, 1}, {T, FieldKind::kFloat64, &thr64, 1}};
  run("wide", wide, 3);
  run("missing", good, 2);
  FieldView float_heads[] = {{N, FieldKind::kFloat32, &thr, 1}, {T, FieldKind::kFloat32, &thr, 1}, {E, FieldKind::kFloat32, &eps, 1}};
  run("float_heads", float_heads, 3);
  FieldView zero_heads[] = {{N, FieldKind::kInt32, &zero, 1}, {T, FieldKind::kFloat32, &thr, 1}, {E, FieldKind::kFloat32, &eps, 1}};
  run("zero_heads", zero_heads, 3);
  FieldView neg_eps[] = {{N, FieldKind::kInt32, &heads, 1}, {T, FieldKind::kFloat32, &thr, 1}, {E, FieldKind::kFloat32, &neg, 1}};
  run("neg_eps", neg_eps, 3);
  FieldView twice[] = {{N, FieldKind::kInt32, &heads, 1}, {N, FieldKind::kInt32, &heads, 1}};
  run("twice", twice, 2);
  FieldView long_field[] = {{N, FieldKind::kInt32, &heads, 2}, {T, FieldKind::kFloat32, &thr, 1}, {E, FieldKind::kFloat32, &eps, 1}};
  run("long", long_field, 3);
  return 0;
}
"""


def _generate_header(op: str, contract: dict, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{op}.json").write_text(json.dumps(contract))
    subprocess.run([sys.executable, str(GENERATOR), str(folder / f"{op}.json"), str(folder / f"{op}_contract.h")], check=True)


def _compile_fields_driver(op: str, driver: str, contract: dict, folder: Path) -> subprocess.CompletedProcess[str]:
    """Builds `driver` with the op's TensorRT-free field reader (plugins/<op>/tensorrt/<op>_trt_fields.cc) against `contract`."""
    _generate_header(op, contract, folder)
    (folder / "driver.cc").write_text(driver)
    src = ROOT / "plugins" / op / "tensorrt"
    cmd = [
        CXX,
        "-std=c++17",
        "-Wall",
        "-Wextra",
        "-Werror",
        f"-I{folder}",
        f"-I{src}",
        f"-I{TRT_COMMON}",
        str(folder / "driver.cc"),
        str(src / f"{op}_trt_fields.cc"),
        "-o",
        str(folder / "driver"),
    ]
    return subprocess.run(cmd, capture_output=True, text=True)


def _run_fields_driver(op: str, driver: str, contract: dict, folder: Path) -> dict[str, list[str]]:
    """The driver's output lines by label; "field" rows are collected in order."""
    build = _compile_fields_driver(op, driver, contract, folder)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(folder / "driver")], capture_output=True, text=True, check=True).stdout
    rows: dict[str, list[str]] = {"field": []}
    for line in out.splitlines():
        label, *rest = line.split("\t")
        if label == "field":
            rows["field"].append("\t".join(rest))
        else:
            rows[label] = rest
    return rows


needs_cxx = pytest.mark.skipif(shutil.which(CXX) is None, reason=f"needs a C++17 compiler ({CXX}) to build the plugin's field reader")


@needs_cxx
def test_plugin_identity_and_fields_follow_the_contract(tmp_path: Path) -> None:
    contract = json.loads(CONTRACT.read_text())
    attrs = {a["name"]: a for a in contract["attributes"]}
    rows = _run_fields_driver("amsu", FIELDS_DRIVER, contract, tmp_path / "real")
    assert rows["identity"] == [contract["name"], str(contract["version"]), attrs["plugin_namespace"]["default"]]
    # INT -> kInt32 (0), FLOAT -> kFloat32 (2): the types the ONNX parser passes for the node's attributes
    kinds = {"int": "0", "float": "2"}
    node_attrs = [a for a in contract["attributes"] if a["name"] not in ("plugin_namespace", "plugin_version")]
    expected = [f"{a['name']}\t{kinds[a['type']]}" for a in node_attrs]
    assert rows["field"] == expected

    # An altered contract changes the plugin's identity with no source edit...
    altered = json.loads(CONTRACT.read_text())
    altered["name"], altered["version"] = "AMSX", 7
    next(a for a in altered["attributes"] if a["name"] == "plugin_namespace")["default"] = "edgetest"
    assert _run_fields_driver("amsu", FIELDS_DRIVER, altered, tmp_path / "altered")["identity"] == ["AMSX", "7", "edgetest"]

    # ...and renaming an attribute the plugin reads stops the build instead of shipping a stale field name.
    renamed = json.loads(CONTRACT.read_text())
    next(a for a in renamed["attributes"] if a["name"] == "eps")["name"] = "epsilon"
    build = _compile_fields_driver("amsu", FIELDS_DRIVER, renamed, tmp_path / "renamed")
    assert build.returncode != 0 and "AMSU_ATTR_EPS" in build.stderr


def _assert_field_errors(rows: dict[str, list[str]], expected: dict[str, str], plugin: str) -> None:
    """Each refused case gives one line that starts with the plugin's field prefix and names the problem, and no plugin."""
    for case, text in expected.items():
        error = rows[case][0]
        assert text in error and error.startswith(f"{plugin} plugin field") and "\n" not in error, (case, error)
        assert rows[case][1] == "", case


@needs_cxx
def test_creator_field_rules(tmp_path: Path) -> None:
    rows = _run_fields_driver("amsu", FIELDS_DRIVER, json.loads(CONTRACT.read_text()), tmp_path)
    assert rows["good"] == ["", "AMSU/1/astroedge num_heads=4 threshold=0.5 eps=9.99999975e-06", "plugin_version"]
    assert rows["wide"][:2] == ["", "AMSU/1/astroedge num_heads=2 threshold=0.25 eps=9.99999975e-06"]
    expected_errors = {
        "missing": "'eps' is missing; set the node attribute 'eps'",
        "float_heads": "'num_heads' is FLOAT32; pass it as INT32",
        "zero_heads": "'num_heads' = 0 is out of range",
        "neg_eps": "'eps' = -1 is negative",
        "twice": "'num_heads' is given twice",
        "long": "'num_heads' has 2 elements",
    }
    _assert_field_errors(rows, expected_errors, "astroedge::AMSU")


# ----------------------------------------------------------------------------------------------
# Numerical checks against the reference (host check and TensorRT engine share the data and the comparison).

SHAPE = {"b": 2, "s": 7, "d": 16, "nh": 2}
THRESHOLD, EPS = 0.5, 1e-5
# (activation dtype, state bound in place: h_out/u_out on the h_in/u_in buffers)
VARIANTS = [(np.float32, False), (np.float32, True), (np.float16, False)]
VARIANT_IDS = ["f32", "f32-inplace", "f16"]


def _random_case(dtype: type[np.floating], seed: int) -> dict[str, np.ndarray]:
    """Inputs with non-zero initial state; x, q, k, v in `dtype`, the rest float32 (the contract's types)."""
    rng = np.random.default_rng(seed)
    b, s, d, nh = SHAPE["b"], SHAPE["s"], SHAPE["d"], SHAPE["nh"]
    hd = d // nh
    case = {n: rng.standard_normal((b, s, d)).astype(dtype) for n in ("x", "q", "k", "v")}
    case["w_o"] = rng.uniform(0.2, 1.0, d).astype(np.float32)
    case["gamma"] = rng.uniform(0.5, 0.99, nh).astype(np.float32)
    case["beta"] = rng.uniform(0.3, 0.9, d).astype(np.float32)
    case["h_in"] = (0.3 * rng.standard_normal((b, nh, hd, hd))).astype(np.float32)
    case["u_in"] = rng.uniform(0.0, 1.0, (b, d)).astype(np.float32)
    return case


def _assert_matches_reference(case: dict[str, np.ndarray], s: np.ndarray, h: np.ndarray, u: np.ndarray) -> None:
    t = {k: torch.from_numpy(np.asarray(v, dtype=np.float32)) for k, v in case.items()}
    p = AMSUParams(t["w_o"], t["gamma"], t["beta"], THRESHOLD, EPS, 1.0)
    ref = amsu_step_form(t["x"], t["q"], t["k"], t["v"], t["h_in"], t["u_in"], p)
    np.testing.assert_allclose(h, ref.h.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(u, ref.u.numpy(), rtol=1e-5, atol=1e-6)
    s = s.astype(np.float32)
    assert set(np.unique(s)) <= {0.0, 1.0}
    flips = s != ref.s.numpy()
    # A spike may flip only where the drive sits within rounding of the threshold; count, never hide.
    near = np.abs(ref.drive.numpy()) < 1e-4
    assert not (flips & ~near).any(), f"{int((flips & ~near).sum())} spike flips away from the threshold"
    assert flips.sum() <= 2, f"{int(flips.sum())} spike flips"
    assert 0 < s.mean() < 1, "degenerate test: all spikes equal"


@pytest.fixture(scope="module")
def host_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    include = os.environ.get("TRT_INCLUDE_DIR")
    if not include:
        pytest.skip("set TRT_INCLUDE_DIR to a TensorRT include/ folder (NVIDIA/TensorRT on GitHub) to compile-check the plugin")
    out = tmp_path_factory.mktemp("trt_check")
    run = subprocess.run([str(CHECK_SCRIPT), include], env={**os.environ, "HOST_CHECK_OUT": str(out)}, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "exports: getCreators setLoggerFinder" in run.stdout
    return out


@pytest.mark.parametrize(("dtype", "alias"), VARIANTS, ids=VARIANT_IDS)
def test_host_check_enqueue_matches_reference(host_check: Path, tmp_path: Path, dtype: type[np.floating], alias: bool) -> None:
    case = _random_case(dtype, seed=3)
    for name, array in case.items():
        array.tofile(tmp_path / f"{name}.bin")
    tag = "f16" if dtype == np.float16 else "f32"
    dims = [str(SHAPE[k]) for k in ("b", "s", "d", "nh")]
    args = [str(host_check / "amsu_host_check"), str(tmp_path), *dims, tag, str(int(alias)), str(THRESHOLD), str(EPS)]
    run = subprocess.run(args, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("OK"), run.stdout + run.stderr
    s = np.fromfile(tmp_path / "s.bin", dtype=dtype).reshape(case["x"].shape)
    h = np.fromfile(tmp_path / "h_out.bin", dtype=np.float32).reshape(case["h_in"].shape)
    u = np.fromfile(tmp_path / "u_out.bin", dtype=np.float32).reshape(case["u_in"].shape)
    _assert_matches_reference(case, s, h, u)


# ----------------------------------------------------------------------------------------------
# TensorRT engine (needs TensorRT, an NVIDIA GPU and the built libastroedge_trt.so).


def _amsu_onnx(dtype: type[np.floating], case: dict[str, np.ndarray]) -> bytes:
    """One AMSU node, named for the TensorRT parser (plugin_namespace / plugin_version), weights as initializers."""
    from onnx import TensorProto, helper, numpy_helper

    contract = json.loads(CONTRACT.read_text())
    attrs = {a["name"]: a for a in contract["attributes"]}
    t = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    nh, hd, d = SHAPE["nh"], SHAPE["d"] // SHAPE["nh"], SHAPE["d"]
    inputs = [helper.make_tensor_value_info(n, t, ["B", "S", d]) for n in ("x", "q", "k", "v")]
    inputs += [
        helper.make_tensor_value_info("h_in", TensorProto.FLOAT, ["B", nh, hd, hd]),
        helper.make_tensor_value_info("u_in", TensorProto.FLOAT, ["B", d]),
    ]
    outputs = [
        helper.make_tensor_value_info("s", t, ["B", "S", d]),
        helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["B", nh, hd, hd]),
        helper.make_tensor_value_info("u_out", TensorProto.FLOAT, ["B", d]),
    ]
    node = helper.make_node(
        contract["name"],
        [p["name"] for p in contract["inputs"]],
        [p["name"] for p in contract["outputs"]],
        domain=contract["domain"],
        num_heads=nh,
        threshold=THRESHOLD,
        eps=EPS,
        plugin_namespace=attrs["plugin_namespace"]["default"],
        plugin_version=attrs["plugin_version"]["default"],
    )
    weights = [numpy_helper.from_array(case[n], n) for n in ("w_o", "gamma", "beta")]
    graph = helper.make_graph([node], "amsu", inputs, outputs, initializer=weights)
    opsets = [helper.make_opsetid("", 18), helper.make_opsetid(contract["domain"], contract["version"])]
    model = helper.make_model(graph, opset_imports=opsets)
    return model.SerializeToString()


@pytest.fixture(scope="module")
def trt_env() -> tuple[object, object]:
    trt = pytest.importorskip("tensorrt", reason="TensorRT's Python module is not installed")
    from astroedge.errors import UserError
    from astroedge.native import tensorrt_plugin_path

    library = tensorrt_plugin_path()
    if library is None:
        pytest.skip("the AMSU TensorRT plugin is not built (make plugins, with the TensorRT headers)")
    from cuda_memory import CudaRuntime

    try:
        cuda = CudaRuntime()
    except UserError as e:
        pytest.skip(str(e))
    registry = trt.get_plugin_registry()
    contract = json.loads(CONTRACT.read_text())
    namespace = next(a for a in contract["attributes"] if a["name"] == "plugin_namespace")["default"]
    # loadLibrary refuses a library whose creators are registered already (another test may have loaded it)
    if registry.get_creator(contract["name"], str(contract["version"]), namespace) is None:
        assert registry.load_library(str(library)) is not None, f"TensorRT could not load {library}"
    assert registry.get_creator(contract["name"], str(contract["version"]), namespace) is not None
    return trt, cuda


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "alias"), VARIANTS, ids=VARIANT_IDS)
def test_engine_matches_reference(trt_env: tuple[object, object], dtype: type[np.floating], alias: bool) -> None:
    from cuda_memory import DeviceBuffer

    trt, cuda = trt_env
    case = _random_case(dtype, seed=5)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(_amsu_onnx(dtype, case)), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    b, s = SHAPE["b"], SHAPE["s"]
    for name in ("x", "q", "k", "v", "h_in", "u_in"):
        full = case[name].shape
        low = (1, 1, *full[2:]) if name in ("x", "q", "k", "v") else (1, *full[1:])
        high = (b, 2 * s, *full[2:]) if name in ("x", "q", "k", "v") else full
        profile.set_shape(name, low, full, high)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    assert plan is not None, "engine build failed (see TensorRT's log above)"
    engine = trt.Runtime(logger).deserialize_cuda_engine(plan)
    context = engine.create_execution_context()

    buffers = {}
    for name in ("x", "q", "k", "v", "h_in", "u_in"):
        buffers[name] = DeviceBuffer(cuda, case[name].nbytes)
        buffers[name].upload(case[name])
        context.set_input_shape(name, case[name].shape)
        context.set_tensor_address(name, buffers[name].ptr)
    results = {"s": np.empty(case["x"].shape, dtype), "h_out": np.empty_like(case["h_in"]), "u_out": np.empty_like(case["u_in"])}
    for name, state in (("h_out", "h_in"), ("u_out", "u_in")):
        buffers[name] = buffers[state] if alias else DeviceBuffer(cuda, results[name].nbytes)
    buffers["s"] = DeviceBuffer(cuda, results["s"].nbytes)
    for name in results:
        context.set_tensor_address(name, buffers[name].ptr)
    assert context.execute_async_v3(cuda.stream.value)
    cuda.sync()
    for name, array in results.items():
        buffers[name].download(array)
    _assert_matches_reference(case, results["s"], results["h_out"], results["u_out"])


# ----------------------------------------------------------------------------------------------
# SpikeMatMul plugin: fields (always) and the host check (with TensorRT's headers).

SMM_CONTRACT = ROOT / "astroedge" / "contract" / "spikematmul.json"

SMM_FIELDS_DRIVER = r"""
#include <cstdint>
#include <cstdio>
#include "spikematmul_trt_fields.h"
using namespace astroedge::trt;
static void run(char const* label, FieldView const* f, int32_t n) {
  smm::Params p; std::string ignored;
  std::string err = smm::parse_fields(f, n, &p, &ignored);
  std::printf("%s\t%s\t%s\t%s\n", label, err.c_str(), err.empty() ? smm::describe(p).c_str() : "", ignored.c_str());
}
int main() {
  std::printf("identity\t%s\t%s\t%s\n", smm::kPluginName, smm::kPluginVersion, smm::kPluginNamespace);
  for (FieldSpec const& s : smm::kFieldSpecs) std::printf("field\t%s\t%d\n", s.name, static_cast<int>(s.kind));
  int32_t n = 768, bs = 64, odd = 7, neg = -1; int64_t n64 = 45; float nf = 768.0f;
  char const* N = smm::kFieldSpecs[0].name; char const* B = smm::kFieldSpecs[1].name;
  FieldView good[] = {{N, FieldKind::kInt32, &n, 1}, {B, FieldKind::kInt32, &bs, 1},
                      {"plugin_namespace", FieldKind::kOther, "astroedge", 1}};
  run("good", good, 3);
  FieldView defaults[] = {{N, FieldKind::kInt64, &n64, 1}};
  run("default_block", defaults, 1);
  run("missing", good + 1, 1);
  FieldView float_n[] = {{N, FieldKind::kFloat32, &nf, 1}};
  run("float_n", float_n, 1);
  FieldView odd_bs[] = {{N, FieldKind::kInt32, &n, 1}, {B, FieldKind::kInt32, &odd, 1}};
  run("odd_block", odd_bs, 2);
  FieldView neg_n[] = {{N, FieldKind::kInt32, &neg, 1}};
  run("negative", neg_n, 1);
  FieldView twice[] = {{N, FieldKind::kInt32, &n, 1}, {N, FieldKind::kInt32, &n, 1}};
  run("twice", twice, 2);
  return 0;
}
"""


@needs_cxx
def test_spikematmul_plugin_identity_and_field_rules(tmp_path: Path) -> None:
    contract = json.loads(SMM_CONTRACT.read_text())
    attrs = {a["name"]: a for a in contract["attributes"]}
    rows = _run_fields_driver("spikematmul", SMM_FIELDS_DRIVER, contract, tmp_path)
    assert rows["identity"] == [contract["name"], str(contract["version"]), attrs["plugin_namespace"]["default"]]
    assert rows["field"] == ["out_features\t0", "block_size\t0"]  # both INT32, in the contract's attribute order
    assert rows["good"] == ["", "SpikeMatMul/1/astroedge out_features=768 block_size=64", "plugin_namespace"]
    assert rows["default_block"][:2] == ["", f"SpikeMatMul/1/astroedge out_features=45 block_size={attrs['block_size']['default']}"]
    expected_errors = {
        "missing": "'out_features' is missing",
        "float_n": "'out_features' is not an integer",
        "odd_block": "'block_size' = 7 is not an even block width",
        "negative": "'out_features' = -1 is out of range",
        "twice": "'out_features' is given twice",
    }
    _assert_field_errors(rows, expected_errors, "astroedge::SpikeMatMul")


@pytest.mark.parametrize("fmt", ["float32", "float16", "int8", "int4"])
@pytest.mark.parametrize(("act", "with_bias"), [("float32", True), ("float16", False)], ids=["f32-bias", "f16"])
def test_spikematmul_host_check_enqueue_matches_reference(host_check: Path, tmp_path: Path, fmt: str, act: str, with_bias: bool) -> None:
    from astroedge.contract.spikematmul import quantize, reference

    rng = np.random.default_rng(17)
    b, t, k, n, bs = 2, 3, 133, 45, 8
    spikes = (rng.random((b, t, k)) < 0.3).astype(act)
    weight, scale = quantize(rng.standard_normal((k, n)).astype(np.float32), fmt, bs)
    bias = rng.standard_normal(n).astype(np.float32)
    spikes.tofile(tmp_path / "spikes.bin")
    weight.tofile(tmp_path / "weight.bin")
    if scale is not None:
        scale.tofile(tmp_path / "scale.bin")
    bias.tofile(tmp_path / "bias.bin")
    args = [
        str(host_check / "spikematmul_host_check"),
        str(tmp_path),
        str(b),
        str(t),
        str(k),
        str(n),
        str(bs),
        "f16" if act == "float16" else "f32",
        fmt,
        str(int(with_bias)),
    ]
    run = subprocess.run(args, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.startswith("OK"), run.stdout + run.stderr
    y = np.fromfile(tmp_path / "y.bin", dtype=act).reshape(b, t, n).astype(np.float64)
    ref = reference(spikes, weight, scale, bias if with_bias else None, n, bs)
    np.testing.assert_allclose(y, ref, rtol=2e-3 if act == "float16" else 1e-5, atol=1e-3 if act == "float16" else 1e-5)
