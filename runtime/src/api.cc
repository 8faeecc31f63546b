// The C boundary: argument checks, exception -> AeStatus + thread-local message, configs.
// Every exported function is a thin wrapper over engine.cc / state_file.cc / sampler.cc / text.cc.
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>

#include "astroedge.h"
#include "engine.h"
#include "error.h"
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

void require(bool ok, const char* what) {
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

const char* or_null(const char* s) { return s ? s : "(null)"; }

void validate_engine_config(const AeEngineConfig* c) {
  require(c != nullptr, "engine config is NULL; start from ae_engine_config_default()");
  require(c->package_dir && *c->package_dir, "engine config field 'package_dir' is empty; set it to the *.aepkg directory");
  require(c->num_threads >= 0, "engine config field 'num_threads' is negative; use 0 for onnxruntime's default or a thread count");
  if (c->device && std::strcmp(c->device, "cpu") != 0) {
    throw Error(AE_ERR_UNSUPPORTED, std::string("engine config field 'device' = \"") + c->device +
                                        "\": this build runs on \"cpu\" only (it links the CPU onnxruntime); use \"cpu\"");
  }
}

void validate_generate_config(const AeGenerateConfig* c) {
  require(c->max_tokens >= 0, "generate config field 'max_tokens' is negative; use a count >= 0");
  require(std::isfinite(c->temperature) && c->temperature >= 0.0f, "generate config field 'temperature' must be >= 0 (0 = greedy)");
  require(c->top_k >= 0, "generate config field 'top_k' is negative; use 0 (all tokens) or a count");
  require(std::isfinite(c->top_p) && c->top_p > 0.0f && c->top_p <= 1.0f, "generate config field 'top_p' must be in (0, 1] (1 = off)");
  require(std::isfinite(c->repetition_penalty) && c->repetition_penalty > 0.0f,
          "generate config field 'repetition_penalty' must be > 0 (1 = off)");
}

void require_bytes_tokenizer(const AeEngine* e) {
  if (e->manifest.tokenizer != "bytes") {
    throw Error(AE_ERR_UNSUPPORTED, e->manifest.path("manifest.json") + ": tokenizer type \"" + e->manifest.tokenizer +
                                        "\" is not supported by the C runtime; tokenize with the package's tokenizer.json in your host language and pass ids");
  }
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
    case AE_OK: return "AE_OK";
    case AE_ERR_INVALID_ARGUMENT: return "AE_ERR_INVALID_ARGUMENT";
    case AE_ERR_IO: return "AE_ERR_IO";
    case AE_ERR_FORMAT: return "AE_ERR_FORMAT";
    case AE_ERR_CHECKSUM: return "AE_ERR_CHECKSUM";
    case AE_ERR_VERSION: return "AE_ERR_VERSION";
    case AE_ERR_MISMATCH: return "AE_ERR_MISMATCH";
    case AE_ERR_UNSUPPORTED: return "AE_ERR_UNSUPPORTED";
    case AE_ERR_BUFFER_TOO_SMALL: return "AE_ERR_BUFFER_TOO_SMALL";
    case AE_ERR_NO_LOGITS: return "AE_ERR_NO_LOGITS";
    case AE_ERR_POSITION: return "AE_ERR_POSITION";
    case AE_ERR_RUNTIME: return "AE_ERR_RUNTIME";
    case AE_ERR_OUT_OF_MEMORY: return "AE_ERR_OUT_OF_MEMORY";
  }
  return "AE_ERR_UNKNOWN";
}

int ae_api_version(void) { return AE_API_VERSION; }

AeEngineConfig ae_engine_config_default(void) {
  AeEngineConfig c;
  c.package_dir = nullptr;
  c.device = "cpu";
  c.num_threads = 0;
  c.amsu_library = nullptr;
  c.verify_checksums = 1;
  return c;
}

AeStatus ae_engine_config_validate(const AeEngineConfig* config) {
  return guard([&] { validate_engine_config(config); });
}

int ae_engine_config_print(const AeEngineConfig* c, char* buf, size_t size) {
  if (!c) return -1;
  return print_to(buf, size, "package_dir=%s device=%s num_threads=%d amsu_library=%s verify_checksums=%d", or_null(c->package_dir),
                  c->device ? c->device : "cpu", int(c->num_threads), c->amsu_library ? c->amsu_library : "(fallback)", int(c->verify_checksums));
}

AeStatus ae_engine_create(const AeEngineConfig* config, AeEngine** out) {
  if (out) *out = nullptr;
  return guard([&] {
    require(out != nullptr, "ae_engine_create: out is NULL");
    validate_engine_config(config);
    *out = new AeEngine(*config);
  });
}

void ae_engine_destroy(AeEngine* engine) { delete engine; }

