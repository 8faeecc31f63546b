/* SpikeMatMul kernels: the native implementation of the op contract astroedge/contract/spikematmul.json,
 * shared by the ONNX Runtime custom-op library (plugins/spikematmul/ort) and the TensorRT plugin
 * (plugins/spikematmul/tensorrt). Plain C ABI, like amsu_kernels.h.
 *
 *   y[b, t, n] = sum over k with spikes[b, t, k] != 0 of spikes[b, t, k] * W[k, n]  (+ bias[n])
 *
 * Layout: spikes [B, T, K] and y [B, T, N] row-major in `act` (float or IEEE half as uint16_t).
 * The weight is W^T, one contiguous row per input neuron:
 *   SMM_WEIGHT_FLOAT32  float    [K, N]
 *   SMM_WEIGHT_FLOAT16  uint16_t [K, N] (IEEE half)
 *   SMM_WEIGHT_INT8     int8_t   [K, N], scale float [N]:           W[k, n] = weight[k, n] * scale[n]
 *   SMM_WEIGHT_INT4     uint8_t  [K, (N + 1) / 2], scale float [K, (N + bs - 1) / bs] with bs = block_size:
 *                       q = (weight[k, n / 2] >> (4 * (n % 2))) & 15, W[k, n] = (q - 8) * scale[k, n / bs]
 * bias: float [N] or NULL. Arithmetic in float32; y is rounded to `act` once.
 *
 * Ownership: the caller owns every buffer; no pointer may overlap y. Thread safety: no global state.
 * Return value: 0 on success, a negative SMM_ERR_* code otherwise (spikematmul_error_string explains).
 */
#ifndef ASTROEDGE_SPIKEMATMUL_KERNELS_H_
#define ASTROEDGE_SPIKEMATMUL_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum SmmActType { SMM_ACT_FLOAT32 = 0, SMM_ACT_FLOAT16 = 1 } SmmActType;

/* Same order as the contract's weight_formats (the wrappers static_assert it). */
typedef enum SmmWeightFormat {
  SMM_WEIGHT_FLOAT32 = 0,
  SMM_WEIGHT_FLOAT16 = 1,
  SMM_WEIGHT_INT8 = 2,
  SMM_WEIGHT_INT4 = 3
} SmmWeightFormat;

enum {
  SMM_OK = 0,
  SMM_ERR_INVALID_ARGUMENT = -1, /* negative sizes, bad block size, NULL pointers, unknown format or type */
  SMM_ERR_CUDA = -2,             /* a CUDA call failed; spikematmul_cuda_last_error() has the text */
  SMM_ERR_UNSUPPORTED = -3
};

typedef struct SmmShape {
  int64_t batch;        /* B */
  int64_t seq;          /* T, tokens in this call (1 = decode) */
  int64_t in_features;  /* K */
  int64_t out_features; /* N */
  int64_t block_size;   /* int4 only: even, >= 2; ignored otherwise */
} SmmShape;

typedef struct SmmBuffers {
  const void* spikes; /* [B, T, K] in act */
  const void* weight; /* per format, see above */
  const float* scale; /* int8 / int4 only (else ignored) */
  const float* bias;  /* [N] or NULL */
  void* y;            /* [B, T, N] in act */
} SmmBuffers;

/* CPU: host pointers. num_threads <= 0: up to one thread per hardware thread, fewer when the call is
 * small (a decode step over a small matrix runs on the calling thread). Picks per call between the
 * sparse path (add the rows of the fired neurons) and a blocked dense product (prefill with many
 * fired neurons), whichever reads and computes less. */
int spikematmul_cpu_forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format, const SmmBuffers* buf,
                            int num_threads);

/* A caller's thread pool: parallel_for(runner, fn, arg, n) runs fn(arg, i) for every i in [0, n), possibly
 * concurrently, and returns when all have run (ONNX Runtime's KernelContext::ParallelFor has this shape).
 * num_threads: how many of them can run at once; the kernel splits its work into at most that many tasks. */
typedef struct SmmParallel {
  void (*parallel_for)(void* runner, void (*fn)(void* arg, size_t i), void* arg, size_t n);
  void* runner;
  int num_threads;
} SmmParallel;

/* spikematmul_cpu_forward on the caller's thread pool instead of its own std::threads. */
int spikematmul_cpu_forward_parallel(const SmmShape* shape, SmmActType act, SmmWeightFormat format,
                                     const SmmBuffers* buf, const SmmParallel* parallel);

/* CUDA: device pointers, enqueued on `stream` (cudaStream_t; NULL = legacy default stream). Asynchronous.
 * Rows of T tokens: a gather kernel (reads only the fired rows) when B * T is small, a dense tiled
 * kernel otherwise. Only in builds with CUDA. */
int spikematmul_cuda_forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format, const SmmBuffers* buf,
                             void* stream);
const char* spikematmul_cuda_last_error(void);

const char* spikematmul_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* ASTROEDGE_SPIKEMATMUL_KERNELS_H_ */
