// libFuzzer target: the manifest.json reader (strict JSON + every manifest rule), the first thing
// libastroedge does with a package it is handed. Any input must end in a value or one ae::Error:
// no crash, no sanitizer report, no leak, no unbounded recursion or allocation.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined ... (runtime/fuzz/build.sh)
#include <cstddef>
#include <cstdint>
#include <string>

#include "error.h"
#include "manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > ae::kMaxManifestBytes) return 0;  // the engine refuses bigger files before parsing
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    ae::Manifest m = ae::parse_manifest(text, "pkg", std::string(64, '0'));
    // An accepted manifest must be self-consistent: what the engine relies on without checking again.
    if (m.state.empty() || m.state_bytes == 0 || m.max_position == 0 || !m.files.count(m.onnx_file) || m.vocab_size < 2)
      __builtin_trap();
  } catch (const ae::Error& e) {
    if (std::string(e.what()).find('\n') != std::string::npos) __builtin_trap();  // one line
  }
  return 0;
}
