/* Host-side check of the AMSU TensorRT plugin, for machines without TensorRT's libraries or a GPU.
 *
 * Why it can run at all: the plugin library needs nothing from libnvinfer at link time (every TensorRT
 * interface it touches is header-only), so its objects link into this program against the public
 * headers alone. The program stands in for TensorRT: it loads the creator through getCreators() as
 * loadLibrary does, creates the plugin from fields, asks the build questions (formats, types), checks
 * shape validation, round-trips the serialised fields through a runtime-phase createPlugin, and calls
 * enqueue. Here amsu_cuda_forward is the CPU kernel (amsu_cpu_forward on host pointers, see
 * cpu_as_cuda.cc), so enqueue's port and dtype mapping is checked against the reference model by
 * tests/test_tensorrt_plugin.py. Build and run: plugins/scripts/check_tensorrt_plugin.sh.
 *
 * Usage: plugin_host_check DIR B S D NH DTYPE ALIAS THRESHOLD EPS
 *   DIR holds x q k v (DTYPE: f32 or f16 raw), w_o gamma beta h_in u_in (float32 raw) as NAME.bin;
 *   writes s.bin (DTYPE), h_out.bin, u_out.bin. ALIAS=1 binds h_out/u_out to the h_in/u_in buffers.
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
#include "amsu_contract.h"
#include "check/host_check.h"

using namespace astroedge::host_check;  // require, desc, read/write_file, find_creator, TensorRT type names

int main(int argc, char** argv) {
  require(argc == 10, "usage: plugin_host_check DIR B S D NH DTYPE ALIAS THRESHOLD EPS");
  std::string const dir = argv[1];
  int64_t const b = std::atoll(argv[2]), s = std::atoll(argv[3]), d = std::atoll(argv[4]);
  int32_t nh = std::atoi(argv[5]);
  bool const half = std::strcmp(argv[6], "f16") == 0;
  bool const alias = std::strcmp(argv[7], "1") == 0;
  float threshold = std::strtof(argv[8], nullptr), eps = std::strtof(argv[9], nullptr);
  int64_t const hd = d / nh;
  DataType const t = half ? DataType::kHALF : DataType::kFLOAT;

  // --- the library entry point, as IPluginRegistry::loadLibrary uses it (the library also holds the SpikeMatMul
  // creator)
  int32_t n = 0;
  nvinfer1::IPluginCreatorV3One* creator =
      find_creator(AMSU_OP_NAME, AMSU_OP_VERSION_STRING, AMSU_ATTR_PLUGIN_NAMESPACE_DEFAULT, &n);
  PluginFieldCollection const* names = creator->getFieldNames();
  require(names->nbFields == 3 && std::strcmp(names->fields[0].name, AMSU_ATTR_NUM_HEADS) == 0 &&
              names->fields[0].type == PluginFieldType::kINT32 &&
              std::strcmp(names->fields[1].name, AMSU_ATTR_THRESHOLD) == 0 &&
              names->fields[1].type == PluginFieldType::kFLOAT32 &&
              std::strcmp(names->fields[2].name, AMSU_ATTR_EPS) == 0 &&
              names->fields[2].type == PluginFieldType::kFLOAT32,
          "getFieldNames must list num_heads INT32, threshold FLOAT32, eps FLOAT32");

  // --- bad fields give nullptr (and a logged error), never a crash
  double const threshold64 = threshold;
  PluginField missing[] = {PluginField(AMSU_ATTR_NUM_HEADS, &nh, PluginFieldType::kINT32, 1)};
  PluginFieldCollection fc_missing{1, missing};
  require(creator->createPlugin("bad", &fc_missing, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "missing fields must fail");
  PluginField wrong_type[] = {PluginField(AMSU_ATTR_NUM_HEADS, &threshold, PluginFieldType::kFLOAT32, 1),
                              PluginField(AMSU_ATTR_THRESHOLD, &threshold, PluginFieldType::kFLOAT32, 1),
                              PluginField(AMSU_ATTR_EPS, &eps, PluginFieldType::kFLOAT32, 1)};
  PluginFieldCollection fc_wrong{3, wrong_type};
  require(creator->createPlugin("bad", &fc_wrong, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "num_heads as FLOAT32 must fail");
  require(creator->createPlugin("bad", nullptr, nvinfer1::TensorRTPhase::kBUILD) == nullptr,
          "no field collection must fail");

  // --- build phase, fields as the ONNX parser passes them (threshold as float64 shows the widening path)
  PluginField fields[] = {PluginField(AMSU_ATTR_NUM_HEADS, &nh, PluginFieldType::kINT32, 1),
                          PluginField(AMSU_ATTR_THRESHOLD, &threshold64, PluginFieldType::kFLOAT64, 1),
                          PluginField(AMSU_ATTR_EPS, &eps, PluginFieldType::kFLOAT32, 1),
                          PluginField(AMSU_ATTR_PLUGIN_VERSION, AMSU_OP_VERSION_STRING, PluginFieldType::kCHAR, 1)};
  PluginFieldCollection fc{4, fields};
  std::unique_ptr<nvinfer1::IPluginV3> built(creator->createPlugin("amsu0", &fc, nvinfer1::TensorRTPhase::kBUILD));
  require(built != nullptr, "createPlugin with valid fields returned nullptr");
  auto* core =
      static_cast<nvinfer1::IPluginV3OneCore*>(built->getCapabilityInterface(nvinfer1::PluginCapabilityType::kCORE));
  auto* build =
      static_cast<nvinfer1::IPluginV3OneBuild*>(built->getCapabilityInterface(nvinfer1::PluginCapabilityType::kBUILD));
  require(core != nullptr && build != nullptr, "core and build capabilities");
  require(std::strcmp(core->getInterfaceInfo().kind, "PLUGIN_V3ONE_CORE") == 0,
          "kCORE capability has the wrong interface");
  require(std::strcmp(build->getInterfaceInfo().kind, "PLUGIN_V3ONE_BUILD") == 0,
          "kBUILD capability has the wrong interface");
  require(std::strcmp(core->getPluginName(), AMSU_OP_NAME) == 0 &&
              std::strcmp(core->getPluginNamespace(), AMSU_ATTR_PLUGIN_NAMESPACE_DEFAULT) == 0,
          "plugin name/namespace");
  require(build->getNbOutputs() == AMSU_NUM_OUTPUTS, "getNbOutputs");

  std::vector<nvinfer1::PluginTensorDesc> in = {desc({b, s, d}, t),
                                                desc({b, s, d}, t),
                                                desc({b, s, d}, t),
                                                desc({b, s, d}, t),
                                                desc({d}, DataType::kFLOAT),
                                                desc({nh}, DataType::kFLOAT),
                                                desc({d}, DataType::kFLOAT),
                                                desc({b, nh, hd, hd}, DataType::kFLOAT),
                                                desc({b, d}, DataType::kFLOAT)};
  std::vector<nvinfer1::PluginTensorDesc> out = {desc({b, s, d}, t), desc({b, nh, hd, hd}, DataType::kFLOAT),
                                                 desc({b, d}, DataType::kFLOAT)};

  // formats and types: T ports follow x (float or half), the rest are float32; linear only
  std::vector<nvinfer1::DynamicPluginTensorDesc> io(12);
  for (int i = 0; i < 9; ++i) io[i].desc = in[i];
  for (int i = 0; i < 3; ++i) io[9 + i].desc = out[i];
  for (int pos = 0; pos < 12; ++pos)
    require(build->supportsFormatCombination(pos, io.data(), 9, 3),
            "supported combination rejected at " + std::to_string(pos));
  auto rejects = [&](int pos, DataType type, nvinfer1::TensorFormat format) {
    nvinfer1::DynamicPluginTensorDesc saved = io[pos];
    io[pos].desc.type = type;
    io[pos].desc.format = format;
    bool const ok = !build->supportsFormatCombination(pos, io.data(), 9, 3);
    io[pos] = saved;
    return ok;
  };
  DataType const other_t = half ? DataType::kFLOAT : DataType::kHALF;
  require(rejects(AMSU_INPUT_Q, other_t, nvinfer1::TensorFormat::kLINEAR), "q must follow x's type");
  require(rejects(9 + AMSU_OUTPUT_S, other_t, nvinfer1::TensorFormat::kLINEAR), "s must follow x's type");
  require(rejects(AMSU_INPUT_X, DataType::kINT8, nvinfer1::TensorFormat::kLINEAR), "x as int8 must be rejected");
  require(rejects(AMSU_INPUT_H_IN, DataType::kHALF, nvinfer1::TensorFormat::kLINEAR), "h_in must stay float32");
  require(rejects(9 + AMSU_OUTPUT_U_OUT, DataType::kHALF, nvinfer1::TensorFormat::kLINEAR), "u_out must stay float32");
  require(rejects(AMSU_INPUT_X, t, nvinfer1::TensorFormat::kCHW32), "non-linear formats must be rejected");

  DataType in_types[9], out_types[3];
  for (int i = 0; i < 9; ++i) in_types[i] = in[i].type;
  require(build->getOutputDataTypes(out_types, 3, in_types, 9) == 0 && out_types[0] == t &&
              out_types[1] == DataType::kFLOAT && out_types[2] == DataType::kFLOAT,
          "getOutputDataTypes");

  // dims: wildcards accepted at build time, inconsistent shapes refused
  io[AMSU_INPUT_X].desc.dims.d[1] = -1;
  require(build->configurePlugin(io.data(), 9, io.data() + 9, 3) == 0, "configurePlugin with dynamic S");
  io[AMSU_INPUT_X].desc.dims.d[1] = s;
  io[AMSU_INPUT_H_IN].desc.dims.d[2] = hd + 1;
  require(build->configurePlugin(io.data(), 9, io.data() + 9, 3) != 0,
          "configurePlugin must refuse h_in with the wrong head width");
  io[AMSU_INPUT_H_IN].desc.dims.d[2] = hd;
  io[AMSU_INPUT_GAMMA].desc.dims.d[0] = nh + 1;
  require(build->configurePlugin(io.data(), 9, io.data() + 9, 3) != 0,
          "configurePlugin must refuse gamma of the wrong length");
  io[AMSU_INPUT_GAMMA].desc.dims.d[0] = nh;
  require(build->configurePlugin(io.data(), 9, io.data() + 9, 3) == 0, "configurePlugin with the contract's shapes");
  require(
      build->getTimingCacheID() != nullptr && std::strstr(build->getTimingCacheID(), AMSU_ATTR_NUM_HEADS) != nullptr,
      "timing cache ID");

  // --- runtime phase: serialise, recreate as deserialisation does, attach to a context
  std::unique_ptr<nvinfer1::IPluginV3> attached = deserialize_and_attach(*built, *creator, "amsu0");
  nvinfer1::IPluginV3OneRuntime* runtime = runtime_of(*attached);
  require(runtime->onShapeChange(in.data(), 9, out.data(), 3) == 0, "onShapeChange with the contract's shapes");

  // --- enqueue on host buffers (amsu_cuda_forward is the CPU kernel in this program)
  size_t const tsize = half ? 2 : 4;
  size_t const act = static_cast<size_t>(b * s * d);
  std::vector<char> x = read_file(dir + "/x.bin", act * tsize), q = read_file(dir + "/q.bin", act * tsize),
                    k = read_file(dir + "/k.bin", act * tsize), v = read_file(dir + "/v.bin", act * tsize),
                    w_o = read_file(dir + "/w_o.bin", d * 4), gamma = read_file(dir + "/gamma.bin", nh * 4),
                    beta = read_file(dir + "/beta.bin", d * 4), h = read_file(dir + "/h_in.bin", b * nh * hd * hd * 4),
                    u = read_file(dir + "/u_in.bin", b * d * 4);
  std::vector<char> spikes(act * tsize), h_out(alias ? 0 : h.size()), u_out(alias ? 0 : u.size());
  void const* inputs[9] = {x.data(),     q.data(),    k.data(), v.data(), w_o.data(),
                           gamma.data(), beta.data(), h.data(), u.data()};
  void* outputs[3] = {spikes.data(), alias ? h.data() : h_out.data(), alias ? u.data() : u_out.data()};
  require(runtime->enqueue(in.data(), out.data(), inputs, outputs, nullptr, nullptr) == 0, "enqueue failed");
  write_file(dir + "/s.bin", spikes.data(), spikes.size());
  write_file(dir + "/h_out.bin", outputs[1], h.size());
  write_file(dir + "/u_out.bin", outputs[2], u.size());
  std::printf("OK: plugin host check passed (B=%lld S=%lld D=%lld NH=%d %s%s)\n", static_cast<long long>(b),
              static_cast<long long>(s), static_cast<long long>(d), nh, half ? "f16" : "f32",
              alias ? ", state in place" : "");
  return 0;
}
