// Checks amsu_cpu_forward against a naive double-precision step loop written straight from the op
// contract, on random inputs with non-zero initial state, fp32 and fp16, decode and multi-chunk
// prefill, separate and aliased state buffers (h_out == h_in, u_out == u_in). Built with
// -fsanitize=address,undefined by `make sanitize`, so it also proves the kernel stays in bounds.
// Exit code 0 = all cases pass.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "amsu_kernels.h"
#include "half_bits.h"

namespace {

using astroedge::float_to_half_bits;
using astroedge::half_bits_to_float;

struct Case {
  int64_t B, S, D, NH;
  AmsuDType dtype;
  bool alias;
};

struct Reference {
  std::vector<double> drive, h, u;
};

// The contract's semantics, literally, in double.
Reference naive(const Case& c, const std::vector<float>& x, const std::vector<float>& q, const std::vector<float>& k,
                const std::vector<float>& v, const std::vector<float>& w_o, const std::vector<float>& gamma,
                const std::vector<float>& beta, const std::vector<float>& h0, const std::vector<float>& u0,
                AmsuAttrs at) {
  const int64_t HD = c.D / c.NH;
  Reference r{std::vector<double>(c.B * c.S * c.D), std::vector<double>(h0.begin(), h0.end()),
              std::vector<double>(u0.begin(), u0.end())};
  std::vector<double> o(HD);
  for (int64_t b = 0; b < c.B; ++b)
    for (int64_t t = 0; t < c.S; ++t)
      for (int64_t n = 0; n < c.NH; ++n) {
        double* H = &r.h[(b * c.NH + n) * HD * HD];
        const int64_t base = (b * c.S + t) * c.D + n * HD;
        double ss = 0;
        for (int64_t i = 0; i < HD; ++i) {
          o[i] = 0;
          for (int64_t j = 0; j < HD; ++j) {
            H[i * HD + j] = gamma[n] * H[i * HD + j] + static_cast<double>(v[base + i]) * k[base + j];
            o[i] += H[i * HD + j] * q[base + j];
          }
          ss += o[i] * o[i];
        }
        const double inv = 1.0 / std::sqrt(ss / HD + at.eps);
        for (int64_t i = 0; i < HD; ++i) {
          const int64_t ch = n * HD + i;
          double& u = r.u[b * c.D + ch];
          u = beta[ch] * u + (1.0 - beta[ch]) / (1.0 + std::exp(-static_cast<double>(x[base + i])));
          r.drive[base + i] = u + o[i] * inv * w_o[ch] - at.threshold;
        }
      }
  return r;
}

bool run_case(const Case& c, std::mt19937& rng) {
  const int64_t HD = c.D / c.NH, n_tok = c.B * c.S * c.D, n_h = c.B * c.NH * HD * HD;
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> unit(0.0f, 1.0f);
  auto randn = [&](int64_t n, float scale) {
    std::vector<float> out(n);
    for (auto& e : out) e = normal(rng) * scale;
    return out;
  };
  std::vector<float> x = randn(n_tok, 1.0f), q = randn(n_tok, 1.0f), k = randn(n_tok, 1.0f / std::sqrt(float(HD))),
                     v = randn(n_tok, 1.0f);
  std::vector<float> w_o = randn(c.D, 0.5f), beta(c.D), gamma(c.NH), h0 = randn(n_h, 0.3f), u0 = randn(c.B * c.D, 0.5f);
  for (auto& e : beta) e = 0.3f + 0.6f * unit(rng);
  for (auto& e : gamma) e = 0.7f + 0.299f * unit(rng);
  const AmsuAttrs at{0.5f, 1e-5f};

  // fp16 inputs: the reference sees exactly the values the kernel widens.
  std::vector<uint16_t> xh, qh, kh, vh;
  if (c.dtype == AMSU_FLOAT16) {
    for (auto* pair : {&x, &q, &k, &v}) {
      std::vector<uint16_t> hv(pair->size());
      for (size_t i = 0; i < hv.size(); ++i) {
        hv[i] = float_to_half_bits((*pair)[i]);
        (*pair)[i] = half_bits_to_float(hv[i]);
      }
      (pair == &x ? xh : pair == &q ? qh : pair == &k ? kh : vh) = std::move(hv);
    }
  }
  const Reference ref = naive(c, x, q, k, v, w_o, gamma, beta, h0, u0, at);

  std::vector<float> h_in = h0, u_in = u0, h_sep(n_h), u_sep(c.B * c.D), s32(n_tok);
  std::vector<uint16_t> s16(n_tok);
  const bool f16 = c.dtype == AMSU_FLOAT16;
  AmsuBuffers buf{f16 ? static_cast<const void*>(xh.data()) : x.data(),
                  f16 ? static_cast<const void*>(qh.data()) : q.data(),
                  f16 ? static_cast<const void*>(kh.data()) : k.data(),
                  f16 ? static_cast<const void*>(vh.data()) : v.data(),
                  w_o.data(),
                  gamma.data(),
                  beta.data(),
                  h_in.data(),
                  u_in.data(),
                  f16 ? static_cast<void*>(s16.data()) : s32.data(),
                  c.alias ? h_in.data() : h_sep.data(),
                  c.alias ? u_in.data() : u_sep.data()};
  const AmsuShape shape{c.B, c.S, c.D, c.NH};
  const int rc = amsu_cpu_forward(&shape, at, c.dtype, &buf, 2);
  if (rc != AMSU_OK) {
    std::printf("FAIL rc=%d (%s)\n", rc, amsu_error_string(rc));
    return false;
  }
  auto max_rel = [](const std::vector<double>& want, const float* got, int64_t n) {
    double scale = 1e-6, err = 0;
    for (int64_t i = 0; i < n; ++i) scale = std::fmax(scale, std::fabs(want[i]));
    for (int64_t i = 0; i < n; ++i) err = std::fmax(err, std::fabs(want[i] - got[i]));
    return err / scale;
  };
  const double e_h = max_rel(ref.h, buf.h_out, n_h), e_u = max_rel(ref.u, buf.u_out, c.B * c.D);
  int64_t flips = 0, bad_flips = 0, bad_values = 0;
  for (int64_t i = 0; i < n_tok; ++i) {
    const float s = f16 ? half_bits_to_float(s16[i]) : s32[i];
    if (s != 0.0f && s != 1.0f) ++bad_values;
    if ((s == 1.0f) != (ref.drive[i] > 0)) {
      ++flips;
      if (std::fabs(ref.drive[i]) > 1e-5) ++bad_flips;
    }
  }
  const bool ok = e_h < 2e-5 && e_u < 2e-6 && bad_flips == 0 && bad_values == 0;
  std::printf(
      "%s B=%lld S=%lld D=%lld NH=%lld %s%s: rel err h %.2e u %.2e, spike flips %lld (%lld with |drive| > 1e-5)\n",
      ok ? "ok  " : "FAIL", (long long)c.B, (long long)c.S, (long long)c.D, (long long)c.NH, f16 ? "fp16" : "fp32",
      c.alias ? " aliased" : "", e_h, e_u, (long long)flips, (long long)bad_flips);
  return ok;
}

}  // namespace

