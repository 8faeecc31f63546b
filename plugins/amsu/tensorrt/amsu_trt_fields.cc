/* Field reading for the AMSU TensorRT plugin creator: see amsu_trt_fields.h for why it is TensorRT-free. */
#include "amsu_trt_fields.h"

#include <cmath>
#include <cstring>
#include <limits>

namespace astroedge {
namespace trt {
namespace {

std::string label() { return std::string(kPluginNamespace) + "::" + kPluginName; }

}  // namespace

std::string parse_fields(FieldView const* fields, int32_t count, AmsuParams* out, std::string* ignored) {
  AmsuParams params;
  bool seen[kNumFields];
  std::string const error = scan_fields(
      label(), kFieldSpecs, kNumFields, fields, count, seen, ignored, [&](int32_t spec, FieldView const& f) {
        std::string const field = field_label(label(), kFieldSpecs[spec].name);
        if (kFieldSpecs[spec].kind == FieldKind::kInt32) {
          int64_t v = 0;
          if (!read_int(f, &v))
            return field + " is " + kind_name(f.kind) + "; pass it as INT32 (an ONNX INT attribute)";
          if (v < 1 || v > std::numeric_limits<int32_t>::max()) {
            return field + " = " + std::to_string(v) + " is out of range; pass a head count >= 1 that divides D";
          }
          params.num_heads = static_cast<int32_t>(v);
          return std::string();
        }
        double v = 0.0;
        if (!read_float(f, &v))
          return field + " is " + kind_name(f.kind) + "; pass it as FLOAT32 (an ONNX FLOAT attribute)";
        if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
          return field + " = " + format_number(v) + " is not a finite float32; pass a finite value";
        }
        if (std::strcmp(kFieldSpecs[spec].name, AMSU_ATTR_EPS) == 0) {
          if (v < 0.0)
            return field + " = " + format_number(v) + " is negative; pass the RMSNorm epsilon (>= 0, e.g. 1e-5)";
          params.eps = static_cast<float>(v);
        } else {
          params.threshold = static_cast<float>(v);
        }
        return std::string();
      });
  if (!error.empty()) return error;
  for (int32_t s = 0; s < kNumFields; ++s) {
    if (!seen[s]) {
      return field_label(label(), kFieldSpecs[s].name) + " is missing; set the node attribute '" + kFieldSpecs[s].name +
             "' (op contract astroedge/contract/amsu.json)";
    }
  }
  *out = params;
  return std::string();
}

std::string describe(AmsuParams const& params) {
  return std::string(kPluginName) + "/" + kPluginVersion + "/" + kPluginNamespace + " " + AMSU_ATTR_NUM_HEADS + "=" +
         std::to_string(params.num_heads) + " " + AMSU_ATTR_THRESHOLD + "=" + format_number(params.threshold) + " " +
         AMSU_ATTR_EPS + "=" + format_number(params.eps);
}

}  // namespace trt
}  // namespace astroedge
