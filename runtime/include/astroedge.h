/* astroedge.h: the C API of the astroedge streaming runtime (AM-SNet on ONNX Runtime).
 *
 * One engine per package (an `*.aepkg` directory, docs/package-format.md), any number of streams
 * per engine. A stream is one conversation: a constant-size float32 recurrent state (no KV cache),
 * a position counter and the logits of the last token it consumed.
 *
 *   AeEngineConfig cfg = ae_engine_config_default();
 *   cfg.package_dir = "model.aepkg";
 *   AeEngine* engine = NULL;
 *   if (ae_engine_create(&cfg, &engine) != AE_OK) { fprintf(stderr, "%s\n", ae_last_error()); ... }
 *   AeStream* stream = NULL;
 *   ae_stream_create(engine, &stream);
 *   ... ae_tokenize / ae_generate / ae_stream_step ...
 *   ae_stream_destroy(stream);
 *   ae_engine_destroy(engine);
 *
 * Conventions that hold for every function below:
 * - Status: functions that can fail return an AeStatus; on failure ae_last_error() holds a one-line
 *   message naming the file, field or value and the fix. Nothing is half-written on failure: out
 *   parameters are left as they were (or set to NULL for handles), files are written atomically.
 * - Ownership: a handle returned through `AeXxx** out` belongs to the caller, who releases it with
 *   the matching ae_xxx_destroy. Strings returned as `const char*` belong to the library and stay
 *   valid as documented per function; buffers passed in stay owned by the caller and are not kept
 *   after the call returns.
 * - NULL: destroy functions accept NULL (no-op). Any other NULL handle or NULL required pointer
 *   gives AE_ERR_INVALID_ARGUMENT.
 * - Threads: an AeEngine is immutable after creation and may be shared by any number of threads
 *   (its ONNX Runtime session runs concurrent calls). An AeStream must be used by one thread at a
 *   time (different streams of one engine may run in parallel). A stream must be destroyed before
 *   its engine. ae_last_error() is thread-local.
 * - Tokens are int32 ids in [0, vocab_size). State is float32 whatever the model's precision.
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
#define AE_API_VERSION 1
/* Newest package format_version (manifest.json) this runtime reads. */
#define AE_PACKAGE_FORMAT_VERSION 1
/* Version of the state files written by ae_stream_save_state. */
#define AE_STATE_FILE_VERSION 1

typedef enum AeStatus {
  AE_OK = 0,
  AE_ERR_INVALID_ARGUMENT = 1, /* NULL handle, token out of range, bad config value */
  AE_ERR_IO = 2,               /* a file is missing, unreadable or unwritable */
  AE_ERR_FORMAT = 3,           /* manifest.json / state file malformed or inconsistent */
  AE_ERR_CHECKSUM = 4,         /* a package file's sha256 differs from its manifest entry */
  AE_ERR_VERSION = 5,          /* package or state file newer than this runtime; ORT API too old */
  AE_ERR_MISMATCH = 6,         /* a state file saved for another package */
  AE_ERR_UNSUPPORTED = 7,      /* e.g. tokenize on a HuggingFace-tokenizer package, device "cuda" */
  AE_ERR_BUFFER_TOO_SMALL = 8, /* output buffer too small; the needed size is returned */
  AE_ERR_NO_LOGITS = 9,        /* generate/sample before the stream consumed any token */
  AE_ERR_POSITION = 10,        /* the stream reached the package's max_position; reset it */
  AE_ERR_RUNTIME = 11,         /* ONNX Runtime failed (its message is in ae_last_error) */
  AE_ERR_OUT_OF_MEMORY = 12
} AeStatus;

/* Message of the last failed call made by THIS thread ("" if none). Valid until this thread's next
 * failing call into the library. Never NULL. */
AE_API const char* ae_last_error(void);
/* Static name of a status ("AE_ERR_IO"). Never NULL. */
AE_API const char* ae_status_string(AeStatus status);
/* AE_API_VERSION the library was built with. */
AE_API int ae_api_version(void);

/* ---------------------------------------------------------------------------------------------
 * Engine: one package loaded into one ONNX Runtime session. */

typedef struct AeEngine AeEngine;

