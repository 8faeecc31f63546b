/* AMSU TensorRT plugin: shapes, types and formats per the op contract, execution by amsu_cuda_forward. */
#include "amsu_trt_plugin.h"

#include "amsu_kernels.h"
#include "contract_shapes.h"

namespace astroedge {
namespace trt {

// The port logic below is written for the contract's 9 inputs and 3 outputs: a contract that changes
// them must fail this build rather than produce a plugin that reads the wrong buffers.
static_assert(AMSU_NUM_INPUTS == 9 && AMSU_NUM_OUTPUTS == 3, "op contract ports changed: update the TensorRT plugin");

namespace {

constexpr int32_t kNbInputs = AMSU_NUM_INPUTS;
constexpr int32_t kNbOutputs = AMSU_NUM_OUTPUTS;

char const* input_name(int32_t i) { return AMSU_INPUT_SPECS[i].name; }

/* Whether port `pos` (inputs first, then outputs, as supportsFormatCombination numbers them) carries
 * the type parameter T (float32 or float16) in the contract; every other port is float32 there. */
bool is_t_port(int32_t pos) {
  AstroedgePortSpec const& spec = pos < kNbInputs ? AMSU_INPUT_SPECS[pos] : AMSU_OUTPUT_SPECS[pos - kNbInputs];
  return spec.onnx_type == 0;
}

/* Checks the input shapes against the contract's symbolic dims (amsu_contract.h): B, S, D from x, NH
 * from the field, HD = D / NH. A -1 (unknown at build time) matches anything. Returns "" when
 * consistent, else a one-line reason naming the input. */
std::string check_input_dims(Dims const* in, int32_t num_heads) {
  for (int32_t i = 0; i < kNbInputs; ++i) {
    if (in[i].nbDims != AMSU_INPUT_SPECS[i].rank) {
      return std::string("input '") + input_name(i) + "' has shape " + dims_string(in[i]) + ", expected rank " +
             std::to_string(AMSU_INPUT_SPECS[i].rank) + " " + AMSU_INPUT_SPECS[i].shape +
             " (op contract astroedge/contract/amsu.json)";
    }
  }
  Dims const& x = in[AMSU_INPUT_X];
  int64_t const d = x.d[2];
  if (d >= 0 && d % num_heads != 0) {
    return "D = " + std::to_string(d) +
           " (last dim of x) is not divisible by num_heads = " + std::to_string(num_heads) +
           "; export with a head count that divides D";
  }
  astroedge::Symbols const symbols{
      {"B", x.d[0]}, {"S", x.d[1]}, {"D", d}, {"NH", num_heads}, {"HD", d >= 0 ? d / num_heads : -1}};
  for (int32_t i = 0; i < kNbInputs; ++i) {
    astroedge::Shape const want = astroedge::resolve(AMSU_INPUT_SPECS[i].dims, AMSU_INPUT_SPECS[i].rank, symbols);
    if (!astroedge::shape_matches(in[i].d, static_cast<size_t>(in[i].nbDims), want)) {
      return std::string("input '") + input_name(i) + "' has shape " + dims_string(in[i]) + ": expected " +
             AMSU_INPUT_SPECS[i].shape + " = " + astroedge::shape_str(want) + " (B, S, D from x " + dims_string(x) +
             ", NH = " + AMSU_ATTR_NUM_HEADS + " = " + std::to_string(num_heads) + ", -1 = any)";
    }
  }
  return std::string();
}

AmsuDType kernel_dtype(DataType type) { return type == DataType::kHALF ? AMSU_FLOAT16 : AMSU_FLOAT32; }

}  // namespace

// ---------------------------------------------------------------------------------------------------
// AmsuPlugin

std::string AmsuPlugin::check_inputs(Dims const* dims, DataType const* /*types*/, int32_t /*nbInputs*/) const {
  // Types are settled by supportsFormatCombination; PluginBase checked the count.
  return check_input_dims(dims, params_.num_heads);
}

int32_t AmsuPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                                       int32_t nbInputs) const noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || !is_float_or_half(inputTypes[AMSU_INPUT_X])) return -1;
  outputTypes[AMSU_OUTPUT_S] = inputTypes[AMSU_INPUT_X];
  outputTypes[AMSU_OUTPUT_H_OUT] = DataType::kFLOAT;
  outputTypes[AMSU_OUTPUT_U_OUT] = DataType::kFLOAT;
  return 0;
}

int32_t AmsuPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                                    int32_t /*nbShapeInputs*/, DimsExprs* outputs, int32_t nbOutputs,
                                    nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept {
  // The outputs take the inputs' dimension expressions as they are, so B and S stay symbolic (dynamic).
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) return -1;
  outputs[AMSU_OUTPUT_S] = inputs[AMSU_INPUT_X];
  outputs[AMSU_OUTPUT_H_OUT] = inputs[AMSU_INPUT_H_IN];
  outputs[AMSU_OUTPUT_U_OUT] = inputs[AMSU_INPUT_U_IN];
  return 0;
}

bool AmsuPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                           int32_t nbOutputs) noexcept {
  if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs) return false;
  PluginTensorDesc const& desc = inOut[pos].desc;
  if (desc.format != TensorFormat::kLINEAR) return false;
  if (!is_t_port(pos)) return desc.type == DataType::kFLOAT;
  // x decides T; the other T ports (all at positions after x) must follow it.
  return pos == AMSU_INPUT_X ? is_float_or_half(desc.type) : desc.type == inOut[AMSU_INPUT_X].desc.type;
}

// Scratch of the CUDA kernel's chunkwise prefill, sized for the profile's largest x: enough for every
// shape the profile admits (amsu_cuda_workspace_bytes is non-decreasing in batch and seq).
size_t AmsuPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                    DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept {
  if (nbInputs != kNbInputs) return 0;
  Dims const& x = inputs[AMSU_INPUT_X].max;
  if (x.nbDims != 3) return 0;
  AmsuShape const largest{x.d[0], x.d[1], x.d[2], params_.num_heads};
  return amsu_cuda_workspace_bytes(&largest);
}

int32_t AmsuPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                            void const* const* inputs, void* const* outputs, void* workspace,
                            cudaStream_t stream) noexcept {
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
  return kernel_result(rc, AMSU_OK, "amsu_cuda_forward_ws", amsu_error_string(rc),
                       rc == AMSU_ERR_CUDA ? amsu_cuda_last_error() : nullptr);
}

}  // namespace trt
}  // namespace astroedge
