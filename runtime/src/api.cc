// The C boundary: argument checks, exception -> AeStatus + thread-local message, parameter objects.
// Every exported function is a thin wrapper over engine.cc / state_file.cc / sampler.cc / text.cc.
#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <climits>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string>

#include "astroedge.h"
#include "engine.h"
#include "error.h"
#include "params.h"
#include "sampler.h"
#include "state_file.h"
#include "text.h"

namespace {

thread_local std::string g_last_error;

using ae::Error;

template <class F>
AeStatus guard(F&& body) {
  try {
    body();
    return AE_OK;
  } catch (const Error& e) {
    return ae::set_error(e.status(), e.what());
  } catch (const std::bad_alloc&) {
    return ae::set_error(AE_ERR_OUT_OF_MEMORY, "out of memory");
  } catch (const std::exception& e) {
    return ae::set_error(AE_ERR_RUNTIME, e.what());
  } catch (...) {
    return ae::set_error(AE_ERR_RUNTIME, "unknown internal error");
  }
}

void require(bool ok, const std::string& what) {
  if (!ok) throw Error(AE_ERR_INVALID_ARGUMENT, what);
}

// snprintf-style printing into a caller buffer.
int print_to(char* buf, size_t size, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  int n = std::vsnprintf(size ? buf : nullptr, size, fmt, args);
  va_end(args);
  return n;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7F) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\x%02x", c);
      out += esc;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

void require_bytes_tokenizer(const AeEngine* e, const char* what) {
  if (e->manifest.tokenizer != "bytes") {
    throw Error(AE_ERR_UNSUPPORTED, std::string(what) + ": the package's tokenizer is \"" + e->manifest.tokenizer +
                                        "\", token-level in C; tokenize with its " + e->manifest.tokenizer_file +
                                        " in the host language (ae_engine_tokenizer_data) and pass ids");
  }
}

void validate_sampling(const ae::SamplingConfig& c) {
  require(c.temperature == 0.0f || (std::isfinite(c.temperature) && c.temperature >= 1e-6f && c.temperature <= 1e6f),
          "temperature " + std::to_string(c.temperature) + ": must be 0 (greedy) or in [1e-6, 1e6]");
  require(c.top_k >= 0, "top_k " + std::to_string(c.top_k) + ": must be >= 0 (0 = off)");
  require(std::isfinite(c.top_p) && c.top_p > 0.0f && c.top_p <= 1.0f,
          "top_p " + std::to_string(c.top_p) + ": must be in (0, 1] (1 = off)");
  require(std::isfinite(c.repetition_penalty) && c.repetition_penalty > 0.0f,
          "repetition_penalty " + std::to_string(c.repetition_penalty) + ": must be > 0 and finite (1 = off)");
}

// Applies `edit` to a copy, validates it and only then commits: a refused setter changes nothing.
template <class F>
AeStatus set_sampling(AeGenerateParams* p, const char* fn, F&& edit) {
  return guard([&] {
    require(p != nullptr, std::string(fn) + ": params is NULL");
    ae::SamplingConfig c = p->sampling;
    edit(c);
    validate_sampling(c);
    p->sampling = c;
  });
}

}  // namespace

AeStatus ae::set_error(AeStatus status, const std::string& message) {
  g_last_error = message;
  return status;
}

extern "C" {

const char* ae_last_error(void) { return g_last_error.c_str(); }

const char* ae_status_string(AeStatus status) {
  switch (status) {
    case AE_OK:
      return "AE_OK";
    case AE_ERR_INVALID_ARGUMENT:
      return "AE_ERR_INVALID_ARGUMENT";
    case AE_ERR_IO:
      return "AE_ERR_IO";
    case AE_ERR_FORMAT:
      return "AE_ERR_FORMAT";
    case AE_ERR_CHECKSUM:
      return "AE_ERR_CHECKSUM";
    case AE_ERR_VERSION:
      return "AE_ERR_VERSION";
    case AE_ERR_MISMATCH:
      return "AE_ERR_MISMATCH";
    case AE_ERR_UNSUPPORTED:
      return "AE_ERR_UNSUPPORTED";
    case AE_ERR_BUFFER_TOO_SMALL:
      return "AE_ERR_BUFFER_TOO_SMALL";
    case AE_ERR_NO_LOGITS:
      return "AE_ERR_NO_LOGITS";
    case AE_ERR_POSITION:
      return "AE_ERR_POSITION";
    case AE_ERR_RUNTIME:
      return "AE_ERR_RUNTIME";
    case AE_ERR_OUT_OF_MEMORY:
      return "AE_ERR_OUT_OF_MEMORY";
    case AE_ERR_NON_FINITE:
      return "AE_ERR_NON_FINITE";
  }
  return "AE_ERR_UNKNOWN";
}

int ae_api_version(void) { return AE_API_VERSION; }

/* ---- engine params ---- */

AeStatus ae_engine_params_create(AeEngineParams** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(out != nullptr, "ae_engine_params_create: out is NULL");
    *out = new AeEngineParams();
  });
}

