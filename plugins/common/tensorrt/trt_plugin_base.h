/* The IPluginV3 boilerplate every astroedge TensorRT plugin shares, written once (TensorRT 10.3 .. 11.x).
 *
 * Why a template: the AMSU and SpikeMatMul plugins differ only in their ports, shape rules and kernel
 * call; identity, fields, serialisation, cloning, capability lookup, logging and the creator are the
 * same code over different op contracts. An op supplies two things:
 *
 *   Op (TensorRT-free, in its *_trt_fields.h, from the generated <op>_contract.h):
 *     using Params = ...;                       the node attributes, the plugin's whole creation state
 *     static constexpr char const* kName, kVersion, kNamespace;
 *     static constexpr int32_t kNumFields;  static constexpr FieldSpec const* kFieldSpecs;
 *     static std::string parse(FieldView const*, int32_t, Params*, std::string* ignored);
 *     static std::string describe(Params const&);
 *     static void field_values(Params const&, void const** values);   kNumFields pointers, spec order
 *
 *   Derived (the plugin, final, PluginBase<Derived, Op> as base):
 *     static constexpr int32_t kMinInputs, kMaxInputs, kNbOutputs;
 *     std::string check_inputs(Dims const*, DataType const*, int32_t nbInputs) const;   "" or the reason
 *     getOutputDataTypes, getOutputShapes, supportsFormatCombination, getWorkspaceSize, enqueue;
 *     optionally void shapes_accepted(int32_t nbInputs) (called by onShapeChange once the inputs pass).
 *
 * One object implements the three V3 capabilities (core, build, runtime), the pattern TensorRT's own
 * V3 plugins use. No device memory is owned: clone and attachToContext copy the object, serialisation
 * writes the fields the creator reads.
 */
#ifndef ASTROEDGE_TRT_PLUGIN_BASE_H_
#define ASTROEDGE_TRT_PLUGIN_BASE_H_

#include <exception>
#include <string>
#include <vector>

#include "NvInferRuntime.h"
#include "contract_shapes.h"
#include "trt_fields_common.h"
#include "trt_log.h"

namespace astroedge {
namespace trt {

// TensorRT's names that every plugin's code spells out, by their plain names in astroedge::trt.
using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::ILogger;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

inline nvinfer1::PluginFieldType to_trt(FieldKind kind) {
  switch (kind) {
    case FieldKind::kInt32:
      return nvinfer1::PluginFieldType::kINT32;
    case FieldKind::kInt64:
      return nvinfer1::PluginFieldType::kINT64;
    case FieldKind::kFloat64:
      return nvinfer1::PluginFieldType::kFLOAT64;
    default:
      return nvinfer1::PluginFieldType::kFLOAT32;
  }
}

inline FieldKind from_trt(nvinfer1::PluginFieldType type) {
  switch (type) {
    case nvinfer1::PluginFieldType::kINT32:
      return FieldKind::kInt32;
    case nvinfer1::PluginFieldType::kINT64:
      return FieldKind::kInt64;
    case nvinfer1::PluginFieldType::kFLOAT32:
      return FieldKind::kFloat32;
    case nvinfer1::PluginFieldType::kFLOAT64:
      return FieldKind::kFloat64;
    default:
      return FieldKind::kOther;
  }
}

/* The activation types of the contracts' type parameter T: float32 or float16. */
inline bool is_float_or_half(nvinfer1::DataType type) {
  return type == nvinfer1::DataType::kFLOAT || type == nvinfer1::DataType::kHALF;
}

/* "[2, -1, 64]": a shape in messages, -1 = unknown at build time. */
inline std::string dims_string(nvinfer1::Dims const& d) {
  return astroedge::shape_str(d.d, static_cast<size_t>(d.nbDims));
}

/* "astroedge::AMSU plugin: ", how every message of the op's plugin and creator begins. */
template <class Op>
std::string plugin_prefix() {
  return std::string(Op::kNamespace) + "::" + Op::kName + " plugin: ";
}

template <class Derived, class Op>
class PluginBase : public nvinfer1::IPluginV3,
                   public nvinfer1::IPluginV3OneCore,
                   public nvinfer1::IPluginV3OneBuild,
                   public nvinfer1::IPluginV3OneRuntime {
 public:
  using Params = typename Op::Params;

  explicit PluginBase(Params const& params) : params_(params), description_(Op::describe(params)) {}
  // The serialised fields point into their own object and are rebuilt on each request: not copied.
  PluginBase(PluginBase const& other) : params_(other.params_), description_(other.description_) {}
  PluginBase& operator=(PluginBase const&) = delete;
  ~PluginBase() override = default;

  // IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override {
    switch (type) {
      case nvinfer1::PluginCapabilityType::kCORE:
        return static_cast<nvinfer1::IPluginV3OneCore*>(this);
      case nvinfer1::PluginCapabilityType::kBUILD:
        return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
      case nvinfer1::PluginCapabilityType::kRUNTIME:
        return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
    }
    return nullptr;
  }

