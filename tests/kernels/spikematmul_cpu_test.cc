// Checks spikematmul_cpu_forward against a float64 loop written straight from the op contract
// (astroedge/contract/spikematmul.json): every weight format, fp32 and fp16 spikes, firing rates 0 to 1
// (all-zero and all-one rows), non-0/1 spike values, odd K and N, partial int4 blocks, with and
// without bias, decode and prefill rows (the row, panel and dense paths), 1 to 3 threads, and the
// caller-pool entry point. Built with -fsanitize=address,undefined by `make sanitize`, so it also
// proves the kernel stays in bounds of every buffer. Exit code 0 = all cases pass.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "spikematmul_half.h"
#include "spikematmul_kernels.h"

namespace {

using astroedge_smm::half;

struct Case {
  int64_t B, T, K, N, bs;
  SmmWeightFormat format;
  SmmActType act;
  double rate;   // firing rate of the 0/1 spikes
  bool general;  // a few spikes take values other than 0 and 1
  bool bias;
  int threads;
};

const char* format_name(SmmWeightFormat f) {
  static const char* names[] = {"float32", "float16", "int8", "int4"};
  return names[f];
}

bool run_case(const Case& c, std::mt19937& rng) {
  std::uniform_real_distribution<float> uni(-1.0f, 1.0f), coin(0.0f, 1.0f);
  const int64_t M = c.B * c.T, NB = (c.N + c.bs - 1) / c.bs, N2 = (c.N + 1) / 2;
  // Spikes (as float; stored in the activation type, exactly representable).
  std::vector<float> s(M * c.K);
  for (int64_t i = 0; i < M * c.K; ++i) {
    s[i] = coin(rng) < c.rate ? 1.0f : 0.0f;
    if (c.general && coin(rng) < 0.05f) s[i] = 0.5f * std::round(4.0f * uni(rng));  // -2 .. 2 in halves, 0 included
  }
  // Weights per format, and the dequantised matrix in double.
  std::vector<double> W(c.K * c.N);
  std::vector<float> wf, scale;
  std::vector<half> wh;
  std::vector<int8_t> w8;
  std::vector<uint8_t> w4;
  switch (c.format) {
    case SMM_WEIGHT_FLOAT32:
      wf.resize(c.K * c.N);
      for (int64_t i = 0; i < c.K * c.N; ++i) W[i] = wf[i] = uni(rng);
      break;
    case SMM_WEIGHT_FLOAT16:
      wh.resize(c.K * c.N);
      for (int64_t i = 0; i < c.K * c.N; ++i)
        W[i] = static_cast<double>(static_cast<float>(wh[i] = static_cast<half>(uni(rng))));
      break;
    case SMM_WEIGHT_INT8:
      w8.resize(c.K * c.N);
      scale.resize(c.N);
      for (int64_t n = 0; n < c.N; ++n) scale[n] = 0.001f + 0.01f * coin(rng);
      for (int64_t k = 0; k < c.K; ++k)
        for (int64_t n = 0; n < c.N; ++n) {
          w8[k * c.N + n] = static_cast<int8_t>(std::lround(127.0f * uni(rng)));
          W[k * c.N + n] = static_cast<double>(w8[k * c.N + n]) * scale[n];
        }
      break;
    case SMM_WEIGHT_INT4:
      w4.assign(c.K * N2, 0);
      scale.resize(c.K * NB);
      for (float& v : scale) v = 0.01f + 0.1f * coin(rng);
      for (int64_t k = 0; k < c.K; ++k)
        for (int64_t n = 0; n < c.N; ++n) {
          const int q = static_cast<int>(rng() % 16);
          w4[k * N2 + n / 2] |= static_cast<uint8_t>(q << (4 * (n % 2)));
          W[k * c.N + n] = static_cast<double>(q - 8) * scale[k * NB + n / c.bs];
        }
      break;
  }
  std::vector<float> bias(c.bias ? c.N : 0);
  for (float& v : bias) v = uni(rng);

  std::vector<float> s32;
  std::vector<half> s16;
  if (c.act == SMM_ACT_FLOAT32)
    s32 = s;
  else
    for (float v : s) s16.push_back(static_cast<half>(v));
  std::vector<float> y32(c.act == SMM_ACT_FLOAT32 ? M * c.N : 0);
  std::vector<half> y16(c.act == SMM_ACT_FLOAT16 ? M * c.N : 0);
  const void* weight = c.format == SMM_WEIGHT_FLOAT32   ? static_cast<const void*>(wf.data())
                       : c.format == SMM_WEIGHT_FLOAT16 ? static_cast<const void*>(wh.data())
                       : c.format == SMM_WEIGHT_INT8    ? static_cast<const void*>(w8.data())
                                                        : static_cast<const void*>(w4.data());
  const SmmShape shape{c.B, c.T, c.K, c.N, c.bs};
  const SmmBuffers buf{
      c.act == SMM_ACT_FLOAT32 ? static_cast<const void*>(s32.data()) : static_cast<const void*>(s16.data()), weight,
      scale.empty() ? nullptr : scale.data(), c.bias ? bias.data() : nullptr,
      c.act == SMM_ACT_FLOAT32 ? static_cast<void*>(y32.data()) : static_cast<void*>(y16.data())};
  int rc;
  if (c.threads < 0) {  // the caller-pool entry point, with a sequential "pool"
    const SmmParallel pool{[](void*, void (*fn)(void*, size_t), void* arg, size_t n) {
                             for (size_t i = n; i-- > 0;) fn(arg, i);
                           },
                           nullptr, 3};
    rc = spikematmul_cpu_forward_parallel(&shape, c.act, c.format, &buf, &pool);
  } else {
    rc = spikematmul_cpu_forward(&shape, c.act, c.format, &buf, c.threads);
  }
  char label[160];
  std::snprintf(label, sizeof label, "B=%lld T=%lld K=%lld N=%lld bs=%lld %s %s rate=%.2f%s%s threads=%d",
                static_cast<long long>(c.B), static_cast<long long>(c.T), static_cast<long long>(c.K),
                static_cast<long long>(c.N), static_cast<long long>(c.bs), format_name(c.format),
                c.act == SMM_ACT_FLOAT32 ? "f32" : "f16", c.rate, c.general ? " general" : "", c.bias ? " bias" : "",
                c.threads);
  if (rc != SMM_OK) {
    std::printf("FAIL %s: rc %d (%s)\n", label, rc, spikematmul_error_string(rc));
    return false;
  }
  // float64 reference; error relative to the sum of |terms| (the scale of float32 rounding).
  double worst = 0.0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < c.N; ++n) {
      double ref = c.bias ? bias[n] : 0.0, mag = std::fabs(ref);
      for (int64_t k = 0; k < c.K; ++k) {
        const double sv = s[m * c.K + k];
        if (sv != 0.0) {
          ref += sv * W[k * c.N + n];
          mag += std::fabs(sv * W[k * c.N + n]);
        }
      }
      const double got =
          c.act == SMM_ACT_FLOAT32 ? y32[m * c.N + n] : static_cast<double>(static_cast<float>(y16[m * c.N + n]));
      // Any summation order of K + 1 float32 terms stays within (K + 2) u sum|terms| (u = 2^-24); fp16 output adds
      // one rounding to half (2^-11 relative).
      const double fp32_bound = (static_cast<double>(c.K) + 2.0) * std::ldexp(1.0, -24) * mag;
      const double tol = fp32_bound + (c.act == SMM_ACT_FLOAT16 ? std::ldexp(1.0, -11) * std::fabs(ref) + 1e-7 : 0.0);
      const double err = std::fabs(got - ref);
      if (!(err <= tol)) {
        std::printf("FAIL %s: y[%lld, %lld] = %.9g, reference %.9g (sum |terms| %.3g)\n", label,
                    static_cast<long long>(m), static_cast<long long>(n), got, ref, mag);
        return false;
      }
      worst = std::fmax(worst, err / (mag + 1e-30));
    }
  std::printf("ok   %s: max error / sum|terms| = %.2e\n", label, worst);
  return true;
}

}  // namespace

