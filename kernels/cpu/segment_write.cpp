// CPU segment write (kernels/include/hl_kernels/segment_write.h): one row at a time, its two
// O × I maps kept in the caller's output buffer (cache-resident for the sizes Hope uses: 2 × 4 KB
// at O = I = 32 in fp32), every token a rank-1 update. The inner loops run over the contiguous
// input dimension so the compiler vectorises them; the reductions are `omp simd` reductions
// (-fopenmp-simd: vector lanes, no threads), so their summation order is fixed by the code and
// the vector width, never by the thread count.
#include "isa.h"
#include "isa_api.h"

#include "hl_kernels/segment_write_token.h"

#include <algorithm>
#include <cstring>
#include <vector>

HL_KERNELS_ISA_BEGIN

namespace {

template <typename T>
using Token = detail::SegmentToken<T>;  // the per-token coefficients of the recurrence

template <typename T>
Token<T> token(const SegmentWriteCoeffs& c, T valid, T eta, T alpha) {
  return detail::segment_token<T>(c, valid, eta, alpha);
}

// y[o] = Σ_i A[o, i] x[i]
template <typename T, int64_t IC>
void matvec(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t O, int64_t Irt) {
  const int64_t I = IC ? IC : Irt;
  for (int64_t o = 0; o < O; ++o) {
    const T* __restrict row = A + o * I;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < I; ++i) acc += row[i] * x[i];
    y[o] = acc;
  }
}

// The first `steps` tokens of a row, one pass over W and S per token. W_{t−1} u_t (the DGD term)
// is computed in the pass of the token before, on the row it has just written, so no token reads
// W twice. Wsave == nullptr: W is updated in place. Otherwise Wsave [n, O, I] receives the states
// before each token (slot 0 must hold W_0 and W is not touched): token t reads slot t and writes
// slot t + 1. wu: scratch of length O. IC: I when known at compile time (0: Irt).
// W0, S0 (in-place mode only, both or neither): the start states, read by the first token, which
// writes W and S; the same arithmetic as copying them into W, S first, without the copy.
template <typename T, int64_t IC>
void runRow(int64_t steps, int64_t O, int64_t Irt, const SegmentWriteCoeffs& c, T* __restrict W, T* S, const T* U,
            const T* G, const T* eta, const T* alpha, const T* valid, T* __restrict wu, T* Wsave, const T* W0 = nullptr,
            const T* S0 = nullptr) {
  const int64_t I = IC ? IC : Irt, OI = O * I;
  if (steps <= 0) {
    if (W0) {
      std::memcpy(W, W0, sizeof(T) * OI);
      std::memcpy(S, S0, sizeof(T) * OI);
    }
    return;
  }
  Token<T> k = token(c, valid[0], eta[0], alpha[0]);
  if (k.e != T(0)) matvec<T, IC>(Wsave ? Wsave : W0 ? W0 : W, U, wu, O, I);
  for (int64_t t = 0; t < steps; ++t) {
    const T* __restrict u = U + t * I;
    const T* __restrict g = G + t * O;
    const bool more = t + 1 < steps;
    const Token<T> kn = more ? token(c, valid[t + 1], eta[t + 1], alpha[t + 1]) : Token<T>{};
    const bool next = more && kn.e != T(0);
    const T* __restrict un = next ? U + (t + 1) * I : u;
    const bool first = t == 0 && W0;
    const T* Wsrc = Wsave ? Wsave + t * OI : first ? W0 : W;
    T* Wdst = Wsave ? Wsave + (t + 1) * OI : W;
    const T* Ssrc = first ? S0 : S;
    for (int64_t o = 0; o < O; ++o) {
      const T go = k.c * g[o], wo = k.e != T(0) ? k.e * wu[o] : T(0);
      const T* Ws = Wsrc + o * I;
      T* Wd = Wdst + o * I;
      const T* Ss = Ssrc + o * I;
      T* Sr = S + o * I;
      // Ws and Wd (Ss and Sr) are the same row when W (S) is updated in place: element i is read
      // before it is written and no other element is touched, so either way is right (no
      // __restrict on them).
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t i = 0; i < I; ++i) {
        const T sv = k.b * Ss[i] - go * u[i];
        Sr[i] = sv;
        const T wv = k.a * Ws[i] - wo * u[i] + k.m * sv;
        Wd[i] = wv;
        acc += wv * un[i];
      }
      if (next) wu[o] = acc;
    }
    k = kn;
  }
}