typedef struct AeEngineConfig {
  const char* package_dir;  /* required: the package directory (holds manifest.json) */
  const char* device;       /* "cpu" (the only device of this build); NULL means "cpu" */
  int32_t num_threads;      /* ONNX Runtime intra-op threads; 0 = its default (one per core) */
  const char* amsu_library; /* path of libastroedge_ort.so (native AMSU kernels), or NULL to run
                               the standard-ops fallback function stored in model.onnx */
  int32_t verify_checksums; /* non-zero (default): check every file's sha256 against manifest */
} AeEngineConfig;

/* Defaults: package_dir NULL (must be set), device "cpu", num_threads 0, amsu_library NULL,
 * verify_checksums 1. */
AE_API AeEngineConfig ae_engine_config_default(void);
/* Checks the fields without touching the files (AE_ERR_INVALID_ARGUMENT / AE_ERR_UNSUPPORTED). */
AE_API AeStatus ae_engine_config_validate(const AeEngineConfig* config);
/* Writes a printable one-line form ("package_dir=... device=cpu ...") into buf (NUL-terminated,
 * truncated to size). Returns the length the full text needs, excluding the NUL (snprintf-style);
 * buf may be NULL when size is 0. Returns -1 if config is NULL. */
AE_API int ae_engine_config_print(const AeEngineConfig* config, char* buf, size_t size);

/* Reads manifest.json, checks format_version and the sha256 of every listed file, creates the
 * ONNX Runtime session (registering config->amsu_library when given) and checks the graph's I/O
 * against the manifest. The config and its strings are copied; the caller may free them after.
 * On success *out is a new engine (release with ae_engine_destroy); on failure *out is NULL. */
AE_API AeStatus ae_engine_create(const AeEngineConfig* config, AeEngine** out);
/* Releases the engine. All its streams must have been destroyed. NULL is a no-op. */
AE_API void ae_engine_destroy(AeEngine* engine);

/* Facts about a loaded package; 0 / NULL for a NULL engine. Strings live as long as the engine. */
AE_API int32_t ae_engine_vocab_size(const AeEngine* engine);
/* Bytes of float32 recurrent state per stream (the manifest's state_bytes_per_stream). */
AE_API size_t ae_engine_state_size(const AeEngine* engine);
/* "library" when the native AMSU kernels run, "fallback" when the ONNX function runs. */
AE_API const char* ae_engine_kernel(const AeEngine* engine);
/* The manifest's tokenizer type: "bytes" or "hf". */
AE_API const char* ae_engine_tokenizer(const AeEngine* engine);
/* Hex sha256 of model.onnx: identifies the package that state files belong to. */
AE_API const char* ae_engine_model_sha256(const AeEngine* engine);

/* ---------------------------------------------------------------------------------------------
 * Tokenizer (byte-level packages only: token i is byte i). Both functions are thread-safe.
 * For a package with a HuggingFace tokenizer ("hf") they return AE_ERR_UNSUPPORTED: tokenize in
 * the host language with the package's tokenizer.json and pass ids. */

/* text: `len` bytes of UTF-8 (need not be NUL-terminated). Writes up to `capacity` ids to `tokens`
 * and the count to *n_tokens. If capacity is too small: AE_ERR_BUFFER_TOO_SMALL with *n_tokens set
 * to the count needed (tokens may be NULL when capacity is 0). */
AE_API AeStatus ae_tokenize(const AeEngine* engine, const char* text, size_t len, int32_t* tokens, size_t capacity,
                            size_t* n_tokens);
/* The raw bytes of `tokens` (byte-level: not validated as UTF-8, not NUL-terminated). Writes up to
 * `capacity` bytes and the count to *n_bytes; AE_ERR_BUFFER_TOO_SMALL as above. */
AE_API AeStatus ae_detokenize(const AeEngine* engine, const int32_t* tokens, size_t n_tokens, char* text, size_t capacity,
                              size_t* n_bytes);

/* ---------------------------------------------------------------------------------------------
 * Stream: state + position + last logits. One thread at a time per stream. */

typedef struct AeStream AeStream;

/* A new stream at position 0 with zero state and no logits. Keeps a reference to the engine
 * (which must outlive it). Release with ae_stream_destroy. */
AE_API AeStatus ae_stream_create(AeEngine* engine, AeStream** out);
/* NULL is a no-op. */
AE_API void ae_stream_destroy(AeStream* stream);
/* Back to position 0, zero state, no logits. */
AE_API AeStatus ae_stream_reset(AeStream* stream);
/* A new, independent stream with a copy of `stream`'s state, position and logits (fork a
 * conversation). `stream` is only read, but must not be used by another thread meanwhile. */
