// model.onnx read without the onnx library: just enough of the protobuf wire format to list the
// graph's inputs/outputs (names, element types, dims), its initializers, every tensor that keeps its
// data outside the file (initializers, Constant attributes, subgraphs, functions, sparse tensors)
// and the opsets. Checked against the manifest BEFORE onnxruntime sees the bytes, so that a graph
// can never make onnxruntime open a file the manifest does not list. Mirrors astroedge/manifest.py
// graph_facts / check_graph.
#ifndef ASTROEDGE_RUNTIME_ONNX_GRAPH_H_
#define ASTROEDGE_RUNTIME_ONNX_GRAPH_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "manifest.h"

namespace ae {

struct ValueInfo {
  std::string name;
  int64_t elem_type = 0;
  std::vector<int64_t> dims;  // -1 for a symbolic or unknown size
};

struct ExternalRef {
  std::string tensor, location;
  uint64_t offset = 0;
  int64_t length = -1;  // -1 when not given
};

struct GraphFacts {
  std::vector<ValueInfo> inputs, outputs;
  std::set<std::string> initializers;
  std::vector<ExternalRef> external;
  std::map<std::string, int64_t> opsets;  // "ai.onnx" for the default domain
};

// Throws ae::Error(AE_ERR_FORMAT) naming `source` on malformed bytes.
GraphFacts graph_facts(const uint8_t* data, size_t size, const std::string& source);
// The graph may read only the listed external-data file (within its size) and must have exactly
// the manifest's inputs/outputs with the right element types and shapes. AE_ERR_FORMAT otherwise.
void check_graph(const GraphFacts& facts, const Manifest& manifest, const std::string& source);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_ONNX_GRAPH_H_
