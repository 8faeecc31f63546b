/* AMSU TensorRT plugin: shapes, types and formats per the op contract, execution by amsu_cuda_forward. */
#include "amsu_trt_plugin.h"

#include <exception>

#include "amsu_kernels.h"
#include "contract_shapes.h"

namespace astroedge {
namespace trt {

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::ILogger;
using nvinfer1::PluginField;
using nvinfer1::PluginFieldType;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;

// The port logic below is written for the contract's 9 inputs and 3 outputs: a contract that changes
// them must fail this build rather than produce a plugin that reads the wrong buffers.
static_assert(AMSU_NUM_INPUTS == 9 && AMSU_NUM_OUTPUTS == 3, "op contract ports changed: update the TensorRT plugin");

namespace {

constexpr int32_t kNbInputs = AMSU_NUM_INPUTS;
constexpr int32_t kNbOutputs = AMSU_NUM_OUTPUTS;

std::string prefix() { return std::string(kPluginNamespace) + "::" + kPluginName + " plugin: "; }

char const* input_name(int32_t i) { return AMSU_INPUT_SPECS[i].name; }

/* Whether port `pos` (inputs first, then outputs, as supportsFormatCombination numbers them) carries
 * the type parameter T (float32 or float16) in the contract; every other port is float32 there. */
bool is_t_port(int32_t pos) {
  AstroedgePortSpec const& spec = pos < kNbInputs ? AMSU_INPUT_SPECS[pos] : AMSU_OUTPUT_SPECS[pos - kNbInputs];
  return spec.onnx_type == 0;
}

bool is_t_type(DataType type) { return type == DataType::kFLOAT || type == DataType::kHALF; }

std::string dims_string(Dims const& d) { return astroedge::shape_str(d.d, static_cast<size_t>(d.nbDims)); }

/* Checks the input shapes against the contract's symbolic dims (amsu_contract.h): B, S, D from x, NH
 * from the field, HD = D / NH. A -1 (unknown at build time) matches anything. Returns "" when
 * consistent, else a one-line reason naming the input. */
std::string check_input_dims(Dims const* in, int32_t num_heads) {
  for (int32_t i = 0; i < kNbInputs; ++i) {
    if (in[i].nbDims != AMSU_INPUT_SPECS[i].rank) {
      return std::string("input '") + input_name(i) + "' has shape " + dims_string(in[i]) + ", expected rank " +
             std::to_string(AMSU_INPUT_SPECS[i].rank) + " " + AMSU_INPUT_SPECS[i].shape + " (op contract astroedge/contract/amsu.json)";
    }
  }
  Dims const& x = in[AMSU_INPUT_X];
  int64_t const d = x.d[2];
  if (d >= 0 && d % num_heads != 0) {
    return "D = " + std::to_string(d) + " (last dim of x) is not divisible by num_heads = " + std::to_string(num_heads) +
           "; export with a head count that divides D";
  }
  astroedge::Symbols const symbols{{"B", x.d[0]}, {"S", x.d[1]}, {"D", d}, {"NH", num_heads}, {"HD", d >= 0 ? d / num_heads : -1}};
  for (int32_t i = 0; i < kNbInputs; ++i) {
    astroedge::Shape const want = astroedge::resolve(AMSU_INPUT_SPECS[i].dims, AMSU_INPUT_SPECS[i].rank, symbols);
    if (!astroedge::shape_matches(in[i].d, static_cast<size_t>(in[i].nbDims), want)) {
      return std::string("input '") + input_name(i) + "' has shape " + dims_string(in[i]) + ": expected " + AMSU_INPUT_SPECS[i].shape + " = " +
             astroedge::shape_str(want) + " (B, S, D from x " + dims_string(x) + ", NH = " + AMSU_ATTR_NUM_HEADS + " = " + std::to_string(num_heads) +
             ", -1 = any)";
    }
  }
  return std::string();
}

AmsuDType kernel_dtype(DataType type) { return type == DataType::kHALF ? AMSU_FLOAT16 : AMSU_FLOAT32; }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// AmsuPlugin

AmsuPlugin::AmsuPlugin(AmsuParams const& params) : params_(params), description_(describe(params)) {}

nvinfer1::IPluginCapability* AmsuPlugin::getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept {
  switch (type) {
    case nvinfer1::PluginCapabilityType::kCORE: return static_cast<nvinfer1::IPluginV3OneCore*>(this);
    case nvinfer1::PluginCapabilityType::kBUILD: return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
    case nvinfer1::PluginCapabilityType::kRUNTIME: return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
  }
  return nullptr;
}

nvinfer1::IPluginV3* AmsuPlugin::clone() noexcept {
  try {
    return new AmsuPlugin(params_);
  } catch (std::exception const& e) {
    log(ILogger::Severity::kERROR, prefix() + "clone failed: " + e.what());
    return nullptr;
  }
}

char const* AmsuPlugin::getPluginName() const noexcept { return kPluginName; }
char const* AmsuPlugin::getPluginVersion() const noexcept { return kPluginVersion; }
char const* AmsuPlugin::getPluginNamespace() const noexcept { return kPluginNamespace; }

int32_t AmsuPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                                    int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) {
    log(ILogger::Severity::kERROR, prefix() + "got " + std::to_string(nbInputs) + " inputs and " + std::to_string(nbOutputs) +
                                       " outputs, the op contract has " + std::to_string(kNbInputs) + " and " + std::to_string(kNbOutputs));
    return -1;
  }
  try {
    Dims dims[kNbInputs];
    for (int32_t i = 0; i < kNbInputs; ++i) dims[i] = in[i].desc.dims;
    std::string const error = check_input_dims(dims, params_.num_heads);
    if (!error.empty()) {
      log(ILogger::Severity::kERROR, prefix() + error);
      return -1;
    }
  } catch (std::exception const& e) {
    log(ILogger::Severity::kERROR, prefix() + "configurePlugin failed: " + e.what());
    return -1;
  }
  return 0;
}

int32_t AmsuPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || !is_t_type(inputTypes[AMSU_INPUT_X])) return -1;
  outputTypes[AMSU_OUTPUT_S] = inputTypes[AMSU_INPUT_X];
  outputTypes[AMSU_OUTPUT_H_OUT] = DataType::kFLOAT;
  outputTypes[AMSU_OUTPUT_U_OUT] = DataType::kFLOAT;
  return 0;
}

