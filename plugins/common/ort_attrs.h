// Node-attribute reading shared by the ops of libastroedge_ort.so: every op reads its attributes once,
// at session creation, so a bad model fails to load with one line naming the op, the node, the
// attribute and the fix, in the same words for every op. Include after defining ORT_API_MANUAL_INIT.
#ifndef ASTROEDGE_ORT_ATTRS_H_
#define ASTROEDGE_ORT_ATTRS_H_

#include <string>

#include "onnxruntime_cxx_api.h"

namespace astroedge {

// "AMSU node 'layer0': ", how every message about a node begins.
inline std::string node_where(const char* op, const std::string& node) {
  return std::string(op) + " node '" + node + "': ";
}

// The required attribute `name` of ONNX type `T` (int64_t for INT, float for FLOAT); throws
// ORT_INVALID_ARGUMENT when it is absent or of another type. `type_name` and `contract` (the op's
// contract file, e.g. "astroedge/contract/amsu.json") go into the message.
template <typename T>
T required_attribute(const Ort::ConstKernelInfo& info, const char* op, const std::string& node, const char* name,
                     const char* type_name, const char* contract) {
  try {
    return info.GetAttribute<T>(name);
  } catch (const Ort::Exception&) {
    throw Ort::Exception(node_where(op, node) + "required attribute '" + name + "' (" + type_name +
                             ") is missing or has another type; re-export the model (" + contract +
                             " lists the attributes)",
                         ORT_INVALID_ARGUMENT);
  }
}

// The error for an attribute that is present but out of range: "... attribute 'name' = value: why".
inline Ort::Exception bad_attribute(const char* op, const std::string& node, const char* name, const std::string& value,
                                    const char* why) {
  return Ort::Exception(node_where(op, node) + "attribute '" + name + "' = " + value + ": " + why,
                        ORT_INVALID_ARGUMENT);
}

}  // namespace astroedge

#endif  // ASTROEDGE_ORT_ATTRS_H_
