// SpikeMatMul on CUDA (contract astroedge/contract/spikematmul.json, ABI spikematmul_kernels.h).
//
// Two kernels, picked by the number of rows M = B * T:
// - gather (M <= kGatherMaxRows, batch-1 decode): one block per (row, tile of kTile output columns). The
//   block compacts the row's fired inputs (index, value) into shared memory, kChunk inputs at a time
//   (warp ballots + a scan over the warps), then each warp adds a strided share of the fired weight
//   rows for the tile's columns (lanes read consecutive columns: coalesced), and the warps' partial sums
//   are reduced in shared memory. Only the rows of neurons that fired are read.
// - dense (prefill, larger batches): a shared-memory tiled product, 64 x 64 output tiles, 4 x 4 per
//   thread, with the weight tile dequantised to float as it is loaded.
// Both accumulate in float32 and round y to the activation type once. Asynchronous on the caller's stream.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "spikematmul_kernels.h"

namespace {

thread_local std::string g_last_error;

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 64;     // output columns per gather block: 2 per lane
constexpr int kChunk = 2048;  // fired inputs compacted per pass (16 KiB of shared memory)
constexpr int64_t kGatherMaxRows = 4;

template <typename TA>
__device__ __forceinline__ float to_float(TA v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
  return __half2float(v);
}

template <typename TA>
__device__ __forceinline__ TA from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
  return __float2half_rn(v);
}

// W[k, n] dequantised per the contract's weight format.
template <int F>
__device__ __forceinline__ float weight_at(const void* w, const float* scale, int64_t k, int64_t n, int64_t N,
                                           int64_t bs) {
  if constexpr (F == SMM_WEIGHT_FLOAT32) {
    return static_cast<const float*>(w)[k * N + n];
  } else if constexpr (F == SMM_WEIGHT_FLOAT16) {
    return __half2float(static_cast<const __half*>(w)[k * N + n]);
  } else if constexpr (F == SMM_WEIGHT_INT8) {
    return static_cast<float>(static_cast<const int8_t*>(w)[k * N + n]) * scale[n];
  } else {
    const uint8_t byte = static_cast<const uint8_t*>(w)[k * ((N + 1) / 2) + n / 2];
    const int q = ((byte >> (4 * (n & 1))) & 15) - 8;
    return static_cast<float>(q) * scale[k * ((N + bs - 1) / bs) + n / bs];
  }
}

template <typename TA, int F>
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const TA* __restrict__ spikes, const void* __restrict__ w, const float* __restrict__ scale,
                  const float* __restrict__ bias, TA* __restrict__ y, int64_t K, int64_t N, int64_t bs) {
  __shared__ int32_t s_idx[kChunk];
  __shared__ float s_val[kChunk];
  __shared__ int s_warp_count[kWarps];
  __shared__ float s_partial[kWarps][kTile];
  const int64_t m = blockIdx.y;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTile;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const TA* row = spikes + m * K;
  float acc[kTile / 32] = {};

  for (int64_t k0 = 0; k0 < K; k0 += kChunk) {
    // Compact the fired inputs of [k0, k0 + kChunk) in order.
    int count = 0;
    for (int base = 0; base < kChunk && k0 + base < K; base += kThreads) {
      const int64_t k = k0 + base + threadIdx.x;
      const float v = k < K ? to_float(row[k]) : 0.0f;
      const unsigned ballot = __ballot_sync(0xffffffffu, v != 0.0f);
      if (lane == 0) s_warp_count[warp] = __popc(ballot);
      __syncthreads();
      int before = count;
      for (int i = 0; i < warp; ++i) before += s_warp_count[i];
      int total = count;
      for (int i = 0; i < kWarps; ++i) total += s_warp_count[i];
      if (v != 0.0f) {
        const int at = before + __popc(ballot & ((1u << lane) - 1u));
        s_idx[at] = static_cast<int32_t>(k);
        s_val[at] = v;
      }
      count = total;
      __syncthreads();
    }
    // Each warp adds every kWarps-th fired row; lanes cover the tile's columns.
    for (int i = warp; i < count; i += kWarps) {
      const int64_t k = s_idx[i];
      const float v = s_val[i];
#pragma unroll
      for (int c = 0; c < kTile / 32; ++c) {
        const int64_t n = n0 + lane + 32 * c;
        if (n < N) acc[c] += v * weight_at<F>(w, scale, k, n, N, bs);
      }
    }
    __syncthreads();  // s_idx is rewritten by the next chunk
  }
#pragma unroll
  for (int c = 0; c < kTile / 32; ++c) s_partial[warp][lane + 32 * c] = acc[c];
  __syncthreads();
  if (threadIdx.x < kTile) {
    const int64_t n = n0 + threadIdx.x;
    if (n < N) {
      float sum = bias ? bias[n] : 0.0f;
      for (int i = 0; i < kWarps; ++i) sum += s_partial[i][threadIdx.x];
      y[m * N + n] = from_float<TA>(sum);
    }
  }
}

constexpr int kBM = 64, kBN = 64, kBK = 16;