int32_t AmsuPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                    DimsExprs* outputs, int32_t nbOutputs, nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept {
  // The outputs take the inputs' dimension expressions as they are, so B and S stay symbolic (dynamic).
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
  outputs[AMSU_OUTPUT_S] = inputs[AMSU_INPUT_X];
  outputs[AMSU_OUTPUT_H_OUT] = inputs[AMSU_INPUT_H_IN];
  outputs[AMSU_OUTPUT_U_OUT] = inputs[AMSU_INPUT_U_IN];
  return 0;
}

bool AmsuPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs) return false;
  PluginTensorDesc const& desc = inOut[pos].desc;
  if (desc.format != TensorFormat::kLINEAR) return false;
  if (!is_t_port(pos)) return desc.type == DataType::kFLOAT;
  // x decides T; the other T ports (all at positions after x) must follow it.
  return pos == AMSU_INPUT_X ? is_t_type(desc.type) : desc.type == inOut[AMSU_INPUT_X].desc.type;
}

int32_t AmsuPlugin::getNbOutputs() const noexcept { return kNbOutputs; }

// Scratch of the CUDA kernel's chunkwise prefill, sized for the profile's largest x: enough for every
// shape the profile admits (amsu_cuda_workspace_bytes is non-decreasing in batch and seq).
size_t AmsuPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs, DynamicPluginTensorDesc const* /*outputs*/,
                                    int32_t /*nbOutputs*/) const noexcept {
  if (nbInputs != kNbInputs) return 0;
  Dims const& x = inputs[AMSU_INPUT_X].max;
  if (x.nbDims != 3) return 0;
  AmsuShape const largest{x.d[0], x.d[1], x.d[2], params_.num_heads};
  return amsu_cuda_workspace_bytes(&largest);
}

char const* AmsuPlugin::getTimingCacheID() noexcept { return description_.c_str(); }
char const* AmsuPlugin::getMetadataString() noexcept { return description_.c_str(); }

int32_t AmsuPlugin::onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
  try {
    Dims dims[kNbInputs];
    for (int32_t i = 0; i < kNbInputs; ++i) dims[i] = in[i].dims;
    std::string const error = check_input_dims(dims, params_.num_heads);
    if (!error.empty()) {
      log(ILogger::Severity::kERROR, prefix() + error);
      return -1;
    }
  } catch (std::exception const& e) {
    log(ILogger::Severity::kERROR, prefix() + "onShapeChange failed: " + e.what());
    return -1;
  }
  return 0;
}

int32_t AmsuPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/, void const* const* inputs,
                            void* const* outputs, void* workspace, cudaStream_t stream) noexcept {
  Dims const& x = inputDesc[AMSU_INPUT_X].dims;
  AmsuShape const shape{x.d[0], x.d[1], x.d[2], params_.num_heads};
  AmsuAttrs const attrs{params_.threshold, params_.eps};
  // h_out may be the very buffer of h_in (and u_out of u_in): the kernel updates state in place.
  AmsuBuffers const buffers{
      inputs[AMSU_INPUT_X],
      inputs[AMSU_INPUT_Q],
      inputs[AMSU_INPUT_K],
      inputs[AMSU_INPUT_V],
      static_cast<float const*>(inputs[AMSU_INPUT_W_O]),
      static_cast<float const*>(inputs[AMSU_INPUT_GAMMA]),
      static_cast<float const*>(inputs[AMSU_INPUT_BETA]),
      static_cast<float const*>(inputs[AMSU_INPUT_H_IN]),
      static_cast<float const*>(inputs[AMSU_INPUT_U_IN]),
      outputs[AMSU_OUTPUT_S],
      static_cast<float*>(outputs[AMSU_OUTPUT_H_OUT]),
      static_cast<float*>(outputs[AMSU_OUTPUT_U_OUT]),
  };
  // TensorRT allocated getWorkspaceSize's bytes for the largest shape; this shape needs at most that.
  int const rc = amsu_cuda_forward_ws(&shape, attrs, kernel_dtype(inputDesc[AMSU_INPUT_X].type), &buffers, workspace,
                                      amsu_cuda_workspace_bytes(&shape), stream);
  if (rc != AMSU_OK) {
    try {
      std::string message = prefix() + "amsu_cuda_forward_ws failed: " + amsu_error_string(rc);
      if (rc == AMSU_ERR_CUDA) message += std::string(" (") + amsu_cuda_last_error() + ")";
      log(ILogger::Severity::kERROR, message);
    } catch (std::exception const&) {
      // Out of memory while formatting: the non-zero status still reaches TensorRT.
    }
    return rc;
  }
  return 0;
}

