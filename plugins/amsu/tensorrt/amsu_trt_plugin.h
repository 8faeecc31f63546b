/* AMSU as a TensorRT IPluginV3 (TensorRT 10.3 .. 11.x): the op contract astroedge/contract/amsu.json
 * on the GPU, computed by amsu_cuda_forward (plugins/amsu/kernels/amsu_kernels.h) on the enqueue stream.
 *
 * The IPluginV3 boilerplate (capabilities, clone, fields, serialisation, creator) is the shared
 * PluginBase/PluginCreator (plugins/common/tensorrt/trt_plugin_base.h) over AmsuOp; the plugin's whole
 * state is AmsuParams (three node attributes) and no device memory is owned.
 */
#ifndef ASTROEDGE_AMSU_TRT_PLUGIN_H_
#define ASTROEDGE_AMSU_TRT_PLUGIN_H_

#include <string>

#include "NvInferRuntime.h"
#include "amsu_trt_fields.h"
#include "trt_plugin_base.h"

namespace astroedge {
namespace trt {

/* The op-specific part; identity, fields, clone, capabilities and serialisation are PluginBase's. */
class AmsuPlugin final : public PluginBase<AmsuPlugin, AmsuOp> {
 public:
  static constexpr int32_t kMinInputs = AMSU_NUM_INPUTS;
  static constexpr int32_t kMaxInputs = AMSU_NUM_INPUTS;
  static constexpr int32_t kNbOutputs = AMSU_NUM_OUTPUTS;

  explicit AmsuPlugin(AmsuParams const& params) : PluginBase(params) {}

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

  /* For configurePlugin and onShapeChange (PluginBase): "" when the shapes follow the contract, else the reason. */
  std::string check_inputs(nvinfer1::Dims const* dims, nvinfer1::DataType const* types, int32_t nbInputs) const;
};

using AmsuPluginCreator = PluginCreator<AmsuPlugin, AmsuOp>;

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_AMSU_TRT_PLUGIN_H_
