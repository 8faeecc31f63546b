/* AMSU kernels: the one native implementation of the op contract astroedge/contract/amsu.json,
 * shared by the ONNX Runtime custom-op library (plugins/amsu/ort) and the TensorRT plugin
 * (plugins/amsu/tensorrt). Plain C ABI so that .cu files, ORT wrappers and TensorRT wrappers can
 * all include it without pulling in each other's headers.
 *
 * Layout: x, q, k, v, s are [B, S, D] row-major; heads are contiguous channel blocks of HD = D/NH.
 * h_in/h_out are [B, NH, HD, HD] with h[b][n][i][j] pairing value channel i and key channel j;
 * u_in/u_out are [B, D]. State is always float32.
 *
 * Ownership: the caller owns every buffer; kernels allocate nothing that outlives the call.
 * Aliasing: h_out may equal h_in and u_out may equal u_in (in-place state update, as TensorRT binds
 * one buffer as state input and output); no other pointers may overlap.
 * Thread safety: the functions keep no global state; concurrent calls on disjoint buffers are safe.
 * Return value: 0 on success, a negative AMSU_ERR_* code otherwise (amsu_error_string explains).
 */
#ifndef ASTROEDGE_AMSU_KERNELS_H_
#define ASTROEDGE_AMSU_KERNELS_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum AmsuDType { AMSU_FLOAT32 = 0, AMSU_FLOAT16 = 1 } AmsuDType;

enum {
  AMSU_OK = 0,
  AMSU_ERR_INVALID_ARGUMENT = -1, /* bad sizes (D % NH != 0, negative dims) or NULL pointers */
  AMSU_ERR_CUDA = -2,             /* a CUDA call failed; amsu_cuda_last_error() has the text */
  AMSU_ERR_UNSUPPORTED = -3       /* e.g. head width beyond what the kernel was built for */
};

typedef struct AmsuShape {
  int64_t batch; /* B  */
  int64_t seq;   /* S, tokens in this call (1 = decode) */
  int64_t dim;   /* D  */
  int64_t heads; /* NH */
} AmsuShape;

typedef struct AmsuAttrs {
  float threshold; /* spike threshold theta */
  float eps;       /* epsilon of the per-head RMSNorm */
} AmsuAttrs;

/* Inputs and outputs of one call. x, q, k, v, s point to elements of `dtype` (float or IEEE half
 * stored as uint16_t); everything else is float32. */
typedef struct AmsuBuffers {
  const void* x;
  const void* q;
  const void* k;
  const void* v;
  const float* w_o;   /* [D]  */
  const float* gamma; /* [NH] */
  const float* beta;  /* [D]  */
  const float* h_in;  /* [B, NH, HD, HD] */
  const float* u_in;  /* [B, D] */
  void* s;            /* [B, S, D] spikes, 0 or 1, in `dtype` */
  float* h_out;       /* may equal h_in */
  float* u_out;       /* may equal u_in */
} AmsuBuffers;

/* CPU: host pointers. num_threads <= 0 means one thread per hardware core. */
int amsu_cpu_forward(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf, int num_threads);

/* CUDA: device pointers, enqueued on `stream` (a cudaStream_t; NULL = legacy default stream).
 * Asynchronous: returns after launching. Only available in builds with CUDA. */
int amsu_cuda_forward(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf, void* stream);

/* Scratch device memory amsu_cuda_forward_ws may use for `shape` (0 when it needs none: decode, short
 * prompts, heads wider than 64). Non-decreasing in batch and seq, so the size for a profile's
 * largest shape covers every smaller shape (TensorRT's getWorkspaceSize). */
size_t amsu_cuda_workspace_bytes(const AmsuShape* shape);

/* amsu_cuda_forward with caller-owned scratch: `workspace` is device memory of `workspace_bytes`
 * (>= amsu_cuda_workspace_bytes(shape), 256-byte aligned) that the call may overwrite. With
 * workspace == NULL or too small, the call takes stream-ordered scratch itself (cudaMallocAsync),
 * as amsu_cuda_forward always does. */
int amsu_cuda_forward_ws(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                         void* workspace, size_t workspace_bytes, void* stream);
const char* amsu_cuda_last_error(void);

const char* amsu_error_string(int code);

#ifdef __cplusplus
}
#endif

#endif /* ASTROEDGE_AMSU_KERNELS_H_ */
