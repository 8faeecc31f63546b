/* SpikeMatMul as a TensorRT IPluginV3 (TensorRT 10.3 .. 11.x): the op contract
 * astroedge/contract/spikematmul.json on the GPU, computed by spikematmul_cuda_forward
 * (plugins/spikematmul/kernels/spikematmul_kernels.h) on the enqueue stream.
 *
 * Same pattern as the AMSU plugin (amsu_trt_plugin.h): one object implements core, build and runtime;
 * its whole state is Params (two node attributes); no device memory, no workspace. Inputs: spikes,
 * weight, then the optional float32 inputs that are present: scale (int8 and int4 weights, required
 * there) and bias; the weight's type picks the format (float32, float16, int8, uint8 = int4).
 */
#ifndef ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_
#define ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_

#include <string>
#include <vector>

#include "NvInferRuntime.h"
#include "spikematmul_trt_fields.h"
#include "trt_log.h"

namespace astroedge {
namespace trt {

class SpikeMatMulPlugin final : public nvinfer1::IPluginV3,
                                public nvinfer1::IPluginV3OneCore,
                                public nvinfer1::IPluginV3OneBuild,
                                public nvinfer1::IPluginV3OneRuntime {
 public:
  explicit SpikeMatMulPlugin(smm::Params const& params);
  ~SpikeMatMulPlugin() override = default;

  // IPluginV3
  nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
  nvinfer1::IPluginV3* clone() noexcept override;

  // IPluginV3OneCore
  char const* getPluginName() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  char const* getPluginNamespace() const noexcept override;

  // IPluginV3OneBuild
  int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs, nvinfer1::DynamicPluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
  int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs, nvinfer1::DataType const* inputTypes,
                             int32_t nbInputs) const noexcept override;
  int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs, int32_t nbShapeInputs,
                          nvinfer1::DimsExprs* outputs, int32_t nbOutputs, nvinfer1::IExprBuilder& exprBuilder) noexcept override;
  bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                 int32_t nbOutputs) noexcept override;
  int32_t getNbOutputs() const noexcept override;
  size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs, nvinfer1::DynamicPluginTensorDesc const* outputs,
                          int32_t nbOutputs) const noexcept override;
  char const* getTimingCacheID() noexcept override;
  char const* getMetadataString() noexcept override;

  // IPluginV3OneRuntime
  int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                        int32_t nbOutputs) noexcept override;
  int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc, void const* const* inputs,
                  void* const* outputs, void* workspace, cudaStream_t stream) noexcept override;
  nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

 private:
  // "" when the inputs (count, types, shapes; -1 = unknown) follow the contract, else the reason.
  std::string check_inputs(nvinfer1::Dims const* dims, nvinfer1::DataType const* types, int32_t nbInputs) const;

  smm::Params params_;
  int32_t nb_inputs_ = 0;  // inputs present (2 to 4), kept by onShapeChange for enqueue
  std::string description_;
  std::vector<nvinfer1::PluginField> serialized_fields_;
  nvinfer1::PluginFieldCollection serialized_collection_{};
};

class SpikeMatMulPluginCreator final : public nvinfer1::IPluginCreatorV3One {
 public:
  SpikeMatMulPluginCreator();
  ~SpikeMatMulPluginCreator() override = default;

  nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                    nvinfer1::TensorRTPhase phase) noexcept override;
  nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
  char const* getPluginName() const noexcept override;
  char const* getPluginVersion() const noexcept override;
  char const* getPluginNamespace() const noexcept override;

 private:
  std::vector<nvinfer1::PluginField> field_names_;
  nvinfer1::PluginFieldCollection field_collection_{};
};

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_SPIKEMATMUL_TRT_PLUGIN_H_
