// SpikeMatMul on the CPU (contract astroedge/contract/spikematmul.json, ABI spikematmul_kernels.h).
//
// Two paths, chosen per call:
// - sparse: per output row, the list of fired inputs; the weight rows of those inputs are added, four at
//   a time, into an accumulator of up to kChunk columns that stays in L1. A decode step therefore reads
//   only the fired rows, each as one contiguous stream. Rows whose spikes are all exactly 1 take adds
//   only; int8 rows of ones are summed in int32 (exact) and scaled once per channel.
// - dense: a blocked product (4 x 16 register tiles) of the spikes with the weight, dequantised strip by
//   strip for the quantised formats. Taken when many rows fire densely (prefill at a high firing rate),
//   where a register-tiled product beats one add per loaded weight.
// Both split the output columns over std::threads when the call is big enough to pay for them.
//
// The hot loops are plain C++ that GCC vectorises at -O3 on any target (SSE2 / NEON); on x86-64 they
// are also compiled for x86-64-v3 (AVX2, FMA, F16C) and picked at load time (target_clones). This file
// is compiled with -ffp-contract=fast: the AVX2 clone then fuses the dense product's multiply-adds.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "spikematmul_half.h"
#include "spikematmul_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SMM_HAVE_AVX2_INT4 1
#endif

namespace {

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define SMM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SMM_CLONES
#endif

using astroedge_smm::half;

constexpr int64_t kChunk = 512;      // accumulator columns (2 KiB of float: stays in L1), one row (decode)
constexpr int64_t kChunkRows = 128;  // with many rows: a K x 128 weight panel (1.5 MiB at K = 3072) is re-read from L2
constexpr int64_t kColAlign = 64;    // thread column ranges start at multiples of this (even: int4 bytes)
constexpr int64_t kMinWorkPerThread = 1 << 18;  // ~0.25 M weight elements per thread before splitting pays

struct Call {
  int64_t M, K, N, bs;
  SmmActType act;
  SmmWeightFormat format;
  SmmBuffers buf;
};

// Fired inputs of every row: CSR of (index, value) and whether every value is exactly 1.
struct Fired {
  std::vector<int32_t> idx;
  std::vector<float> val;
  std::vector<int64_t> start;  // M + 1
  std::vector<uint8_t> ones;   // M
};

float load_act(const void* p, SmmActType act, int64_t i) {
  return act == SMM_ACT_FLOAT32 ? static_cast<const float*>(p)[i] : static_cast<float>(static_cast<const half*>(p)[i]);
}

Fired collect(const Call& c) {
  Fired f;
  f.start.resize(c.M + 1);
  f.ones.resize(c.M);
  f.start[0] = 0;
  for (int64_t m = 0; m < c.M; ++m) {
    bool ones = true;
    for (int64_t k = 0; k < c.K; ++k) {
      const float s = load_act(c.buf.spikes, c.act, m * c.K + k);
      if (s != 0.0f) {
        f.idx.push_back(static_cast<int32_t>(k));
        f.val.push_back(s);
        ones = ones && s == 1.0f;
      }
    }
    f.ones[m] = ones;
    f.start[m + 1] = static_cast<int64_t>(f.idx.size());
  }
  return f;
}

// ------------------------------------------------------------------------------------------------
// Sparse path: acc[0..w) += sum of the fired rows' columns [n0, n0 + w).

// dst[0..n) = float(src[0..n)). GCC 12 leaves half -> float loops scalar, so x86-64 CPUs with F16C take
// vcvtph2ps intrinsics (run-time check); elsewhere the plain loop (aarch64: one fcvt per value).
#ifdef SMM_HAVE_AVX2_INT4
__attribute__((target("avx2,f16c"))) void widen_f16c(const half* src, float* dst, int64_t n) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    _mm256_storeu_ps(dst + j, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j))));
  for (; j < n; ++j) dst[j] = static_cast<float>(src[j]);
}

bool cpu_has_f16c() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return yes;
}
#endif