nvinfer1::IPluginV3* AmsuPlugin::attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept {
  // Nothing per context: no workspace, no allocator, no cuBLAS handle.
  return clone();
}

nvinfer1::PluginFieldCollection const* AmsuPlugin::getFieldsToSerialize() noexcept {
  // Rebuilt on each call so the data pointers name this object's params_, whichever copy is asked.
  try {
    serialized_fields_.clear();
    serialized_fields_.emplace_back(AMSU_ATTR_NUM_HEADS, &params_.num_heads, PluginFieldType::kINT32, 1);
    serialized_fields_.emplace_back(AMSU_ATTR_THRESHOLD, &params_.threshold, PluginFieldType::kFLOAT32, 1);
    serialized_fields_.emplace_back(AMSU_ATTR_EPS, &params_.eps, PluginFieldType::kFLOAT32, 1);
  } catch (std::exception const& e) {
    log(ILogger::Severity::kERROR, prefix() + "getFieldsToSerialize failed: " + e.what());
    return nullptr;
  }
  serialized_collection_.nbFields = static_cast<int32_t>(serialized_fields_.size());
  serialized_collection_.fields = serialized_fields_.data();
  return &serialized_collection_;
}

// ---------------------------------------------------------------------------------------------------
// AmsuPluginCreator

namespace {

PluginFieldType to_trt(FieldKind kind) { return kind == FieldKind::kInt32 ? PluginFieldType::kINT32 : PluginFieldType::kFLOAT32; }

FieldKind from_trt(PluginFieldType type) {
  switch (type) {
    case PluginFieldType::kINT32: return FieldKind::kInt32;
    case PluginFieldType::kINT64: return FieldKind::kInt64;
    case PluginFieldType::kFLOAT32: return FieldKind::kFloat32;
    case PluginFieldType::kFLOAT64: return FieldKind::kFloat64;
    default: return FieldKind::kOther;
  }
}

}  // namespace

AmsuPluginCreator::AmsuPluginCreator() {
  for (FieldSpec const& spec : kFieldSpecs) field_names_.emplace_back(spec.name, nullptr, to_trt(spec.kind), 1);
  field_collection_.nbFields = static_cast<int32_t>(field_names_.size());
  field_collection_.fields = field_names_.data();
}

nvinfer1::IPluginV3* AmsuPluginCreator::createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                                     nvinfer1::TensorRTPhase /*phase*/) noexcept {
  // Build and runtime phases receive the same three fields (getFieldsToSerialize writes what this reads).
  try {
    std::vector<FieldView> views;
    int32_t const count = fc != nullptr ? fc->nbFields : 0;
    for (int32_t i = 0; i < count && fc->fields != nullptr; ++i) {
      PluginField const& f = fc->fields[i];
      views.push_back(FieldView{f.name, from_trt(f.type), f.data, f.length});
    }
    AmsuParams params;
    std::string ignored;
    std::string const error = parse_fields(views.data(), static_cast<int32_t>(views.size()), &params, &ignored);
    std::string const layer = std::string(" (layer '") + (name != nullptr ? name : "") + "')";
    if (!error.empty()) {
      log(ILogger::Severity::kERROR, error + layer);
      return nullptr;
    }
    if (!ignored.empty()) log(ILogger::Severity::kWARNING, prefix() + "ignoring unknown fields " + ignored + layer);
    return new AmsuPlugin(params);
  } catch (std::exception const& e) {
    log(ILogger::Severity::kERROR, prefix() + "createPlugin failed: " + e.what());
    return nullptr;
  }
}

nvinfer1::PluginFieldCollection const* AmsuPluginCreator::getFieldNames() noexcept { return &field_collection_; }
char const* AmsuPluginCreator::getPluginName() const noexcept { return kPluginName; }
char const* AmsuPluginCreator::getPluginVersion() const noexcept { return kPluginVersion; }
char const* AmsuPluginCreator::getPluginNamespace() const noexcept { return kPluginNamespace; }

}  // namespace trt
}  // namespace astroedge
