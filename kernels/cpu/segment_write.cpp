// CPU segment write (kernels/include/hl_kernels/segment_write.h): one row at a time, its two
// O × I maps kept in the caller's output buffer (cache-resident for the sizes Hope uses: 2 × 4 KB
// at O = I = 32 in fp32), every token a rank-1 update. The inner loops run over the contiguous
// input dimension so the compiler vectorises them; the reductions are `omp simd` reductions
// (-fopenmp-simd: vector lanes, no threads), so their summation order is fixed by the code and
// the vector width, never by the thread count.
#include "hl_kernels/segment_write.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace hl::kernels {

namespace {

template <typename T>
struct Token {  // the per-token coefficients of the recurrence
  T m, a, b, c, e;
};

template <typename T>
Token<T> token(const SegmentWriteCoeffs& c, T valid, T eta, T alpha) {
  Token<T> k;
  k.m = valid;
  const T et = eta * k.m;
  k.a = alpha * k.m + (T(1) - k.m);
  k.b = T(c.beta) * k.m + (T(1) - k.m);
  k.c = T(c.damp) * et;
  k.e = c.dgd ? et : T(0);
  return k;
}

// y[o] = Σ_i A[o, i] x[i]
template <typename T>
void matvec(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t O, int64_t I) {
  for (int64_t o = 0; o < O; ++o) {
    const T* __restrict row = A + o * I;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < I; ++i) acc += row[i] * x[i];
    y[o] = acc;
  }
}

// One token's step on a row's W, S (in place); wu is scratch of length O.
template <typename T>
void step(T* __restrict W, T* __restrict S, const T* __restrict u, const T* __restrict g, const Token<T>& k,
          T* __restrict wu, int64_t O, int64_t I) {
  if (k.e != T(0)) matvec(W, u, wu, O, I);  // W_{t−1} u_t, before the update
  for (int64_t o = 0; o < O; ++o) {
    const T go = k.c * g[o], wo = k.e != T(0) ? k.e * wu[o] : T(0);
    T* __restrict Wr = W + o * I;
    T* __restrict Sr = S + o * I;
    for (int64_t i = 0; i < I; ++i) {
      const T s = k.b * Sr[i] - go * u[i];
      Sr[i] = s;
      Wr[i] = k.a * Wr[i] - wo * u[i] + k.m * s;
    }
  }
}

}  // namespace

int64_t segment_write_row_scratch(int64_t n, int64_t O, int64_t I) {
  return (n + 4) * O * I + 3 * O;
}

template <typename T>
void segment_write_row_forward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, T* W, T* S, const T* U,
                               const T* G, const T* eta, const T* alpha, const T* valid, T* scratch) {
  for (int64_t t = 0; t < n; ++t) step(W, S, U + t * I, G + t * O, token(c, valid[t], eta[t], alpha[t]), scratch, O, I);
}

