// CUDA implementation of the AMSU op contract (astroedge/contract/amsu.json), see amsu_kernels.h.
//
// One thread block per (stream b, head n); the head's d x d astrocyte state stays on-chip for the
// whole call: read from h_in once, written to h_out once, so decode moves the minimum number of
// bytes and prefill never round-trips the state through global memory. Tokens are processed in
// order (the step form); the next token's inputs are loaded while the current one is computed.
//   d <= 128 (all presets): the state lives in REGISTERS. Groups of kTpr threads own a row of H
//     (each thread every kTpr-th column), so H[i][:] = gamma H[i][:] + v_i k and o_i = H[i][:] . q
//     cost a few FMAs and a log2(kTpr)-step shuffle per thread and token.
//   128 < d <= 238: the state lives in shared memory (opt-in > 48 KiB), one warp per row.
// Long prompts on few streams (S >= 64, d <= 64) take a chunkwise path instead (below), which
// spreads the work over chunks of 32 tokens so that one prompt fills the GPU.
// ONNX Runtime headers never enter this file (nvcc cannot parse them): the wrappers call the
// extern "C" launcher below.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <string>

#include "amsu_kernels.h"
#include "amsu_validate.h"

namespace {

thread_local std::string g_last_error;

constexpr int kThreads = 256;  // 8 warps; also the widest head whose channels one block can own

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, size_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store_spike(float* p, bool on) { *p = on ? 1.0f : 0.0f; }
__device__ __forceinline__ void store_spike(__half* p, bool on) { *p = __float2half(on ? 1.0f : 0.0f); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The per-channel side of both sequential kernels: thread tid < HD owns membrane channel c0 + tid.
// Per token it stages q, k, v into shared memory while prefetching the next token's inputs
// (stage), and once the head's read-out o is complete turns it into a spike (fire).
template <typename T>
struct ChannelLane {
  const T *x, *q, *k, *v;
  T* s;
  int64_t S, D;
  size_t row;  // element of this channel in the current token's row of x, q, k, v, s
  bool owner;
  float u = 0.0f, bt = 0.0f, wo = 0.0f;
  float xt = 0.0f, xn = 0.0f, qn = 0.0f, kn = 0.0f, vn = 0.0f;  // current x; prefetched next token

  __device__ ChannelLane(int64_t S_, int64_t D_, int64_t b, int64_t c0, int tid, int HD, const T* x_, const T* q_,
                         const T* k_, const T* v_, T* s_, const float* w_o, const float* beta, const float* u_in)
      : x(x_),
        q(q_),
        k(k_),
        v(v_),
        s(s_),
        S(S_),
        D(D_),
        row(static_cast<size_t>(b * S_) * D_ + c0 + tid),
        owner(tid < HD) {
    if (!owner) return;
    u = u_in[b * D + c0 + tid];
    bt = beta[c0 + tid];
    wo = w_o[c0 + tid];
    if (S > 0) fetch(row);
  }

  __device__ void fetch(size_t at) {
    xn = load(x, at);
    qn = load(q, at);
    kn = load(k, at);
    vn = load(v, at);
  }

  // Token t: q, k, v into shared memory (visible after the caller's __syncthreads), next token fetched.
  __device__ void stage(int64_t t, int tid, float* qs, float* ks, float* vs) {
    xt = xn;
    if (!owner) return;
    qs[tid] = qn;
    ks[tid] = kn;
    vs[tid] = vn;
    if (t + 1 < S) fetch(row + D);
  }

  // After the head's read-out os[0..HD) is complete: RMSNorm, membrane step, spike; then the next row.
  __device__ void fire(const float* os, int HD, int tid, int lane, float threshold, float eps) {
    float ss = 0.0f;
    for (int j = lane; j < HD; j += 32) ss += os[j] * os[j];
    ss = warp_sum(ss);
    if (owner) {
      const float inv = 1.0f / sqrtf(ss / static_cast<float>(HD) + eps);
      u = bt * u + (1.0f - bt) * (1.0f / (1.0f + expf(-xt)));
      store_spike(s + row, u + os[tid] * inv * wo - threshold > 0.0f);
    }
    row += D;
  }
};

constexpr int kTpr = 4;                        // threads per row of H in the register kernel
constexpr int kRowsPerPass = kThreads / kTpr;  // 64 rows of H per pass over the block
constexpr int kMaxRegHd = 128;                 // widest head the register kernel takes (2 passes x 32 columns)

// Same contract as amsu_forward_smem below, with H in registers: thread tid owns rows
// i = tid / kTpr + r * kRowsPerPass (r < kRpt) and columns j = tid % kTpr + l * kTpr (l < kEpt).
template <typename T, int kEpt, int kRpt>
__global__ void __launch_bounds__(kThreads)
    amsu_forward_regs(int64_t S, int64_t D, int NH, int HD, float threshold, float eps, const T* __restrict__ x,
                      const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const float* __restrict__ w_o, const float* __restrict__ gamma, const float* __restrict__ beta,
                      const float* h_in, const float* u_in, T* __restrict__ s, float* h_out, float* u_out) {
  __shared__ float qs[kMaxRegHd], ks[kMaxRegHd], vs[kMaxRegHd], os[kMaxRegHd];
  const int64_t b = blockIdx.x / NH;
  const int n = static_cast<int>(blockIdx.x % NH);
  const int tid = threadIdx.x, lane = tid & 31, row0 = tid / kTpr, seg = tid % kTpr;
  const size_t h_off = static_cast<size_t>(blockIdx.x) * HD * HD;
  const int64_t c0 = static_cast<int64_t>(n) * HD;

  float h[kRpt][kEpt];
#pragma unroll
  for (int r = 0; r < kRpt; ++r)
#pragma unroll
    for (int l = 0; l < kEpt; ++l) {
      const int i = row0 + r * kRowsPerPass, j = seg + l * kTpr;
      h[r][l] = (i < HD && j < HD) ? h_in[h_off + static_cast<size_t>(i) * HD + j] : 0.0f;
    }
  ChannelLane<T> ch(S, D, b, c0, tid, HD, x, q, k, v, s, w_o, beta, u_in);
  const float g = gamma[n];
  for (int64_t t = 0; t < S; ++t) {
    ch.stage(t, tid, qs, ks, vs);
    __syncthreads();  // token vectors visible
#pragma unroll
    for (int r = 0; r < kRpt; ++r) {
      const int i = row0 + r * kRowsPerPass;
      const float vi = i < HD ? vs[i] : 0.0f;
      float acc = 0.0f;
#pragma unroll
      for (int l = 0; l < kEpt; ++l) {
        const int j = seg + l * kTpr;
        if (j < HD) {
          h[r][l] = g * h[r][l] + vi * ks[j];
          acc += h[r][l] * qs[j];
        }
      }
#pragma unroll
      for (int off = kTpr / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
      if (seg == 0 && i < HD) os[i] = acc;
    }
    __syncthreads();  // o complete; token vectors no longer read until the next iteration's writes
    ch.fire(os, HD, tid, lane, threshold, eps);
  }
#pragma unroll
  for (int r = 0; r < kRpt; ++r)
#pragma unroll
    for (int l = 0; l < kEpt; ++l) {
      const int i = row0 + r * kRowsPerPass, j = seg + l * kTpr;
      if (i < HD && j < HD) h_out[h_off + static_cast<size_t>(i) * HD + j] = h[r][l];
    }
  if (ch.owner) u_out[b * D + c0 + tid] = ch.u;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    amsu_forward_smem(int64_t S, int64_t D, int NH, int HD, float threshold, float eps, const T* __restrict__ x,
                      const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                      const float* __restrict__ w_o, const float* __restrict__ gamma, const float* __restrict__ beta,
                      const float* h_in, const float* u_in, T* __restrict__ s, float* h_out, float* u_out) {
  extern __shared__ float smem[];
  float* H = smem;          // [HD][HD]
  float* qs = H + HD * HD;  // current token, [HD] each
  float* ks = qs + HD;
  float* vs = ks + HD;
  float* os = vs + HD;  // read-out o of the current token

  const int64_t b = blockIdx.x / NH;
  const int n = static_cast<int>(blockIdx.x % NH);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
  const size_t h_off = static_cast<size_t>(blockIdx.x) * HD * HD;
  const int64_t c0 = static_cast<int64_t>(n) * HD;

  for (int e = tid; e < HD * HD; e += blockDim.x) H[e] = h_in[h_off + e];
  ChannelLane<T> ch(S, D, b, c0, tid, HD, x, q, k, v, s, w_o, beta, u_in);
  const float g = gamma[n];
  for (int64_t t = 0; t < S; ++t) {
    ch.stage(t, tid, qs, ks, vs);
    __syncthreads();  // token vectors (and, on t = 0, H) visible to all warps
    for (int i = warp; i < HD; i += nwarps) {
      const float vi = vs[i];
      float acc = 0.0f;
      for (int j = lane; j < HD; j += 32) {
        const float hij = g * H[i * HD + j] + vi * ks[j];
        H[i * HD + j] = hij;
        acc += hij * qs[j];
      }
      acc = warp_sum(acc);
      if (lane == 0) os[i] = acc;
    }
    __syncthreads();  // o complete; token vectors no longer read until the next iteration's writes
    ch.fire(os, HD, tid, lane, threshold, eps);
  }
  __syncthreads();
  for (int e = tid; e < HD * HD; e += blockDim.x) h_out[h_off + e] = H[e];
  if (ch.owner) u_out[b * D + c0 + tid] = ch.u;
}

int fail(cudaError_t err, const char* what) {
  g_last_error = std::string(what) + ": " + cudaGetErrorName(err) + ": " + cudaGetErrorString(err);
  return AMSU_ERR_CUDA;
}

// ---------------------------------------------------------------------------------------------
// Chunkwise prefill (head width <= 64, S >= kChunkMinSeq, few streams). The sequential kernels
// above keep only B x NH blocks busy, so one long prompt leaves most of a GPU idle. Here the
// recurrence is split as in the reference's amsu_chunkwise_form, over chunks of kChunk tokens:
//   1. delta: per (stream, head, chunk)  dH_c = sum_j gamma^(L-1-j) v_j k_j^T          (parallel)
//   2. scan:  H entering chunk c = gamma^L H_(c-1) + dH_(c-1), element-wise over chunks  (short)
//   3. out:   o_i = sum_(j<=i) gamma^(i-j) (q_i . k_j) v_j + gamma^(i+1) H_c q_i, then the per-head
//             RMSNorm; o_hat goes to a workspace                                          (parallel)
//   4. membrane: u = beta u + (1-beta) sigmoid(x), s = [u + o_hat - theta > 0], chunkwise the same way
// The workspace (dH and u per chunk, o_hat) is the caller's (amsu_cuda_forward_ws) or stream-ordered from
// cudaMallocAsync.

constexpr int kChunk = 32;
constexpr int kMaxChunkHd = 64;
constexpr int64_t kChunkMinSeq = 64;
constexpr int64_t kChunkMaxBlocks = 128;  // beyond this many (stream, head) pairs the sequential kernel fills the GPU

__device__ __forceinline__ float gpow(float log2g, int e) {
  return e == 0 ? 1.0f : exp2f(static_cast<float>(e) * log2g);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    amsu_chunk_delta(int64_t S, int64_t D, int NH, int HD, const T* __restrict__ k, const T* __restrict__ v,
                     const float* __restrict__ gamma, float* __restrict__ delta) {
  __shared__ float ks[kChunk][kMaxChunkHd], vs[kChunk][kMaxChunkHd];
  const int bh = blockIdx.x, c = blockIdx.y, nc = gridDim.y;
  const int64_t b = bh / NH, t0 = static_cast<int64_t>(c) * kChunk;
  const int n = bh % NH, L = static_cast<int>(S - t0 < kChunk ? S - t0 : kChunk);
  const float lg = log2f(gamma[n]);
  for (int e = threadIdx.x; e < L * HD; e += blockDim.x) {
    const int j = e / HD, m = e % HD;
    const size_t idx = static_cast<size_t>((b * S + t0 + j) * D + static_cast<int64_t>(n) * HD + m);
    ks[j][m] = load(k, idx) * gpow(lg, L - 1 - j);
    vs[j][m] = load(v, idx);
  }
  __syncthreads();
  float* out = delta + (static_cast<size_t>(bh) * nc + c) * HD * HD;
  for (int e = threadIdx.x; e < HD * HD; e += blockDim.x) {
    const int r = e / HD, m = e % HD;
    float acc = 0.0f;
    for (int j = 0; j < L; ++j) acc += vs[j][r] * ks[j][m];
    out[e] = acc;
  }
}

// In place: delta[c] becomes the state entering chunk c; h_out gets the state after the last chunk.
__global__ void __launch_bounds__(kThreads)
    amsu_chunk_scan(int64_t S, int NH, int HD, int nc, const float* __restrict__ gamma, const float* h_in,
                    float* __restrict__ delta, float* h_out) {
  const int bh = blockIdx.x;
  const int e = blockIdx.y * blockDim.x + threadIdx.x;
  if (e >= HD * HD) return;
  const float lg = log2f(gamma[bh % NH]);
  const size_t hd2 = static_cast<size_t>(HD) * HD;
  float h = h_in[bh * hd2 + e];  // read before h_out (which may alias h_in) is written by this same thread
  for (int c = 0; c < nc; ++c) {
    const int L =
        static_cast<int>(S - static_cast<int64_t>(c) * kChunk < kChunk ? S - static_cast<int64_t>(c) * kChunk : kChunk);
    float* slot = delta + (static_cast<size_t>(bh) * nc + c) * hd2 + e;
    const float d = *slot;
    *slot = h;
    h = gpow(lg, L) * h + d;
  }
  h_out[bh * hd2 + e] = h;
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    amsu_chunk_out(int64_t S, int64_t D, int NH, int HD, float eps, const T* __restrict__ q, const T* __restrict__ k,
                   const T* __restrict__ v, const float* __restrict__ w_o, const float* __restrict__ gamma,
                   const float* __restrict__ h_start, float* __restrict__ o_hat) {
  __shared__ float qs[kChunk][kMaxChunkHd + 1], ks[kChunk][kMaxChunkHd + 1], vs[kChunk][kMaxChunkHd];
  __shared__ float hs[kMaxChunkHd][kMaxChunkHd + 1], sc[kChunk][kChunk + 1];
  const int bh = blockIdx.x, c = blockIdx.y, nc = gridDim.y;
  const int64_t b = bh / NH, t0 = static_cast<int64_t>(c) * kChunk;
  const int n = bh % NH, L = static_cast<int>(S - t0 < kChunk ? S - t0 : kChunk);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = blockDim.x >> 5;
  const float lg = log2f(gamma[n]);
  const int64_t c0 = static_cast<int64_t>(n) * HD;
  for (int e = tid; e < L * HD; e += blockDim.x) {
    const int j = e / HD, m = e % HD;
    const size_t idx = static_cast<size_t>((b * S + t0 + j) * D + c0 + m);
    qs[j][m] = load(q, idx);
    ks[j][m] = load(k, idx);
    vs[j][m] = load(v, idx);
  }
  const float* hc = h_start + (static_cast<size_t>(bh) * nc + c) * HD * HD;
  for (int e = tid; e < HD * HD; e += blockDim.x) hs[e / HD][e % HD] = hc[e];
  __syncthreads();
  for (int e = tid; e < kChunk * kChunk; e += blockDim.x) {  // decayed causal scores
    const int i = e / kChunk, j = e % kChunk;
    float acc = 0.0f;
    if (i < L && j <= i) {
      for (int m = 0; m < HD; ++m) acc += qs[i][m] * ks[j][m];
      acc *= gpow(lg, i - j);
    }
    sc[i][j] = acc;
  }
  __syncthreads();
  for (int i = warp; i < L; i += nwarps) {  // one warp per token: lanes own channels, the norm is a warp sum
    float o[kMaxChunkHd / 32];
    float ss = 0.0f;
#pragma unroll
    for (int r = 0; r < kMaxChunkHd / 32; ++r) {
      const int ch = lane + 32 * r;
      float acc = 0.0f;
      if (ch < HD) {
        for (int j = 0; j <= i; ++j) acc += sc[i][j] * vs[j][ch];
        float carry = 0.0f;
        for (int m = 0; m < HD; ++m) carry += hs[ch][m] * qs[i][m];
        acc += gpow(lg, i + 1) * carry;
      }
      o[r] = acc;
      ss += acc * acc;
    }
    ss = warp_sum(ss);
    const float inv = 1.0f / sqrtf(ss / static_cast<float>(HD) + eps);
    const size_t row = static_cast<size_t>((b * S + t0 + i) * D + c0);
#pragma unroll
    for (int r = 0; r < kMaxChunkHd / 32; ++r) {
      const int ch = lane + 32 * r;
      if (ch < HD) o_hat[row + ch] = o[r] * inv * w_o[c0 + ch];
    }
  }
}

// The membrane is a linear recurrence too, so it goes chunkwise as well: (a) per (channel, chunk) a
// local walk from u = 0 gives the chunk's contribution at its end; (b) per channel a walk over the
// chunk ends turns them into the state entering each chunk; (c) per (channel, chunk) the walk is
// redone from that state, writing spikes. Chains are kChunk (or nc) long instead of S.
__device__ __forceinline__ int chunk_len(int64_t S, int c) {
  const int64_t left = S - static_cast<int64_t>(c) * kChunk;
  return static_cast<int>(left < kChunk ? left : kChunk);
}

template <typename T>
__global__ void amsu_membrane_local(int64_t B, int64_t S, int64_t D, const T* __restrict__ x,
                                    const float* __restrict__ beta, float* __restrict__ u_end) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * D) return;
  const int c = blockIdx.y, L = chunk_len(S, c);
  const int64_t b = idx / D, ch = idx % D;
  const float bt = beta[ch];
  const size_t base = static_cast<size_t>((b * S + static_cast<int64_t>(c) * kChunk) * D + ch);
  float u = 0.0f;
  for (int i = 0; i < L; ++i)
    u = bt * u + (1.0f - bt) * (1.0f / (1.0f + expf(-load(x, base + static_cast<size_t>(i) * D))));
  u_end[static_cast<size_t>(c) * B * D + idx] = u;
}

// In place: u_end[c] becomes the membrane entering chunk c; u_out gets the state after the last chunk.
__global__ void amsu_membrane_carry(int64_t B, int64_t S, int64_t D, int nc, const float* __restrict__ beta,
                                    const float* u_in, float* __restrict__ u_end, float* u_out) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * D) return;
  const float lb = log2f(beta[idx % D]);
  float u = u_in[idx];  // read before u_out (which may alias u_in) is written by this same thread
  for (int c = 0; c < nc; ++c) {
    float* slot = u_end + static_cast<size_t>(c) * B * D + idx;
    const float local = *slot;
    *slot = u;
    u = gpow(lb, chunk_len(S, c)) * u + local;
  }
  u_out[idx] = u;
}

template <typename T>
__global__ void amsu_membrane_spikes(int64_t B, int64_t S, int64_t D, float threshold, const T* __restrict__ x,
                                     const float* __restrict__ beta, const float* __restrict__ u_start,
                                     const float* __restrict__ o_hat, T* __restrict__ s) {
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= B * D) return;
  const int c = blockIdx.y, L = chunk_len(S, c);
  const int64_t b = idx / D, ch = idx % D;
  const float bt = beta[ch];
  float u = u_start[static_cast<size_t>(c) * B * D + idx];
  size_t row = static_cast<size_t>((b * S + static_cast<int64_t>(c) * kChunk) * D + ch);
  for (int i = 0; i < L; ++i, row += D) {
    u = bt * u + (1.0f - bt) * (1.0f / (1.0f + expf(-load(x, row))));
    store_spike(s + row, u + o_hat[row] - threshold > 0.0f);
  }
}

size_t chunked_workspace_floats(const AmsuShape& sh) {
  const int64_t hd = sh.dim / sh.heads, nc = (sh.seq + kChunk - 1) / kChunk;
  return static_cast<size_t>(sh.batch * sh.heads * nc * hd * hd + sh.batch * sh.seq * sh.dim + nc * sh.batch * sh.dim);
}

// Returns AMSU_OK, an error, or 1 when no workspace can be had (the caller then runs the
// sequential kernel instead). Caller scratch of enough bytes is used as is; otherwise the scratch
// is stream-ordered, allocated and freed on `stream`.
template <typename T>
int launch_chunked(const AmsuShape& sh, AmsuAttrs attrs, const AmsuBuffers& buf, void* workspace,
                   size_t workspace_bytes, cudaStream_t stream) {
  const int hd = static_cast<int>(sh.dim / sh.heads), nh = static_cast<int>(sh.heads);
  const int64_t bh = sh.batch * sh.heads, nc = (sh.seq + kChunk - 1) / kChunk;
  const size_t delta_floats = static_cast<size_t>(bh * nc) * hd * hd;
  const size_t o_floats = static_cast<size_t>(sh.batch * sh.seq * sh.dim);
  const size_t need = chunked_workspace_floats(sh) * sizeof(float);
  void* ws = workspace_bytes >= need ? workspace : nullptr;
  const bool own = ws == nullptr;
  if (own && cudaMallocAsync(&ws, need, stream) != cudaSuccess) {
    cudaGetLastError();  // clear it: the sequential kernel needs no workspace
    return 1;
  }
  float* delta = static_cast<float*>(ws);
  float* o_hat = delta + delta_floats;
  float* u_chunk = o_hat + o_floats;
  const T* x = static_cast<const T*>(buf.x);
  const T* q = static_cast<const T*>(buf.q);
  const T* k = static_cast<const T*>(buf.k);
  const T* v = static_cast<const T*>(buf.v);
  const dim3 chunks(static_cast<unsigned>(bh), static_cast<unsigned>(nc));
  amsu_chunk_delta<T><<<chunks, kThreads, 0, stream>>>(sh.seq, sh.dim, nh, hd, k, v, buf.gamma, delta);
  const dim3 scan(static_cast<unsigned>(bh), static_cast<unsigned>((hd * hd + kThreads - 1) / kThreads));
  amsu_chunk_scan<<<scan, kThreads, 0, stream>>>(sh.seq, nh, hd, static_cast<int>(nc), buf.gamma, buf.h_in, delta,
                                                 buf.h_out);
  amsu_chunk_out<T>
      <<<chunks, kThreads, 0, stream>>>(sh.seq, sh.dim, nh, hd, attrs.eps, q, k, v, buf.w_o, buf.gamma, delta, o_hat);
  const int64_t channels = sh.batch * sh.dim;
  const unsigned channel_blocks = static_cast<unsigned>((channels + 127) / 128);
  const dim3 channel_chunks(channel_blocks, static_cast<unsigned>(nc));
  amsu_membrane_local<T><<<channel_chunks, 128, 0, stream>>>(sh.batch, sh.seq, sh.dim, x, buf.beta, u_chunk);
  amsu_membrane_carry<<<channel_blocks, 128, 0, stream>>>(sh.batch, sh.seq, sh.dim, static_cast<int>(nc), buf.beta,
                                                          buf.u_in, u_chunk, buf.u_out);
  amsu_membrane_spikes<T><<<channel_chunks, 128, 0, stream>>>(sh.batch, sh.seq, sh.dim, attrs.threshold, x, buf.beta,
                                                              u_chunk, o_hat, static_cast<T*>(buf.s));
  if (!own) return AMSU_OK;
  const cudaError_t err = cudaFreeAsync(ws, stream);
  return err == cudaSuccess ? AMSU_OK : fail(err, "amsu_cuda_forward: cudaFreeAsync");
}

template <typename T>
int launch_smem(const AmsuShape& sh, AmsuAttrs attrs, const AmsuBuffers& buf, cudaStream_t stream) {
  const int hd = static_cast<int>(sh.dim / sh.heads);
  const size_t smem = (static_cast<size_t>(hd) * hd + 4 * static_cast<size_t>(hd)) * sizeof(float);
  const auto kernel = amsu_forward_smem<T>;
  if (smem > 48 * 1024) {  // beyond the default limit: opt in, if the device has that much
    int device = 0, optin = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
    if (err != cudaSuccess) return fail(err, "amsu_cuda_forward: querying shared memory");
    if (smem > static_cast<size_t>(optin)) {
      g_last_error = "amsu_cuda_forward: head width " + std::to_string(hd) + " needs " + std::to_string(smem) +
                     " bytes of shared memory per block; this device has " + std::to_string(optin);
      return AMSU_ERR_UNSUPPORTED;
    }
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (err != cudaSuccess) return fail(err, "amsu_cuda_forward: cudaFuncSetAttribute");
  }
  kernel<<<static_cast<unsigned>(sh.batch * sh.heads), kThreads, smem, stream>>>(
      sh.seq, sh.dim, static_cast<int>(sh.heads), hd, attrs.threshold, attrs.eps, static_cast<const T*>(buf.x),
      static_cast<const T*>(buf.q), static_cast<const T*>(buf.k), static_cast<const T*>(buf.v), buf.w_o, buf.gamma,
      buf.beta, buf.h_in, buf.u_in, static_cast<T*>(buf.s), buf.h_out, buf.u_out);
  return AMSU_OK;
}

template <typename T, int kEpt, int kRpt>
int launch_regs(const AmsuShape& sh, AmsuAttrs attrs, const AmsuBuffers& buf, cudaStream_t stream) {
  amsu_forward_regs<T, kEpt, kRpt><<<static_cast<unsigned>(sh.batch * sh.heads), kThreads, 0, stream>>>(
      sh.seq, sh.dim, static_cast<int>(sh.heads), static_cast<int>(sh.dim / sh.heads), attrs.threshold, attrs.eps,
      static_cast<const T*>(buf.x), static_cast<const T*>(buf.q), static_cast<const T*>(buf.k),
      static_cast<const T*>(buf.v), buf.w_o, buf.gamma, buf.beta, buf.h_in, buf.u_in, static_cast<T*>(buf.s), buf.h_out,
      buf.u_out);
  return AMSU_OK;
}

// Decode (one token) streams the state once either way: the shared-memory kernel needs fewer
// registers, so more blocks fit per SM (measured on H100: B=64, D=768 decode 13 us vs 17 us).
// Prefill takes the smallest register tile that holds the head (ceil(HD / kTpr) columns per thread).
template <typename T>
int launch_sequential(const AmsuShape& sh, AmsuAttrs attrs, const AmsuBuffers& buf, cudaStream_t stream) {
  const int64_t hd = sh.dim / sh.heads;
  if (sh.seq == 1 && (hd * hd + 4 * hd) * static_cast<int64_t>(sizeof(float)) <= 48 * 1024)
    return launch_smem<T>(sh, attrs, buf, stream);
  if (hd <= 4 * kTpr) return launch_regs<T, 4, 1>(sh, attrs, buf, stream);
  if (hd <= 8 * kTpr) return launch_regs<T, 8, 1>(sh, attrs, buf, stream);
  if (hd <= 16 * kTpr) return launch_regs<T, 16, 1>(sh, attrs, buf, stream);
  if (hd <= kMaxRegHd) return launch_regs<T, kMaxRegHd / kTpr, kMaxRegHd / kRowsPerPass>(sh, attrs, buf, stream);
  return launch_smem<T>(sh, attrs, buf, stream);
}

// A long prompt on few streams goes chunkwise; everything else, and any call whose workspace
// cannot be allocated, takes the sequential kernels.
template <typename T>
int launch(const AmsuShape& sh, AmsuAttrs attrs, const AmsuBuffers& buf, void* workspace, size_t workspace_bytes,
           cudaStream_t stream) {
  const bool chunked = sh.seq >= kChunkMinSeq && sh.dim / sh.heads <= kMaxChunkHd &&
                       sh.batch * sh.heads <= kChunkMaxBlocks && (sh.seq + kChunk - 1) / kChunk <= 65535;
  int rc = chunked ? launch_chunked<T>(sh, attrs, buf, workspace, workspace_bytes, stream) : 1;
  if (rc == 1) rc = launch_sequential<T>(sh, attrs, buf, stream);
  if (rc != AMSU_OK) return rc;
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? AMSU_OK : fail(err, "amsu_cuda_forward: kernel launch");
}

}  // namespace