inline void widen(const half* src, float* dst, int64_t n) {
#ifdef SMM_HAVE_AVX2_INT4
  if (cpu_has_f16c()) return widen_f16c(src, dst, n);
#endif
  for (int64_t j = 0; j < n; ++j) dst[j] = static_cast<float>(src[j]);
}

// Rows of ones, 4 at a time: a tree of adds per column, one store.
SMM_CLONES void add_rows_f32(float* __restrict acc, const float* W, int64_t ldw, const int32_t* idx, int64_t count,
                             int64_t n0, int64_t w) {
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const float* r0 = W + idx[i] * ldw + n0;
    const float* r1 = W + idx[i + 1] * ldw + n0;
    const float* r2 = W + idx[i + 2] * ldw + n0;
    const float* r3 = W + idx[i + 3] * ldw + n0;
    for (int64_t j = 0; j < w; ++j) acc[j] += (r0[j] + r1[j]) + (r2[j] + r3[j]);
  }
  for (; i < count; ++i) {
    const float* r = W + idx[i] * ldw + n0;
    for (int64_t j = 0; j < w; ++j) acc[j] += r[j];
  }
}

// Halves are widened (widen: F16C where the CPU has it) into a small L1 buffer, then added like float rows.
SMM_CLONES void add_rows_f16(float* __restrict acc, const half* W, int64_t ldw, const int32_t* idx, int64_t count,
                             int64_t n0, int64_t w) {
  constexpr int64_t kSeg = 128;
  float tmp[4][kSeg];
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (int64_t j0 = 0; j0 < w; j0 += kSeg) {
      const int64_t len = std::min(kSeg, w - j0);
      for (int r = 0; r < 4; ++r) widen(W + idx[i + r] * ldw + n0 + j0, tmp[r], len);
      float* a = acc + j0;
      for (int64_t j = 0; j < len; ++j) a[j] += (tmp[0][j] + tmp[1][j]) + (tmp[2][j] + tmp[3][j]);
    }
  }
  for (; i < count; ++i) {
    for (int64_t j0 = 0; j0 < w; j0 += kSeg) {
      const int64_t len = std::min(kSeg, w - j0);
      widen(W + idx[i] * ldw + n0 + j0, tmp[0], len);
      for (int64_t j = 0; j < len; ++j) acc[j0 + j] += tmp[0][j];
    }
  }
}

// int8 rows of ones: exact int32 sums (4 int8 fit in int16 before widening).
SMM_CLONES void add_rows_i8(int32_t* __restrict acc, const int8_t* W, int64_t ldw, const int32_t* idx, int64_t count,
                            int64_t n0, int64_t w) {
  int64_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const int8_t* r0 = W + idx[i] * ldw + n0;
    const int8_t* r1 = W + idx[i + 1] * ldw + n0;
    const int8_t* r2 = W + idx[i + 2] * ldw + n0;
    const int8_t* r3 = W + idx[i + 3] * ldw + n0;
    for (int64_t j = 0; j < w; ++j)
      acc[j] += static_cast<int16_t>(static_cast<int16_t>(r0[j] + r1[j]) + static_cast<int16_t>(r2[j] + r3[j]));
  }
  for (; i < count; ++i) {
    const int8_t* r = W + idx[i] * ldw + n0;
    for (int64_t j = 0; j < w; ++j) acc[j] += r[j];
  }
}

// General values (any non-zero spike): acc += v * row, for float and int8 (scale applied by the caller).
SMM_CLONES void axpy_rows_f32(float* __restrict acc, const float* W, int64_t ldw, const int32_t* idx, const float* val,
                              int64_t count, int64_t n0, int64_t w) {
  for (int64_t i = 0; i < count; ++i) {
    const float* r = W + idx[i] * ldw + n0;
    const float v = val[i];
    for (int64_t j = 0; j < w; ++j) acc[j] += v * r[j];
  }
}

SMM_CLONES void axpy_rows_f16(float* __restrict acc, const half* W, int64_t ldw, const int32_t* idx, const float* val,
                              int64_t count, int64_t n0, int64_t w) {
  for (int64_t i = 0; i < count; ++i) {
    const half* r = W + idx[i] * ldw + n0;
    const float v = val[i];
    for (int64_t j = 0; j < w; ++j) acc[j] += v * static_cast<float>(r[j]);
  }
}

