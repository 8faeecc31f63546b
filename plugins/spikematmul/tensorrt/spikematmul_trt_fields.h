/* The SpikeMatMul plugin's identity and creation fields, free of TensorRT headers (see amsu_trt_fields.h
 * for why: the names come from the op contract via spikematmul_contract.h, and these rules can be
 * compiled and tested where TensorRT is absent). */
#ifndef ASTROEDGE_SPIKEMATMUL_TRT_FIELDS_H_
#define ASTROEDGE_SPIKEMATMUL_TRT_FIELDS_H_

#include <cstdint>
#include <string>

#include "spikematmul_contract.h"
#include "trt_fields_common.h"

namespace astroedge {
namespace trt {
namespace smm {

constexpr char const* kPluginName = SPIKEMATMUL_OP_NAME;
constexpr char const* kPluginVersion = SPIKEMATMUL_OP_VERSION_STRING;
constexpr char const* kPluginNamespace = SPIKEMATMUL_ATTR_PLUGIN_NAMESPACE_DEFAULT;

/* The fields the creator advertises (getFieldNames) and the plugin serialises, in this order. */
constexpr int32_t kNumFields = 2;
constexpr FieldSpec kFieldSpecs[kNumFields] = {
    {SPIKEMATMUL_ATTR_OUT_FEATURES, FieldKind::kInt32},
    {SPIKEMATMUL_ATTR_BLOCK_SIZE, FieldKind::kInt32},
};

/* The node attributes the kernel needs; the plugin's whole creation state. */
struct Params {
  int32_t out_features = 0;
  int32_t block_size = SPIKEMATMUL_ATTR_BLOCK_SIZE_DEFAULT;
};

/* Reads and validates the fields: out_features required (>= 0), block_size optional (contract default;
 * even and >= 2), each at most once, length 1, integer. Fields with other names are listed in *ignored.
 * Returns "" on success, else a one-line message naming the field, the value and the fix. */
std::string parse_fields(FieldView const* fields, int32_t count, Params* out, std::string* ignored);

/* "SpikeMatMul/1/astroedge out_features=768 block_size=32": timing cache ID and metadata. */
std::string describe(Params const& params);

/* The op as the shared plugin template sees it (trt_plugin_base.h): identity, fields, their rules. */
struct Op {
  using Params = smm::Params;
  static constexpr char const* kName = kPluginName;
  static constexpr char const* kVersion = kPluginVersion;
  static constexpr char const* kNamespace = kPluginNamespace;
  static constexpr int32_t kNumFields = smm::kNumFields;
  static constexpr FieldSpec const* kFieldSpecs = smm::kFieldSpecs;
  static std::string parse(FieldView const* fields, int32_t count, Params* out, std::string* ignored) {
    return parse_fields(fields, count, out, ignored);
  }
  static std::string describe(Params const& params) { return smm::describe(params); }
  /* Where each field of kFieldSpecs lives in params, in spec order (getFieldsToSerialize). */
  static void field_values(Params const& params, void const** values) {
    values[0] = &params.out_features;
    values[1] = &params.block_size;
  }
};

}  // namespace smm
}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_SPIKEMATMUL_TRT_FIELDS_H_
