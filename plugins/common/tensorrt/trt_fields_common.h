/* Plugin-field views and the field-reading steps shared by the plugins' TensorRT-free field readers
 * (amsu_trt_fields.h, spikematmul_trt_fields.h): the creator converts nvinfer1::PluginField to
 * FieldView, so the rules for reading fields can be compiled and tested on machines without TensorRT.
 * Header-only so that a field reader compiles as one .cc plus headers (as the tests build it). */
#ifndef ASTROEDGE_TRT_FIELDS_COMMON_H_
#define ASTROEDGE_TRT_FIELDS_COMMON_H_

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

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

/* TensorRT's name for a field kind, as the plugins' messages spell it. */
inline char const* kind_name(FieldKind kind) {
  switch (kind) {
    case FieldKind::kInt32:
      return "INT32";
    case FieldKind::kInt64:
      return "INT64";
    case FieldKind::kFloat32:
      return "FLOAT32";
    case FieldKind::kFloat64:
      return "FLOAT64";
    case FieldKind::kOther:
      break;
  }
  return "an unsupported type";
}

/* Widens an integer field to int64; false if it is not an integer kind. */
inline bool read_int(FieldView const& f, int64_t* value) {
  int32_t v32 = 0;
  switch (f.kind) {
    case FieldKind::kInt32:
      std::memcpy(&v32, f.data, sizeof v32);
      *value = v32;
      return true;
    case FieldKind::kInt64:
      std::memcpy(value, f.data, sizeof *value);
      return true;
    default:
      return false;
  }
}

/* Widens a float field to double; false if it is not a floating kind. */
inline bool read_float(FieldView const& f, double* value) {
  float v32 = 0.0f;
  switch (f.kind) {
    case FieldKind::kFloat32:
      std::memcpy(&v32, f.data, sizeof v32);
      *value = v32;
      return true;
    case FieldKind::kFloat64:
      std::memcpy(value, f.data, sizeof *value);
      return true;
    default:
      return false;
  }
}

/* A float as messages and describe() print it: enough digits to read back the same float32. */
inline std::string format_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

/* "namespace::Name plugin field 'name'": how every field message begins. */
inline std::string field_label(std::string const& label, char const* field) {
  return std::string(label) + " plugin field '" + field + "'";
}

/* The part of field reading every plugin shares, so an op's parse_fields only states its own value
 * rules. Walks `fields` against the op's `specs`: unknown names go to *ignored (comma-separated, for
 * the caller's warning), and a known field given twice, or without exactly one element, is refused;
 * each accepted field is passed to on_field(spec_index, field), which returns "" or the op's
 * one-line refusal. `label` is "namespace::Name" of the plugin; seen[i] tells the caller which
 * specs arrived (it checks what is required). Returns "" or the first refusal. */
template <class OnField>
std::string scan_fields(std::string const& label, FieldSpec const* specs, int32_t num_specs, FieldView const* fields,
                        int32_t count, bool* seen, std::string* ignored, OnField&& on_field) {
  if (count < 0 || (count > 0 && fields == nullptr)) {
    return std::string(label) + " plugin: malformed field collection (" + std::to_string(count) + " fields, no data)";
  }
  for (int32_t s = 0; s < num_specs; ++s) seen[s] = false;
  ignored->clear();
  for (int32_t i = 0; i < count; ++i) {
    FieldView const& f = fields[i];
    int32_t spec = -1;
    for (int32_t s = 0; s < num_specs && f.name != nullptr; ++s) {
      if (std::strcmp(f.name, specs[s].name) == 0) spec = s;
    }
    if (spec < 0) {
      if (!ignored->empty()) *ignored += ", ";
      *ignored += f.name != nullptr ? f.name : "(unnamed)";
      continue;
    }
    std::string const field = field_label(label, specs[spec].name);
    if (seen[spec]) return field + " is given twice; pass it once";
    seen[spec] = true;
    if (f.length != 1 || f.data == nullptr) {
      return field + " has " + std::to_string(f.length) + " elements; pass exactly one " + kind_name(specs[spec].kind);
    }
    std::string error = on_field(spec, f);
    if (!error.empty()) return error;
  }
  return std::string();
}

}  // namespace trt
}  // namespace astroedge

#endif  // ASTROEDGE_TRT_FIELDS_COMMON_H_