SMM_CLONES void axpy_rows_i8(float* __restrict acc, const int8_t* W, int64_t ldw, const int32_t* idx, const float* val,
                             int64_t count, int64_t n0, int64_t w) {
  for (int64_t i = 0; i < count; ++i) {
    const int8_t* r = W + idx[i] * ldw + n0;
    const float v = val[i];
    for (int64_t j = 0; j < w; ++j) acc[j] += v * static_cast<float>(r[j]);
  }
}

// int4: accumulators split by nibble (even columns in ev, odd in od, indexed by byte), so the loops run
// over bytes with no shuffles; the caller interleaves them.

// Bytes [t0, t1) of one row, scale looked up per run of whole-block bytes (any even block size).
inline void i4_generic(float* ev, float* od, const uint8_t* r, const float* sc, float v, int64_t b0, int64_t t0,
                       int64_t t1, int64_t half_bs) {
  for (int64_t j = t0; j < t1;) {
    const int64_t end = std::min(t1, j + (half_bs - (b0 + j) % half_bs));
    const float s = v * sc[(b0 + j) / half_bs];
    for (int64_t t = j; t < end; ++t) {
      ev[t] += s * static_cast<float>((r[t] & 15) - 8);
      od[t] += s * static_cast<float>((r[t] >> 4) - 8);
    }
    j = end;
  }
}

// `blocks` whole blocks of HB bytes from byte 0 (aligned to a block): a fixed trip count that vectorises.
template <int64_t HB>
__attribute__((always_inline)) inline void i4_blocks(float* ev, float* od, const uint8_t* r, const float* sc, float v,
                                                     int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float s = v * sc[b];
    const uint8_t* rb = r + b * HB;
    float* e = ev + b * HB;
    float* o = od + b * HB;
    for (int64_t t = 0; t < HB; ++t) {
      e[t] += s * static_cast<float>((rb[t] & 15) - 8);
      o[t] += s * static_cast<float>((rb[t] >> 4) - 8);
    }
  }
}

// Four rows at once (one accumulator read-modify-write per four rows), same block layout.
template <int64_t HB>
__attribute__((always_inline)) inline void i4_blocks4(float* ev, float* od, const uint8_t* const* r,
                                                      const float* const* sc, const float* v, int64_t blocks) {
  for (int64_t b = 0; b < blocks; ++b) {
    const float s0 = v[0] * sc[0][b], s1 = v[1] * sc[1][b], s2 = v[2] * sc[2][b], s3 = v[3] * sc[3][b];
    const uint8_t *r0 = r[0] + b * HB, *r1 = r[1] + b * HB, *r2 = r[2] + b * HB, *r3 = r[3] + b * HB;
    float* e = ev + b * HB;
    float* o = od + b * HB;
    for (int64_t t = 0; t < HB; ++t) {
      e[t] += (s0 * static_cast<float>((r0[t] & 15) - 8) + s1 * static_cast<float>((r1[t] & 15) - 8)) +
              (s2 * static_cast<float>((r2[t] & 15) - 8) + s3 * static_cast<float>((r3[t] & 15) - 8));
      o[t] += (s0 * static_cast<float>((r0[t] >> 4) - 8) + s1 * static_cast<float>((r1[t] >> 4) - 8)) +
              (s2 * static_cast<float>((r2[t] >> 4) - 8) + s3 * static_cast<float>((r3[t] >> 4) - 8));
    }
  }
}

