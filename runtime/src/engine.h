// The structs behind the opaque handles: an engine (manifest + session, immutable after creation,
// so shareable across threads) and a stream (double-buffered fp32 state, position, logits, history).
#ifndef ASTROEDGE_RUNTIME_ENGINE_H_
#define ASTROEDGE_RUNTIME_ENGINE_H_

#include <onnxruntime_c_api.h>

#include <string>
#include <vector>

#include "astroedge.h"
#include "manifest.h"
#include "params.h"

struct AeEngine {
  explicit AeEngine(const AeEngineParams& params);
  ~AeEngine();
  AeEngine(const AeEngine&) = delete;
  AeEngine& operator=(const AeEngine&) = delete;

  // One graph call: `batch` rows of `n` tokens each (tokens [batch, n]), row b at positions[b].
  // `past` / `present` hold the state tensors one after the other, each stacked over the batch
  // ([batch, ...] for tensor 0, then tensor 1, ...); logits [batch, n, vocab]. Throws ae::Error,
  // AE_ERR_NON_FINITE if the logits or the new state hold NaN/Inf.
  void run(const int64_t* tokens, size_t batch, size_t n, const int64_t* positions, const float* past, float* present, float* logits) const;

  ae::Manifest manifest;
  std::string kernel;  // "library" or "fallback"
  std::string device;
  std::vector<uint8_t> tokenizer_data;  // verified bytes of the tokenizer file ("hf")
  std::vector<size_t> state_offsets;    // float offset of each state tensor in a stream's buffer
  size_t state_floats = 0;

 private:
  void load_session(const AeEngineParams& params, const std::vector<uint8_t>& model, const std::vector<uint8_t>& external);
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
  void check_tokens(const int32_t* tokens, size_t n) const;  // AE_ERR_INVALID_ARGUMENT / AE_ERR_POSITION

  AeEngine* engine;
  std::vector<float> state, next;  // current state and the buffer the next call writes
  uint64_t position = 0;
  std::vector<float> logits;  // after the last consumed token
  bool has_logits = false;
  std::vector<uint8_t> seen;   // [vocab] 1 = consumed since create/reset/set/load (repetition penalty)
  std::vector<float> scratch;  // [chunk, vocab] logits of one graph call
};

namespace ae {
// streams[i] consumes tokens[i] in one graph call; all or nothing.
void decode_batch(AeStream* const* streams, const int32_t* tokens, size_t n, float* logits);
// First non-finite value in data[0..n), or n.
size_t first_non_finite(const float* data, size_t n);
}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_ENGINE_H_