// The reverse pass of one row, given the states before each token (Wprev [n, O, I]). dW, dS hold
// the gradients of the last states on entry and of W_0, S_0 on return. Every token is one pass over
// the rows; within a row, all the token's terms (docs/KERNELS.md "Segment write").
template <typename T, int64_t IC>
void reverseRow(int64_t n, int64_t O, int64_t Irt, const SegmentWriteCoeffs& c, const T* Wprev, T* __restrict dW,
                T* __restrict dS, const T* U, const T* G, const T* eta, const T* alpha, const T* valid, T* dU, T* dG,
                T* deta, T* dalpha) {
  const int64_t I = IC ? IC : Irt, OI = O * I;
  for (int64_t t = n - 1; t >= 0; --t) {
    const Token<T> k = token(c, valid[t], eta[t], alpha[t]);
    const T* __restrict u = U + t * I;
    const T* __restrict g = G + t * O;
    const T* __restrict Wp = Wprev + t * OI;
    T* __restrict du = dU + t * I;
    T* __restrict dg = dG + t * O;
    std::fill(du, du + I, T(0));
    const bool withE = c.dgd && k.e != T(0), withC = k.c != T(0);
    T da = 0, de = 0, dc = 0;
    for (int64_t o = 0; o < O; ++o) {
      const T* __restrict wr = Wp + o * I;
      T* __restrict dwr = dW + o * I;
      T* __restrict dsr = dS + o * I;
      // W_t = a W_{t−1} − e (W_{t−1} u) uᵀ + m S_t: ⟨dW_t, W_{t−1}⟩, W_{t−1} u, dW_t u
      T sa = 0, wu = 0, dwu = 0;
#pragma omp simd reduction(+ : sa, wu, dwu)
      for (int64_t i = 0; i < I; ++i) {
        sa += dwr[i] * wr[i];
        wu += wr[i] * u[i];
        dwu += dwr[i] * u[i];
      }
      da += sa;
      if (c.dgd) de -= dwu * wu;
      // S_t = b S_{t−1} − c g uᵀ, with dS_t += m dW_t
      T dsu = 0;
#pragma omp simd reduction(+ : dsu)
      for (int64_t i = 0; i < I; ++i) {
        const T v = dsr[i] + k.m * dwr[i];
        dsr[i] = v;
        dsu += v * u[i];
      }
      dc -= g[o] * dsu;
      dg[o] = -k.c * dsu;
      // du −= e (W_{t−1}ᵀ (dW u) + dWᵀ (W_{t−1} u)) + c dSᵀ g; dW_{t−1} = a dW_t − e (dW_t u) uᵀ;
      // dS_{t−1} = b dS_t
      const T p = withE ? k.e * dwu : T(0), q = withE ? k.e * wu : T(0), pc = withC ? k.c * g[o] : T(0);
#pragma omp simd
      for (int64_t i = 0; i < I; ++i) {
        du[i] -= p * wr[i] + q * dwr[i] + pc * dsr[i];
        dwr[i] = k.a * dwr[i] - p * u[i];
        dsr[i] *= k.b;
      }
    }
    deta[t] = k.m * (T(c.damp) * dc + (c.dgd ? de : T(0)));
    dalpha[t] = k.m * da;
  }
}

// dst[0:k] = src, or zeros where src is nullptr (an output that has no gradient).
template <typename T>
void copyOrZero(T* dst, const T* src, int64_t k) {
  if (src)
    std::memcpy(dst, src, sizeof(T) * k);
  else
    std::fill(dst, dst + k, T(0));
}

template <typename T, int64_t IC>
void backwardRow(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0, const T* S0, const T* U,
                 const T* G, const T* eta, const T* alpha, const T* valid, const T* dWout, const T* dSout, T* dW0,
                 T* dS0, T* dU, T* dG, T* deta, T* dalpha, T* scratch) {
  const int64_t OI = O * I;
  T* Wprev = scratch;  // W_0 … W_{n−1}, recomputed
  T* S = Wprev + n * OI;
  T* wu = S + OI;
  std::memcpy(Wprev, W0, sizeof(T) * OI);
  std::memcpy(S, S0, sizeof(T) * OI);
  runRow<T, IC>(n - 1, O, I, c, nullptr, S, U, G, eta, alpha, valid, wu, Wprev);
  copyOrZero(dW0, dWout, OI);
  copyOrZero(dS0, dSout, OI);
  reverseRow<T, IC>(n, O, I, c, Wprev, dW0, dS0, U, G, eta, alpha, valid, dU, dG, deta, dalpha);
}

}  // namespace

int64_t segment_write_row_scratch(int64_t n, int64_t O, int64_t I) {
  return (n + 1) * O * I + O;
}

template <typename T>
void segment_write_row_forward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, T* W, T* S, const T* U,
                               const T* G, const T* eta, const T* alpha, const T* valid, T* scratch) {
  switch (I) {
    case 16:
      return runRow<T, 16>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr);
    case 32:
      return runRow<T, 32>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr);
    case 64:
      return runRow<T, 64>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr);
    default:
      return runRow<T, 0>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr);
  }
}

