// State files, version 2: the ONE state-file format of the project (the Python binding calls these
// through ae_stream_save_state / ae_stream_load_state). Little-endian:
//   "AESTATE\0" | u32 version | u32 flags (bit 0: logits valid) | 32 B sha256 of manifest.json |
//   u64 position | u64 state floats | u64 vocab | f32 state[...] | f32 logits[vocab] | 32 B sha256 of all before.
// The manifest hash ties a file to its package (manifest.json lists every file's sha256, so it
// names the weights too); the trailing hash catches truncation and damage.
#ifndef ASTROEDGE_RUNTIME_STATE_FILE_H_
#define ASTROEDGE_RUNTIME_STATE_FILE_H_

#include <cstddef>
#include <string>

#include "engine.h"

namespace ae {

size_t state_file_size(const AeEngine& engine);
// Atomic: written to a temp file beside `path`, synced, then renamed over it.
void save_state(const AeStream& stream, const std::string& path);
// All or nothing: the stream changes only if the whole file checks out. Only a regular file of
// exactly state_file_size bytes is read (sizes checked before allocation).
void load_state(AeStream& stream, const std::string& path);
// Replaces state, position and logits (nullptr: none) after checking them; all or nothing.
void set_state(AeStream& stream, const float* state, uint64_t position, const float* logits, const std::string& what);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_STATE_FILE_H_