void ae_engine_params_destroy(AeEngineParams* p) { delete p; }

AeStatus ae_engine_params_set_package_dir(AeEngineParams* p, const char* dir) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_package_dir: params is NULL");
    require(dir && *dir, "package_dir is empty; set it to the *.aepkg directory");
    p->package_dir = dir;
  });
}

AeStatus ae_engine_params_set_device(AeEngineParams* p, const char* device) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_device: params is NULL");
    std::string d = device ? device : "";
    require(d == "cpu" || d == "cuda" || d == "tensorrt" || d == "jetson",
            "device " + quoted(d) + ": must be one of cpu, cuda, tensorrt, jetson");
    p->device = d;
  });
}

AeStatus ae_engine_params_set_device_id(AeEngineParams* p, int32_t id) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_device_id: params is NULL");
    require(id >= 0 && id < 1024, "device_id " + std::to_string(id) + ": must be a GPU ordinal in 0..1023");
    p->device_id = id;
  });
}

AeStatus ae_engine_params_set_num_threads(AeEngineParams* p, int32_t n) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_num_threads: params is NULL");
    require(n >= 0 && n <= 1024,
            "num_threads " + std::to_string(n) + ": must be in 0..1024 (0 = onnxruntime's default)");
    p->num_threads = n;
  });
}

AeStatus ae_engine_params_set_amsu_library(AeEngineParams* p, const char* path) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_amsu_library: params is NULL");
    p->amsu_set = path != nullptr;
    p->amsu_library = path ? path : "";
  });
}

AeStatus ae_engine_params_set_verify_checksums(AeEngineParams* p, int32_t verify) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_verify_checksums: params is NULL");
    p->verify_checksums = verify != 0;
  });
}

AeStatus ae_engine_params_set_cache_dir(AeEngineParams* p, const char* dir) {
  return guard([&] {
    require(p != nullptr, "ae_engine_params_set_cache_dir: params is NULL");
    p->cache_dir = dir ? dir : "";
  });
}

AeStatus ae_engine_params_validate(const AeEngineParams* p) {
  return guard([&] {
    require(p != nullptr, "engine params are NULL; create them with ae_engine_params_create");
    require(!p->package_dir.empty(),
            "package_dir is not set; set it to the *.aepkg directory (ae_engine_params_set_package_dir)");
  });
}

int ae_engine_params_print(const AeEngineParams* p, char* buf, size_t size) {
  if (!p) return -1;
  std::string amsu = p->amsu_set ? (p->amsu_library.empty() ? std::string("(fallback)") : p->amsu_library)
                                 : std::string("(env ASTROEDGE_ORT_LIBRARY)");
  return print_to(
      buf, size,
      "package_dir=%s device=%s device_id=%d num_threads=%d amsu_library=%s verify_checksums=%d cache_dir=%s",
      p->package_dir.empty() ? "(unset)" : p->package_dir.c_str(), p->device.c_str(), int(p->device_id),
      int(p->num_threads), amsu.c_str(), int(p->verify_checksums),
      p->cache_dir.empty() ? "(default)" : p->cache_dir.c_str());
}

/* ---- engine ---- */

AeStatus ae_engine_create(const AeEngineParams* params, AeEngine** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(out != nullptr, "ae_engine_create: out is NULL");
    require(params != nullptr, "ae_engine_create: params are NULL; create them with ae_engine_params_create");
    require(!params->package_dir.empty(),
            "package_dir is not set; set it to the *.aepkg directory (ae_engine_params_set_package_dir)");
    *out = new AeEngine(*params);
  });
}