#ifdef SMM_HAVE_AVX2_INT4
// i4_blocks4 in AVX2 + FMA intrinsics (GCC left the nibble unpacking to shuffles, 3-4x slower): per 8
// bytes of a row, widen to int32, split the nibbles, convert, multiply-add with the row's block scale;
// the zero point enters once per block as -8 * (sum of the four scales). Blocks of hb bytes, hb % 8 == 0.
__attribute__((target("avx2,fma"))) void i4_blocks4_avx2(float* ev, float* od, const uint8_t* const* r,
                                                         const float* const* sc, const float* v, int64_t blocks,
                                                         int64_t hb) {
  const __m256i low = _mm256_set1_epi32(15);
  for (int64_t b = 0; b < blocks; ++b) {
    const float s[4] = {v[0] * sc[0][b], v[1] * sc[1][b], v[2] * sc[2][b], v[3] * sc[3][b]};
    const __m256 zero_point = _mm256_set1_ps(-8.0f * ((s[0] + s[1]) + (s[2] + s[3])));
    __m256 sv[4];
    for (int j = 0; j < 4; ++j) sv[j] = _mm256_set1_ps(s[j]);
    for (int64_t t = b * hb; t < (b + 1) * hb; t += 8) {
      __m256 e = zero_point, o = zero_point;
      for (int j = 0; j < 4; ++j) {
        int64_t bytes8;
        std::memcpy(&bytes8, r[j] + t, sizeof bytes8);
        const __m256i x = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes8));
        e = _mm256_fmadd_ps(sv[j], _mm256_cvtepi32_ps(_mm256_and_si256(x, low)), e);
        o = _mm256_fmadd_ps(sv[j], _mm256_cvtepi32_ps(_mm256_srli_epi32(x, 4)), o);
      }
      _mm256_storeu_ps(ev + t, _mm256_add_ps(_mm256_loadu_ps(ev + t), e));
      _mm256_storeu_ps(od + t, _mm256_add_ps(_mm256_loadu_ps(od + t), o));
    }
  }
}

bool cpu_has_avx2_fma() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

// Whether int4 rows of block size bs take the AVX2 four-row unpacking (else the portable loops).
bool int4_rows_fast(int64_t bs) {
#ifdef SMM_HAVE_AVX2_INT4
  return (bs == 32 || bs == 64) && cpu_has_avx2_fma();
#else
  (void)bs;
  return false;
#endif
}

// Columns [n0, n0 + w), n0 even.
SMM_CLONES void axpy_rows_i4(float* ev, float* od, const uint8_t* W, int64_t ldw, const float* scale, int64_t nb_row,
                             int64_t bs, const int32_t* idx, const float* val, int64_t count, int64_t n0, int64_t w) {
  const int64_t b0 = n0 / 2, bytes = (w + 1) / 2, hb = bs / 2;
  const bool aligned = b0 % hb == 0;
  const int64_t blocks = aligned ? bytes / hb : 0, tail = blocks * hb;
  int64_t i = 0;
  if (aligned && blocks > 0 && (hb == 16 || hb == 32)) {  // bs 32 and 64: four rows per pass
    for (; i + 4 <= count; i += 4) {
      const uint8_t* r[4];
      const float* sc[4];
      for (int j = 0; j < 4; ++j) {
        r[j] = W + idx[i + j] * ldw + b0;
        sc[j] = scale + idx[i + j] * nb_row + b0 / hb;
      }
#ifdef SMM_HAVE_AVX2_INT4
      if (cpu_has_avx2_fma())
        i4_blocks4_avx2(ev, od, r, sc, val + i, blocks, hb);
      else
#endif
          if (hb == 16)
        i4_blocks4<16>(ev, od, r, sc, val + i, blocks);
      else
        i4_blocks4<32>(ev, od, r, sc, val + i, blocks);
      for (int j = 0; j < 4; ++j)
        i4_generic(ev, od, r[j], scale + idx[i + j] * nb_row, val[i + j], b0, tail, bytes, hb);
    }
  }
  for (; i < count; ++i) {
    const uint8_t* r = W + idx[i] * ldw + b0;
    const float* sc = scale + idx[i] * nb_row;
    const float v = val[i];
    switch (aligned ? hb : 0) {
      case 8:
        i4_blocks<8>(ev, od, r, sc + b0 / hb, v, blocks);
        break;
      case 16:
        i4_blocks<16>(ev, od, r, sc + b0 / hb, v, blocks);
        break;
      case 32:
        i4_blocks<32>(ev, od, r, sc + b0 / hb, v, blocks);
        break;
      case 64:
        i4_blocks<64>(ev, od, r, sc + b0 / hb, v, blocks);
        break;
      default:
        i4_generic(ev, od, r, sc, v, b0, 0, bytes, hb);
        continue;
    }
    i4_generic(ev, od, r, sc, v, b0, tail, bytes, hb);
  }
}

