// Internal: e^x for the kernels (in namespace hl::kernels::HL_ISA_NS, compiled per ISA like the
// kernel that includes it; kernels/cpu/isa.h).
//
// float: without a library call, so that the loops around it vectorise (glibc's vector expf needs
// -ffast-math). x = n·ln 2 + r with n = round(x·log2 e) (the 1.5·2²³ trick: baseline SSE2 has no
// rounding instruction), ln 2 in two parts (Cody–Waite), e^r by Cephes' degree-6 expf polynomial,
// and 2^n as two factors in the exponent bits, so that results from 2^-150 (subnormal, then 0) to
// 2^128 (inf) come out as std::exp's do. Within 2 ulp of std::exp where the result is a normal
// float (test_kernels fastExpIsWithinTwoUlpOfTheLibrary). double: std::exp.
#pragma once

#include "isa.h"

#include <cmath>
#include <cstdint>

HL_KERNELS_ISA_BEGIN

inline float expT(float x) {
  x = x < -104.f ? -104.f : (x > 89.f ? 89.f : x);
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.f;
  const int32_t ni = static_cast<int32_t>(n), n1 = ni >> 1, n2 = ni - n1;
  return e * __builtin_bit_cast(float, (n1 + 127) << 23) * __builtin_bit_cast(float, (n2 + 127) << 23);
}
inline double expT(double x) {
  return std::exp(x);
}

HL_KERNELS_ISA_END