int main() {
  std::mt19937 rng(20261201);
  bool ok = true;
  const SmmWeightFormat formats[] = {SMM_WEIGHT_FLOAT32, SMM_WEIGHT_FLOAT16, SMM_WEIGHT_INT8, SMM_WEIGHT_INT4};
  for (SmmWeightFormat f : formats) {
    for (double rate : {0.0, 0.01, 0.14, 0.5, 1.0}) {
      ok = run_case({1, 1, 301, 133, 16, f, SMM_ACT_FLOAT32, rate, false, true, 1}, rng) && ok;  // decode
      ok = run_case({2, 9, 77, 1031, 32, f, SMM_ACT_FLOAT32, rate, false, rate > 0.1, 3}, rng) &&
           ok;  // prefill rows, 3 threads
    }
    ok = run_case({1, 1, 129, 67, 6, f, SMM_ACT_FLOAT16, 0.3, false, true, 1}, rng) && ok;
    ok = run_case({3, 5, 65, 45, 4, f, SMM_ACT_FLOAT16, 0.6, false, false, 2}, rng) &&
         ok;  // dense path, fp16 in and out
    ok = run_case({1, 3, 99, 129, 2, f, SMM_ACT_FLOAT32, 0.2, true, true, 1}, rng) &&
         ok;  // general spike values, sparse
    ok = run_case({4, 4, 99, 70, 8, f, SMM_ACT_FLOAT32, 0.8, true, true, -1}, rng) &&
         ok;  // general values, dense, caller pool
    ok = run_case({1, 1, 1, 1, 2, f, SMM_ACT_FLOAT32, 1.0, false, true, 1}, rng) && ok;  // 1 x 1
    ok = run_case({1, 1, 301, 133, 32, f, SMM_ACT_FLOAT32, 0.3, true, true, 1}, rng) &&
         ok;  // int4 four rows per pass, bs 32
    ok = run_case({1, 2, 257, 260, 64, f, SMM_ACT_FLOAT32, 0.5, false, false, 1}, rng) &&
         ok;  // ... bs 64, partial last block
    ok = run_case({1, 131, 67, 201, 10, f, SMM_ACT_FLOAT32, 0.3, true, true, 2}, rng) &&
         ok;  // many rows, panels + an edge
  }
  // Empty shapes are no-ops; bad arguments are refused, never read.
  const SmmShape empty{0, 5, 8, 8, 32}, bad_bs{1, 1, 8, 8, 3};
  const SmmBuffers none{};
  if (spikematmul_cpu_forward(&empty, SMM_ACT_FLOAT32, SMM_WEIGHT_FLOAT32, &none, 1) != SMM_OK) {
    std::printf("FAIL B = 0 must be a no-op\n");
    ok = false;
  }
  if (spikematmul_cpu_forward(&bad_bs, SMM_ACT_FLOAT32, SMM_WEIGHT_INT4, &none, 1) != SMM_ERR_INVALID_ARGUMENT) {
    std::printf("FAIL odd int4 block_size was not rejected\n");
    ok = false;
  }
  const SmmShape good{1, 1, 8, 8, 32};
  if (spikematmul_cpu_forward(&good, SMM_ACT_FLOAT32, SMM_WEIGHT_INT8, &none, 1) != SMM_ERR_INVALID_ARGUMENT) {
    std::printf("FAIL NULL buffers were not rejected\n");
    ok = false;
  }
  std::printf(ok ? "all SpikeMatMul CPU kernel checks passed\n" : "SpikeMatMul CPU kernel checks FAILED\n");
  return ok ? 0 : 1;
}