template <typename TA, int F>
__global__ void __launch_bounds__(kThreads)
    dense_kernel(const TA* __restrict__ spikes, const void* __restrict__ w, const float* __restrict__ scale,
                 const float* __restrict__ bias, TA* __restrict__ y, int64_t M, int64_t K, int64_t N, int64_t bs) {
  __shared__ float s_a[kBK][kBM + 1];
  __shared__ float s_b[kBK][kBN];
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM, n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;  // 16 x 16 threads, 4 x 4 outputs each
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    for (int i = threadIdx.x; i < kBM * kBK; i += kThreads) {
      const int r = i / kBK, kk = i % kBK;
      const int64_t m = m0 + r, k = k0 + kk;
      s_a[kk][r] = (m < M && k < K) ? to_float(spikes[m * K + k]) : 0.0f;
    }
    for (int i = threadIdx.x; i < kBK * kBN; i += kThreads) {
      const int kk = i / kBN, c = i % kBN;
      const int64_t k = k0 + kk, n = n0 + c;
      s_b[kk][c] = (k < K && n < N) ? weight_at<F>(w, scale, k, n, N, bs) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = s_a[kk][tr + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = s_b[kk][tc + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t m = m0 + tr + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t n = n0 + tc + 16 * j;
      if (n < N) y[m * N + n] = from_float<TA>(acc[i][j] + (bias ? bias[n] : 0.0f));
    }
  }
}

template <typename TA, int F>
void launch(const SmmShape& s, const SmmBuffers& b, cudaStream_t stream) {
  const int64_t M = s.batch * s.seq;
  const auto* spikes = static_cast<const TA*>(b.spikes);
  auto* y = static_cast<TA*>(b.y);
  if (M <= kGatherMaxRows) {
    const dim3 grid(static_cast<unsigned>((s.out_features + kTile - 1) / kTile), static_cast<unsigned>(M));
    gather_kernel<TA, F><<<grid, kThreads, 0, stream>>>(spikes, b.weight, b.scale, b.bias, y, s.in_features,
                                                        s.out_features, s.block_size);
  } else {
    const dim3 grid(static_cast<unsigned>((s.out_features + kBN - 1) / kBN),
                    static_cast<unsigned>((M + kBM - 1) / kBM));
    dense_kernel<TA, F><<<grid, kThreads, 0, stream>>>(spikes, b.weight, b.scale, b.bias, y, M, s.in_features,
                                                       s.out_features, s.block_size);
  }
}

template <typename TA>
void launch_format(const SmmShape& s, SmmWeightFormat f, const SmmBuffers& b, cudaStream_t stream) {
  switch (f) {
    case SMM_WEIGHT_FLOAT32:
      launch<TA, SMM_WEIGHT_FLOAT32>(s, b, stream);
      break;
    case SMM_WEIGHT_FLOAT16:
      launch<TA, SMM_WEIGHT_FLOAT16>(s, b, stream);
      break;
    case SMM_WEIGHT_INT8:
      launch<TA, SMM_WEIGHT_INT8>(s, b, stream);
      break;
    case SMM_WEIGHT_INT4:
      launch<TA, SMM_WEIGHT_INT4>(s, b, stream);
      break;
  }
}

}  // namespace

extern "C" int spikematmul_cuda_forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format,
                                        const SmmBuffers* buf, void* stream) {
  if (!shape || !buf) return SMM_ERR_INVALID_ARGUMENT;
  const SmmShape& s = *shape;
  if (s.batch < 0 || s.seq < 0 || s.in_features < 0 || s.out_features < 0) return SMM_ERR_INVALID_ARGUMENT;
  if (act != SMM_ACT_FLOAT32 && act != SMM_ACT_FLOAT16) return SMM_ERR_INVALID_ARGUMENT;
  if (format < SMM_WEIGHT_FLOAT32 || format > SMM_WEIGHT_INT4) return SMM_ERR_INVALID_ARGUMENT;
  if (format == SMM_WEIGHT_INT4 && (s.block_size < 2 || s.block_size % 2)) return SMM_ERR_INVALID_ARGUMENT;
  const int64_t M = s.batch * s.seq;
  if (M == 0 || s.out_features == 0) return SMM_OK;
  if (!buf->y || (s.in_features > 0 && (!buf->spikes || !buf->weight))) return SMM_ERR_INVALID_ARGUMENT;
  if (s.in_features > 0 && (format == SMM_WEIGHT_INT8 || format == SMM_WEIGHT_INT4) && !buf->scale)
    return SMM_ERR_INVALID_ARGUMENT;
  if (s.in_features > INT32_MAX || M > 65535 * static_cast<int64_t>(kBM) ||
      (M <= kGatherMaxRows && (s.out_features + kTile - 1) / kTile > INT32_MAX)) {
    g_last_error = "spikematmul_cuda_forward: shape beyond the kernel's grid limits";
    return SMM_ERR_UNSUPPORTED;
  }
  auto* st = static_cast<cudaStream_t>(stream);
  if (act == SMM_ACT_FLOAT32)
    launch_format<float>(s, format, *buf, st);
  else
    launch_format<__half>(s, format, *buf, st);
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) {
    g_last_error = std::string("spikematmul_cuda_forward: kernel launch: ") + cudaGetErrorName(err) + ": " +
                   cudaGetErrorString(err);
    return SMM_ERR_CUDA;
  }
  return SMM_OK;
}

extern "C" const char* spikematmul_cuda_last_error(void) { return g_last_error.c_str(); }
