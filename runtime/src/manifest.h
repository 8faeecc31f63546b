// manifest.json of a package (docs/package-format.md): parsed and validated with the rules of the
// Python owner of the format (astroedge/manifest.py): every field required, typed and range-checked,
// every file named a plain name inside the package and listed with size and sha256.
#ifndef ASTROEDGE_RUNTIME_MANIFEST_H_
#define ASTROEDGE_RUNTIME_MANIFEST_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ae {

struct StateSpec {
  std::string name;            // "h.0"
  std::string input;           // graph input, "past_h.0"
  std::string output;          // graph output, "present_h.0"
  std::vector<int64_t> shape;  // with the batch dimension set to 1
  size_t count = 0;            // float32 elements per stream
};

struct FileEntry {
  std::string sha256;
  uint64_t bytes = 0;
};

struct ModelConfig {
  int64_t vocab_size = 0, d_model = 0, n_layers = 0, n_heads = 0;
  double ffn_mult = 0, tau_n = 0, tau_a_min = 0, tau_a_max = 0, threshold = 0, ffn_threshold = 0, rope_base = 0,
         norm_eps = 0, surrogate_width = 0;
};

struct Manifest {
  std::string dir;     // the package directory, as given
  std::string sha256;  // of manifest.json's bytes: the package's identity
  int format_version = 0;
  ModelConfig config;
  int32_t vocab_size = 0;
  std::string precision;
  std::string onnx_file;
  int64_t opset = 0;          // of the default ONNX domain
  std::string external_data;  // "" when the graph has none
  std::string tokens_input, position_input, logits_output;
  std::vector<StateSpec> state;
  size_t state_bytes = 0;  // per stream, float32
  uint64_t max_position = 0;
  std::string tokenizer;       // "bytes" or "hf"
  std::string tokenizer_file;  // "" for "bytes"
  std::map<std::string, FileEntry> files;

  std::string path(const std::string& file) const { return dir + "/" + file; }
};

// Limits of what a manifest may claim (astroedge/manifest.py's); sizes are checked against them
// before any allocation.
constexpr uint64_t kMaxManifestBytes = 1u << 20;
constexpr uint64_t kMaxStateBytes = uint64_t(1) << 30;  // per stream
constexpr uint64_t kMaxFileBytes = uint64_t(1) << 40;
constexpr uint64_t kMaxTokenizerBytes = uint64_t(64) << 20;
constexpr uint64_t kMaxPosition = uint64_t(1) << 32;  // RoPE digits cover positions below 256**4 exactly

// Parses and validates manifest.json `text` read from `dir` (`sha256` its digest). Throws
// ae::Error(AE_ERR_FORMAT / AE_ERR_VERSION) naming the field. Pure: touches no file (fuzzed).
Manifest parse_manifest(const std::string& text, const std::string& dir, const std::string& sha256);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_MANIFEST_H_