void store_row(const Call& c, int64_t m, int64_t n0, int64_t w, const float* acc) {
  const float* bias = c.buf.bias;
  if (c.act == SMM_ACT_FLOAT32) {
    float* y = static_cast<float*>(c.buf.y) + m * c.N + n0;
    for (int64_t j = 0; j < w; ++j) y[j] = acc[j] + (bias ? bias[n0 + j] : 0.0f);
  } else {
    half* y = static_cast<half*>(c.buf.y) + m * c.N + n0;
    for (int64_t j = 0; j < w; ++j) y[j] = static_cast<half>(acc[j] + (bias ? bias[n0 + j] : 0.0f));
  }
}

// Weight columns [n0, n0 + w) as float, row-major [K, w].
SMM_CLONES void dequantize_strip(const Call& c, int64_t n0, int64_t w, float* out) {
  const int64_t nb_row = c.format == SMM_WEIGHT_INT4 ? (c.N + c.bs - 1) / c.bs : 0;
  for (int64_t k = 0; k < c.K; ++k) {
    float* o = out + k * w;
    switch (c.format) {
      case SMM_WEIGHT_FLOAT32:
        std::memcpy(o, static_cast<const float*>(c.buf.weight) + k * c.N + n0, w * sizeof(float));
        break;
      case SMM_WEIGHT_FLOAT16:
        widen(static_cast<const half*>(c.buf.weight) + k * c.N + n0, o, w);
        break;
      case SMM_WEIGHT_INT8: {
        const int8_t* r = static_cast<const int8_t*>(c.buf.weight) + k * c.N + n0;
        for (int64_t j = 0; j < w; ++j) o[j] = static_cast<float>(r[j]) * c.buf.scale[n0 + j];
        break;
      }
      case SMM_WEIGHT_INT4: {
        const uint8_t* r = static_cast<const uint8_t*>(c.buf.weight) + k * ((c.N + 1) / 2);
        const float* sc = c.buf.scale + k * nb_row;
        for (int64_t j = 0; j < w;) {  // runs of one scale block
          const int64_t end = std::min(w, j + (c.bs - (n0 + j) % c.bs));
          const float s = sc[(n0 + j) / c.bs];
          for (int64_t t = j; t < end; ++t) {
            const int64_t n = n0 + t;
            o[t] = static_cast<float>(((r[n >> 1] >> (4 * (n & 1))) & 15) - 8) * s;
          }
          j = end;
        }
        break;
      }
    }
  }
}

