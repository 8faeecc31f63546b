/* The C ABI between libastroedge and its TensorRT backend module, libastroedge_tensorrt.so.
 *
 * The module is built only where TensorRT is found and is dlopen'ed by libastroedge (from the folder
 * libastroedge itself was loaded from) when an engine is created for device "tensorrt" or "jetson",
 * so the core library has no link dependency on TensorRT or CUDA. A plain C struct of function
 * pointers, versioned by AE_TRT_BACKEND_ABI: the two sides may come from different builds.
 * Every function that can fail writes one line into err (err_size bytes, NUL-terminated). */
#ifndef ASTROEDGE_RUNTIME_TENSORRT_BACKEND_H_
#define ASTROEDGE_RUNTIME_TENSORRT_BACKEND_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AE_TRT_BACKEND_ABI 1
#define AE_TRT_BACKEND_SYMBOL "ae_tensorrt_backend"

typedef struct AeTrtBackend AeTrtBackend;

/* One tensor whose data the ONNX graph keeps in the external-data file: bytes [offset, offset + length). */
typedef struct AeTrtInitializer {
  const char* name;
  uint64_t offset;
  uint64_t length;
} AeTrtInitializer;

typedef struct AeTrtConfig {
  const uint8_t* onnx; /* model.onnx bytes (verified by the core) */
  size_t onnx_size;
  const uint8_t* external; /* model.onnx.data bytes or NULL */
  size_t external_size;
  const AeTrtInitializer* initializers; /* the tensors kept in `external` */
  size_t n_initializers;
  const char* plugin_library; /* the AMSU TensorRT plugin library (libastroedge_trt.so) */
  const char* cache_dir;      /* engine cache folder (created if missing) */
  const char* cache_key;      /* sha256 of manifest.json: the engine is rebuilt for another package */
  int32_t device_id;
  int32_t max_batch; /* decode profile: tokens [1..max_batch, 1] */
  int32_t max_chunk; /* prefill profile: tokens [1, 1..max_chunk] */
  int64_t vocab_size;
  const char* tokens_name;
  const char* position_name;
  const char* logits_name;
  size_t n_state;
  const char* const* state_inputs;
  const char* const* state_outputs;
  const int64_t* const* state_dims; /* per tensor, without the batch dimension */
  const size_t* state_ranks;
} AeTrtConfig;

typedef struct AeTrtApi {
  int abi; /* AE_TRT_BACKEND_ABI */
  /* Builds (or loads from the cache) the engine: NULL on failure. */
  AeTrtBackend* (*create)(const AeTrtConfig* config, char* err, size_t err_size);
  void (*destroy)(AeTrtBackend* backend);
  /* One graph call: tokens [batch, n] and positions [batch] in host memory; state tensors (stacked
   * over the batch, tensor after tensor) in GPU memory from alloc; logits [batch, n, vocab] to host.
   * Thread-safe (each profile's execution context is used under its own lock). 0 on success. */
  int (*run)(AeTrtBackend* backend, const int64_t* tokens, size_t batch, size_t n, const int64_t* positions,
             const float* past, float* present, float* logits, char* err, size_t err_size);
  void* (*alloc)(AeTrtBackend* backend, size_t bytes); /* GPU memory, zeroed; NULL when out of memory */
  void (*free)(AeTrtBackend* backend, void* p);
  int (*copy)(AeTrtBackend* backend, void* dst, const void* src, size_t bytes); /* any direction; 0 on success */
  int (*zero)(AeTrtBackend* backend, void* p, size_t bytes);
} AeTrtApi;

typedef const AeTrtApi* (*AeTrtBackendEntry)(void);

#ifdef __cplusplus
}
#endif

#endif /* ASTROEDGE_RUNTIME_TENSORRT_BACKEND_H_ */
