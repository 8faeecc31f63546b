/* SpikeMatMul TensorRT plugin: ports, types and shapes per the op contract, execution by spikematmul_cuda_forward. */
#include "spikematmul_trt_plugin.h"

#include "contract_shapes.h"
#include "spikematmul_kernels.h"

namespace astroedge {
namespace trt {

// Written for the contract's 4 inputs (2 required, scale and bias optional) and 1 output, and for its
// weight formats in the kernel ABI's order: a contract that changes them must fail this build.
static_assert(SPIKEMATMUL_NUM_INPUTS == 4 && SPIKEMATMUL_NUM_OUTPUTS == 1 && SPIKEMATMUL_INPUT_SCALE_OPTIONAL &&
                  SPIKEMATMUL_INPUT_BIAS_OPTIONAL && !SPIKEMATMUL_INPUT_SPIKES_OPTIONAL &&
                  !SPIKEMATMUL_INPUT_WEIGHT_OPTIONAL,
              "SpikeMatMul contract ports changed: update the TensorRT plugin");
static_assert(SPIKEMATMUL_NUM_FORMATS == 4 && SPIKEMATMUL_FORMAT_FLOAT32 == SMM_WEIGHT_FLOAT32 &&
                  SPIKEMATMUL_FORMAT_FLOAT16 == SMM_WEIGHT_FLOAT16 && SPIKEMATMUL_FORMAT_INT8 == SMM_WEIGHT_INT8 &&
                  SPIKEMATMUL_FORMAT_INT4 == SMM_WEIGHT_INT4,
              "SpikeMatMul contract weight formats and SmmWeightFormat must agree");

namespace {

constexpr int32_t kMinInputs = SpikeMatMulPlugin::kMinInputs, kMaxInputs = SpikeMatMulPlugin::kMaxInputs,
                  kNbOutputs = SpikeMatMulPlugin::kNbOutputs;

// TensorRT's type for an ONNX element type of the contract (1 float32, 10 float16, 3 int8, 2 uint8).
DataType trt_type(int onnx_type) {
  switch (onnx_type) {
    case 10:
      return DataType::kHALF;
    case 3:
      return DataType::kINT8;
    case 2:
      return DataType::kUINT8;
    default:
      return DataType::kFLOAT;
  }
}

// The contract's weight format whose weight type is `t`; -1 if none.
int format_of(DataType t) {
  for (int f = 0; f < SPIKEMATMUL_NUM_FORMATS; ++f)
    if (trt_type(SPIKEMATMUL_FORMAT_SPECS[f].weight_onnx_type) == t) return f;
  return -1;
}

// Which of the present inputs after the weight are scale and bias (-1: absent), for `format` and
// `nbInputs` inputs; false when the count does not fit the format.
bool optional_roles(int format, int32_t nbInputs, int32_t* scale, int32_t* bias) {
  const bool needs_scale = SPIKEMATMUL_FORMAT_SPECS[format].scale_rank > 0;
  const int32_t extra = nbInputs - kMinInputs;
  *scale = needs_scale ? SPIKEMATMUL_INPUT_SCALE : -1;
  *bias = extra > (needs_scale ? 1 : 0) ? (needs_scale ? SPIKEMATMUL_INPUT_BIAS : SPIKEMATMUL_INPUT_SCALE) : -1;
  return needs_scale ? (extra == 1 || extra == 2) : (extra == 0 || extra == 1);
}

}  // namespace

std::string SpikeMatMulPlugin::check_inputs(Dims const* dims, DataType const* types, int32_t nbInputs) const {
  if (nbInputs < kMinInputs || nbInputs > kMaxInputs)
    return "got " + std::to_string(nbInputs) + " inputs; the op contract has " + std::to_string(kMinInputs) + " to " +
           std::to_string(kMaxInputs);
  const int format = format_of(types[SPIKEMATMUL_INPUT_WEIGHT]);
  if (format < 0 || !is_float_or_half(types[SPIKEMATMUL_INPUT_SPIKES]))
    return "unsupported input types (spikes float32/float16; weight float32/float16/int8/uint8)";
  const AstroedgeWeightFormatSpec& fmt = SPIKEMATMUL_FORMAT_SPECS[format];
  int32_t scale = -1, bias = -1;
  if (!optional_roles(format, nbInputs, &scale, &bias))
    return std::string(fmt.name) + " weights take " +
           (fmt.scale_rank > 0 ? "a scale and an optional bias" : "no scale, only an optional bias") + "; got " +
           std::to_string(nbInputs - kMinInputs) + " inputs after the weight";
  Dims const& s = dims[SPIKEMATMUL_INPUT_SPIKES];
  if (s.nbDims != SPIKEMATMUL_INPUT_SPIKES_RANK)
    return std::string("input '") + SPIKEMATMUL_INPUT_SPIKES_NAME + "' has shape " + dims_string(s) + ", expected " +
           SPIKEMATMUL_INPUT_SPIKES_SHAPE;
  const int64_t n = params_.out_features, bs = params_.block_size;
  astroedge::Symbols const symbols{{"B", s.d[0]}, {"T", s.d[1]},       {"K", s.d[2]},
                                   {"N", n},      {"N2", (n + 1) / 2}, {"NB", (n + bs - 1) / bs}};
  struct Port {
    int32_t index;
    char const* name;
    char const* shape;
    char const* const* dims;
    int rank;
  };
  std::vector<Port> ports = {
      {SPIKEMATMUL_INPUT_WEIGHT, SPIKEMATMUL_INPUT_WEIGHT_NAME, fmt.weight_shape, fmt.weight_dims, 2}};
  if (scale >= 0)
    ports.push_back({scale, SPIKEMATMUL_INPUT_SCALE_NAME, fmt.scale_shape, fmt.scale_dims, fmt.scale_rank});
  if (bias >= 0)
    ports.push_back({bias, SPIKEMATMUL_INPUT_BIAS_NAME, SPIKEMATMUL_INPUT_BIAS_SHAPE, SPIKEMATMUL_INPUT_BIAS_DIMS,
                     SPIKEMATMUL_INPUT_BIAS_RANK});
  for (Port const& p : ports) {
    astroedge::Shape const want = astroedge::resolve(p.dims, p.rank, symbols);
    if (!astroedge::shape_matches(dims[p.index].d, static_cast<size_t>(dims[p.index].nbDims), want))
      return std::string("input '") + p.name + "' has shape " + dims_string(dims[p.index]) + ": expected " + p.shape +
             " = " + astroedge::shape_str(want) + " (K from spikes " + dims_string(s) +
             ", N = " + SPIKEMATMUL_ATTR_OUT_FEATURES + " = " + std::to_string(n) + ", " + fmt.name +
             " weights, -1 = any)";
  }
  return std::string();
}

int32_t SpikeMatMulPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                              int32_t nbInputs) const noexcept {
  if (nbOutputs != kNbOutputs || nbInputs < kMinInputs || !is_float_or_half(inputTypes[SPIKEMATMUL_INPUT_SPIKES]))
    return -1;
  outputTypes[SPIKEMATMUL_OUTPUT_Y] = inputTypes[SPIKEMATMUL_INPUT_SPIKES];
  return 0;
}

int32_t SpikeMatMulPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                                           int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                           nvinfer1::IExprBuilder& exprBuilder) noexcept {
  // y [B, T, N]: B and T stay the spikes' (symbolic, dynamic) expressions, N is the field.
  if (nbOutputs != kNbOutputs || nbInputs < kMinInputs ||
      inputs[SPIKEMATMUL_INPUT_SPIKES].nbDims != SPIKEMATMUL_OUTPUT_Y_RANK)
    return -1;
  DimsExprs& y = outputs[SPIKEMATMUL_OUTPUT_Y];
  y.nbDims = SPIKEMATMUL_OUTPUT_Y_RANK;
  y.d[0] = inputs[SPIKEMATMUL_INPUT_SPIKES].d[0];
  y.d[1] = inputs[SPIKEMATMUL_INPUT_SPIKES].d[1];
  y.d[2] = exprBuilder.constant(params_.out_features);
  return 0;
}