// Sparse path over output columns [c0, c1) for every row.
void sparse_columns(const Call& c, const Fired& f, int64_t c0, int64_t c1) {
  std::vector<float> acc(kChunk), ev(kChunk / 2 + 1), od(kChunk / 2 + 1);
  std::vector<int32_t> iacc(kChunk);
  const int64_t nb_row = c.format == SMM_WEIGHT_INT4 ? (c.N + c.bs - 1) / c.bs : 0;
  // Column panels outermost with many rows, so a panel's fired weight rows are reused from cache by
  // every row; rows outermost for decode (one row: long contiguous reads).
  const int64_t chunk = c.M > 1 ? kChunkRows : kChunk;
  // fp16 (and int4 without the AVX2 unpacking) with many fired rows in total: dequantise each panel once
  // and add float rows, instead of converting a fired row again for every row that needs it. int8 rows
  // stay int8 (exact int32 sums read a quarter of the bytes: measured 1.1-1.6x faster at T = 64).
  const bool panel = c.M > 1 && 2 * f.start[c.M] >= c.K &&
                     (c.format == SMM_WEIGHT_FLOAT16 || (c.format == SMM_WEIGHT_INT4 && !int4_rows_fast(c.bs)));
  std::vector<float> strip(panel ? c.K * chunk : 0);
  for (int64_t n0 = c0; n0 < c1; n0 += chunk) {
    const int64_t w = std::min(chunk, c1 - n0);
    if (panel) dequantize_strip(c, n0, w, strip.data());
    for (int64_t m = 0; m < c.M; ++m) {
      const int32_t* idx = f.idx.data() + f.start[m];
      const float* val = f.val.data() + f.start[m];
      const int64_t count = f.start[m + 1] - f.start[m];
      std::fill(acc.begin(), acc.begin() + w, 0.0f);
      if (panel) {
        if (f.ones[m])
          add_rows_f32(acc.data(), strip.data(), w, idx, count, 0, w);
        else
          axpy_rows_f32(acc.data(), strip.data(), w, idx, val, count, 0, w);
        store_row(c, m, n0, w, acc.data());
        continue;
      }
      switch (c.format) {
        case SMM_WEIGHT_FLOAT32: {
          const auto* W = static_cast<const float*>(c.buf.weight);
          if (f.ones[m])
            add_rows_f32(acc.data(), W, c.N, idx, count, n0, w);
          else
            axpy_rows_f32(acc.data(), W, c.N, idx, val, count, n0, w);
          break;
        }
        case SMM_WEIGHT_FLOAT16: {
          const auto* W = static_cast<const half*>(c.buf.weight);
          if (f.ones[m])
            add_rows_f16(acc.data(), W, c.N, idx, count, n0, w);
          else
            axpy_rows_f16(acc.data(), W, c.N, idx, val, count, n0, w);
          break;
        }
        case SMM_WEIGHT_INT8: {
          const auto* W = static_cast<const int8_t*>(c.buf.weight);
          if (f.ones[m]) {
            std::fill(iacc.begin(), iacc.begin() + w, 0);
            add_rows_i8(iacc.data(), W, c.N, idx, count, n0, w);
            for (int64_t j = 0; j < w; ++j) acc[j] = static_cast<float>(iacc[j]);
          } else {
            axpy_rows_i8(acc.data(), W, c.N, idx, val, count, n0, w);
          }
          for (int64_t j = 0; j < w; ++j) acc[j] *= c.buf.scale[n0 + j];
          break;
        }
        case SMM_WEIGHT_INT4: {
          const int64_t bytes = (w + 1) / 2;
          std::fill(ev.begin(), ev.begin() + bytes, 0.0f);
          std::fill(od.begin(), od.begin() + bytes, 0.0f);
          axpy_rows_i4(ev.data(), od.data(), static_cast<const uint8_t*>(c.buf.weight), (c.N + 1) / 2, c.buf.scale,
                       nb_row, c.bs, idx, val, count, n0, w);
          for (int64_t j = 0; j < w; ++j) acc[j] = (j & 1) ? od[j / 2] : ev[j / 2];
          break;
        }
      }
      store_row(c, m, n0, w, acc.data());
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Dense path: Y[M, cols] = S[M, K] Wf[K, cols], Wf a float strip of kStrip columns.

constexpr int64_t kStrip = 64;
constexpr int64_t MR = 4, NR = 16;

// 8 floats as one value (GCC/Clang vector extension): one AVX register in the x86-64-v3 clone, two
// SSE / NEON registers otherwise. Loaded and stored with memcpy (no alignment assumed).
typedef float f32x8 __attribute__((vector_size(32)));

// C[M][w] = A[M][K] B[K][w] (B with leading dimension ldb), register tiles of MR x NR (8 accumulators).
SMM_CLONES void gemm_strip(int64_t M, int64_t K, int64_t w, const float* A, const float* B, int64_t ldb, float* C,
                           int64_t ldc) {
  const int64_t m_main = M - M % MR, n_main = w - w % NR;
  for (int64_t j = 0; j < n_main; j += NR) {
    for (int64_t i = 0; i < m_main; i += MR) {
      f32x8 acc[MR][2] = {};
      const float* a = A + i * K;
      for (int64_t p = 0; p < K; ++p) {
        f32x8 b0, b1;
        std::memcpy(&b0, B + p * ldb + j, sizeof b0);
        std::memcpy(&b1, B + p * ldb + j + 8, sizeof b1);
        for (int64_t r = 0; r < MR; ++r) {
          const float ar = a[r * K + p];
          acc[r][0] += ar * b0;
          acc[r][1] += ar * b1;
        }
      }
      for (int64_t r = 0; r < MR; ++r) {
        std::memcpy(C + (i + r) * ldc + j, &acc[r][0], sizeof(f32x8));
        std::memcpy(C + (i + r) * ldc + j + 8, &acc[r][1], sizeof(f32x8));
      }
    }
  }
  // Bottom rows over the main columns, then the right edge over all rows.
  for (int64_t i = 0; i < M; ++i) {
    const int64_t j0 = i < m_main ? n_main : 0;
    float* c = C + i * ldc;
    for (int64_t j = j0; j < w; ++j) c[j] = 0.0f;
    for (int64_t p = 0; p < K; ++p) {
      const float a = A[i * K + p];
      if (a == 0.0f) continue;
      const float* b = B + p * ldb;
      for (int64_t j = j0; j < w; ++j) c[j] += a * b[j];
    }
  }
}

void dense_columns(const Call& c, const float* S, int64_t c0, int64_t c1) {
  std::vector<float> strip(c.format == SMM_WEIGHT_FLOAT32 ? 0 : c.K * kStrip), out(c.M * kStrip);
  for (int64_t n0 = c0; n0 < c1; n0 += kStrip) {
    const int64_t w = std::min(kStrip, c1 - n0);
    const float* B;
    int64_t ldb;
    if (c.format == SMM_WEIGHT_FLOAT32) {
      B = static_cast<const float*>(c.buf.weight) + n0;
      ldb = c.N;
    } else {
      dequantize_strip(c, n0, w, strip.data());
      B = strip.data();
      ldb = w;
    }
    gemm_strip(c.M, c.K, w, S, B, ldb, out.data(), w);
    for (int64_t m = 0; m < c.M; ++m) store_row(c, m, n0, w, out.data() + m * w);
  }
}

// ------------------------------------------------------------------------------------------------

// Column ranges of [0, N) for `tasks` tasks: equal widths rounded up to kColAlign.
int64_t task_width(int64_t N, int tasks) { return ((N + tasks - 1) / tasks + kColAlign - 1) / kColAlign * kColAlign; }

// Runs fn(c0, c1) over `tasks` column ranges of [0, N): on the caller's pool when given, else on
// std::threads (the calling thread takes the first range).
template <typename Fn>
void split_columns(int64_t N, int tasks, const SmmParallel* pool, Fn fn) {
  const int64_t per = task_width(N, tasks);
  const int64_t count = (N + per - 1) / per;
  if (count <= 1) {
    fn(0, N);
    return;
  }
  struct Job {
    Fn* fn;
    int64_t per, N;
  } job{&fn, per, N};
  if (pool) {
    pool->parallel_for(
        pool->runner,
        [](void* arg, size_t i) {
          const Job& j = *static_cast<Job*>(arg);
          const int64_t c0 = static_cast<int64_t>(i) * j.per;
          (*j.fn)(c0, std::min(j.N, c0 + j.per));
        },
        &job, static_cast<size_t>(count));
    return;
  }
  std::vector<std::thread> threads;
  for (int64_t t = 1; t < count; ++t) threads.emplace_back(fn, t * per, std::min(N, (t + 1) * per));
  fn(0, per);
  for (std::thread& th : threads) th.join();
}

int pick_threads(int requested, int64_t work, int64_t N) {
  int hw = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t by_work = std::max<int64_t>(1, work / kMinWorkPerThread);
  const int64_t by_cols = std::max<int64_t>(1, (N + kColAlign - 1) / kColAlign);
  return static_cast<int>(std::min<int64_t>({hw, by_work, by_cols}));
}

int validate(const SmmShape* shape, SmmActType act, SmmWeightFormat format, const SmmBuffers* buf) {
  if (!shape || !buf) return SMM_ERR_INVALID_ARGUMENT;
  if (shape->batch < 0 || shape->seq < 0 || shape->in_features < 0 || shape->out_features < 0)
    return SMM_ERR_INVALID_ARGUMENT;
  if (shape->in_features > INT32_MAX) return SMM_ERR_UNSUPPORTED;
  if (act != SMM_ACT_FLOAT32 && act != SMM_ACT_FLOAT16) return SMM_ERR_INVALID_ARGUMENT;
  if (format < SMM_WEIGHT_FLOAT32 || format > SMM_WEIGHT_INT4) return SMM_ERR_INVALID_ARGUMENT;
  if (format == SMM_WEIGHT_INT4 && (shape->block_size < 2 || shape->block_size % 2)) return SMM_ERR_INVALID_ARGUMENT;
  const int64_t rows = shape->batch * shape->seq;
  if (rows == 0 || shape->out_features == 0) return 1;
  if (!buf->y) return SMM_ERR_INVALID_ARGUMENT;
  if (shape->in_features > 0) {
    if (!buf->spikes || !buf->weight) return SMM_ERR_INVALID_ARGUMENT;
    if ((format == SMM_WEIGHT_INT8 || format == SMM_WEIGHT_INT4) && !buf->scale) return SMM_ERR_INVALID_ARGUMENT;
  }
  return SMM_OK;
}

int forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format, const SmmBuffers* buf, int num_threads,
            const SmmParallel* pool) {
  const int valid = validate(shape, act, format, buf);
  if (valid != SMM_OK) return valid < 0 ? valid : SMM_OK;
  const Call c{
      shape->batch * shape->seq, shape->in_features, shape->out_features, shape->block_size, act, format, *buf};
  try {
    const Fired f = collect(c);
    const int64_t nnz = f.start[c.M];
    // Dense only when three in four inputs fired: per weight element, the sparse path's adds (four rows
    // per pass, L1 accumulator) measured about as fast as the tiled product's multiply-adds, and the
    // dense path needs enough rows to fill its tiles (plugins/spikematmul/README.md).
    const bool dense = c.M >= 2 * MR && 4 * nnz > 3 * c.M * c.K;
    const int64_t work = dense ? c.M * c.K * c.N : std::max<int64_t>(nnz, 1) * c.N;
    const int threads = pick_threads(num_threads, work, c.N);
    if (dense) {
      std::vector<float> S(c.M * c.K);
      for (int64_t i = 0; i < c.M * c.K; ++i) S[i] = load_act(c.buf.spikes, c.act, i);
      split_columns(c.N, threads, pool, [&](int64_t c0, int64_t c1) { dense_columns(c, S.data(), c0, c1); });
    } else {
      split_columns(c.N, threads, pool, [&](int64_t c0, int64_t c1) { sparse_columns(c, f, c0, c1); });
    }
  } catch (const std::bad_alloc&) {
    return SMM_ERR_UNSUPPORTED;
  } catch (const std::system_error&) {
    return SMM_ERR_UNSUPPORTED;
  }
  return SMM_OK;
}

}  // namespace

extern "C" int spikematmul_cpu_forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format,
                                       const SmmBuffers* buf, int num_threads) {
  return forward(shape, act, format, buf, num_threads, nullptr);
}

extern "C" int spikematmul_cpu_forward_parallel(const SmmShape* shape, SmmActType act, SmmWeightFormat format,
                                                const SmmBuffers* buf, const SmmParallel* parallel) {
  if (!parallel || !parallel->parallel_for) return SMM_ERR_INVALID_ARGUMENT;
  return forward(shape, act, format, buf, parallel->num_threads > 0 ? parallel->num_threads : 1, parallel);
}

extern "C" const char* spikematmul_error_string(int code) {
  switch (code) {
    case SMM_OK:
      return "success";
    case SMM_ERR_INVALID_ARGUMENT:
      return "invalid argument (negative size, block_size not even and >= 2, NULL buffer, unknown format or type)";
    case SMM_ERR_CUDA:
      return "CUDA error";
    case SMM_ERR_UNSUPPORTED:
      return "unsupported (out of memory, threads unavailable, or K beyond int32)";
    default:
      return "unknown error code";
  }
}
