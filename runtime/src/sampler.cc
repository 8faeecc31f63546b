#include "sampler.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "engine.h"
#include "error.h"

namespace ae {

double Sampler::uniform() {
  uint64_t z = (rng_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return double(z >> 11) * 0x1.0p-53;
}

int32_t Sampler::pick(const float* logits, size_t vocab, const uint8_t* seen) {
  for (size_t i = 0; i < vocab; ++i) {
    if (!std::isfinite(logits[i])) {
      throw Error(AE_ERR_NON_FINITE, "logit " + std::to_string(i) + " is " + std::to_string(logits[i]) +
                                         ", not a finite number; the state is damaged: reset the stream");
    }
  }
  z_.assign(logits, logits + vocab);
  if (config_.repetition_penalty != 1.0f && seen) {
    const double penalty = config_.repetition_penalty;
    for (size_t i = 0; i < vocab; ++i) {
      if (seen[i]) z_[i] = z_[i] > 0 ? z_[i] / penalty : z_[i] * penalty;
    }
  }
  if (config_.temperature <= 0.0f) {
    return int32_t(std::max_element(z_.begin(), z_.end()) - z_.begin());  // first maximum
  }
  candidates_.resize(vocab);
  for (size_t i = 0; i < vocab; ++i) candidates_[i] = {z_[i] / double(config_.temperature), int32_t(i)};
  std::sort(candidates_.begin(), candidates_.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  size_t keep = vocab;
  if (config_.top_k > 0 && size_t(config_.top_k) < vocab) {
    keep = size_t(config_.top_k);
    while (keep < vocab && candidates_[keep].first == candidates_[keep - 1].first) ++keep;
  }
  const double top = candidates_[0].first;
  double total = 0.0;
  for (size_t i = 0; i < keep; ++i) total += candidates_[i].first = std::exp(candidates_[i].first - top);
  if (config_.top_p < 1.0f) {
    double mass = 0.0;
    size_t n = 0;
    while (n < keep && mass < double(config_.top_p) * total) mass += candidates_[n++].first;
    keep = std::max<size_t>(n, 1);
    total = mass > 0.0 ? mass : candidates_[0].first;
  }
  double r = uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= candidates_[i].first;
    if (r < 0.0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

Generator::Generator(AeStream* stream, const SamplingConfig& sampling, int32_t max_tokens,
                     std::vector<std::string> stops)
    : stream_(stream),
      sampler_(sampling),
      max_tokens_(max_tokens),
      bytes_(stream->engine->manifest.tokenizer == "bytes"),
      stops_(std::move(stops)) {}

bool Generator::next(int32_t* token) {
  piece_.clear();
  piece_open_ = false;
  if (made_ >= max_tokens_ || stop_index_ >= 0) return false;
  if (!stream_->has_logits)
    throw Error(AE_ERR_NO_LOGITS, "ae_generator_next: the stream has no logits (it was reset); feed tokens first");
  const uint64_t rng = sampler_.rng_state();
  const int32_t t = sampler_.pick(stream_->logits.data(), stream_->logits.size(), stream_->seen.data());
  try {
    stream_->feed(&t, 1);  // before reporting: the state holds every token the caller has seen
  } catch (...) {
    sampler_.set_rng_state(rng);
    throw;
  }
  ++made_;
  *token = t;
  if (bytes_) {
    if (t < 256) decoder_.push(uint8_t(t), piece_);
    stop_index_ = stops_.push(piece_.data(), piece_.size());
  } else {
    piece_open_ = true;
  }
  return true;
}

void Generator::set_piece(const char* text, size_t len) {
  if (bytes_) {
    throw Error(AE_ERR_INVALID_ARGUMENT,
                "ae_generator_set_piece: the package is byte-level; libastroedge makes its text pieces itself");
  }
  if (!piece_open_) {
    throw Error(AE_ERR_INVALID_ARGUMENT,
                "ae_generator_set_piece: no token is waiting for its text; call it once after each ae_generator_next");
  }
  piece_open_ = false;
  stop_index_ = stops_.push(text, len);
}

}  // namespace ae
