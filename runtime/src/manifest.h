// manifest.json of a package (docs/package-format.md): parsed, validated, and the files it lists
// checked against their sha256. Everything the engine needs to drive the graph comes from here.
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
  int64_t bytes = -1;  // -1 when the manifest does not say
};

struct Manifest {
  std::string dir;  // the package directory, as given
  int format_version = 0;
  int32_t vocab_size = 0;
  std::string onnx_file;
  std::string tokens_input, position_input, logits_output;
  std::vector<StateSpec> state;
  size_t state_bytes = 0;  // per stream, float32
  uint64_t max_position = 0;
  std::string tokenizer;  // "bytes" or "hf"
  std::map<std::string, FileEntry> files;

  std::string path(const std::string& file) const { return dir + "/" + file; }
};

// Reads and validates `dir`/manifest.json. Throws ae::Error (AE_ERR_IO / AE_ERR_FORMAT / AE_ERR_VERSION).
Manifest read_manifest(const std::string& dir);
// Checks size and sha256 of every listed file; throws ae::Error(AE_ERR_CHECKSUM / AE_ERR_IO).
void verify_files(const Manifest& m);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_MANIFEST_H_
