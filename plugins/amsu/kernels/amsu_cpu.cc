// CPU implementation of the AMSU op contract (astroedge/contract/amsu.json), see amsu_kernels.h.
//
// Work is split into independent (stream b, head n) tasks: a head owns its d x d astrocyte state and
// its d membrane channels, so tasks never share memory and need no locks.
//   decode (S == 1): one fused pass over the state rows, H = gamma H + v k^T and o = H q together,
//     so the state is read once and written once (decode is memory bound).
//   prefill (S > 1): chunkwise form, kChunk tokens at a time, as small dense matrix products
//     (intra-chunk masked Q K^T with decay times V, inter-chunk carry gamma^(a+1) H q, then
//     H = gamma^c H + sum_b gamma^(c-1-b) v_b k_b^T), with the state kept transposed inside the call
//     so that no product needs a transpose. Same function as the step form, reordered sums.
// No -march: the inner loops are written so that -O3 vectorises them for the baseline ISA (vector-
// extension register tiles, reductions marked `omp simd`, which needs only -fopenmp-simd, no OpenMP
// runtime); the matrix product also gets an AVX2 clone chosen at load time.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "amsu_kernels.h"
#include "amsu_validate.h"
#include "half_bits.h"

namespace {

constexpr int64_t kChunk = 32;  // tokens per chunk of the prefill path (32 measured ~10% faster than 64 at d = 64)
constexpr int64_t kMinWorkPerThread = 1 << 19;  // multiply-adds below which another thread costs more than it saves

inline float widen(float v) { return v; }
inline float widen(uint16_t h) { return astroedge::half_bits_to_float(h); }
// Branch-free: spikes are ~50/50 random, a branch here would mispredict on every other channel.
inline void store_spike(float* p, bool on) { *p = static_cast<float>(on); }
inline void store_spike(uint16_t* p, bool on) { *p = static_cast<uint16_t>(on * 0x3C00); }  // half 1.0 / 0.0

// exp(x) without a libm call, so that the loop over a head's channels vectorises: x = n ln2 + r
// with |r| <= ln2/2 (rounding by the 1.5 * 2^23 trick, no SSE4.1 needed), Cephes' degree-6
// polynomial for e^r (~1 ulp), times 2^n built in the exponent bits; clamped to the float range.
inline float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float magic = 12582912.0f;
  const float n = (x * 1.44269504088896341f + magic) - magic;
  const float r = x - n * 0.693359375f - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) * (1 << 23);
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

inline float sigmoid(float x) { return 1.0f / (1.0f + exp_approx(-x)); }

// 8 floats as one value (GCC/Clang vector extension): two SSE / NEON registers on the baseline ISA,
// one AVX register in the AVX2 clone below. Portable, no -march needed.
// (Loaded and stored with memcpy in place: a helper returning one by value trips -Wpsabi.)
typedef float f32x8 __attribute__((vector_size(32)));

// C[M][N] += A[M][K] B[K][N], row-major with leading dimensions. Register tiles of 4 rows x 8
// columns; the edges fall back to axpy loops. On x86-64 the function is compiled twice, baseline
// and AVX2, and the loader picks the one the CPU supports (same arithmetic: no FMA contraction in
// ISO C++ mode, so both clones round identically).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("avx2", "default")))
#endif
void gemm_acc(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda, const float* B, int64_t ldb, float* C,
              int64_t ldc) {
  constexpr int64_t MR = 4, NR = 8;
  const int64_t m_main = M - M % MR, n_main = N - N % NR;
  for (int64_t i = 0; i < m_main; i += MR) {
    for (int64_t j = 0; j < n_main; j += NR) {
      f32x8 acc[MR] = {};
      for (int64_t p = 0; p < K; ++p) {
        f32x8 bv;
        std::memcpy(&bv, B + p * ldb + j, sizeof bv);
        for (int64_t r = 0; r < MR; ++r) acc[r] += A[(i + r) * lda + p] * bv;
      }
      for (int64_t r = 0; r < MR; ++r) {
        float* c = C + (i + r) * ldc + j;
        f32x8 sum;
        std::memcpy(&sum, c, sizeof sum);
        sum += acc[r];
        std::memcpy(c, &sum, sizeof sum);
      }
    }
  }
  // Right edge (columns n_main..N) for the main rows, then the bottom rows over all columns.
  for (int64_t i = 0; i < M; ++i) {
    const int64_t j0 = i < m_main ? n_main : 0;
    if (j0 == N) continue;
    float* c = C + i * ldc;
    for (int64_t p = 0; p < K; ++p) {
      const float a = A[i * lda + p];
      const float* b = B + p * ldb;
      for (int64_t j = j0; j < N; ++j) c[j] += a * b[j];
    }
  }
}

struct Problem {
  int64_t B, S, D, NH, HD;
  AmsuAttrs attrs;
  AmsuBuffers buf;
};