bool SpikeMatMulPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                                  int32_t nbOutputs) noexcept {
  if (nbOutputs != kNbOutputs || nbInputs < kMinInputs || nbInputs > kMaxInputs || pos < 0 ||
      pos >= nbInputs + nbOutputs)
    return false;
  PluginTensorDesc const& desc = inOut[pos].desc;
  if (desc.format != TensorFormat::kLINEAR) return false;
  if (pos == SPIKEMATMUL_INPUT_SPIKES) return is_float_or_half(desc.type);
  if (pos == SPIKEMATMUL_INPUT_WEIGHT) return format_of(desc.type) >= 0;
  if (pos == nbInputs + SPIKEMATMUL_OUTPUT_Y) return desc.type == inOut[SPIKEMATMUL_INPUT_SPIKES].desc.type;
  return desc.type == DataType::kFLOAT;  // scale, bias
}

size_t SpikeMatMulPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* /*inputs*/, int32_t /*nbInputs*/,
                                           DynamicPluginTensorDesc const* /*outputs*/,
                                           int32_t /*nbOutputs*/) const noexcept {
  return 0;
}

int32_t SpikeMatMulPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                   void const* const* inputs, void* const* outputs, void* /*workspace*/,
                                   cudaStream_t stream) noexcept {
  // onShapeChange validated the count, types and shapes and kept the count; the roles follow from the
  // weight's type.
  int32_t const nb_inputs = nb_inputs_;
  const int format = format_of(inputDesc[SPIKEMATMUL_INPUT_WEIGHT].type);
  int32_t scale = -1, bias = -1;
  if (nb_inputs < kMinInputs || format < 0 || !optional_roles(format, nb_inputs, &scale, &bias)) {
    log(ILogger::Severity::kERROR, prefix() + "enqueue: inputs do not match the weight format");
    return -1;
  }
  Dims const& s = inputDesc[SPIKEMATMUL_INPUT_SPIKES].dims;
  SmmShape const shape{s.d[0], s.d[1], s.d[2], params_.out_features, params_.block_size};
  SmmBuffers const buffers{inputs[SPIKEMATMUL_INPUT_SPIKES], inputs[SPIKEMATMUL_INPUT_WEIGHT],
                           scale >= 0 ? static_cast<float const*>(inputs[scale]) : nullptr,
                           bias >= 0 ? static_cast<float const*>(inputs[bias]) : nullptr,
                           outputs[SPIKEMATMUL_OUTPUT_Y]};
  SmmActType const act =
      inputDesc[SPIKEMATMUL_INPUT_SPIKES].type == DataType::kHALF ? SMM_ACT_FLOAT16 : SMM_ACT_FLOAT32;
  int const rc = spikematmul_cuda_forward(&shape, act, static_cast<SmmWeightFormat>(format), &buffers, stream);
  return kernel_result(rc, SMM_OK, "spikematmul_cuda_forward", spikematmul_error_string(rc),
                       rc == SMM_ERR_CUDA ? spikematmul_cuda_last_error() : nullptr);
}

}  // namespace trt
}  // namespace astroedge