void ae_engine_destroy(AeEngine* engine) { delete engine; }

int32_t ae_engine_vocab_size(const AeEngine* e) { return e ? e->manifest.vocab_size : 0; }
uint64_t ae_engine_max_position(const AeEngine* e) { return e ? e->manifest.max_position : 0; }
size_t ae_engine_state_size(const AeEngine* e) { return e ? e->manifest.state_bytes : 0; }
size_t ae_engine_state_count(const AeEngine* e) { return e ? e->manifest.state.size() : 0; }
const char* ae_engine_state_name(const AeEngine* e, size_t i) {
  return e && i < e->manifest.state.size() ? e->manifest.state[i].name.c_str() : nullptr;
}

size_t ae_engine_state_shape(const AeEngine* e, size_t i, int64_t* dims, size_t capacity) {
  if (!e || i >= e->manifest.state.size()) return 0;
  const auto& shape = e->manifest.state[i].shape;  // [1, dims...]
  for (size_t d = 1; d < shape.size() && d - 1 < capacity && dims; ++d) dims[d - 1] = shape[d];
  return shape.size() - 1;
}

const char* ae_engine_kernel(const AeEngine* e) { return e ? e->kernel.c_str() : nullptr; }
const char* ae_engine_device(const AeEngine* e) { return e ? e->device.c_str() : nullptr; }
const char* ae_engine_precision(const AeEngine* e) { return e ? e->manifest.precision.c_str() : nullptr; }
const char* ae_engine_tokenizer(const AeEngine* e) { return e ? e->manifest.tokenizer.c_str() : nullptr; }

const char* ae_engine_tokenizer_data(const AeEngine* e, size_t* len) {
  bool has = e && !e->manifest.tokenizer_file.empty();
  if (len) *len = has ? e->tokenizer_data.size() : 0;
  return has ? reinterpret_cast<const char*>(e->tokenizer_data.data()) : nullptr;
}

const char* ae_engine_manifest_sha256(const AeEngine* e) { return e ? e->manifest.sha256.c_str() : nullptr; }
size_t ae_engine_state_file_size(const AeEngine* e) { return e ? ae::state_file_size(*e) : 0; }

/* ---- tokenizer ---- */

AeStatus ae_tokenize(const AeEngine* e, const char* text, size_t len, int32_t* tokens, size_t capacity,
                     size_t* n_tokens) {
  return guard([&] {
    require(e && n_tokens && (text || len == 0) && (tokens || capacity == 0), "ae_tokenize: NULL argument");
    require_bytes_tokenizer(e, "ae_tokenize");
    *n_tokens = len;
    if (capacity < len) {
      throw Error(AE_ERR_BUFFER_TOO_SMALL,
                  "ae_tokenize: " + std::to_string(len) + " tokens do not fit in capacity " + std::to_string(capacity));
    }
    for (size_t i = 0; i < len; ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  });
}

AeStatus ae_detokenize(const AeEngine* e, const int32_t* tokens, size_t n, char* text, size_t capacity,
                       size_t* n_bytes) {
  return guard([&] {
    require(e && n_bytes && (tokens || n == 0) && (text || capacity == 0), "ae_detokenize: NULL argument");
    require_bytes_tokenizer(e, "ae_detokenize");
    for (size_t i = 0; i < n; ++i) {
      if (tokens[i] < 0 || tokens[i] > 255) {
        throw Error(AE_ERR_INVALID_ARGUMENT, "ae_detokenize: token " + std::to_string(tokens[i]) + " at index " +
                                                 std::to_string(i) + " is not a byte (0..255)");
      }
    }
    *n_bytes = n;
    if (capacity < n)
      throw Error(AE_ERR_BUFFER_TOO_SMALL,
                  "ae_detokenize: " + std::to_string(n) + " bytes do not fit in capacity " + std::to_string(capacity));
    for (size_t i = 0; i < n; ++i) text[i] = char(static_cast<unsigned char>(tokens[i]));
  });
}

/* ---- streams ---- */

AeStatus ae_stream_create(AeEngine* engine, AeStream** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(engine && out, "ae_stream_create: NULL argument");
    *out = new AeStream(engine);
  });
}

