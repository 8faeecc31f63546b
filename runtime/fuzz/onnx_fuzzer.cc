// libFuzzer target: the model.onnx walker (protobuf wire format) and the graph-vs-manifest check that
// run on a package's graph before onnxruntime sees it. Any input must end in facts or one ae::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "error.h"
#include "manifest.h"
#include "onnx_graph.h"

namespace {

// A manifest of the shape the exporter writes (tiny preset, external data listed), to check graphs against.
const ae::Manifest& manifest() {
  static const ae::Manifest m = [] {
    const char* text = R"({"format": "astroedge-package", "format_version": 1,
      "model": {"vocab_size": 256, "d_model": 8, "n_layers": 1, "n_heads": 2, "ffn_mult": 2.0, "tau_n": 2.0, "tau_a_min": 4.0,
                "tau_a_max": 256.0, "threshold": 0.5, "ffn_threshold": 0.5, "rope_base": 10000.0, "norm_eps": 1e-05, "surrogate_width": 1.0},
      "op": {"name": "AMSU", "domain": "astroedge", "version": 1}, "precision": "fp32",
      "onnx": {"file": "model.onnx", "opset": 18, "external_data": "model.onnx.data"},
      "inputs": {"tokens": "tokens", "position": "position"}, "outputs": {"logits": "logits"},
      "state": [{"name": "h.0", "input": "past_h.0", "output": "present_h.0", "dtype": "float32", "shape": ["batch", 2, 4, 4]},
                {"name": "u.0", "input": "past_u.0", "output": "present_u.0", "dtype": "float32", "shape": ["batch", 8]}],
      "state_bytes_per_stream": 160, "max_position": 4294967296,
      "tokenizer": {"type": "bytes", "vocab_size": 256, "file": null},
      "files": {"model.onnx": {"sha256": "0000000000000000000000000000000000000000000000000000000000000000", "bytes": 10},
                "model.onnx.data": {"sha256": "0000000000000000000000000000000000000000000000000000000000000000", "bytes": 4096}}})";
    return ae::parse_manifest(text, "pkg", std::string(64, '0'));
  }();
  return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    ae::GraphFacts facts = ae::graph_facts(data, size, "model.onnx");
    ae::check_graph(facts, manifest(), "model.onnx");
    // Accepted: every external reference is the listed file, within its 4096 bytes.
    for (const auto& ref : facts.external) {
      if (ref.location != "model.onnx.data" || ref.offset > 4096) __builtin_trap();
    }
  } catch (const ae::Error& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) __builtin_trap();
  }
  return 0;
}
