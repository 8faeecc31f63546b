/* The AMSU plugin's identity and creation fields, free of TensorRT headers.
 *
 * Why a separate, TensorRT-free unit: the plugin name, version, namespace and field names must come
 * from the op contract (astroedge/contract/amsu.json, via the generated amsu_contract.h), and the rules
 * for reading the fields (names, types, ranges) decide whether an engine builds. Keeping them here
 * lets tests/test_tensorrt_plugin.py compile and exercise exactly this code on machines without
 * TensorRT; the plugin only converts nvinfer1::PluginField to FieldView and back.
 */
#ifndef ASTROEDGE_AMSU_TRT_FIELDS_H_
#define ASTROEDGE_AMSU_TRT_FIELDS_H_

#include <cstdint>
#include <string>

#include "amsu_contract.h"
#include "trt_fields_common.h"

namespace astroedge {
namespace trt {

constexpr char const* kPluginName = AMSU_OP_NAME;
constexpr char const* kPluginVersion = AMSU_OP_VERSION_STRING;
constexpr char const* kPluginNamespace = AMSU_ATTR_PLUGIN_NAMESPACE_DEFAULT;

/* The fields the creator advertises (getFieldNames) and the plugin serialises, in this order. */
constexpr int32_t kNumFields = 3;
constexpr FieldSpec kFieldSpecs[kNumFields] = {
    {AMSU_ATTR_NUM_HEADS, FieldKind::kInt32},
    {AMSU_ATTR_THRESHOLD, FieldKind::kFloat32},
    {AMSU_ATTR_EPS, FieldKind::kFloat32},
};

/* The node attributes the kernel needs; the plugin's whole creation state. */
struct AmsuParams {
  int32_t num_heads = 0;
  float threshold = 0.0f;
  float eps = 0.0f;
};

/* Reads and validates the fields. Every field of kFieldSpecs is required, exactly once, with length 1
 * and a finite value (num_heads >= 1, eps >= 0). Fields with other names are ignored and listed in
 * *ignored (comma-separated) so the caller can warn. Returns an empty string on success, else a
 * one-line message naming the field, the value and the fix; *out is then unchanged. */
std::string parse_fields(FieldView const* fields, int32_t count, AmsuParams* out, std::string* ignored);

/* "AMSU/1/astroedge num_heads=4 threshold=0.5 eps=1e-05": the creation state, for the timing cache ID
 * and the engine inspector's metadata. */
std::string describe(AmsuParams const& params);

/* The op as the shared plugin template sees it (trt_plugin_base.h): identity, fields, their rules. */
struct AmsuOp {
  using Params = AmsuParams;
  static constexpr char const* kName = kPluginName;
  static constexpr char const* kVersion = kPluginVersion;
  static constexpr char const* kNamespace = kPluginNamespace;
  static constexpr int32_t kNumFields = trt::kNumFields;
  static constexpr FieldSpec const* kFieldSpecs = trt::kFieldSpecs;
  static std::string parse(FieldView const* fields, int32_t count, Params* out, std::string* ignored) {
    return parse_fields(fields, count, out, ignored);
  }
  static std::string describe(Params const& params) { return trt::describe(params); }
  /* Where each field of kFieldSpecs lives in params, in spec order (getFieldsToSerialize). */
  static void field_values(Params const& params, void const** values) {
    values[0] = &params.num_heads;
    values[1] = &params.threshold;
    values[2] = &params.eps;
  }
};

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_AMSU_TRT_FIELDS_H_