void ae_stream_destroy(AeStream* stream) { delete stream; }

AeStatus ae_stream_reset(AeStream* stream) {
  return guard([&] {
    require(stream != nullptr, "ae_stream_reset: stream is NULL");
    stream->reset();
  });
}

AeStatus ae_stream_clone(const AeStream* stream, AeStream** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(stream && out, "ae_stream_clone: NULL argument");
    *out = new AeStream(*stream);
  });
}

uint64_t ae_stream_position(const AeStream* stream) { return stream ? stream->position : 0; }

AeStatus ae_stream_feed(AeStream* stream, const int32_t* tokens, size_t n, float* logits) {
  return guard([&] {
    require(stream && (tokens || n == 0), "ae_stream_feed: NULL argument");
    stream->feed(tokens, n);
    if (logits && n > 0) std::memcpy(logits, stream->logits.data(), stream->logits.size() * sizeof(float));
  });
}

AeStatus ae_stream_step(AeStream* stream, int32_t token, float* logits) {
  return ae_stream_feed(stream, &token, 1, logits);
}

AeStatus ae_stream_logits(const AeStream* stream, float* logits) {
  return guard([&] {
    require(stream && logits, "ae_stream_logits: NULL argument");
    if (!stream->has_logits)
      throw Error(AE_ERR_NO_LOGITS, "ae_stream_logits: the stream has consumed no token yet; feed tokens first");
    std::memcpy(logits, stream->logits.data(), stream->logits.size() * sizeof(float));
  });
}

AeStatus ae_decode_batch(AeStream* const* streams, const int32_t* tokens, size_t n, float* logits) {
  return guard([&] {
    require((streams && tokens) || n == 0, "ae_decode_batch: NULL argument");
    for (size_t i = 0; i < n; ++i)
      require(streams[i] != nullptr, "ae_decode_batch: stream " + std::to_string(i) + " is NULL");
    ae::decode_batch(streams, tokens, n, logits);
  });
}

size_t ae_stream_state_size(const AeStream* stream) { return stream ? stream->engine->manifest.state_bytes : 0; }

AeStatus ae_stream_get_state(const AeStream* stream, float* state, size_t size) {
  return guard([&] {
    require(stream && state, "ae_stream_get_state: NULL argument");
    size_t need = stream->state.size() * sizeof(float);
    if (size < need)
      throw Error(AE_ERR_BUFFER_TOO_SMALL,
                  "ae_stream_get_state: " + std::to_string(size) + " bytes given, " + std::to_string(need) + " needed");
    stream->engine->to_host(state, stream->state.data(), stream->state.size());
  });
}

AeStatus ae_stream_set_state(AeStream* stream, const float* state, size_t size, uint64_t position,
                             const float* logits) {
  return guard([&] {
    require(stream && state, "ae_stream_set_state: NULL argument");
    size_t need = stream->state.size() * sizeof(float);
    require(size == need, "ae_stream_set_state: " + std::to_string(size) + " bytes given, the package's state is " +
                              std::to_string(need));
    ae::set_state(*stream, state, position, logits, "ae_stream_set_state");
  });
}

AeStatus ae_stream_save_state(const AeStream* stream, const char* path) {
  return guard([&] {
    require(stream && path && *path, "ae_stream_save_state: NULL stream or empty path");
    ae::save_state(*stream, path);
  });
}

AeStatus ae_stream_load_state(AeStream* stream, const char* path) {
  return guard([&] {
    require(stream && path && *path, "ae_stream_load_state: NULL stream or empty path");
    ae::load_state(*stream, path);
  });
}

/* ---- generate params ---- */

AeStatus ae_generate_params_create(AeGenerateParams** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(out != nullptr, "ae_generate_params_create: out is NULL");
    *out = new AeGenerateParams();
  });
}

void ae_generate_params_destroy(AeGenerateParams* p) { delete p; }

AeStatus ae_generate_params_set_max_tokens(AeGenerateParams* p, int32_t n) {
  return guard([&] {
    require(p != nullptr, "ae_generate_params_set_max_tokens: params is NULL");
    require(n >= 0 && n <= AE_MAX_GENERATE_TOKENS,
            "max_tokens " + std::to_string(n) + ": must be in 0.." + std::to_string(AE_MAX_GENERATE_TOKENS));
    p->max_tokens = n;
  });
}