template <typename T>
void segment_write_row_forward_from(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0,
                                    const T* S0, T* W, T* S, const T* U, const T* G, const T* eta, const T* alpha,
                                    const T* valid, T* scratch) {
  switch (I) {
    case 16:
      return runRow<T, 16>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr, W0, S0);
    case 32:
      return runRow<T, 32>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr, W0, S0);
    case 64:
      return runRow<T, 64>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr, W0, S0);
    default:
      return runRow<T, 0>(n, O, I, c, W, S, U, G, eta, alpha, valid, scratch, nullptr, W0, S0);
  }
}

template <typename T>
void segment_write_row_backward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0, const T* S0,
                                const T* U, const T* G, const T* eta, const T* alpha, const T* valid, const T* dWout,
                                const T* dSout, T* dW0, T* dS0, T* dU, T* dG, T* deta, T* dalpha, T* scratch) {
  if (n <= 0) {
    const int64_t OI = O * I;
    copyOrZero(dW0, dWout, OI);
    copyOrZero(dS0, dSout, OI);
    return;
  }
#define HL_BWD_ROW(IC) \
  backwardRow<T, IC>(n, O, I, c, W0, S0, U, G, eta, alpha, valid, dWout, dSout, dW0, dS0, dU, dG, deta, dalpha, scratch)
  switch (I) {
    case 16:
      return HL_BWD_ROW(16);
    case 32:
      return HL_BWD_ROW(32);
    case 64:
      return HL_BWD_ROW(64);
    default:
      return HL_BWD_ROW(0);
  }
#undef HL_BWD_ROW
}

template <typename T>
void segment_write_forward(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in, T* W,
                           T* S, int64_t row0, int64_t row1) {
  const int64_t OI = d.O * d.I;
  std::vector<T> wu(static_cast<size_t>(d.O));
  for (int64_t r = row0; r < row1; ++r) {
    const int64_t i0 = r * d.n;
    segment_write_row_forward_from(d.n, d.O, d.I, c, in.W0 + r * OI, in.S0 + r * OI, W + r * OI, S + r * OI,
                                   in.U + i0 * d.I, in.G + i0 * d.O, in.eta + i0, in.alpha + i0, in.valid + i0,
                                   wu.data());
  }
}

template <typename T>
void segment_write_backward(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                            const T* dWout, const T* dSout, const SegmentWriteGrads<T>& out, int64_t row0,
                            int64_t row1) {
  const int64_t OI = d.O * d.I;
  std::vector<T> scratch(static_cast<size_t>(segment_write_row_scratch(d.n, d.O, d.I)));
  for (int64_t r = row0; r < row1; ++r) {
    const int64_t i0 = r * d.n;
    segment_write_row_backward(d.n, d.O, d.I, c, in.W0 + r * OI, in.S0 + r * OI, in.U + i0 * d.I, in.G + i0 * d.O,
                               in.eta + i0, in.alpha + i0, in.valid + i0, dWout ? dWout + r * OI : nullptr,
                               dSout ? dSout + r * OI : nullptr, out.dW0 + r * OI, out.dS0 + r * OI, out.dU + i0 * d.I,
                               out.dG + i0 * d.O, out.deta + i0, out.dalpha + i0, scratch.data());
  }
}

#define HL_ROW_INST(T)                                                                                                \
  template void segment_write_row_forward<T>(int64_t, int64_t, int64_t, const SegmentWriteCoeffs&, T*, T*, const T*,  \
                                             const T*, const T*, const T*, const T*, T*);                             \
  template void segment_write_row_forward_from<T>(int64_t, int64_t, int64_t, const SegmentWriteCoeffs&, const T*,     \
                                                  const T*, T*, T*, const T*, const T*, const T*, const T*, const T*, \
                                                  T*);                                                                \
  template void segment_write_row_backward<T>(int64_t, int64_t, int64_t, const SegmentWriteCoeffs&, const T*,         \
                                              const T*, const T*, const T*, const T*, const T*, const T*, const T*,   \
                                              const T*, T*, T*, T*, T*, T*, T*, T*);
HL_ROW_INST(float)
HL_ROW_INST(double)
#undef HL_ROW_INST

template void segment_write_forward<float>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                           const SegmentWriteArgs<float>&, float*, float*, int64_t, int64_t);
template void segment_write_forward<double>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                            const SegmentWriteArgs<double>&, double*, double*, int64_t, int64_t);
template void segment_write_backward<float>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                            const SegmentWriteArgs<float>&, const float*, const float*,
                                            const SegmentWriteGrads<float>&, int64_t, int64_t);
template void segment_write_backward<double>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                             const SegmentWriteArgs<double>&, const double*, const double*,
                                             const SegmentWriteGrads<double>&, int64_t, int64_t);

HL_KERNELS_ISA_END
