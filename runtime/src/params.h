// The structs behind the opaque parameter handles of the C API (AeEngineParams, AeGenerateParams,
// AeSampler, AeGenerator). Kept out of the public header so that fields can be added without breaking the ABI.
#ifndef ASTROEDGE_RUNTIME_PARAMS_H_
#define ASTROEDGE_RUNTIME_PARAMS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "astroedge.h"
#include "sampler.h"

struct AeEngineParams {
  std::string package_dir;
  std::string device = "cpu";
  int32_t device_id = 0;
  int32_t num_threads = 0;
  bool amsu_set = false;     // false: ASTROEDGE_ORT_LIBRARY decides
  std::string amsu_library;  // when amsu_set: "" = fallback function, else the library's path
  bool verify_checksums = true;
  std::string cache_dir;

  // The library to register: "" for the fallback function. `source` names where it came from.
  std::string resolved_amsu_library(std::string* source) const;
};

struct AeGenerateParams {
  int32_t max_tokens = AE_DEFAULT_MAX_TOKENS;
  ae::SamplingConfig sampling;
  std::vector<std::string> stops;
};

struct AeSampler {
  explicit AeSampler(const ae::SamplingConfig& c) : sampler(c) {}
  ae::Sampler sampler;
};

struct AeGenerator {
  AeGenerator(AeStream* stream, const AeGenerateParams& p) : gen(stream, p.sampling, p.max_tokens, p.stops) {}
  ae::Generator gen;
};

#endif  // ASTROEDGE_RUNTIME_PARAMS_H_
