// Picking the next token from logits, as the Python runtime's astroedge.sampling.Sampler does:
// repetition penalty first, then greedy (argmax, the lowest id wins a tie, like numpy) or sampling
// with temperature, top-k (ties with the k-th logit are kept) and top-p, from a seeded splitmix64
// generator. Sampled tokens are reproducible per seed within this runtime but differ from the
// Python runtime's (numpy's generator); greedy output is the same in both.
#ifndef ASTROEDGE_RUNTIME_SAMPLER_H_
#define ASTROEDGE_RUNTIME_SAMPLER_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "astroedge.h"

namespace ae {

class Sampler {
 public:
  explicit Sampler(const AeGenerateConfig& config) : config_(config), rng_(config.seed) {}
  // logits and seen have the vocabulary's size; seen[i] != 0 marks a token the penalty applies to.
  int32_t pick(const std::vector<float>& logits, const std::vector<uint8_t>& seen);

 private:
  double uniform();  // [0, 1)
  AeGenerateConfig config_;
  uint64_t rng_;
  std::vector<double> z_;
  std::vector<std::pair<double, int32_t>> candidates_;
};

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_SAMPLER_H_
