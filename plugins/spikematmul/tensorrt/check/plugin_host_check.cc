/* Host-side check of the SpikeMatMul TensorRT plugin, for machines without TensorRT's libraries or a GPU
 * (the AMSU plugin's check, plugins/amsu/tensorrt/check/plugin_host_check.cc, explains why this works).
 * Stands in for TensorRT: the creator from getCreators(), field errors, capabilities, type and format
 * combinations, shape validation, serialise -> runtime createPlugin -> attachToContext, onShapeChange and
 * enqueue, with spikematmul_cuda_forward served by the CPU kernel (cpu_as_cuda.cc).
 *
 * Usage: spikematmul_host_check DIR B T K N BLOCK_SIZE ACT FORMAT BIAS
 *   ACT f32|f16; FORMAT float32|float16|int8|int4; BIAS 0|1. DIR holds spikes.bin (ACT), weight.bin (the
 *   format's element type), scale.bin (int8/int4, float32), bias.bin (BIAS=1, float32); writes y.bin (ACT).
 * Prints "FAIL: ..." and exits 1 on the first failed check.
 */
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "NvInferRuntime.h"
#include "spikematmul_contract.h"
#include "check/host_check.h"

using namespace astroedge::host_check;  // require, desc, read/write_file, find_creator, TensorRT type names

