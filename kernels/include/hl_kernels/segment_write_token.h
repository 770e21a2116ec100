// The per-token coefficients of the segment write (docs/KERNELS.md "Segment write"), shared by
// the CPU kernel (kernels/cpu/segment_write.cpp) and the CUDA one (kernels/cuda/segment_write.cu).
// Include it before HL_KERNELS_ISA_BEGIN (kernels/cpu/isa.h): an inline function every object
// defines must stay baseline code.
#pragma once

#include "hl_kernels/segment_write.h"

#if defined(__CUDACC__)
#define HL_KERNELS_HOST_DEVICE __host__ __device__
#else
#define HL_KERNELS_HOST_DEVICE
#endif

namespace hl::kernels::detail {

/// m: the token's validity; a, b: W's and S's decay (1 at a pad); c = d · η̃ (S's step); e: the DGD
/// erase weight (η̃ with the DGD factor, else 0), with η̃ = m η.
template <typename T>
struct SegmentToken {
  T m, a, b, c, e;
};

template <typename T>
HL_KERNELS_HOST_DEVICE inline SegmentToken<T> segment_token(const SegmentWriteCoeffs& c, T valid, T eta, T alpha) {
  SegmentToken<T> k;
  k.m = valid;
  const T et = eta * k.m;
  k.a = alpha * k.m + (T(1) - k.m);
  k.b = T(c.beta) * k.m + (T(1) - k.m);
  k.c = T(c.damp) * et;
  k.e = c.dgd ? et : T(0);
  return k;
}

}  // namespace hl::kernels::detail
