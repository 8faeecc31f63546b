/* SpikeMatMul as a TensorRT IPluginV3 (TensorRT 10.3 .. 11.x): the op contract
 * astroedge/contract/spikematmul.json on the GPU, computed by spikematmul_cuda_forward
 * (plugins/spikematmul/kernels/spikematmul_kernels.h) on the enqueue stream.
 *
 * The IPluginV3 boilerplate is the shared PluginBase/PluginCreator (plugins/common/tensorrt/
 * trt_plugin_base.h) over smm::Op; its state is Params (two node attributes) and the count of present
 * inputs; no device memory, no workspace. Inputs: spikes,
 * weight, then the optional float32 inputs that are present: scale (int8 and int4 weights, required
 * there) and bias; the weight's type picks the format (float32, float16, int8, uint8 = int4).
 */
#ifndef ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_
#define ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_

#include <string>

#include "NvInferRuntime.h"
#include "spikematmul_trt_fields.h"
#include "trt_plugin_base.h"

namespace astroedge {
namespace trt {

/* The op-specific part; identity, fields, clone, capabilities and serialisation are PluginBase's. */
class SpikeMatMulPlugin final : public PluginBase<SpikeMatMulPlugin, smm::Op> {
 public:
  static constexpr int32_t kMinInputs = 2;  // spikes, weight; then scale and bias when present
  static constexpr int32_t kMaxInputs = SPIKEMATMUL_NUM_INPUTS;
  static constexpr int32_t kNbOutputs = SPIKEMATMUL_NUM_OUTPUTS;

  explicit SpikeMatMulPlugin(smm::Params const& params) : PluginBase(params) {}

  // IPluginV3OneBuild
  int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override;
  int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                          int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                          nvinfer1::IExprBuilder& exprBuilder) noexcept override;
  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                          nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

  // IPluginV3OneRuntime
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                  void const* const* inputs, void* const* outputs, void* workspace,
                  cudaStream_t stream) noexcept override;

  /* For configurePlugin and onShapeChange (PluginBase): "" when the inputs (count, types, shapes;
   * -1 = unknown) follow the contract, else the reason. */
  std::string check_inputs(nvinfer1::Dims const* dims, nvinfer1::DataType const* types, int32_t nbInputs) const;
  /* onShapeChange keeps the count of present inputs for enqueue. */
  void shapes_accepted(int32_t nbInputs) { nb_inputs_ = nbInputs; }

 private:
  int32_t nb_inputs_ = 0;  // inputs present (2 to 4), kept by onShapeChange for enqueue; copied by clone
};

using SpikeMatMulPluginCreator = PluginCreator<SpikeMatMulPlugin, smm::Op>;

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_