extern "C" int amsu_cuda_forward_ws(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                                    void* workspace, size_t workspace_bytes, void* stream) {
  const int valid = amsu_validate_call(shape, dtype, buf);
  if (valid != AMSU_OK) return valid == 1 ? AMSU_OK : valid;
  if (shape->dim / shape->heads > kThreads) {
    g_last_error = "amsu_cuda_forward: head width " + std::to_string(shape->dim / shape->heads) +
                   " exceeds the kernel's limit of " + std::to_string(kThreads);
    return AMSU_ERR_UNSUPPORTED;
  }
  if (shape->batch * shape->heads > 0x7fffffff) return AMSU_ERR_UNSUPPORTED;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  return dtype == AMSU_FLOAT32 ? launch<float>(*shape, attrs, *buf, workspace, workspace_bytes, s)
                               : launch<__half>(*shape, attrs, *buf, workspace, workspace_bytes, s);
}

extern "C" int amsu_cuda_forward(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                                 void* stream) {
  return amsu_cuda_forward_ws(shape, attrs, dtype, buf, nullptr, 0, stream);
}

extern "C" size_t amsu_cuda_workspace_bytes(const AmsuShape* shape) {
  if (!shape || shape->batch < 1 || shape->seq < kChunkMinSeq || shape->dim < 1 || shape->heads < 1 ||
      shape->dim % shape->heads || shape->dim / shape->heads > kMaxChunkHd)
    return 0;
  return chunked_workspace_floats(*shape) * sizeof(float);
}

extern "C" const char* amsu_cuda_last_error(void) { return g_last_error.c_str(); }