int32_t ae_engine_vocab_size(const AeEngine* e) { return e ? e->manifest.vocab_size : 0; }
size_t ae_engine_state_size(const AeEngine* e) { return e ? e->manifest.state_bytes : 0; }
const char* ae_engine_kernel(const AeEngine* e) { return e ? e->kernel.c_str() : nullptr; }
const char* ae_engine_tokenizer(const AeEngine* e) { return e ? e->manifest.tokenizer.c_str() : nullptr; }
const char* ae_engine_model_sha256(const AeEngine* e) { return e ? e->model_sha256.c_str() : nullptr; }
size_t ae_engine_state_file_size(const AeEngine* e) { return e ? ae::state_file_size(*e) : 0; }

AeStatus ae_tokenize(const AeEngine* e, const char* text, size_t len, int32_t* tokens, size_t capacity, size_t* n_tokens) {
  return guard([&] {
    require(e && n_tokens && (text || len == 0) && (tokens || capacity == 0), "ae_tokenize: NULL argument");
    require_bytes_tokenizer(e);
    *n_tokens = len;
    if (capacity < len) {
      throw Error(AE_ERR_BUFFER_TOO_SMALL, "ae_tokenize: " + std::to_string(len) + " tokens do not fit in capacity " + std::to_string(capacity));
    }
    for (size_t i = 0; i < len; ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  });
}

AeStatus ae_detokenize(const AeEngine* e, const int32_t* tokens, size_t n, char* text, size_t capacity, size_t* n_bytes) {
  return guard([&] {
    require(e && n_bytes && (tokens || n == 0) && (text || capacity == 0), "ae_detokenize: NULL argument");
    require_bytes_tokenizer(e);
    for (size_t i = 0; i < n; ++i) {
      if (tokens[i] < 0 || tokens[i] > 255) {
        throw Error(AE_ERR_INVALID_ARGUMENT, "ae_detokenize: token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " is not a byte (0..255)");
      }
    }
    *n_bytes = n;
    if (capacity < n) {
      throw Error(AE_ERR_BUFFER_TOO_SMALL, "ae_detokenize: " + std::to_string(n) + " bytes do not fit in capacity " + std::to_string(capacity));
    }
    for (size_t i = 0; i < n; ++i) text[i] = char(static_cast<unsigned char>(tokens[i]));
  });
}

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

AeStatus ae_stream_step(AeStream* stream, int32_t token, float* logits) { return ae_stream_feed(stream, &token, 1, logits); }

AeStatus ae_stream_logits(const AeStream* stream, float* logits) {
  return guard([&] {
    require(stream && logits, "ae_stream_logits: NULL argument");
    if (!stream->has_logits) throw Error(AE_ERR_NO_LOGITS, "ae_stream_logits: the stream has consumed no token yet; feed tokens first");
    std::memcpy(logits, stream->logits.data(), stream->logits.size() * sizeof(float));
  });
}

AeGenerateConfig ae_generate_config_default(void) {
  AeGenerateConfig c;
  c.max_tokens = 128;
  c.temperature = 0.0f;
  c.top_k = 0;
  c.top_p = 1.0f;
  c.repetition_penalty = 1.0f;
  c.seed = 0;
  return c;
}

AeStatus ae_generate_config_validate(const AeGenerateConfig* config) {
  return guard([&] {
    require(config != nullptr, "generate config is NULL; start from ae_generate_config_default()");
    validate_generate_config(config);
  });
}

int ae_generate_config_print(const AeGenerateConfig* c, char* buf, size_t size) {
  if (!c) return -1;
  return print_to(buf, size, "max_tokens=%d temperature=%g top_k=%d top_p=%g repetition_penalty=%g seed=%llu", int(c->max_tokens),
                  double(c->temperature), int(c->top_k), double(c->top_p), double(c->repetition_penalty), static_cast<unsigned long long>(c->seed));
}

AeStatus ae_generate(AeStream* stream, const int32_t* prompt, size_t n_prompt, const AeGenerateConfig* config, AeTokenCallback callback,
                     void* user_data, size_t* n_generated) {
  if (n_generated) *n_generated = 0;
  return guard([&] {
    require(stream && (prompt || n_prompt == 0), "ae_generate: NULL argument");
    AeGenerateConfig cfg = config ? *config : ae_generate_config_default();
    validate_generate_config(&cfg);
    stream->feed(prompt, n_prompt);
    if (!stream->has_logits) {
      throw Error(AE_ERR_NO_LOGITS, "ae_generate: the stream has consumed no token yet; pass a non-empty prompt");
    }
    bool bytes = stream->engine->manifest.tokenizer == "bytes";
    ae::Sampler sampler(cfg);
    ae::Utf8StreamDecoder decoder;
    std::string piece;
    for (int32_t i = 0; i < cfg.max_tokens; ++i) {
      int32_t token = sampler.pick(stream->logits, stream->seen);
      stream->feed(&token, 1);  // before reporting: the state holds every token the caller has seen
      if (n_generated) ++*n_generated;
      if (callback) {
        piece.clear();
        if (bytes && token < 256) decoder.push(uint8_t(token), piece);
        if (callback(token, bytes ? piece.c_str() : nullptr, piece.size(), user_data) != 0) break;
      }
    }
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

}  // extern "C"
