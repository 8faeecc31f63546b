/* astroedge.h: the C API of the astroedge streaming runtime (AM-SNet on ONNX Runtime), API version 3.
 *
 * libastroedge is THE runtime of the project: the Python package `astroedge.runtime` is a thin ctypes
 * binding over these functions. One engine per package (an `*.aepkg` directory,
 * docs/package-format.md), any number of streams per engine. A stream is one conversation: a
 * constant-size float32 recurrent state (no KV cache), a position counter and the logits of the last
 * token it consumed.
 *
 *   AeEngineParams* ep = NULL;
 *   ae_engine_params_create(&ep);
 *   ae_engine_params_set_package_dir(ep, "model.aepkg");
 *   AeEngine* engine = NULL;
 *   if (ae_engine_create(ep, &engine) != AE_OK) { fprintf(stderr, "error: %s\n", ae_last_error()); ... }
 *   ae_engine_params_destroy(ep);                 (the engine keeps a copy)
 *   AeStream* stream = NULL;
 *   ae_stream_create(engine, &stream);
 *   ... ae_tokenize / ae_generate / ae_generator_* / ae_stream_feed / ae_stream_step / ae_decode_batch ...
 *   ae_stream_destroy(stream);
 *   ae_engine_destroy(engine);
 *
 * Conventions that hold for every function below:
 * - ABI: every configuration is an opaque parameter object with create/destroy and typed setters
 *   (onnxruntime-genai's OgaGeneratorParams style), so new settings never change a struct layout.
 *   The library's soname is libastroedge.so.1; AE_API_VERSION grows when functions are added.
 * - Status: functions that can fail return an AeStatus; on failure ae_last_error() holds ONE line
 *   naming the file, field or value and the fix (onnxruntime's messages are cut to their first
 *   line). Nothing is half-done on failure: streams and parameter objects are left as they were,
 *   out handles are set to NULL, files are written to a temp file and renamed.
 * - Ownership: a handle returned through `AeXxx** out` belongs to the caller, who releases it with
 *   the matching ae_xxx_destroy. Strings returned as `const char*` belong to the library and live
 *   as documented per function; buffers passed in stay owned by the caller and are never kept.
 * - NULL: destroy functions accept NULL (no-op). Any other NULL handle or NULL required pointer
 *   gives AE_ERR_INVALID_ARGUMENT (queries on a NULL handle return 0 / NULL).
 * - Threads: an AeEngine is immutable after creation and may be shared by any number of threads.
 *   An AeStream, an AeSampler, an AeGenerator (together with its stream) and a parameter object
 *   must be used by one thread at a time;
 *   different streams of one engine may run in parallel. A stream must be destroyed before its
 *   engine. ae_last_error() is thread-local.
 * - Tokens are int32 ids in [0, vocab_size). State is float32 whatever the model's precision.
 *   Non-finite state or logits are an error (AE_ERR_NON_FINITE), never a token.
 * - Tokenizers: byte-level packages ("bytes") are tokenized here (ae_tokenize) and generate UTF-8
 *   text pieces. HuggingFace-tokenizer packages ("hf") are TOKEN-LEVEL in C: the binding turns
 *   text into ids and ids into text with the `tokenizers` library over the verified bytes of
 *   tokenizer.json (ae_engine_tokenizer_data), drives an AeGenerator and hands each token's text
 *   back with ae_generator_set_piece, so that stop strings are still matched here, in the one
 *   generation loop; ae_tokenize and ae_generate with stop strings give AE_ERR_UNSUPPORTED there.
 */
#ifndef ASTROEDGE_H_
#define ASTROEDGE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Linux targets (x86-64, Jetson): the library is built with -fvisibility=hidden. */
#define AE_API __attribute__((visibility("default")))

/* Version of this header's API; ae_api_version() returns the library's. */
#define AE_API_VERSION 3
/* Newest package format_version (manifest.json) this runtime reads. */
#define AE_PACKAGE_FORMAT_VERSION 1
/* Version of the state files written by ae_stream_save_state (the only state-file format). */
#define AE_STATE_FILE_VERSION 2