// Per-thread scratch for one head task; sized once per call.
struct Scratch {
  std::vector<float> ht, q, k, v, kt, vd, a, o, u, current, decay;
  explicit Scratch(const Problem& p) {
    const int64_t hd = p.HD, c = std::min(kChunk, std::max<int64_t>(p.S, 1));
    ht.resize(hd * hd);
    q.resize(c * hd);
    k.resize(c * hd);
    v.resize(c * hd);
    kt.resize(hd * c);
    vd.resize(c * hd);
    a.resize(c * c);
    o.resize(c * hd);
    u.resize(hd);
    current.resize(hd);
    decay.resize(c + 1);
  }
};

template <typename T>
class HeadTask {
 public:
  HeadTask(const Problem& p, Scratch& s) : p_(p), s_(s) {}

  void run(int64_t b, int64_t n) {
    const int64_t hd = p_.HD, c0 = n * hd;
    const float* u_in = p_.buf.u_in + b * p_.D + c0;
    float* u = s_.u.data();
    std::copy(u_in, u_in + hd, u);  // u_out may alias u_in: work on a copy
    const size_t h_off = static_cast<size_t>((b * p_.NH + n) * hd * hd);
    if (p_.S == 1) {
      decode(b, n, p_.buf.h_in + h_off, p_.buf.h_out + h_off);
    } else {
      // The chunks work on H^T: then both products with the state are plain A * B (no transposes).
      float* ht = s_.ht.data();
      const float* h_in = p_.buf.h_in + h_off;
      for (int64_t i = 0; i < hd; ++i)
        for (int64_t j = 0; j < hd; ++j) ht[j * hd + i] = h_in[i * hd + j];
      for (int64_t t0 = 0; t0 < p_.S; t0 += kChunk) chunk(b, n, t0, std::min(kChunk, p_.S - t0), ht);
      float* h_out = p_.buf.h_out + h_off;  // may alias h_in: written only after the last read
      for (int64_t i = 0; i < hd; ++i)
        for (int64_t j = 0; j < hd; ++j) h_out[i * hd + j] = ht[j * hd + i];
    }
    std::copy(u, u + hd, p_.buf.u_out + b * p_.D + c0);
  }

 private:
  const T* token_row(const void* base, int64_t b, int64_t t, int64_t n) const {
    return static_cast<const T*>(base) + (b * p_.S + t) * p_.D + n * p_.HD;
  }

  // Spikes of token t from the head's read-out o: RMSNorm, membrane step, threshold.
  void read_out(int64_t b, int64_t n, int64_t t, const float* o) {
    const int64_t hd = p_.HD, c0 = n * hd;
    float ss = 0.0f;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < hd; ++i) ss += o[i] * o[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(hd) + p_.attrs.eps);
    const T* x = token_row(p_.buf.x, b, t, n);
    T* s = static_cast<T*>(p_.buf.s) + (b * p_.S + t) * p_.D + c0;
    const float* w_o = p_.buf.w_o + c0;
    const float* beta = p_.buf.beta + c0;
    float *u = s_.u.data(), *current = s_.current.data();
    for (int64_t i = 0; i < hd; ++i) current[i] = sigmoid(widen(x[i]));  // own loop: vectorises for float inputs
    const float threshold = p_.attrs.threshold;
    for (int64_t i = 0; i < hd; ++i) {
      u[i] = beta[i] * u[i] + (1.0f - beta[i]) * current[i];
      store_spike(s + i, u[i] + o[i] * inv * w_o[i] - threshold > 0.0f);
    }
  }

  void decode(int64_t b, int64_t n, const float* h_in, float* h_out) {
    const int64_t hd = p_.HD;
    const float g = p_.buf.gamma[n];
    float *q = s_.q.data(), *k = s_.k.data(), *v = s_.v.data(), *o = s_.o.data();
    const T *qs = token_row(p_.buf.q, b, 0, n), *ks = token_row(p_.buf.k, b, 0, n), *vs = token_row(p_.buf.v, b, 0, n);
    for (int64_t i = 0; i < hd; ++i) {
      q[i] = widen(qs[i]);
      k[i] = widen(ks[i]);
      v[i] = widen(vs[i]);
    }
    for (int64_t i = 0; i < hd; ++i) {
      const float* row_in = h_in + i * hd;
      float* row_out = h_out + i * hd;  // same element as row_in when aliased: read before write
      const float vi = v[i];
      float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
      for (int64_t j = 0; j < hd; ++j) {
        const float hij = g * row_in[j] + vi * k[j];
        row_out[j] = hij;
        acc += hij * q[j];
      }
      o[i] = acc;
    }
    read_out(b, n, 0, o);
  }

  // Tokens t0 .. t0+c-1 of head (b, n); ht [HD][HD] is the TRANSPOSED state H^T before them, and after them on return.
  void chunk(int64_t b, int64_t n, int64_t t0, int64_t c, float* ht) {
    const int64_t hd = p_.HD;
    float *q = s_.q.data(), *k = s_.k.data(), *v = s_.v.data(), *kt = s_.kt.data(), *vd = s_.vd.data();
    float *a = s_.a.data(), *o = s_.o.data(), *decay = s_.decay.data();
    double pw = 1.0;  // decay[m] = gamma^m, built in double so long products stay exact to fp32
    for (int64_t m = 0; m <= c; ++m, pw *= p_.buf.gamma[n]) decay[m] = static_cast<float>(pw);

    for (int64_t r = 0; r < c; ++r) {
      const T *qs = token_row(p_.buf.q, b, t0 + r, n), *ks = token_row(p_.buf.k, b, t0 + r, n),
              *vs = token_row(p_.buf.v, b, t0 + r, n);
      for (int64_t i = 0; i < hd; ++i) {
        q[r * hd + i] = widen(qs[i]);
        k[r * hd + i] = widen(ks[i]);
        v[r * hd + i] = widen(vs[i]);
        kt[i * c + r] = k[r * hd + i];
        vd[r * hd + i] = v[r * hd + i] * decay[c - 1 - r];
      }
    }

    // Inter-chunk carry: o_r = gamma^(r+1) H q_r, as O = diag(gamma^(r+1)) Q H^T.
    std::fill(o, o + c * hd, 0.0f);
    gemm_acc(c, hd, hd, q, hd, ht, hd, o, hd);
    for (int64_t r = 0; r < c; ++r)
      for (int64_t i = 0; i < hd; ++i) o[r * hd + i] *= decay[r + 1];

    // Intra-chunk: A = (Q K^T) .* gamma^(r-s) on s <= r, 0 above; O += A V.
    std::fill(a, a + c * c, 0.0f);
    gemm_acc(c, c, hd, q, hd, kt, c, a, c);
    for (int64_t r = 0; r < c; ++r)
      for (int64_t s = 0; s < c; ++s) a[r * c + s] = s <= r ? a[r * c + s] * decay[r - s] : 0.0f;
    gemm_acc(c, hd, c, a, c, v, hd, o, hd);

    // State carry: H = gamma^c H + (V .* gamma^(c-1-s))^T K, i.e. H^T = gamma^c H^T + K^T (V .* gamma^(c-1-s)).
    const float gc = decay[c];
    for (int64_t e = 0; e < hd * hd; ++e) ht[e] *= gc;
    gemm_acc(hd, hd, c, kt, c, vd, hd, ht, hd);

    for (int64_t r = 0; r < c; ++r) read_out(b, n, t0 + r, o + r * hd);
  }

  const Problem& p_;
  Scratch& s_;
};

