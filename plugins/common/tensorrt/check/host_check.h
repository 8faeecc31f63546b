/* What every plugin's host check (plugins/<op>/tensorrt/check/plugin_host_check.cc) does the same way:
 * stop on the first failed check, read and write raw tensors, describe a tensor as TensorRT would, find
 * the op's creator as IPluginRegistry::loadLibrary does, and take a built plugin through serialise ->
 * runtime-phase createPlugin -> attachToContext as deserialisation does. Header-only: each host check
 * is one program built by plugins/scripts/check_tensorrt_plugin.sh from the plugin objects.
 */
#ifndef ASTROEDGE_TRT_HOST_CHECK_H_
#define ASTROEDGE_TRT_HOST_CHECK_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "NvInferRuntime.h"

extern "C" nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators);

namespace astroedge {
namespace host_check {

// TensorRT's names that every host check spells out (they bring them in with this namespace).
using nvinfer1::DataType;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginFieldType;

/* Prints "FAIL: what" and exits 1 unless ok. */
inline void require(bool ok, std::string const& what) {
  if (!ok) {
    std::printf("FAIL: %s\n", what.c_str());
    std::exit(1);
  }
}

inline std::vector<char> read_file(std::string const& path, size_t bytes) {
  std::vector<char> data(bytes);
  FILE* f = std::fopen(path.c_str(), "rb");
  require(f != nullptr, "cannot open " + path);
  require(std::fread(data.data(), 1, bytes, f) == bytes, path + " is shorter than " + std::to_string(bytes) + " bytes");
  std::fclose(f);
  return data;
}

inline void write_file(std::string const& path, void const* data, size_t bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr && std::fwrite(data, 1, bytes, f) == bytes, "cannot write " + path);
  std::fclose(f);
}

/* A linear tensor of `type` with `dims`, as TensorRT describes it to the plugin. */
inline nvinfer1::PluginTensorDesc desc(std::vector<int64_t> const& dims, nvinfer1::DataType type) {
  nvinfer1::PluginTensorDesc d{};
  d.dims.nbDims = static_cast<int32_t>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) d.dims.d[i] = dims[i];
  d.type = type;
  d.format = nvinfer1::TensorFormat::kLINEAR;
  d.scale = 1.0f;
  return d;
}

/* The library's creator named `name` (every creator must be an IPluginCreatorV3One), checked to carry
 * the contract's version and namespace; *count receives how many creators the library lists. */
inline nvinfer1::IPluginCreatorV3One* find_creator(char const* name, char const* version, char const* ns,
                                                   int32_t* count) {
  nvinfer1::IPluginCreatorInterface* const* creators = getCreators(*count);
  nvinfer1::IPluginCreatorV3One* creator = nullptr;
  for (int32_t i = 0; i < *count; ++i) {
    require(creators[i] != nullptr && std::strcmp(creators[i]->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0,
            "creator is not IPluginCreatorV3One");
    auto* c = static_cast<nvinfer1::IPluginCreatorV3One*>(creators[i]);
    if (std::strcmp(c->getPluginName(), name) == 0) creator = c;
  }
  require(creator != nullptr, std::string("getCreators must list the ") + name + " creator");
  require(std::strcmp(creator->getPluginVersion(), version) == 0, "creator version");
  require(std::strcmp(creator->getPluginNamespace(), ns) == 0, "creator namespace");
  return creator;
}

inline nvinfer1::IPluginV3OneRuntime* runtime_of(nvinfer1::IPluginV3& plugin) {
  auto* runtime = static_cast<nvinfer1::IPluginV3OneRuntime*>(
      plugin.getCapabilityInterface(nvinfer1::PluginCapabilityType::kRUNTIME));
  require(runtime != nullptr && std::strcmp(runtime->getInterfaceInfo().kind, "PLUGIN_V3ONE_RUNTIME") == 0,
          "kRUNTIME capability has the wrong interface");
  return runtime;
}

/* The built plugin as an engine gets it back: its serialised fields recreate it in the runtime phase,
 * then attachToContext gives the execution context's copy (returned). */
inline std::unique_ptr<nvinfer1::IPluginV3> deserialize_and_attach(nvinfer1::IPluginV3& built,
                                                                   nvinfer1::IPluginCreatorV3One& creator,
                                                                   char const* layer) {
  std::unique_ptr<nvinfer1::IPluginV3> loaded(
      creator.createPlugin(layer, runtime_of(built)->getFieldsToSerialize(), nvinfer1::TensorRTPhase::kRUNTIME));
  require(loaded != nullptr, "createPlugin from getFieldsToSerialize() returned nullptr");
  std::unique_ptr<nvinfer1::IPluginV3> attached(runtime_of(*loaded)->attachToContext(nullptr));
  require(attached != nullptr, "attachToContext returned nullptr");
  return attached;
}

}  // namespace host_check
}  // namespace astroedge

#endif  // ASTROEDGE_TRT_HOST_CHECK_H_