/* Sampling defaults: ONE set for the C API, the Python binding and the CLI. */
#define AE_DEFAULT_MAX_TOKENS 200
#define AE_DEFAULT_TEMPERATURE 0.8f
#define AE_DEFAULT_TOP_K 0
#define AE_DEFAULT_TOP_P 1.0f
#define AE_DEFAULT_REPETITION_PENALTY 1.0f
#define AE_DEFAULT_SEED 0
/* Largest max_tokens one generate call accepts. */
#define AE_MAX_GENERATE_TOKENS (1 << 24)

typedef enum AeStatus {
  AE_OK = 0,
  AE_ERR_INVALID_ARGUMENT = 1, /* NULL handle, token out of range, bad parameter value */
  AE_ERR_IO = 2,               /* a file is missing, unreadable, unwritable or not a regular file */
  AE_ERR_FORMAT = 3,           /* manifest.json / state file malformed or inconsistent; a graph that
                                  onnxruntime can't load or run */
  AE_ERR_CHECKSUM = 4,         /* a package file's size or sha256 differs from its manifest entry */
  AE_ERR_VERSION = 5,          /* package or state file newer than this runtime; ORT API too old */
  AE_ERR_MISMATCH = 6,         /* a state file saved for another package; streams of another engine */
  AE_ERR_UNSUPPORTED = 7,      /* device or library not available in this build/machine; ae_tokenize on "hf" */
  AE_ERR_BUFFER_TOO_SMALL = 8, /* output buffer too small; the needed size is returned */
  AE_ERR_NO_LOGITS = 9,        /* generate/sample before the stream consumed any token */
  AE_ERR_POSITION = 10,        /* the stream would pass the package's max_position; reset it */
  AE_ERR_RUNTIME = 11,         /* the machine failed: ONNX Runtime's environment, CUDA, TensorRT (first line of
                                  its message in ae_last_error) */
  AE_ERR_OUT_OF_MEMORY = 12,
  AE_ERR_NON_FINITE = 13 /* NaN or Inf in state or logits (given, loaded or computed) */
} AeStatus;

/* Message of the last failed call made by THIS thread ("" if none). Valid until this thread's next
 * failing call into the library. Never NULL. */
AE_API const char* ae_last_error(void);
/* Static name of a status ("AE_ERR_IO"). Never NULL. */
AE_API const char* ae_status_string(AeStatus status);
/* AE_API_VERSION the library was built with. */
AE_API int ae_api_version(void);

/* ---------------------------------------------------------------------------------------------
 * Engine parameters. Setters check their value at once: on AE_ERR_INVALID_ARGUMENT the object is
 * unchanged. Strings are copied. */

typedef struct AeEngineParams AeEngineParams;

/* Defaults: package_dir unset (required), device "cpu", device_id 0, num_threads 0 (onnxruntime's
 * default), amsu_library unset (see below), verify_checksums 1, cache_dir unset. */
AE_API AeStatus ae_engine_params_create(AeEngineParams** out);
AE_API void ae_engine_params_destroy(AeEngineParams* params);
/* The package directory (holds manifest.json). Required, non-empty. */
AE_API AeStatus ae_engine_params_set_package_dir(AeEngineParams* params, const char* dir);
/* "cpu" (ORT CPU), "cuda" (ORT's CUDA execution provider through an OrtIoBinding: stream state
 * stays in GPU memory between steps), "tensorrt" or "jetson" (TensorRT: the module
 * libastroedge_tensorrt.so beside this library, with our AMSU TensorRT plugin, one engine with a
 * decode profile [1..64, 1] and a prefill profile [1, 1..256], fp32 state, cached in cache_dir).
 * A device this build or machine cannot run is refused by ae_engine_create with AE_ERR_UNSUPPORTED
 * in one line: never a silent fall-back to the CPU. */