int main(int argc, char** argv) {
  require(argc == 10, "usage: spikematmul_host_check DIR B T K N BLOCK_SIZE ACT FORMAT BIAS");
  std::string const dir = argv[1], format = argv[8];
  int64_t const b = std::atoll(argv[2]), t = std::atoll(argv[3]), k = std::atoll(argv[4]);
  int32_t n = std::atoi(argv[5]), bs = std::atoi(argv[6]);
  bool const half = std::strcmp(argv[7], "f16") == 0, with_bias = std::strcmp(argv[9], "1") == 0;
  DataType const act = half ? DataType::kHALF : DataType::kFLOAT;
  DataType const wtype = format == "float32"   ? DataType::kFLOAT
                         : format == "float16" ? DataType::kHALF
                         : format == "int8"    ? DataType::kINT8
                                               : DataType::kUINT8;
  size_t const welem = format == "float32" ? 4 : format == "float16" ? 2 : 1;
  int64_t const nw = format == "int4" ? (n + 1) / 2 : n, nb = (n + bs - 1) / bs;
  bool const quantized = format == "int8" || format == "int4";

  // --- the creator, found by name among the library's creators
  int32_t count = 0;
  nvinfer1::IPluginCreatorV3One* creator = find_creator(SPIKEMATMUL_OP_NAME, SPIKEMATMUL_OP_VERSION_STRING,
                                                        SPIKEMATMUL_ATTR_PLUGIN_NAMESPACE_DEFAULT, &count);
  require(count == 2, "getCreators must list the AMSU and SpikeMatMul creators");
  PluginFieldCollection const* names = creator->getFieldNames();
  require(names->nbFields == 2 && std::strcmp(names->fields[0].name, SPIKEMATMUL_ATTR_OUT_FEATURES) == 0 &&
              std::strcmp(names->fields[1].name, SPIKEMATMUL_ATTR_BLOCK_SIZE) == 0 &&
              names->fields[0].type == PluginFieldType::kINT32 && names->fields[1].type == PluginFieldType::kINT32,
          "getFieldNames must list out_features INT32, block_size INT32");

  // --- bad fields give nullptr, never a crash
  int32_t odd = 3;
  float nf = static_cast<float>(n);
  PluginField no_n[] = {PluginField(SPIKEMATMUL_ATTR_BLOCK_SIZE, &bs, PluginFieldType::kINT32, 1)};
  PluginFieldCollection fc_no_n{1, no_n};
  require(creator->createPlugin("bad", &fc_no_n, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "missing out_features must fail");
  PluginField float_n[] = {PluginField(SPIKEMATMUL_ATTR_OUT_FEATURES, &nf, PluginFieldType::kFLOAT32, 1)};
  PluginFieldCollection fc_float{1, float_n};
  require(creator->createPlugin("bad", &fc_float, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "out_features as FLOAT32 must fail");
  PluginField odd_bs[] = {PluginField(SPIKEMATMUL_ATTR_OUT_FEATURES, &n, PluginFieldType::kINT32, 1),
                          PluginField(SPIKEMATMUL_ATTR_BLOCK_SIZE, &odd, PluginFieldType::kINT32, 1)};
  PluginFieldCollection fc_odd{2, odd_bs};
  require(creator->createPlugin("bad", &fc_odd, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "an odd block_size must fail");

  // --- build phase (block_size as INT64 shows the widening path; the plugin_* attributes are ignored)
  int64_t const bs64 = bs;
  PluginField fields[] = {
      PluginField(SPIKEMATMUL_ATTR_OUT_FEATURES, &n, PluginFieldType::kINT32, 1),
      PluginField(SPIKEMATMUL_ATTR_BLOCK_SIZE, &bs64, PluginFieldType::kINT64, 1),
      PluginField(SPIKEMATMUL_ATTR_PLUGIN_VERSION, SPIKEMATMUL_OP_VERSION_STRING, PluginFieldType::kCHAR, 1)};
  PluginFieldCollection fc{3, fields};
  std::unique_ptr<nvinfer1::IPluginV3> built(creator->createPlugin("smm0", &fc, nvinfer1::TensorRTPhase::kBUILD));
  require(built != nullptr, "createPlugin with valid fields returned nullptr");
  auto* build =
      static_cast<nvinfer1::IPluginV3OneBuild*>(built->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
  require(build != nullptr && std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0,
          "kBUILD capability");
  require(build->getNbOutputs() == SPIKEMATMUL_NUM_OUTPUTS, "getNbOutputs");

  std::vector<nvinfer1::PluginTensorDesc> in = {desc({b, t, k}, act), desc({k, nw}, wtype)};
  if (quantized) in.push_back(format == "int8" ? desc({n}, DataType::kFLOAT) : desc({k, nb}, DataType::kFLOAT));
  if (with_bias) in.push_back(desc({n}, DataType::kFLOAT));
  int32_t const nin = static_cast<int32_t>(in.size());
  std::vector<nvinfer1::PluginTensorDesc> out = {desc({b, t, n}, act)};
  std::vector<nvinfer1::DynamicPluginTensorDesc> io(nin + 1);
  for (int32_t i = 0; i < nin; ++i) io[i].desc = in[i];
  io[nin].desc = out[0];
  for (int32_t pos = 0; pos <= nin; ++pos)
    require(build->supportsFormatCombination(pos, io.data(), nin, 1),
            "supported combination rejected at " + std::to_string(pos));
  auto rejects = [&](int pos, DataType type, nvinfer1::TensorFormat fmt) {
    nvinfer1::DynamicPluginTensorDesc saved = io[pos];
    io[pos].desc.type = type;
    io[pos].desc.format = fmt;
    bool const ok = !build->supportsFormatCombination(pos, io.data(), nin, 1);
    io[pos] = saved;
    return ok;
  };
  require(rejects(SPIKEMATMUL_INPUT_SPIKES, DataType::kINT8, nvinfer1::TensorFormat::kLINEAR),
          "int8 spikes must be rejected");
  require(rejects(SPIKEMATMUL_INPUT_WEIGHT, DataType::kINT32, nvinfer1::TensorFormat::kLINEAR),
          "an int32 weight must be rejected");
  require(rejects(nin, half ? DataType::kFLOAT : DataType::kHALF, nvinfer1::TensorFormat::kLINEAR),
          "y must follow the spikes' type");
  require(rejects(SPIKEMATMUL_INPUT_SPIKES, act, nvinfer1::TensorFormat::kCHW32),
          "non-linear formats must be rejected");
  if (nin > 2) require(rejects(2, DataType::kHALF, nvinfer1::TensorFormat::kLINEAR), "scale/bias must be float32");
  DataType in_types[4], out_types[1];
  for (int32_t i = 0; i < nin; ++i) in_types[i] = in[i].type;
  require(build->getOutputDataTypes(out_types, 1, in_types, nin) == 0 && out_types[0] == act, "getOutputDataTypes");

  io[SPIKEMATMUL_INPUT_SPIKES].desc.dims.d[1] = -1;
  require(build->configurePlugin(io.data(), nin, io.data() + nin, 1) == 0, "configurePlugin with dynamic T");
  io[SPIKEMATMUL_INPUT_SPIKES].desc.dims.d[1] = t;
  io[SPIKEMATMUL_INPUT_WEIGHT].desc.dims.d[0] = k + 1;
  require(build->configurePlugin(io.data(), nin, io.data() + nin, 1) != 0,
          "configurePlugin must refuse a weight with K + 1 rows");
  io[SPIKEMATMUL_INPUT_WEIGHT].desc.dims.d[0] = k;
  if (quantized) {
    require(build->configurePlugin(io.data(), 2, io.data() + nin, 1) != 0,
            "configurePlugin must refuse quantised weights without a scale");
  } else {  // four inputs: a scale and a bias, but float weights take no scale
    std::vector<nvinfer1::DynamicPluginTensorDesc> four(5);
    four[0] = io[0];
    four[1] = io[1];
    four[2].desc = desc({n}, DataType::kFLOAT);
    four[3].desc = desc({n}, DataType::kFLOAT);
    four[4] = io[nin];
    require(build->configurePlugin(four.data(), 4, four.data() + 4, 1) != 0,
            "configurePlugin must refuse a scale for float weights");
  }
  require(build->configurePlugin(io.data(), nin, io.data() + nin, 1) == 0,
          "configurePlugin with the contract's shapes");
  require(std::strstr(build->getTimingCacheID(), SPIKEMATMUL_ATTR_OUT_FEATURES) != nullptr, "timing cache ID");

  // --- runtime: serialise, recreate, attach, shapes, enqueue on host buffers
  std::unique_ptr<nvinfer1::IPluginV3> attached = deserialize_and_attach(*built, *creator, "smm0");
  nvinfer1::IPluginV3OneRuntime* runtime = runtime_of(*attached);
  require(runtime->onShapeChange(in.data(), nin, out.data(), 1) == 0, "onShapeChange with the contract's shapes");

  size_t const asize = half ? 2 : 4;
  std::vector<char> spikes = read_file(dir + "/spikes.bin", b * t * k * asize),
                    weight = read_file(dir + "/weight.bin", k * nw * welem);
  std::vector<char> scale =
      quantized ? read_file(dir + "/scale.bin", (format == "int8" ? n : k * nb) * 4) : std::vector<char>();
  std::vector<char> bias = with_bias ? read_file(dir + "/bias.bin", n * 4) : std::vector<char>();
  std::vector<char> y(b * t * n * asize);
  std::vector<void const*> inputs = {spikes.data(), weight.data()};
  if (quantized) inputs.push_back(scale.data());
  if (with_bias) inputs.push_back(bias.data());
  void* outputs[1] = {y.data()};
  require(runtime->enqueue(in.data(), out.data(), inputs.data(), outputs, nullptr, nullptr) == 0, "enqueue failed");
  write_file(dir + "/y.bin", y.data(), y.size());
  std::printf("OK: SpikeMatMul plugin host check passed (B=%lld T=%lld K=%lld N=%d %s %s%s)\n",
              static_cast<long long>(b), static_cast<long long>(t), static_cast<long long>(k), n, half ? "f16" : "f32",
              format.c_str(), with_bias ? " + bias" : "");
  return 0;
}