template <typename T>
void segment_write_row_backward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0, const T* S0,
                                const T* U, const T* G, const T* eta, const T* alpha, const T* valid, const T* dWout,
                                const T* dSout, T* dW0, T* dS0, T* dU, T* dG, T* deta, T* dalpha, T* scratch) {
  const int64_t OI = O * I;
  // The states W_{t−1} before each token (recomputed), the running gradients of W_t and S_t.
  T* Wprev = scratch;
  T* W = Wprev + n * OI;
  T* S = W + OI;
  T* dW = S + OI;
  T* dS = dW + OI;
  T* wu = dS + OI;
  T* dwu = wu + O;
  T* dsu = dwu + O;
  std::memcpy(W, W0, sizeof(T) * OI);
  std::memcpy(S, S0, sizeof(T) * OI);
  for (int64_t t = 0; t < n; ++t) {
    std::memcpy(Wprev + t * OI, W, sizeof(T) * OI);
    step(W, S, U + t * I, G + t * O, token(c, valid[t], eta[t], alpha[t]), wu, O, I);
  }
  if (dWout)
    std::memcpy(dW, dWout, sizeof(T) * OI);
  else
    std::fill(dW, dW + OI, T(0));
  if (dSout)
    std::memcpy(dS, dSout, sizeof(T) * OI);
  else
    std::fill(dS, dS + OI, T(0));
  for (int64_t t = n - 1; t >= 0; --t) {
    const Token<T> k = token(c, valid[t], eta[t], alpha[t]);
    const T* __restrict u = U + t * I;
    const T* __restrict g = G + t * O;
    const T* __restrict Wp = Wprev + t * OI;
    T* __restrict du = dU + t * I;
    T* __restrict dg = dG + t * O;
    std::fill(du, du + I, T(0));
    // W_t = a W_{t−1} − e (W_{t−1} u) uᵀ + m S_t
    T da = 0, de = 0;
#pragma omp simd reduction(+ : da)
    for (int64_t j = 0; j < OI; ++j) da += dW[j] * Wp[j];
    if (c.dgd) {
      matvec(Wp, u, wu, O, I);
      matvec(dW, u, dwu, O, I);
      for (int64_t o = 0; o < O; ++o) de -= dwu[o] * wu[o];
      if (k.e != T(0))  // du −= e (W_{t−1}ᵀ (dW u) + dWᵀ (W_{t−1} u))
        for (int64_t o = 0; o < O; ++o) {
          const T p = k.e * dwu[o], q = k.e * wu[o];
          const T* __restrict wr = Wp + o * I;
          const T* __restrict dr = dW + o * I;
          for (int64_t i = 0; i < I; ++i) du[i] -= p * wr[i] + q * dr[i];
        }
    }
    for (int64_t j = 0; j < OI; ++j) dS[j] += k.m * dW[j];
    // S_t = b S_{t−1} − c g uᵀ
    matvec(dS, u, dsu, O, I);
    T dc = 0;
    for (int64_t o = 0; o < O; ++o) {
      dc -= g[o] * dsu[o];
      dg[o] = -k.c * dsu[o];
    }
    if (k.c != T(0))
      for (int64_t o = 0; o < O; ++o) {
        const T p = k.c * g[o];
        const T* __restrict dr = dS + o * I;
        for (int64_t i = 0; i < I; ++i) du[i] -= p * dr[i];
      }
    deta[t] = k.m * (T(c.damp) * dc + (c.dgd ? de : T(0)));
    dalpha[t] = k.m * da;
    // gradients of W_{t−1}, S_{t−1}
    if (k.e != T(0))
      for (int64_t o = 0; o < O; ++o) {
        const T p = k.e * dwu[o];
        T* __restrict dr = dW + o * I;
        for (int64_t i = 0; i < I; ++i) dr[i] = k.a * dr[i] - p * u[i];
      }
    else
      for (int64_t j = 0; j < OI; ++j) dW[j] *= k.a;
    for (int64_t j = 0; j < OI; ++j) dS[j] *= k.b;
  }
  std::memcpy(dW0, dW, sizeof(T) * OI);
  std::memcpy(dS0, dS, sizeof(T) * OI);
}

template <typename T>
void segment_write_forward(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in, T* W,
                           T* S, int64_t row0, int64_t row1) {
  const int64_t OI = d.O * d.I;
  std::vector<T> wu(static_cast<size_t>(d.O));
  for (int64_t r = row0; r < row1; ++r) {
    T* Wr = W + r * OI;
    T* Sr = S + r * OI;
    std::memcpy(Wr, in.W0 + r * OI, sizeof(T) * OI);
    std::memcpy(Sr, in.S0 + r * OI, sizeof(T) * OI);
    const int64_t i0 = r * d.n;
    segment_write_row_forward(d.n, d.O, d.I, c, Wr, Sr, in.U + i0 * d.I, in.G + i0 * d.O, in.eta + i0, in.alpha + i0,
                              in.valid + i0, wu.data());
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

#define HL_ROW_INST(T)                                                                                               \
  template void segment_write_row_forward<T>(int64_t, int64_t, int64_t, const SegmentWriteCoeffs&, T*, T*, const T*, \
                                             const T*, const T*, const T*, const T*, T*);                            \
  template void segment_write_row_backward<T>(int64_t, int64_t, int64_t, const SegmentWriteCoeffs&, const T*,        \
                                              const T*, const T*, const T*, const T*, const T*, const T*, const T*,  \
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

}  // namespace hl::kernels
