/* Field reading for the SpikeMatMul TensorRT plugin creator (TensorRT-free, see spikematmul_trt_fields.h). */
#include "spikematmul_trt_fields.h"

#include <cstring>
#include <limits>

namespace astroedge {
namespace trt {
namespace smm {
namespace {

std::string prefix(char const* field) { return std::string(kPluginNamespace) + "::" + kPluginName + " plugin field '" + field + "'"; }

bool read_int(FieldView const& f, int64_t* value) {
  int32_t v32 = 0;
  switch (f.kind) {
    case FieldKind::kInt32: std::memcpy(&v32, f.data, sizeof v32); *value = v32; return true;
    case FieldKind::kInt64: std::memcpy(value, f.data, sizeof *value); return true;
    default: return false;
  }
}

}  // namespace

std::string parse_fields(FieldView const* fields, int32_t count, Params* out, std::string* ignored) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    return std::string(kPluginNamespace) + "::" + kPluginName + " plugin: malformed field collection (" + std::to_string(count) + " fields, no data)";
  }
  Params params;
  bool seen[kNumFields] = {false, false};
  ignored->clear();
  for (int32_t i = 0; i < count; ++i) {
    FieldView const& f = fields[i];
    int32_t spec = -1;
    for (int32_t s = 0; s < kNumFields && f.name != nullptr; ++s)
      if (std::strcmp(f.name, kFieldSpecs[s].name) == 0) spec = s;
    if (spec < 0) {
      if (!ignored->empty()) *ignored += ", ";
      *ignored += f.name != nullptr ? f.name : "(unnamed)";
      continue;
    }
    char const* name = kFieldSpecs[spec].name;
    if (seen[spec]) return prefix(name) + " is given twice; pass it once";
    seen[spec] = true;
    if (f.length != 1 || f.data == nullptr) return prefix(name) + " has " + std::to_string(f.length) + " elements; pass exactly one INT32";
    int64_t v = 0;
    if (!read_int(f, &v)) return prefix(name) + " is not an integer; pass it as INT32 (an ONNX INT attribute)";
    if (std::strcmp(name, SPIKEMATMUL_ATTR_OUT_FEATURES) == 0) {
      if (v < 0 || v > std::numeric_limits<int32_t>::max()) return prefix(name) + " = " + std::to_string(v) + " is out of range; pass N >= 0";
      params.out_features = static_cast<int32_t>(v);
    } else {
      if (v < 2 || v % 2 || v > std::numeric_limits<int32_t>::max())
        return prefix(name) + " = " + std::to_string(v) + " is not an even block width >= 2; export int4 weights with such blocks";
      params.block_size = static_cast<int32_t>(v);
    }
  }
  if (!seen[0]) {
    return prefix(SPIKEMATMUL_ATTR_OUT_FEATURES) + " is missing; set the node attribute '" + SPIKEMATMUL_ATTR_OUT_FEATURES +
           "' (op contract astroedge/contract/spikematmul.json)";
  }
  *out = params;
  return std::string();
}

std::string describe(Params const& params) {
  return std::string(kPluginName) + "/" + kPluginVersion + "/" + kPluginNamespace + " " + SPIKEMATMUL_ATTR_OUT_FEATURES + "=" +
         std::to_string(params.out_features) + " " + SPIKEMATMUL_ATTR_BLOCK_SIZE + "=" + std::to_string(params.block_size);
}

}  // namespace smm
}  // namespace trt
}  // namespace astroedge
