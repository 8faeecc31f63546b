/* Field reading for the SpikeMatMul TensorRT plugin creator (TensorRT-free, see spikematmul_trt_fields.h). */
#include "spikematmul_trt_fields.h"

#include <cstring>
#include <limits>

namespace astroedge {
namespace trt {
namespace smm {
namespace {

std::string label() { return std::string(kPluginNamespace) + "::" + kPluginName; }

}  // namespace

std::string parse_fields(FieldView const* fields, int32_t count, Params* out, std::string* ignored) {
  Params params;
  bool seen[kNumFields];
  std::string const error = scan_fields(
      label(), kFieldSpecs, kNumFields, fields, count, seen, ignored, [&](int32_t spec, FieldView const& f) {
        char const* name = kFieldSpecs[spec].name;
        std::string const field = field_label(label(), name);
        int64_t v = 0;
        if (!read_int(f, &v)) return field + " is not an integer; pass it as INT32 (an ONNX INT attribute)";
        if (std::strcmp(name, SPIKEMATMUL_ATTR_OUT_FEATURES) == 0) {
          if (v < 0 || v > std::numeric_limits<int32_t>::max())
            return field + " = " + std::to_string(v) + " is out of range; pass N >= 0";
          params.out_features = static_cast<int32_t>(v);
        } else {
          if (v < 2 || v % 2 || v > std::numeric_limits<int32_t>::max())
            return field + " = " + std::to_string(v) +
                   " is not an even block width >= 2; export int4 weights with such blocks";
          params.block_size = static_cast<int32_t>(v);
        }
        return std::string();
      });
  if (!error.empty()) return error;
  if (!seen[0]) {
    return field_label(label(), SPIKEMATMUL_ATTR_OUT_FEATURES) + " is missing; set the node attribute '" +
           SPIKEMATMUL_ATTR_OUT_FEATURES + "' (op contract astroedge/contract/spikematmul.json)";
  }
  *out = params;
  return std::string();
}

std::string describe(Params const& params) {
  return std::string(kPluginName) + "/" + kPluginVersion + "/" + kPluginNamespace + " " +
         SPIKEMATMUL_ATTR_OUT_FEATURES + "=" + std::to_string(params.out_features) + " " + SPIKEMATMUL_ATTR_BLOCK_SIZE +
         "=" + std::to_string(params.block_size);
}

}  // namespace smm
}  // namespace trt
}  // namespace astroedge