AE_API AeStatus ae_stream_clone(const AeStream* stream, AeStream** out);
/* Absolute position of the next token (tokens consumed since create/reset). */
AE_API uint64_t ae_stream_position(const AeStream* stream);

/* Consumes `n` tokens (prefill, in graph calls of up to 256 tokens like the Python runtime;
 * n = 0 is a no-op). If `logits` is not NULL it
 * receives the vocab_size next-token logits after the last token. On failure the stream is
 * unchanged. */
AE_API AeStatus ae_stream_feed(AeStream* stream, const int32_t* tokens, size_t n, float* logits);
/* Consumes one token (decode); `logits` as in ae_stream_feed. */
AE_API AeStatus ae_stream_step(AeStream* stream, int32_t token, float* logits);
/* Copies the logits after the last consumed token into `logits` (vocab_size floats);
 * AE_ERR_NO_LOGITS before the first token. */
AE_API AeStatus ae_stream_logits(const AeStream* stream, float* logits);

/* ---------------------------------------------------------------------------------------------
 * Generation. */

typedef struct AeGenerateConfig {
  int32_t max_tokens; /* tokens to generate, >= 0 (default 128) */
  float temperature;  /* 0 = greedy (argmax, lowest id wins ties); > 0 samples (default 0) */
  int32_t top_k;      /* keep the k most likely tokens, 0 = all (default 0) */
  float top_p;        /* keep the smallest set with probability >= top_p, in (0, 1]; 1 = off */
  float repetition_penalty; /* > 0; divides positive (multiplies negative) logits of every token
                               the stream consumed since create/reset/load; 1 = off (default) */
  uint64_t seed;      /* sampling seed: same seed, same tokens (default 0) */
} AeGenerateConfig;

AE_API AeGenerateConfig ae_generate_config_default(void);
AE_API AeStatus ae_generate_config_validate(const AeGenerateConfig* config);
/* Printable one-line form, snprintf-style as ae_engine_config_print. */
AE_API int ae_generate_config_print(const AeGenerateConfig* config, char* buf, size_t size);

/* Called once per generated token, on the thread that called ae_generate. `piece` is the UTF-8
 * text this token completes: `piece_len` bytes followed by a NUL (token 0 yields one NUL byte, so
 * use piece_len, not strlen); "" while a multi-byte character is incomplete; invalid bytes become
 * U+FFFD exactly as in Python's errors="replace"); NULL for packages with a HuggingFace tokenizer.
 * `piece` is valid only during the call. Return 0 to go on, non-zero to stop. */
typedef int (*AeTokenCallback)(int32_t token, const char* piece, size_t piece_len, void* user_data);

/* Feeds `prompt` (n_prompt may be 0 to continue from the stream's last logits), then repeatedly
 * picks a token from the logits, feeds it and reports it to `callback` (may be NULL), until
 * max_tokens tokens or the callback returns non-zero. A reported token has already been consumed,
 * so after any return the stream can be continued, saved or cloned. Same semantics as the Python
 * runtime's Stream.generate (greedy output is identical). *n_generated (may be NULL) receives the
 * count generated. config NULL means ae_generate_config_default(). */
AE_API AeStatus ae_generate(AeStream* stream, const int32_t* prompt, size_t n_prompt, const AeGenerateConfig* config,
                            AeTokenCallback callback, void* user_data, size_t* n_generated);

/* ---------------------------------------------------------------------------------------------
 * State files: versioned binary snapshot of a stream (state, position, last logits), tied to the
 * package by the sha256 of its model.onnx, with a trailing sha256 of the content. Written to a
 * temp file beside `path` and renamed over it: a reader never sees a half-written file. Files use
 * the host's byte order (little-endian on x86-64 and ARM64). */

/* Bytes ae_stream_save_state writes for this engine. */
AE_API size_t ae_engine_state_file_size(const AeEngine* engine);
AE_API AeStatus ae_stream_save_state(const AeStream* stream, const char* path);
/* Replaces the stream's state, position and logits. Refuses (stream unchanged) a file of another
 * package (AE_ERR_MISMATCH), a newer version (AE_ERR_VERSION) or a damaged file (AE_ERR_FORMAT). */
AE_API AeStatus ae_stream_load_state(AeStream* stream, const char* path);

#ifdef __cplusplus
}
#endif

#endif /* ASTROEDGE_H_ */