AE_API AeStatus ae_engine_params_set_device(AeEngineParams* params, const char* device);
/* GPU ordinal for "cuda"/"tensorrt"/"jetson" (>= 0, default 0). */
AE_API AeStatus ae_engine_params_set_device_id(AeEngineParams* params, int32_t device_id);
/* onnxruntime intra-op threads, 0..1024; 0 = its default (one per core). */
AE_API AeStatus ae_engine_params_set_num_threads(AeEngineParams* params, int32_t num_threads);
/* The AMSU custom-op library (libastroedge_ort.so, native kernels):
 *   never set / set to NULL: the environment variable ASTROEDGE_ORT_LIBRARY decides: unset or ""
 *                            runs the fallback function stored in model.onnx, a path loads it;
 *   a path:                  load it (the environment is not consulted);
 *   "":                      run the fallback function (the environment is not consulted).
 * A library that is named (here or in the environment) and can't be loaded is refused by
 * ae_engine_create (AE_ERR_IO), never replaced by the fallback. For "tensorrt"/"jetson" the
 * library named here is the AMSU TensorRT plugin library (libastroedge_trt.so), and is required. */
AE_API AeStatus ae_engine_params_set_amsu_library(AeEngineParams* params, const char* path);
/* Non-zero (default): check size and sha256 of every file against the manifest. 0 skips the
 * sha256 (sizes, paths and file types are always checked). */
AE_API AeStatus ae_engine_params_set_verify_checksums(AeEngineParams* params, int32_t verify);
/* Folder for the TensorRT engine cache ("tensorrt"/"jetson"); NULL or "" = the default,
 * $XDG_CACHE_HOME/astroedge/tensorrt or ~/.cache/astroedge/tensorrt (never inside the package). */
AE_API AeStatus ae_engine_params_set_cache_dir(AeEngineParams* params, const char* dir);
/* Whole-object check without touching files: package_dir set (AE_ERR_INVALID_ARGUMENT). */
AE_API AeStatus ae_engine_params_validate(const AeEngineParams* params);
/* Printable one-line form ("package_dir=... device=cpu ...") written into buf (NUL-terminated,
 * truncated to size). Returns the length the full text needs, excluding the NUL (snprintf-style);
 * buf may be NULL when size is 0. Returns -1 if params is NULL. */