  nvinfer1::IPluginV3* clone() noexcept override {
    try {
      return new Derived(static_cast<Derived const&>(*this));
    } catch (std::exception const& e) {
      log(nvinfer1::ILogger::Severity::kERROR, prefix() + "clone failed: " + e.what());
      return nullptr;
    }
  }

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override { return Op::kName; }
  char const* getPluginVersion() const noexcept override { return Op::kVersion; }
  char const* getPluginNamespace() const noexcept override { return Op::kNamespace; }

  // IPluginV3OneBuild (the op-specific ones are Derived's)
  int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
    if (!counts_fit(nbInputs, nbOutputs)) {
      try {
        std::string const inputs =
            Derived::kMinInputs == Derived::kMaxInputs
                ? std::to_string(Derived::kMaxInputs)
                : std::to_string(Derived::kMinInputs) + " to " + std::to_string(Derived::kMaxInputs);
        log(nvinfer1::ILogger::Severity::kERROR, prefix() + "got " + std::to_string(nbInputs) + " inputs and " +
                                                     std::to_string(nbOutputs) + " outputs, the op contract has " +
                                                     inputs + " and " + std::to_string(Derived::kNbOutputs));
      } catch (std::exception const&) {
        // Out of memory while formatting: the non-zero status still reaches TensorRT.
      }
      return -1;
    }
    try {
      nvinfer1::Dims dims[Derived::kMaxInputs];
      nvinfer1::DataType types[Derived::kMaxInputs];
      for (int32_t i = 0; i < nbInputs; ++i) {
        dims[i] = in[i].desc.dims;
        types[i] = in[i].desc.type;
      }
      std::string const error = derived().check_inputs(dims, types, nbInputs);
      if (!error.empty()) {
        log(nvinfer1::ILogger::Severity::kERROR, prefix() + error);
        return -1;
      }
    } catch (std::exception const& e) {
      log(nvinfer1::ILogger::Severity::kERROR, prefix() + "configurePlugin failed: " + e.what());
      return -1;
    }
    return 0;
  }
  int32_t getNbOutputs() const noexcept override { return Derived::kNbOutputs; }
  char const* getTimingCacheID() noexcept override { return description_.c_str(); }
  char const* getMetadataString() noexcept override { return description_.c_str(); }

  // IPluginV3OneRuntime (enqueue is Derived's)
  int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs,
                        nvinfer1::PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept override {
    if (!counts_fit(nbInputs, nbOutputs)) return -1;
    try {
      nvinfer1::Dims dims[Derived::kMaxInputs];
      nvinfer1::DataType types[Derived::kMaxInputs];
      for (int32_t i = 0; i < nbInputs; ++i) {
        dims[i] = in[i].dims;
        types[i] = in[i].type;
      }
      std::string const error = derived().check_inputs(dims, types, nbInputs);
      if (!error.empty()) {
        log(nvinfer1::ILogger::Severity::kERROR, prefix() + error);
        return -1;
      }
      derived().shapes_accepted(nbInputs);
    } catch (std::exception const& e) {
      log(nvinfer1::ILogger::Severity::kERROR, prefix() + "onShapeChange failed: " + e.what());
      return -1;
    }
    return 0;
  }

  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override {
    // Nothing per context: no allocator, no cuBLAS handle; TensorRT owns the workspace.
    return clone();
  }

  nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override {
    // Rebuilt on each call so the data pointers name this object's params_, whichever copy is asked.
    try {
      void const* values[Op::kNumFields];
      Op::field_values(params_, values);
      serialized_fields_.clear();
      for (int32_t i = 0; i < Op::kNumFields; ++i) {
        serialized_fields_.emplace_back(Op::kFieldSpecs[i].name, values[i], to_trt(Op::kFieldSpecs[i].kind), 1);
      }
    } catch (std::exception const& e) {
      log(nvinfer1::ILogger::Severity::kERROR, prefix() + "getFieldsToSerialize failed: " + e.what());
      return nullptr;
    }
    serialized_collection_.nbFields = static_cast<int32_t>(serialized_fields_.size());
    serialized_collection_.fields = serialized_fields_.data();
    return &serialized_collection_;
  }

  /* onShapeChange's hook once the inputs passed check_inputs; Derived hides it to keep what enqueue needs. */
  void shapes_accepted(int32_t /*nbInputs*/) {}

 protected:
  static std::string prefix() { return plugin_prefix<Op>(); }

  /* enqueue's result from the kernel's status `rc` (`ok` = success): 0, or rc after logging the
   * function, the kernel's error text and, for CUDA errors (cuda_error not null), CUDA's. */
  static int32_t kernel_result(int rc, int ok, char const* function, char const* error,
                               char const* cuda_error) noexcept {
    if (rc == ok) return 0;
    try {
      std::string message = prefix() + function + " failed: " + error;
      if (cuda_error != nullptr) message += std::string(" (") + cuda_error + ")";
      log(nvinfer1::ILogger::Severity::kERROR, message);
    } catch (std::exception const&) {
      // Out of memory while formatting: the non-zero status still reaches TensorRT.
    }
    return rc;
  }

  Params params_;

 private:
  static bool counts_fit(int32_t nbInputs, int32_t nbOutputs) {
    return nbOutputs == Derived::kNbOutputs && nbInputs >= Derived::kMinInputs && nbInputs <= Derived::kMaxInputs;
  }
  Derived& derived() { return static_cast<Derived&>(*this); }

  std::string description_;  // Op::describe(params_): timing cache ID and metadata
  std::vector<nvinfer1::PluginField> serialized_fields_;
  nvinfer1::PluginFieldCollection serialized_collection_{};
};

/* The creator of Plugin (a PluginBase<Plugin, Op>): advertises Op's fields and builds the plugin from
 * them; build and runtime phases receive the same fields (getFieldsToSerialize writes what this reads). */
template <class Plugin, class Op>
class PluginCreator final : public nvinfer1::IPluginCreatorV3One {
 public:
  PluginCreator() {
    for (int32_t i = 0; i < Op::kNumFields; ++i)
      field_names_.emplace_back(Op::kFieldSpecs[i].name, nullptr, to_trt(Op::kFieldSpecs[i].kind), 1);
    field_collection_.nbFields = static_cast<int32_t>(field_names_.size());
    field_collection_.fields = field_names_.data();
  }
  ~PluginCreator() override = default;

  nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                    nvinfer1::TensorRTPhase /*phase*/) noexcept override {
    try {
      std::vector<FieldView> views;
      int32_t const count = fc != nullptr ? fc->nbFields : 0;
      for (int32_t i = 0; i < count && fc->fields != nullptr; ++i) {
        nvinfer1::PluginField const& f = fc->fields[i];
        views.push_back(FieldView{f.name, from_trt(f.type), f.data, f.length});
      }
      typename Op::Params params;
      std::string ignored;
      std::string const error = Op::parse(views.data(), static_cast<int32_t>(views.size()), &params, &ignored);
      std::string const layer = std::string(" (layer '") + (name != nullptr ? name : "") + "')";
      if (!error.empty()) {
        log(nvinfer1::ILogger::Severity::kERROR, std::string(error).append(layer));
        return nullptr;
      }
      if (!ignored.empty())
        log(nvinfer1::ILogger::Severity::kWARNING, plugin_prefix<Op>() + "ignoring unknown fields " + ignored + layer);
      return new Plugin(params);
    } catch (std::exception const& e) {
      log(nvinfer1::ILogger::Severity::kERROR, plugin_prefix<Op>() + "createPlugin failed: " + e.what());
      return nullptr;
    }
  }
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override { return &field_collection_; }
  char const* getPluginName() const noexcept override { return Op::kName; }
  char const* getPluginVersion() const noexcept override { return Op::kVersion; }
  char const* getPluginNamespace() const noexcept override { return Op::kNamespace; }

 private:
  std::vector<nvinfer1::PluginField> field_names_;
  nvinfer1::PluginFieldCollection field_collection_{};
};

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_TRT_PLUGIN_BASE_H_
