// State files (AE_STATE_FILE_VERSION 1), host byte order:
//   "AESTATE\0" | u32 version | u32 flags (bit 0: logits valid) | 32 B sha256 of model.onnx |
//   u64 position | u64 state floats | u64 vocab | f32 state[...] | f32 logits[vocab] | 32 B sha256 of all before.
// The model hash ties a file to its package; the trailing hash catches truncation and damage.
#ifndef ASTROEDGE_RUNTIME_STATE_FILE_H_
#define ASTROEDGE_RUNTIME_STATE_FILE_H_

#include <cstddef>
#include <string>

#include "engine.h"

namespace ae {

size_t state_file_size(const AeEngine& engine);
// Atomic: written to a temp file beside `path`, synced, then renamed over it.
void save_state(const AeStream& stream, const std::string& path);
// All or nothing: the stream changes only if the whole file checks out.
void load_state(AeStream& stream, const std::string& path);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_STATE_FILE_H_