// Runs every (b, n) task on up to num_threads threads; false if a worker ran out of memory.
template <typename T>
bool run_tasks(const Problem& p, int num_threads) {
  const int64_t tasks = p.B * p.NH;
  const int64_t work = tasks * std::max<int64_t>(p.S, 1) * p.HD * p.HD * 2;
  int64_t threads = num_threads > 0 ? num_threads : std::max<unsigned>(1, std::thread::hardware_concurrency());
  threads = std::max<int64_t>(1, std::min({threads, tasks, work / kMinWorkPerThread}));
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  auto worker = [&]() noexcept {
    try {
      Scratch scratch(p);
      HeadTask<T> task(p, scratch);
      for (int64_t i = next++; i < tasks; i = next++) task.run(i / p.NH, i % p.NH);
    } catch (const std::bad_alloc&) {
      failed = true;
      next = tasks;
    }
  };
  std::vector<std::thread> pool;
  try {
    for (int64_t i = 1; i < threads; ++i) pool.emplace_back(worker);
  } catch (const std::system_error&) {  // no more threads: the ones we have do all the tasks
  }
  worker();
  for (auto& t : pool) t.join();
  return !failed;
}

}  // namespace

extern "C" int amsu_cpu_forward(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                                int num_threads) {
  const int valid = amsu_validate_call(shape, dtype, buf);
  if (valid != AMSU_OK) return valid == 1 ? AMSU_OK : valid;
  const Problem p{shape->batch, shape->seq, shape->dim, shape->heads, shape->dim / shape->heads, attrs, *buf};
  const bool ok = dtype == AMSU_FLOAT32 ? run_tasks<float>(p, num_threads) : run_tasks<uint16_t>(p, num_threads);
  return ok ? AMSU_OK : AMSU_ERR_UNSUPPORTED;
}

extern "C" const char* amsu_error_string(int code) {
  switch (code) {
    case AMSU_OK:
      return "success";
    case AMSU_ERR_INVALID_ARGUMENT:
      return "invalid argument: negative or zero sizes, dim not divisible by heads, or a NULL buffer";
    case AMSU_ERR_CUDA:
      return "CUDA error (amsu_cuda_last_error() has the text)";
    case AMSU_ERR_UNSUPPORTED:
      return "unsupported: the kernel cannot run this shape here (out of memory, threads or on-chip memory)";
    default:
      return "unknown AMSU error code";
  }
}