int main() {
  std::mt19937 rng(1234);
  const Case cases[] = {
      {3, 1, 40, 5, AMSU_FLOAT32, false},  {3, 1, 200, 5, AMSU_FLOAT32, true},  {2, 7, 200, 5, AMSU_FLOAT32, false},
      {3, 150, 40, 5, AMSU_FLOAT32, true}, {2, 7, 40, 5, AMSU_FLOAT16, true},   {1, 130, 200, 5, AMSU_FLOAT16, false},
      {2, 0, 40, 5, AMSU_FLOAT32, false},  {1, 65, 256, 4, AMSU_FLOAT32, true},
  };
  bool ok = true;
  for (const Case& c : cases) ok = run_case(c, rng) && ok;

  const AmsuShape bad{1, 1, 10, 3};  // D not divisible by NH
  AmsuBuffers none{};
  if (amsu_cpu_forward(&bad, AmsuAttrs{0.5f, 1e-5f}, AMSU_FLOAT32, &none, 1) != AMSU_ERR_INVALID_ARGUMENT) {
    std::printf("FAIL D %% NH != 0 was not rejected\n");
    ok = false;
  }
  std::printf(ok ? "all AMSU CPU kernel checks passed\n" : "AMSU CPU kernel checks FAILED\n");
  return ok ? 0 : 1;
}