AeStatus ae_generate_params_set_temperature(AeGenerateParams* p, float t) {
  return set_sampling(p, "ae_generate_params_set_temperature", [&](ae::SamplingConfig& c) { c.temperature = t; });
}
AeStatus ae_generate_params_set_top_k(AeGenerateParams* p, int32_t k) {
  return set_sampling(p, "ae_generate_params_set_top_k", [&](ae::SamplingConfig& c) { c.top_k = k; });
}
AeStatus ae_generate_params_set_top_p(AeGenerateParams* p, float v) {
  return set_sampling(p, "ae_generate_params_set_top_p", [&](ae::SamplingConfig& c) { c.top_p = v; });
}
AeStatus ae_generate_params_set_repetition_penalty(AeGenerateParams* p, float v) {
  return set_sampling(p, "ae_generate_params_set_repetition_penalty",
                      [&](ae::SamplingConfig& c) { c.repetition_penalty = v; });
}
AeStatus ae_generate_params_set_seed(AeGenerateParams* p, uint64_t seed) {
  return set_sampling(p, "ae_generate_params_set_seed", [&](ae::SamplingConfig& c) { c.seed = seed; });
}

AeStatus ae_generate_params_add_stop(AeGenerateParams* p, const char* text, size_t len) {
  return guard([&] {
    require(p && text, "ae_generate_params_add_stop: NULL argument");
    require(len >= 1 && len <= 256, "stop string of " + std::to_string(len) + " bytes: must be 1..256 bytes");
    require(p->stops.size() < 64, "more than 64 stop strings");
    p->stops.emplace_back(text, len);
  });
}

AeStatus ae_generate_params_clear_stops(AeGenerateParams* p) {
  return guard([&] {
    require(p != nullptr, "ae_generate_params_clear_stops: params is NULL");
    p->stops.clear();
  });
}

int32_t ae_generate_params_max_tokens(const AeGenerateParams* p) { return p ? p->max_tokens : 0; }
float ae_generate_params_temperature(const AeGenerateParams* p) { return p ? p->sampling.temperature : 0.0f; }
int32_t ae_generate_params_top_k(const AeGenerateParams* p) { return p ? p->sampling.top_k : 0; }
float ae_generate_params_top_p(const AeGenerateParams* p) { return p ? p->sampling.top_p : 0.0f; }
float ae_generate_params_repetition_penalty(const AeGenerateParams* p) {
  return p ? p->sampling.repetition_penalty : 0.0f;
}
uint64_t ae_generate_params_seed(const AeGenerateParams* p) { return p ? p->sampling.seed : 0; }
size_t ae_generate_params_stop_count(const AeGenerateParams* p) { return p ? p->stops.size() : 0; }

const char* ae_generate_params_stop(const AeGenerateParams* p, size_t i, size_t* len) {
  if (!p || i >= p->stops.size()) {
    if (len) *len = 0;
    return nullptr;
  }
  if (len) *len = p->stops[i].size();
  return p->stops[i].c_str();
}

AeStatus ae_generate_params_validate(const AeGenerateParams* p) {
  return guard([&] {
    require(p != nullptr, "generate params are NULL; create them with ae_generate_params_create");
    validate_sampling(p->sampling);
  });
}

int ae_generate_params_print(const AeGenerateParams* p, char* buf, size_t size) {
  if (!p) return -1;
  std::string stops = "[";
  for (size_t i = 0; i < p->stops.size(); ++i) stops += (i ? "," : "") + quoted(p->stops[i]);
  stops += "]";
  const auto& c = p->sampling;
  return print_to(buf, size, "max_tokens=%d temperature=%g top_k=%d top_p=%g repetition_penalty=%g seed=%llu stop=%s",
                  int(p->max_tokens), double(c.temperature), int(c.top_k), double(c.top_p),
                  double(c.repetition_penalty), static_cast<unsigned long long>(c.seed), stops.c_str());
}

/* ---- sampling and generation ---- */

AeStatus ae_sampler_create(const AeGenerateParams* params, AeSampler** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(out != nullptr, "ae_sampler_create: out is NULL");
    ae::SamplingConfig c = params ? params->sampling : ae::SamplingConfig{};
    validate_sampling(c);
    *out = new AeSampler(c);
  });
}

