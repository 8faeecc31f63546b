/* Field reading for the AMSU TensorRT plugin creator: see amsu_trt_fields.h for why it is TensorRT-free. */
#include "amsu_trt_fields.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

namespace astroedge {
namespace trt {
namespace {

char const* kind_name(FieldKind kind) {
  switch (kind) {
    case FieldKind::kInt32: return "INT32";
    case FieldKind::kInt64: return "INT64";
    case FieldKind::kFloat32: return "FLOAT32";
    case FieldKind::kFloat64: return "FLOAT64";
    case FieldKind::kOther: break;
  }
  return "an unsupported type";
}

std::string prefix(char const* field) {
  return std::string(kPluginNamespace) + "::" + kPluginName + " plugin field '" + field + "'";
}

/* Widens an integer field to int64; false if it is not an integer kind. */
bool read_int(FieldView const& f, int64_t* value) {
  int32_t v32 = 0;
  switch (f.kind) {
    case FieldKind::kInt32: std::memcpy(&v32, f.data, sizeof v32); *value = v32; return true;
    case FieldKind::kInt64: std::memcpy(value, f.data, sizeof *value); return true;
    default: return false;
  }
}

/* Widens a float field to double; false if it is not a floating kind. */
bool read_float(FieldView const& f, double* value) {
  float v32 = 0.0f;
  switch (f.kind) {
    case FieldKind::kFloat32: std::memcpy(&v32, f.data, sizeof v32); *value = v32; return true;
    case FieldKind::kFloat64: std::memcpy(value, f.data, sizeof *value); return true;
    default: return false;
  }
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

}  // namespace

std::string parse_fields(FieldView const* fields, int32_t count, AmsuParams* out, std::string* ignored) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    return std::string(kPluginNamespace) + "::" + kPluginName + " plugin: malformed field collection (" + std::to_string(count) +
           " fields, no data)";
  }
  AmsuParams params;
  bool seen[kNumFields] = {false, false, false};
  ignored->clear();
  for (int32_t i = 0; i < count; ++i) {
    FieldView const& f = fields[i];
    int32_t spec = -1;
    for (int32_t s = 0; s < kNumFields && f.name != nullptr; ++s) {
      if (std::strcmp(f.name, kFieldSpecs[s].name) == 0) spec = s;
    }
    if (spec < 0) {
      if (!ignored->empty()) *ignored += ", ";
      *ignored += f.name != nullptr ? f.name : "(unnamed)";
      continue;
    }
    char const* name = kFieldSpecs[spec].name;
    if (seen[spec]) return prefix(name) + " is given twice; pass it once";
    seen[spec] = true;
    if (f.length != 1 || f.data == nullptr) {
      return prefix(name) + " has " + std::to_string(f.length) + " elements; pass exactly one " + kind_name(kFieldSpecs[spec].kind);
    }
    if (kFieldSpecs[spec].kind == FieldKind::kInt32) {
      int64_t v = 0;
      if (!read_int(f, &v)) return prefix(name) + " is " + kind_name(f.kind) + "; pass it as INT32 (an ONNX INT attribute)";
      if (v < 1 || v > std::numeric_limits<int32_t>::max()) {
        return prefix(name) + " = " + std::to_string(v) + " is out of range; pass a head count >= 1 that divides D";
      }
      params.num_heads = static_cast<int32_t>(v);
    } else {
      double v = 0.0;
      if (!read_float(f, &v)) return prefix(name) + " is " + kind_name(f.kind) + "; pass it as FLOAT32 (an ONNX FLOAT attribute)";
      if (!std::isfinite(v) || std::fabs(v) > std::numeric_limits<float>::max()) {
        return prefix(name) + " = " + number(v) + " is not a finite float32; pass a finite value";
      }
      if (std::strcmp(name, AMSU_ATTR_EPS) == 0) {
        if (v < 0.0) return prefix(name) + " = " + number(v) + " is negative; pass the RMSNorm epsilon (>= 0, e.g. 1e-5)";
        params.eps = static_cast<float>(v);
      } else {
        params.threshold = static_cast<float>(v);
      }
    }
  }
  for (int32_t s = 0; s < kNumFields; ++s) {
    if (!seen[s]) {
      return prefix(kFieldSpecs[s].name) + " is missing; set the node attribute '" + kFieldSpecs[s].name + "' (op contract astroedge/contract/amsu.json)";
    }
  }
  *out = params;
  return std::string();
}

std::string describe(AmsuParams const& params) {
  return std::string(kPluginName) + "/" + kPluginVersion + "/" + kPluginNamespace + " " + AMSU_ATTR_NUM_HEADS + "=" +
         std::to_string(params.num_heads) + " " + AMSU_ATTR_THRESHOLD + "=" + number(params.threshold) + " " + AMSU_ATTR_EPS + "=" +
         number(params.eps);
}

}  // namespace trt
}  // namespace astroedge
