/* Plugin-field views shared by the plugins' TensorRT-free field readers (amsu_trt_fields.h,
 * spikematmul_trt_fields.h): the creator converts nvinfer1::PluginField to FieldView, so the rules for
 * reading fields can be compiled and tested on machines without TensorRT. */
#ifndef ASTROEDGE_TRT_FIELDS_COMMON_H_
#define ASTROEDGE_TRT_FIELDS_COMMON_H_

#include <cstdint>

namespace astroedge {
namespace trt {

/* Element types a field may arrive in. The ONNX parser passes INT attributes as int32 and FLOAT as
 * float32; the 64-bit kinds are accepted for callers of the network API who build fields from numpy's
 * default dtypes. kOther stands for every other nvinfer1::PluginFieldType. */
enum class FieldKind { kInt32, kInt64, kFloat32, kFloat64, kOther };

/* One field as the creator received it: a view, nothing is owned. */
struct FieldView {
  char const* name;
  FieldKind kind;
  void const* data;
  int32_t length;
};

/* One field the creator advertises (getFieldNames) and the plugin serialises. */
struct FieldSpec {
  char const* name;
  FieldKind kind;
};

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_TRT_FIELDS_COMMON_H_