void ae_sampler_destroy(AeSampler* sampler) { delete sampler; }

AeStatus ae_stream_sample(const AeStream* stream, AeSampler* sampler, int32_t* token) {
  return guard([&] {
    require(stream && sampler && token, "ae_stream_sample: NULL argument");
    if (!stream->has_logits)
      throw Error(AE_ERR_NO_LOGITS, "ae_stream_sample: the stream has consumed no token yet; feed tokens first");
    *token = sampler->sampler.pick(stream->logits.data(), stream->logits.size(), stream->seen.data());
  });
}

AeStatus ae_sampler_pick(AeSampler* sampler, const float* logits, size_t vocab, const uint8_t* seen, int32_t* token) {
  return guard([&] {
    require(sampler && logits && token, "ae_sampler_pick: NULL argument");
    require(vocab >= 1 && vocab <= size_t(INT32_MAX),
            "ae_sampler_pick: vocab " + std::to_string(vocab) + ": must be in 1..2^31-1");
    *token = sampler->sampler.pick(logits, vocab, seen);
  });
}

AeStatus ae_generator_create(AeStream* stream, const AeGenerateParams* params, const int32_t* prompt, size_t n_prompt,
                             AeGenerator** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(stream && out && (prompt || n_prompt == 0), "ae_generator_create: NULL argument");
    AeGenerateParams defaults;
    const AeGenerateParams& p = params ? *params : defaults;
    validate_sampling(p.sampling);
    auto gen = std::make_unique<AeGenerator>(stream, p);  // before feeding: a refusal leaves the stream as it was
    stream->feed(prompt, n_prompt);
    if (!stream->has_logits)
      throw Error(AE_ERR_NO_LOGITS, "the stream has consumed no token yet; pass a non-empty prompt");
    *out = gen.release();
  });
}

void ae_generator_destroy(AeGenerator* gen) { delete gen; }

AeStatus ae_generator_next(AeGenerator* gen, int32_t* token, const char** piece, size_t* piece_len, int32_t* done) {
  if (token) *token = -1;
  if (piece) *piece = nullptr;
  if (piece_len) *piece_len = 0;
  if (done) *done = 1;
  return guard([&] {
    require(gen && token && done, "ae_generator_next: NULL argument");
    int32_t t = -1;
    if (!gen->gen.next(&t)) return;
    *token = t;
    *done = 0;
    if (piece) *piece = gen->gen.piece();
    if (piece_len) *piece_len = gen->gen.piece_size();
  });
}

AeStatus ae_generator_set_piece(AeGenerator* gen, const char* text, size_t len) {
  return guard([&] {
    require(gen && (text || len == 0), "ae_generator_set_piece: NULL argument");
    gen->gen.set_piece(text ? text : "", len);
  });
}

int32_t ae_generator_stop_index(const AeGenerator* gen) { return gen ? gen->gen.stop_index() : -1; }

AeStatus ae_generate(AeStream* stream, const int32_t* prompt, size_t n_prompt, const AeGenerateParams* params,
                     AeTokenCallback callback, void* user_data, size_t* n_generated, int32_t* stop_index) {
  if (n_generated) *n_generated = 0;
  if (stop_index) *stop_index = -1;
  return guard([&] {
    require(stream && (prompt || n_prompt == 0), "ae_generate: NULL argument");
    // C has no HF tokenizer, so nothing here could push the text pieces stop strings are matched on
    if (params && !params->stops.empty()) require_bytes_tokenizer(stream->engine, "ae_generate with stop strings");
    AeGenerator* raw = nullptr;
    if (AeStatus s = ae_generator_create(stream, params, prompt, n_prompt, &raw); s != AE_OK)
      throw Error(s, ae_last_error());
    std::unique_ptr<AeGenerator> gen(raw);
    int32_t token = -1;
    while (gen->gen.next(&token)) {
      if (n_generated) *n_generated = size_t(gen->gen.count());
      if (callback && callback(token, gen->gen.piece(), gen->gen.piece_size(), user_data) != 0) break;
    }
    if (stop_index) *stop_index = gen->gen.stop_index();
  });
}

}  // extern "C"