AE_API int ae_engine_params_print(const AeEngineParams* params, char* buf, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Engine: one package loaded into one session. */

typedef struct AeEngine AeEngine;

/* Reads manifest.json, checks every field, every path (plain names inside the package, regular
 * files), size and sha256 of every listed file, reads each file ONCE into memory and builds the
 * session from those verified bytes, then checks the graph's inputs/outputs against the manifest.
 * The params are copied; the caller may destroy them after. On failure *out is NULL. */
AE_API AeStatus ae_engine_create(const AeEngineParams* params, AeEngine** out);
/* Releases the engine. All its streams must have been destroyed. NULL is a no-op. */
AE_API void ae_engine_destroy(AeEngine* engine);

/* Facts about a loaded package; 0 / NULL for a NULL engine. Strings live as long as the engine. */
AE_API int32_t ae_engine_vocab_size(const AeEngine* engine);
/* The manifest's max_position: a stream's position never exceeds it. */
AE_API uint64_t ae_engine_max_position(const AeEngine* engine);
/* Bytes of float32 recurrent state per stream (the manifest's state_bytes_per_stream). */
AE_API size_t ae_engine_state_size(const AeEngine* engine);
/* Number of named state tensors (manifest order: h.0, u.0, h.1, ...). */
AE_API size_t ae_engine_state_count(const AeEngine* engine);
/* Name of state tensor i ("h.0"); NULL if i is out of range. */
AE_API const char* ae_engine_state_name(const AeEngine* engine, size_t i);
/* Per-stream shape of state tensor i, without the batch dimension: writes up to `capacity` dims
 * and returns the rank (0 if i is out of range). The tensors lie back to back, in this order, in
 * the buffers of ae_stream_get_state / ae_stream_set_state. */
AE_API size_t ae_engine_state_shape(const AeEngine* engine, size_t i, int64_t* dims, size_t capacity);
/* "library" when the native AMSU kernels run, "fallback" when the ONNX function runs. */
AE_API const char* ae_engine_kernel(const AeEngine* engine);
/* The device the engine runs on ("cpu", "cuda", ...). */
AE_API const char* ae_engine_device(const AeEngine* engine);
/* The manifest's precision: "fp32", "fp16", "int8" or "int4". */
AE_API const char* ae_engine_precision(const AeEngine* engine);
/* The manifest's tokenizer type: "bytes" or "hf". */
AE_API const char* ae_engine_tokenizer(const AeEngine* engine);
/* The verified bytes of the package's tokenizer file (tokenizer.json for "hf"), *len set to their
 * count; NULL (and *len 0) when the package has none. Lives as long as the engine. */
AE_API const char* ae_engine_tokenizer_data(const AeEngine* engine, size_t* len);
/* Hex sha256 of manifest.json (which lists every file's sha256): the package's identity, the key
 * of state files. */
AE_API const char* ae_engine_manifest_sha256(const AeEngine* engine);

/* ---------------------------------------------------------------------------------------------
 * Tokenizer (byte-level packages only: token i is byte i). Thread-safe.
 * "hf" packages: AE_ERR_UNSUPPORTED (token-level in C; see the top of this header). */

/* text: `len` bytes (need not be valid UTF-8 nor NUL-terminated). Writes up to `capacity` ids to
 * `tokens` and the count to *n_tokens. If capacity is too small: AE_ERR_BUFFER_TOO_SMALL with
 * *n_tokens set to the count needed (tokens may be NULL when capacity is 0). */
AE_API AeStatus ae_tokenize(const AeEngine* engine, const char* text, size_t len, int32_t* tokens, size_t capacity,
                            size_t* n_tokens);
/* The raw bytes of `tokens` (not validated as UTF-8, not NUL-terminated). Writes up to `capacity`
 * bytes and the count to *n_bytes; AE_ERR_BUFFER_TOO_SMALL as above. */
AE_API AeStatus ae_detokenize(const AeEngine* engine, const int32_t* tokens, size_t n_tokens, char* text,
                              size_t capacity, size_t* n_bytes);

/* ---------------------------------------------------------------------------------------------
 * Stream: state + position + last logits + the set of tokens consumed (for the repetition
 * penalty). One thread at a time per stream. */

typedef struct AeStream AeStream;

/* A new stream at position 0 with zero state and no logits. The engine must outlive it. */
AE_API AeStatus ae_stream_create(AeEngine* engine, AeStream** out);
/* NULL is a no-op. */
AE_API void ae_stream_destroy(AeStream* stream);
/* Back to position 0, zero state, no logits, no history. */
AE_API AeStatus ae_stream_reset(AeStream* stream);
/* A new, independent stream with a copy of `stream`'s state, position, logits and history.
 * `stream` is only read, but must not be used by another thread meanwhile. */
AE_API AeStatus ae_stream_clone(const AeStream* stream, AeStream** out);
/* Absolute position of the next token (tokens consumed since create/reset, or as set/loaded). */
AE_API uint64_t ae_stream_position(const AeStream* stream);

/* Consumes `n` tokens (prefill, in graph calls of up to 256 tokens; n = 0 is a no-op). If `logits`
 * is not NULL it receives the vocab_size next-token logits after the last token. On failure the
 * stream is unchanged. */
AE_API AeStatus ae_stream_feed(AeStream* stream, const int32_t* tokens, size_t n, float* logits);
/* Consumes one token (decode); `logits` as in ae_stream_feed. */
AE_API AeStatus ae_stream_step(AeStream* stream, int32_t token, float* logits);
/* Copies the logits after the last consumed token into `logits` (vocab_size floats);
 * AE_ERR_NO_LOGITS before the first token. */
AE_API AeStatus ae_stream_logits(const AeStream* stream, float* logits);

/* Batched decode: streams[i] consumes tokens[i], all in ONE graph call (state stacked into
 * [n, ...] tensors and unstacked after, as sherpa-onnx's DecodeMultipleStreams). The streams must
 * be distinct and of one engine; each may be at its own position. If `logits` is not NULL it
 * receives n * vocab_size floats (row i for stream i). All or nothing: on failure no stream
 * changes. Results equal n ae_stream_step calls (bit for bit on the CPU device: tested). No other
 * thread may use any of the n streams during the call; n = 0 is a no-op (streams may be NULL). */
AE_API AeStatus ae_decode_batch(AeStream* const* streams, const int32_t* tokens, size_t n, float* logits);

/* ---------------------------------------------------------------------------------------------
 * State in memory (as rwkv.cpp / llama.cpp): the named float32 tensors back to back, in the order
 * of ae_engine_state_name, ae_engine_state_size bytes in all. */

/* Bytes ae_stream_get_state writes: ae_engine_state_size of the stream's engine. */
AE_API size_t ae_stream_state_size(const AeStream* stream);
/* Copies the state into `state` (`size` bytes; AE_ERR_BUFFER_TOO_SMALL if fewer than needed). */
AE_API AeStatus ae_stream_get_state(const AeStream* stream, float* state, size_t size);
/* Replaces state, position and logits: `size` must equal ae_stream_state_size; `position` <=
 * max_position; `logits` (vocab_size floats) or NULL for "no logits yet". Values must be finite
 * (AE_ERR_NON_FINITE). The repetition-penalty history is cleared. All or nothing. */
AE_API AeStatus ae_stream_set_state(AeStream* stream, const float* state, size_t size, uint64_t position,
                                    const float* logits);

/* ---------------------------------------------------------------------------------------------
 * State files: ONE versioned binary format (version 2), written and read only here:
 *   "AESTATE\0" | u32 version | u32 flags (bit 0: logits valid) | 32 B sha256 of manifest.json |
 *   u64 position | u64 state floats | u64 vocab | f32 state | f32 logits[vocab] | 32 B sha256 of all before
 * little-endian. Written to a temp file beside `path`, synced and renamed over it. Read with
 * every size checked against the engine before anything is allocated; only regular files. */

/* Bytes ae_stream_save_state writes for this engine. */
AE_API size_t ae_engine_state_file_size(const AeEngine* engine);
AE_API AeStatus ae_stream_save_state(const AeStream* stream, const char* path);
/* Replaces the stream's state, position and logits (history cleared). Refuses (stream unchanged)
 * a file of another package (AE_ERR_MISMATCH), a newer version (AE_ERR_VERSION), a damaged file
 * (AE_ERR_FORMAT), non-finite values (AE_ERR_NON_FINITE), a FIFO/device/folder (AE_ERR_IO). */
AE_API AeStatus ae_stream_load_state(AeStream* stream, const char* path);

/* ---------------------------------------------------------------------------------------------
 * Generation parameters. Setters check their value at once (AE_ERR_INVALID_ARGUMENT, unchanged). */

typedef struct AeGenerateParams AeGenerateParams;

/* Defaults (AE_DEFAULT_*): max_tokens 200, temperature 0.8, top_k 0, top_p 1.0,
 * repetition_penalty 1.0, seed 0, no stop strings. */
AE_API AeStatus ae_generate_params_create(AeGenerateParams** out);
AE_API void ae_generate_params_destroy(AeGenerateParams* params);
/* Tokens to generate: 0..AE_MAX_GENERATE_TOKENS. */
AE_API AeStatus ae_generate_params_set_max_tokens(AeGenerateParams* params, int32_t max_tokens);
/* 0 = greedy (argmax, the lowest id wins ties); else finite, in [1e-6, 1e6]. */
AE_API AeStatus ae_generate_params_set_temperature(AeGenerateParams* params, float temperature);
/* Keep the k most likely tokens (ties with the k-th kept); 0 = off. */
AE_API AeStatus ae_generate_params_set_top_k(AeGenerateParams* params, int32_t top_k);
/* Keep the smallest set of most likely tokens whose probability reaches top_p; in (0, 1], 1 = off. */
AE_API AeStatus ae_generate_params_set_top_p(AeGenerateParams* params, float top_p);
/* > 0 and finite: logits of tokens the stream consumed since create/reset/set/load are divided
 * (positive) or multiplied (negative) by it; 1 = off. */
AE_API AeStatus ae_generate_params_set_repetition_penalty(AeGenerateParams* params, float penalty);
/* Seed of the sampler's RNG: same seed, same tokens on every platform. */
AE_API AeStatus ae_generate_params_set_seed(AeGenerateParams* params, uint64_t seed);
/* Adds a stop string (`len` bytes of UTF-8, 1..256 bytes; at most 64 strings): generation ends
 * once the generated text ends with it. "hf" packages: AeGenerator only, with the text pushed by
 * ae_generator_set_piece (ae_generate refuses them there: AE_ERR_UNSUPPORTED). */
AE_API AeStatus ae_generate_params_add_stop(AeGenerateParams* params, const char* text, size_t len);
AE_API AeStatus ae_generate_params_clear_stops(AeGenerateParams* params);
/* Getters (0 for NULL params). */
AE_API int32_t ae_generate_params_max_tokens(const AeGenerateParams* params);
AE_API float ae_generate_params_temperature(const AeGenerateParams* params);
AE_API int32_t ae_generate_params_top_k(const AeGenerateParams* params);
AE_API float ae_generate_params_top_p(const AeGenerateParams* params);
AE_API float ae_generate_params_repetition_penalty(const AeGenerateParams* params);
AE_API uint64_t ae_generate_params_seed(const AeGenerateParams* params);
AE_API size_t ae_generate_params_stop_count(const AeGenerateParams* params);
/* Stop string i (NUL-terminated copy, *len its length if len is not NULL); NULL if out of range.
 * Valid until the params change or are destroyed. */
AE_API const char* ae_generate_params_stop(const AeGenerateParams* params, size_t i, size_t* len);
AE_API AeStatus ae_generate_params_validate(const AeGenerateParams* params);
/* Printable one-line form, snprintf-style as ae_engine_params_print. */
AE_API int ae_generate_params_print(const AeGenerateParams* params, char* buf, size_t size);

/* ---------------------------------------------------------------------------------------------
 * Sampler: the caller-held RNG + sampling settings behind AeGenerator and ae_generate, for code that
 * owns its logits (a host framework, a custom loop) and must pick exactly the same tokens.
 *
 * Algorithm (one definition, documented for reimplementers): z = logits as double; repetition
 * penalty on consumed tokens; temperature 0: argmax (lowest id wins ties). Otherwise z /= T, sort
 * descending (ties: lower id first), keep top_k (plus ties with the k-th), p = exp(z - max), keep
 * the shortest prefix whose mass reaches top_p * total, draw r = u * kept_mass with u uniform in
 * [0, 1) and take the first token whose running sum exceeds r. u = (splitmix64() >> 11) * 2^-53,
 * splitmix64 state starting at the seed: state += 0x9E3779B97F4A7C15; z = state;
 * z = (z ^ z>>30) * 0xBF58476D1CE4E5B9; z = (z ^ z>>27) * 0x94D049BB133111EB; z ^= z>>31. */

typedef struct AeSampler AeSampler;

/* A sampler with params' settings (copied; params may be NULL for the defaults), RNG at its seed. */
AE_API AeStatus ae_sampler_create(const AeGenerateParams* params, AeSampler** out);
AE_API void ae_sampler_destroy(AeSampler* sampler);
/* Picks a token from the stream's last logits (repetition penalty from the stream's history) and
 * advances the RNG. Does not feed it: call ae_stream_step(stream, *token, ...) next.
 * AE_ERR_NO_LOGITS before the first token, AE_ERR_NON_FINITE on NaN/Inf logits. */
AE_API AeStatus ae_stream_sample(const AeStream* stream, AeSampler* sampler, int32_t* token);
/* Picks a token from caller-held logits (`vocab` >= 1 floats, e.g. a host framework's) and advances
 * the RNG. `seen` (vocab bytes, may be NULL for "no history"): seen[i] != 0 marks token i for the
 * repetition penalty. Neither buffer is kept. AE_ERR_NON_FINITE on NaN/Inf logits. */
AE_API AeStatus ae_sampler_pick(AeSampler* sampler, const float* logits, size_t vocab, const uint8_t* seen,
                                int32_t* token);

/* ---------------------------------------------------------------------------------------------
 * Generator: THE generation loop, pull style (onnxruntime-genai's OgaGenerator): each call of
 * ae_generator_next samples a token from the stream's last logits, feeds it to the stream, makes its
 * UTF-8 text piece and matches the stop strings. ae_generate is a loop over it.
 *
 *   AeGenerator* gen = NULL;
 *   ae_generator_create(stream, params, prompt, n_prompt, &gen);
 *   int32_t token, done; const char* piece; size_t len;
 *   while (ae_generator_next(gen, &token, &piece, &len, &done) == AE_OK && !done) {
 *     ... use token / piece ...       ("hf": ae_generator_set_piece(gen, text_of_token, n))
 *   }
 *   ae_generator_destroy(gen);
 *
 * The generator borrows the stream (it does not own it): the stream must outlive every call on the
 * generator, and the pair is used by one thread at a time. Tokens the caller feeds the stream
 * between calls are consumed as usual; the next token is sampled from the logits after them. */

typedef struct AeGenerator AeGenerator;

/* Feeds `prompt` (n_prompt may be 0 to continue from the stream's last logits; AE_ERR_NO_LOGITS if
 * it has none) and makes a generator with params' settings (copied; NULL = the defaults), its RNG at
 * the seed. All or nothing: on failure the stream is unchanged and *out is NULL. */
AE_API AeStatus ae_generator_create(AeStream* stream, const AeGenerateParams* params, const int32_t* prompt,
                                    size_t n_prompt, AeGenerator** out);
/* NULL is a no-op. Does not touch the stream (may come after ae_stream_destroy). */
AE_API void ae_generator_destroy(AeGenerator* gen);
/* The next token: *done = 0, *token its id, already consumed by the stream (so the stream can be
 * saved or cloned at any point), *piece the UTF-8 text it completes (`*piece_len` bytes followed by
 * a NUL; "" while a multi-byte character is incomplete; invalid bytes become U+FFFD as in Python's
 * errors="replace"; NULL for "hf" packages), owned by the generator and valid until its next call.
 * Once max_tokens tokens were made or the text ended with a stop string (the token completing it
 * was returned as usual), *done = 1, *token = -1, *piece = NULL and the stream is not touched.
 * piece and piece_len may be NULL. On failure (AE_ERR_POSITION, AE_ERR_NON_FINITE, ...) nothing
 * changes: not the stream, not the RNG. */
AE_API AeStatus ae_generator_next(AeGenerator* gen, int32_t* token, const char** piece, size_t* piece_len,
                                  int32_t* done);
/* "hf" packages: the text of the token ae_generator_next just returned (`len` bytes, copied; the
 * binding's tokenizer makes it), matched against the stop strings before the next call. At most once
 * per token; a token whose text is never set counts as "". AE_ERR_INVALID_ARGUMENT on a byte-level
 * package (C makes those pieces) or with no token waiting. */
AE_API AeStatus ae_generator_set_piece(AeGenerator* gen, const char* text, size_t len);
/* Index of the stop string that ended generation, or -1 (also for NULL). */
AE_API int32_t ae_generator_stop_index(const AeGenerator* gen);

/* ---------------------------------------------------------------------------------------------
 * Generation. */

/* Called once per generated token, on the thread that called ae_generate. `piece` is the UTF-8
 * text this token completes: `piece_len` bytes followed by a NUL (token 0 yields one NUL byte, so
 * use piece_len, not strlen); "" while a multi-byte character is incomplete; invalid bytes become
 * U+FFFD exactly as in Python's errors="replace"; NULL for "hf" packages. Valid only during the
 * call. Return 0 to go on, non-zero to stop. */
typedef int (*AeTokenCallback)(int32_t token, const char* piece, size_t piece_len, void* user_data);

/* Push-style generation over an AeGenerator (same tokens, pieces and stops): feeds `prompt`
 * (n_prompt may be 0 to continue from the stream's last logits), then repeatedly samples a token,
 * feeds it and reports it to `callback` (may be NULL), until max_tokens tokens, the callback
 * returns non-zero, or the generated text (the concatenated pieces) ends with a stop string; the
 * piece that completes the stop string is reported as usual (the stop text is part of the output).
 * Stop strings need a byte-level package (AE_ERR_UNSUPPORTED on "hf": use an AeGenerator and
 * ae_generator_set_piece). A reported token has already been consumed, so after any return the
 * stream can be continued, saved or cloned. params NULL means the defaults. *n_generated (may be
 * NULL) receives the count generated; *stop_index (may be NULL) the index of the stop string that
 * ended generation, or -1. */
AE_API AeStatus ae_generate(AeStream* stream, const int32_t* prompt, size_t n_prompt, const AeGenerateParams* params,
                            AeTokenCallback callback, void* user_data, size_t* n_generated, int32_t* stop_index);

#ifdef __cplusplus
}
#endif

#endif /* ASTROEDGE_H_ */
