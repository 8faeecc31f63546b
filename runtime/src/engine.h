// The structs behind the opaque handles: an engine (manifest + ONNX Runtime session, immutable after
// creation, so shareable across threads) and a stream (double-buffered fp32 state, position, logits).
#ifndef ASTROEDGE_RUNTIME_ENGINE_H_
#define ASTROEDGE_RUNTIME_ENGINE_H_

#include <onnxruntime_c_api.h>

#include <string>
#include <vector>

#include "astroedge.h"
#include "manifest.h"

struct AeEngine {
  AeEngine(const AeEngineConfig& config);
  ~AeEngine();
  AeEngine(const AeEngine&) = delete;
  AeEngine& operator=(const AeEngine&) = delete;

  // One graph call: n tokens of one stream from `position`, state read from `past` and written to
  // `present` (each holds the manifest's state tensors back to back), logits [n, vocab] to `logits`.
  void run(const int64_t* tokens, size_t n, int64_t position, const float* past, float* present, float* logits) const;

  ae::Manifest manifest;
  std::string kernel;  // "library" or "fallback"
  std::string model_sha256;
  std::vector<size_t> state_offsets;  // float offset of each state tensor in a stream's buffer
  size_t state_floats = 0;

 private:
  void check_io() const;
  void release();
  const OrtApi* api_ = nullptr;
  OrtEnv* env_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;
  std::vector<std::string> input_names_, output_names_;
};

struct AeStream {
  explicit AeStream(AeEngine* e);

  void feed(const int32_t* tokens, size_t n);  // all or nothing: unchanged on failure
  void reset();

  AeEngine* engine;
  std::vector<float> state, next;  // current state and the buffer the next call writes
  uint64_t position = 0;
  std::vector<float> logits;  // after the last consumed token
  bool has_logits = false;
  std::vector<uint8_t> seen;  // [vocab] 1 = consumed since create/reset/load (repetition penalty)
  std::vector<float> scratch;  // [chunk, vocab] logits of one graph call
};

#endif  // ASTROEDGE_RUNTIME_ENGINE_H_
