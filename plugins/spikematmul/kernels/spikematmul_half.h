/* The IEEE half type of the SpikeMatMul CPU kernel (internal header).
 *
 * Why three spellings: aarch64 has __fp16 (hardware conversions; GCC 12 has no _Float16 in C++ there),
 * x86-64 GCC >= 12 and Clang have _Float16 (F16C conversions in the x86-64-v3 clone), and older x86
 * compilers (GCC 11, Ubuntu 22.04's default) have neither: for them a storage type with bit-exact
 * conversions (round to nearest even, subnormals, inf and NaN; plugins/common/half_bits.h, shared
 * with the AMSU kernel), slower but the same results. */
#ifndef ASTROEDGE_SPIKEMATMUL_HALF_H_
#define ASTROEDGE_SPIKEMATMUL_HALF_H_

#include <cstdint>

#include "half_bits.h"

namespace astroedge_smm {

#if defined(__aarch64__)
using half = __fp16;
#elif defined(__FLT16_MAX__)
using half = _Float16;
#else
struct half {
  uint16_t bits;
  half() = default;
  explicit half(float f) : bits(from_float(f)) {}
  explicit operator float() const { return to_float(bits); }

  static float to_float(uint16_t h) { return astroedge::half_bits_to_float(h); }
  static uint16_t from_float(float f) { return astroedge::float_to_half_bits(f); }
};
#endif

}  // namespace astroedge_smm

#endif  // ASTROEDGE_SPIKEMATMUL_HALF_H_
