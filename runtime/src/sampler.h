// Picking the next token from logits, the ONE sampling definition of the project (the Python
// binding and the host's `astroedge generate` call it through ae_generator_next / ae_sampler_pick):
// repetition penalty first, then greedy (argmax, the lowest id wins a tie) or sampling with
// temperature, top-k (ties with the k-th logit are kept) and top-p, from a seeded splitmix64
// generator. The exact algorithm is spelled out in astroedge.h.
//
// And the ONE generation loop built on it (ae::Generator behind AeGenerator and ae_generate):
// sample, feed, make the text piece, match stop strings.
#ifndef ASTROEDGE_RUNTIME_SAMPLER_H_
#define ASTROEDGE_RUNTIME_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "astroedge.h"
#include "text.h"

struct AeStream;

namespace ae {

struct SamplingConfig {
  float temperature = AE_DEFAULT_TEMPERATURE;
  int32_t top_k = AE_DEFAULT_TOP_K;
  float top_p = AE_DEFAULT_TOP_P;
  float repetition_penalty = AE_DEFAULT_REPETITION_PENALTY;
  uint64_t seed = AE_DEFAULT_SEED;
};

class Sampler {
 public:
  explicit Sampler(const SamplingConfig& config) : config_(config), rng_(config.seed) {}
  // `vocab` logits; seen[i] != 0 marks a token the penalty applies to (seen may be NULL: no
  // history). Throws ae::Error(AE_ERR_NON_FINITE) on a NaN/Inf logit.
  int32_t pick(const float* logits, size_t vocab, const uint8_t* seen);
  // The RNG's position, so that a caller can undo a pick whose token was then refused.
  uint64_t rng_state() const { return rng_; }
  void set_rng_state(uint64_t state) { rng_ = state; }

 private:
  double uniform();  // [0, 1)
  SamplingConfig config_;
  uint64_t rng_;
  std::vector<double> z_;
  std::vector<std::pair<double, int32_t>> candidates_;
};

// One generation on one stream: each next() samples from the stream's last logits, feeds the token
// and makes its text piece (byte-level packages; "hf" pieces are pushed with set_piece), then
// matches the stop strings. The stream is not owned and must outlive the generator.
class Generator {
 public:
  Generator(AeStream* stream, const SamplingConfig& sampling, int32_t max_tokens, std::vector<std::string> stops);
  // False (and nothing done) once max_tokens were made or a stop string matched. Otherwise the
  // next token, already consumed by the stream; all or nothing on failure (RNG included).
  bool next(int32_t* token);
  // The piece of the token next() returned: NULL for "hf" packages (the caller's tokenizer has it).
  const char* piece() const { return bytes_ ? piece_.c_str() : nullptr; }
  size_t piece_size() const { return piece_.size(); }
  // "hf" packages: the text of the token next() returned, for stop matching (once per token).
  void set_piece(const char* text, size_t len);
  int32_t stop_index() const { return stop_index_; }
  int32_t count() const { return made_; }

 private:
  AeStream* stream_;
  Sampler sampler_;
  int32_t max_tokens_;
  int32_t made_ = 0;
  int32_t stop_index_ = -1;
  bool bytes_;
  bool piece_open_ = false;  // "hf": a token was returned and its piece not pushed yet
  Utf8StreamDecoder decoder_;
  StopMatcher stops_;
  std::string piece_;
};

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_SAMPLER_H_
