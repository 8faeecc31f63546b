/* IEEE binary16 <-> binary32 conversions on the raw 16-bit pattern, bit-exact, for every kernel and
 * test that handles float16 without a compiler half type (plain C++17, no intrinsics).
 *
 * half_bits_to_float is exact for every input (subnormals, inf, NaN keep their meaning);
 * float_to_half_bits rounds to nearest even, gives subnormal halves below 2^-14 and inf beyond 65504,
 * and keeps NaN a (quiet) NaN. One copy so that the AMSU and SpikeMatMul kernels convert alike. */
#ifndef ASTROEDGE_HALF_BITS_H_
#define ASTROEDGE_HALF_BITS_H_

#include <cstdint>
#include <cstring>

namespace astroedge {

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
  if (exp == 0) {  // zero or subnormal: man * 2^-24
    const float f = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -f : f;
  }
  const uint32_t bits = exp == 31 ? (sign | 0x7f800000u | (man << 13)) : (sign | ((exp + 112u) << 23) | (man << 13));
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0u));  // inf, NaN
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds beyond 65504: inf
  if (abs < 0x38800000u) {  // below 2^-14: subnormal half, round to nearest even in units of 2^-24
    float a;
    std::memcpy(&a, &abs, sizeof a);
    const float scaled = a * 16777216.0f;  // exact: a power of two
    uint32_t q = static_cast<uint32_t>(scaled);
    const float rest = scaled - static_cast<float>(q);
    if (rest > 0.5f || (rest == 0.5f && (q & 1u))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

}  // namespace astroedge

#endif  // ASTROEDGE_HALF_BITS_H_
