// Picking the next token from logits, the ONE sampling definition of the project (the Python
// binding calls it through ae_stream_sample): repetition penalty first, then greedy (argmax, the
// lowest id wins a tie) or sampling with temperature, top-k (ties with the k-th logit are kept) and
// top-p, from a seeded splitmix64 generator. The exact algorithm is spelled out in astroedge.h.
#ifndef ASTROEDGE_RUNTIME_SAMPLER_H_
#define ASTROEDGE_RUNTIME_SAMPLER_H_

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "astroedge.h"

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
  // `vocab` logits; seen[i] != 0 marks a token the penalty applies to. Throws
  // ae::Error(AE_ERR_NON_FINITE) on a NaN/Inf logit.
  int32_t pick(const float* logits, size_t vocab, const uint8_t* seen);

 private:
  double uniform();  // [0, 1)
  SamplingConfig config_;
  uint64_t rng_;
  std::vector<double> z_;
  std::vector<std::pair<double, int32_t>> candidates_;
};

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_SAMPLER_H_
