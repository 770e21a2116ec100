// CPU whole-segment kernel of self-modifying Titans (kernels/include/hl_kernels/smt_segment.h).
// One (sequence, head) pair at a time: its five memories' read states (and their transposes, so
// that every matrix–vector product is a sum of contiguous rows scaled by scalars: no horizontal
// reductions), the segment's per-token quantities and the write rows stay in one workspace of a
// few tens of KB. The writes are the row building blocks of segment_write.cpp. The reverse pass
// recomputes the reads from the inputs, runs the writes' reverse pass (which recomputes the
// states), then the chain rule through targets, inner gradients, clamps, links and reads.
// Derivation: docs/KERNELS.md "Whole segment".
#include "isa.h"
#include "isa_api.h"
#include "fast_exp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <vector>

HL_KERNELS_ISA_BEGIN

namespace {

constexpr int64_t kMem = 5;        // k, v, η, α, output
constexpr int64_t kReadMem = 4;    // the memories whose reads of x make k, v, η, α
constexpr double kNormEps = 1e-6;  // F.normalize's eps in the LibTorch path
constexpr double kCurvEps = 1e-12;

template <typename T>
inline T sigm(T z) {
  return T(1) / (T(1) + expT(-z));
}

// rowsum for a width known at compile time: the accumulators stay in registers (the same
// summation order as the generic loop, so the same bits).
template <typename T, bool Acc, int64_t O>
inline void rowsumFixed(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t I) {
  T acc[O];
  for (int64_t o = 0; o < O; ++o) acc[o] = Acc ? y[o] : T(0);
  for (int64_t i = 0; i < I; ++i) {
    const T xi = x[i];
    const T* __restrict r = A + i * O;
#pragma omp simd
    for (int64_t o = 0; o < O; ++o) acc[o] += xi * r[o];
  }
  for (int64_t o = 0; o < O; ++o) y[o] = acc[o];
}

// y[0:O] (=|+=) Σ_i x[i] · A[i, 0:O] for A [I, O] row-major (A x for the map whose transpose A is).
template <typename T, bool Acc>
inline void rowsum(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t I, int64_t O) {
  if (O == 16) return rowsumFixed<T, Acc, 16>(A, x, y, I);
  if (O == 32) return rowsumFixed<T, Acc, 32>(A, x, y, I);
  if (O == 64) return rowsumFixed<T, Acc, 64>(A, x, y, I);
  if (!Acc) std::fill(y, y + O, T(0));
  for (int64_t i = 0; i < I; ++i) {
    const T xi = x[i];
    const T* __restrict r = A + i * O;
#pragma omp simd
    for (int64_t o = 0; o < O; ++o) y[o] += xi * r[o];
  }
}

// dA[o, i] += a[o] · b[i] for dA [O, I].
template <typename T>
inline void outer(T* __restrict dA, const T* __restrict a, const T* __restrict b, int64_t O, int64_t I) {
  for (int64_t o = 0; o < O; ++o) {
    const T ao = a[o];
    T* __restrict r = dA + o * I;
#pragma omp simd
    for (int64_t i = 0; i < I; ++i) r[i] += ao * b[i];
  }
}

// dA[o, 0:I] += Σ_k L[k, o] · R[k, 0:I] for dA [O, I], L [K, O], R [K, I]: K rank-1 updates in
// one pass over dA (I known at compile time), four rows held in registers while the K terms are
// added, so each R row loaded feeds four multiply-adds (the whole smt step measured 5-23 % faster
// than with one row, 1-2 % than with two: docs/KERNELS.md); the O mod 4 tail rows one at a time.
// Every element adds its terms in k order, as K calls of outer() would: the same bits.
template <typename T, int64_t I>
inline void outersFixed(T* __restrict dA, const T* __restrict L, const T* __restrict R, int64_t K, int64_t O) {
  constexpr int64_t kRows = 4;
  int64_t o0 = 0;
  for (; o0 + kRows <= O; o0 += kRows) {
    T acc[kRows][I];
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t i = 0; i < I; ++i) acc[r][i] = dA[(o0 + r) * I + i];
    for (int64_t k = 0; k < K; ++k) {
      const T* __restrict lk = L + k * O + o0;
      const T* __restrict rk = R + k * I;
#pragma omp simd
      for (int64_t i = 0; i < I; ++i) {
        acc[0][i] += lk[0] * rk[i];
        acc[1][i] += lk[1] * rk[i];
        acc[2][i] += lk[2] * rk[i];
        acc[3][i] += lk[3] * rk[i];
      }
    }
    for (int64_t r = 0; r < kRows; ++r)
      for (int64_t i = 0; i < I; ++i) dA[(o0 + r) * I + i] = acc[r][i];
  }
  for (int64_t o = o0; o < O; ++o) {
    T acc[I];
    T* __restrict r = dA + o * I;
    for (int64_t i = 0; i < I; ++i) acc[i] = r[i];
    for (int64_t k = 0; k < K; ++k) {
      const T lo = L[k * O + o];
      const T* __restrict rk = R + k * I;
#pragma omp simd
      for (int64_t i = 0; i < I; ++i) acc[i] += lo * rk[i];
    }
    for (int64_t i = 0; i < I; ++i) r[i] = acc[i];
  }
}
template <typename T>
inline void outers(T* __restrict dA, const T* __restrict L, const T* __restrict R, int64_t K, int64_t O, int64_t I) {
  if (I == 16) return outersFixed<T, 16>(dA, L, R, K, O);
  if (I == 32) return outersFixed<T, 32>(dA, L, R, K, O);
  if (I == 64) return outersFixed<T, 64>(dA, L, R, K, O);
  for (int64_t k = 0; k < K; ++k) outer(dA, L + k * O, R + k * I, O, I);
}

template <typename T>
inline T dot(const T* __restrict a, const T* __restrict b, int64_t n) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <typename T>
void transpose(const T* __restrict A, T* __restrict At, int64_t O, int64_t I) {
  for (int64_t o = 0; o < O; ++o)
    for (int64_t i = 0; i < I; ++i) At[i * O + o] = A[o * I + i];
}

// The per-pair workspace: read states and their transposes, the segment's per-token quantities.
template <typename T>
struct Work {
  int64_t n, D, F;
  std::vector<T> buf;
  // read states of the five memories: R1 [D, F], R1t [F, D], R2 [F, D], R2t [D, F] (copies)
  T *R1, *R1t, *R2, *R2t, *colsq;  // colsq [5, F]: Σ_d R1[d, f]²
  // reads (memories 0..3): z, sz [4, n, F], o [4, n, D]
  T *z, *sz, *o;
  T *kt, *vt;                                                 // normalised k, v [n, D]
  T *kn, *vn, *ze, *eta, *za, *alpha;                         // [n]
  T *zv, *svh, *vhat, *h, *a, *err, *re;                      // per memory [5, n, F|D]
  T *ds, *delta;                                              // [5, n, F]
  T *gain2, *eta2, *eta1, *cap2, *cap1, *curv2, *curv1, *g3;  // [5, n]
  T* valid;                                                   // [n]
  T* tmp;                                                     // [max(D, F)]
  T* eoa = nullptr;  // [n] or nullptr: the output memory's ‖W1 a‖ / max(‖e‖, 1e-12) per token (a trace)

  static int64_t size(int64_t n, int64_t D, int64_t F) {
    const int64_t DF = D * F, nD = n * D, nF = n * F;
    return kMem * 4 * DF + kMem * F + kReadMem * (2 * nF + nD) + 2 * nD + 6 * n + kMem * (7 * nF + 2 * nD) +
           kMem * 8 * n + n + std::max(D, F);
  }
  // A buffer for segments of up to nmax tokens; layout(n) before each segment.
  Work(int64_t nmax, int64_t D_, int64_t F_) : n(nmax), D(D_), F(F_) {
    buf.assign(static_cast<size_t>(size(nmax, D, F)), T(0));
    layout(nmax);
  }
  void layout(int64_t n_) {
    n = n_;
    const int64_t DF = D * F, nD = n * D, nF = n * F;
    T* p = buf.data();
    auto take = [&](int64_t k) {
      T* r = p;
      p += k;
      return r;
    };
    R1 = take(kMem * DF);
    R1t = take(kMem * DF);
    R2 = take(kMem * DF);
    R2t = take(kMem * DF);
    colsq = take(kMem * F);
    z = take(kReadMem * nF);
    sz = take(kReadMem * nF);
    o = take(kReadMem * nD);
    kt = take(nD);
    vt = take(nD);
    kn = take(n);
    vn = take(n);
    ze = take(n);
    eta = take(n);
    za = take(n);
    alpha = take(n);
    zv = take(kMem * nF);
    svh = take(kMem * nF);
    h = take(kMem * nF);
    a = take(kMem * nF);
    vhat = take(kMem * nD);
    err = take(kMem * nD);
    re = take(kMem * nF);
    ds = take(kMem * nF);
    delta = take(kMem * nF);
    gain2 = take(kMem * n);
    eta2 = take(kMem * n);
    eta1 = take(kMem * n);
    cap2 = take(kMem * n);
    cap1 = take(kMem * n);
    curv2 = take(kMem * n);
    curv1 = take(kMem * n);
    g3 = take(kMem * n);
    valid = take(n);
    tmp = take(std::max(D, F));
  }
};

// Offsets into the [B, 5, H, ...] state arrays and the [B, X, H, n, D] inputs.
struct Index {
  int64_t H, n, D, F, X;
  int64_t state(int64_t b, int64_t m, int64_t h) const { return ((b * kMem + m) * H + h) * D * F; }
  int64_t input(int64_t b, int64_t m, int64_t h) const {  // memory m's input rows [n, D]
    return ((b * X + (X == 1 ? 0 : m)) * H + h) * n * D;
  }
  int64_t tok(int64_t b, int64_t m, int64_t h) const { return ((b * kMem + m) * H + h) * n; }  // loss [.., n]
};

// Memory m's read state into the workspace: copies of R1 [D, F] and R2 [F, D], their transposes
// and R1's squared column norms.
template <typename T>
void prepareRead(Work<T>& w, int64_t m, const T* R1, const T* R2) {
  const int64_t D = w.D, F = w.F, DF = D * F;
  std::memcpy(w.R1 + m * DF, R1, sizeof(T) * DF);
  std::memcpy(w.R2 + m * DF, R2, sizeof(T) * DF);
  transpose(w.R1 + m * DF, w.R1t + m * DF, D, F);
  transpose(w.R2 + m * DF, w.R2t + m * DF, F, D);
  T* cs = w.colsq + m * F;
  std::fill(cs, cs + F, T(0));
  for (int64_t dd = 0; dd < D; ++dd) {
    const T* r = w.R1 + m * DF + dd * F;
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) cs[f] += r[f] * r[f];
  }
}

// Fills w with the pair's per-token quantities (everything but the writes); returns the number of
// clamped real writes and, when loss is given, stores the per-token losses. `prepared`: the read
// states are already in w (prepareRead; the whole-sequence kernel keeps them across segments).
template <typename T>
int64_t reads(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in, const Index& ix,
              int64_t b, int64_t hd, Work<T>& w, T* loss, bool prepared = false) {
  const int64_t n = d.n, D = d.D, F = d.F, DF = D * F;
  if (!prepared)
    for (int64_t m = 0; m < kMem; ++m) prepareRead(w, m, in.R1 + ix.state(b, m, hd), in.R2 + ix.state(b, m, hd));
  for (int64_t t = 0; t < n; ++t) w.valid[t] = in.valid[b * n + t];
  // Reads of the k, v, η, α memories: o = x + R1 silu(R2 x).
  for (int64_t m = 0; m < kReadMem; ++m) {
    const T* xm = in.x + ix.input(b, m, hd);
    for (int64_t t = 0; t < n; ++t) {
      T* z = w.z + (m * n + t) * F;
      T* sz = w.sz + (m * n + t) * F;
      T* o = w.o + (m * n + t) * D;
      rowsum<T, false>(w.R2t + m * DF, xm + t * D, z, D, F);
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) sz[f] = z[f] * sigm(z[f]);
      std::memcpy(o, xm + t * D, sizeof(T) * D);
      rowsum<T, true>(w.R1t + m * DF, sz, o, F, D);
    }
  }
  const T* we = in.w_eta + hd * D;
  const T* wa = in.w_alpha + hd * D;
  for (int64_t t = 0; t < n; ++t) {
    const T* ok = w.o + (0 * n + t) * D;
    const T* ov = w.o + (1 * n + t) * D;
    w.kn[t] = std::sqrt(dot(ok, ok, D));
    w.vn[t] = std::sqrt(dot(ov, ov, D));
    const T ik = T(1) / std::max(w.kn[t], T(kNormEps)), iv = T(1) / std::max(w.vn[t], T(kNormEps));
    for (int64_t i = 0; i < D; ++i) {
      w.kt[t * D + i] = ok[i] * ik;
      w.vt[t * D + i] = ov[i] * iv;
    }
    w.ze[t] = dot(w.o + (2 * n + t) * D, we, D) + in.b_eta[hd];
    if (c.eta_max > 0)
      w.eta[t] = T(c.eta_max) * sigm(w.ze[t]);
    else
      w.eta[t] = T(c.eta_scale) * (w.ze[t] > T(20) ? w.ze[t] : std::log1p(std::exp(w.ze[t])));
    w.za[t] = dot(w.o + (3 * n + t) * D, wa, D) + in.b_alpha[hd];
    w.alpha[t] = sigm(w.za[t]);
  }
  // Targets, inner gradients and clamps of every memory.
  int64_t clamped = 0;
  for (int64_t m = 0; m < kMem; ++m) {
    const T *R1 = w.R1 + m * DF, *R1t = w.R1t + m * DF, *R2t = w.R2t + m * DF, *cs = w.colsq + m * F;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t i = m * n + t;
      const T *k = w.kt + t * D, *v = w.vt + t * D;
      T *zv = w.zv + i * F, *svh = w.svh + i * F, *vh = w.vhat + i * D;
      T *h = w.h + i * F, *a = w.a + i * F, *e = w.err + i * D, *re = w.re + i * F;
      T *ds = w.ds + i * F, *de = w.delta + i * F;
      rowsum<T, false>(R2t, v, zv, D, F);
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) svh[f] = zv[f] * sigm(zv[f]);
      std::memcpy(vh, v, sizeof(T) * D);
      rowsum<T, true>(R1t, svh, vh, F, D);
      rowsum<T, false>(R2t, k, h, D, F);
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) {
        const T s = sigm(h[f]);
        a[f] = h[f] * s;
        ds[f] = s * (T(1) + h[f] * (T(1) - s));
      }
      T aa = 0, g2 = 0;  // in f order, as before the loop above was split off
      for (int64_t f = 0; f < F; ++f) {
        aa += a[f] * a[f];
        g2 += ds[f] * ds[f] * cs[f];
      }
      // pred = k + R1 a; diff = pred − v̂
      T* pred = w.tmp;
      std::memcpy(pred, k, sizeof(T) * D);
      rowsum<T, true>(R1t, a, pred, F, D);
      T l = 0;
      for (int64_t j = 0; j < D; ++j) {
        const T df = pred[j] - vh[j];
        l += df * df;
        e[j] = c.l2 ? T(2) * df : -vh[j];
      }
      if (w.eoa && m == kMem - 1) {  // the diagnostics' trace: W1 a = pred − k (residual MLP)
        T wa2 = 0, e2 = 0;
        for (int64_t j = 0; j < D; ++j) {
          const T r = pred[j] - k[j];
          wa2 += r * r;
          e2 += e[j] * e[j];
        }
        w.eoa[t] = std::sqrt(wa2) / std::max(std::sqrt(e2), T(kCurvEps));
      }
      if (loss) loss[ix.tok(b, m, hd) + t] = l;
      rowsum<T, false>(R1, e, re, D, F);  // R1ᵀ e
      for (int64_t f = 0; f < F; ++f) de[f] = re[f] * ds[f];
      const T kk = dot(k, k, D);
      w.gain2[i] = g2;
      w.g3[i] = (T(1) + T(2) * g2) / T(3);
      w.curv2[i] = kk * std::max(w.g3[i], T(1));
      w.curv1[i] = aa;
      const T et = w.eta[t];
      if (c.clamp) {
        w.cap2[i] = T(c.clamp_bound) / (T(3) * std::max(w.curv2[i], T(kCurvEps)));
        w.cap1[i] = T(c.clamp_bound) / (T(3) * std::max(w.curv1[i], T(kCurvEps)));
        w.eta2[i] = std::min(et, w.cap2[i]);
        w.eta1[i] = std::min(et, w.cap1[i]);
        if (w.valid[t] != T(0)) clamped += (et > w.cap2[i]) + (et > w.cap1[i]);
      } else {
        w.eta2[i] = et;
        w.eta1[i] = et;
      }
    }
  }
  return clamped;
}

template <typename T>
inline T dsilu(T z) {
  const T s = sigm(z);
  return s * (T(1) + z * (T(1) - s));
}
template <typename T>
inline T d2silu(T z) {
  const T s = sigm(z);
  return s * (T(1) - s) * (T(2) + z * (T(1) - T(2) * s));
}

// The gradient of min(e, cap) (torch::minimum: a tie splits it in halves).
template <typename T>
inline void minGrad(bool clamp, T e, T cap, T g, T& de, T& dcap) {
  dcap = 0;
  if (!clamp || e < cap) {
    de += g;
  } else if (e > cap) {
    dcap = g;
  } else {
    de += g / T(2);
    dcap = g / T(2);
  }
}

// The forward of one pair: its output states (and loss, clamp count).
template <typename T>
int64_t forwardPair(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                    const SmtSegmentOut<T>& out, const Index& ix, int64_t b, int64_t hd, Work<T>& w, T* scratch,
                    bool prepared = false) {
  const int64_t n = d.n, D = d.D, F = d.F;
  const SegmentWriteCoeffs c2{c.beta, c.damp, c.dgd2}, c1{c.beta, c.damp, c.dgd1};
  w.layout(n);
  const int64_t clamped = reads(d, c, in, ix, b, hd, w, out.loss, prepared);
  for (int64_t m = 0; m < kMem; ++m) {
    const int64_t off = ix.state(b, m, hd);
    // the end states written straight from the start states (no copy first)
    segment_write_row_forward_from(n, F, D, c2, in.W2 + off, in.S2 + off, out.W2 + off, out.S2 + off, w.kt,
                                   w.delta + m * n * F, w.eta2 + m * n, w.alpha, w.valid, scratch);
    segment_write_row_forward_from(n, D, F, c1, in.W1 + off, in.S1 + off, out.W1 + off, out.S1 + off, w.a + m * n * F,
                                   w.err + m * n * D, w.eta1 + m * n, w.alpha, w.valid, scratch);
  }
  return clamped;
}

// Buffers of the reverse pass of one pair, for segments of up to nmax tokens.
template <typename T>
struct Bwd {
  std::vector<T> scratch, dk, dv, dU, deta, dalpha, dal, de2, de1, da, derr, ddelta;
  std::vector<T> dre, dds, dh, dsv, dzv, dpred, dvh, dcol, dob, dsz, dz;
  // The rank-1 terms of dR1 [D, F] (L1 ⊗ R1: 3 per token) and dR2 [F, D] (L2 ⊗ R2: 2 per token) of
  // one memory, added in one pass (outers) after its tokens.
  std::vector<T> L1, R1, L2, R2;
  Bwd(int64_t nmax, int64_t D, int64_t F) {
    const int64_t nD = nmax * D, nF = nmax * F, W = std::max(D, F);
    scratch.resize(static_cast<size_t>(segment_write_row_scratch(nmax, W, W)));
    for (auto* v : {&dk, &dv, &derr}) v->resize(nD);
    for (auto* v : {&dU}) v->resize(std::max(nF, nD));
    for (auto* v : {&da, &ddelta}) v->resize(nF);
    for (auto* v : {&deta, &dalpha, &dal, &de2, &de1}) v->resize(nmax);
    for (auto* v : {&dre, &dds, &dh, &dsv, &dzv, &dcol, &dsz, &dz}) v->resize(F);
    for (auto* v : {&dpred, &dvh, &dob}) v->resize(D);
    L1.resize(3 * nD);
    R1.resize(3 * nF);
    L2.resize(2 * nF);
    R2.resize(2 * nD);
  }
};

// The reverse pass of one pair.
template <typename T>
void backwardPair(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in, const T* dW1o,
                  const T* dS1o, const T* dW2o, const T* dS2o, const SmtSegmentGrads<T>& g, const Index& ix, int64_t b,
                  int64_t hd, Work<T>& w, Bwd<T>& bw, bool prepared = false, bool accumulate = false) {
  const int64_t n = d.n, D = d.D, F = d.F, DF = D * F, nD = n * D, nF = n * F;
  const SegmentWriteCoeffs c2{c.beta, c.damp, c.dgd2}, c1{c.beta, c.damp, c.dgd1};
  auto& scratch = bw.scratch;
  auto& dk = bw.dk;
  auto& dv = bw.dv;
  auto& dU = bw.dU;
  auto& deta = bw.deta;
  auto& dalpha = bw.dalpha;
  auto& dal = bw.dal;
  auto& de2 = bw.de2;
  auto& de1 = bw.de1;
  auto& da = bw.da;
  auto& derr = bw.derr;
  auto& ddelta = bw.ddelta;
  auto& dre = bw.dre;
  auto& dds = bw.dds;
  auto& dh = bw.dh;
  auto& dsv = bw.dsv;
  auto& dzv = bw.dzv;
  auto& dpred = bw.dpred;
  auto& dvh = bw.dvh;
  auto& dcol = bw.dcol;
  auto& dob = bw.dob;
  auto& dsz = bw.dsz;
  auto& dz = bw.dz;
  w.layout(n);
  reads(d, c, in, ix, b, hd, w, static_cast<T*>(nullptr), prepared);
  std::fill(dk.begin(), dk.end(), T(0));
  std::fill(dv.begin(), dv.end(), T(0));
  std::fill(deta.begin(), deta.end(), T(0));
  std::fill(dalpha.begin(), dalpha.end(), T(0));
  for (int64_t m = 0; m < kMem; ++m) {
    const int64_t off = ix.state(b, m, hd);
    T *dR1 = g.dR1 + off, *dR2 = g.dR2 + off;
    if (!accumulate) {  // else dR1, dR2 add to what the caller holds
      std::fill(dR1, dR1 + DF, T(0));
      std::fill(dR2, dR2 + DF, T(0));
    }
    // The writes' reverse pass: W2 (u = k, g = δ, η2), W1 (u = a, g = e, η1).
    segment_write_row_backward(n, F, D, c2, in.W2 + off, in.S2 + off, w.kt, w.delta + m * nF, w.eta2 + m * n, w.alpha,
                               w.valid, dW2o ? dW2o + off : nullptr, dS2o ? dS2o + off : nullptr, g.dW2 + off,
                               g.dS2 + off, dU.data(), ddelta.data(), de2.data(), dal.data(), scratch.data());
    for (int64_t j = 0; j < nD; ++j) dk[j] += dU[j];
    for (int64_t t = 0; t < n; ++t) dalpha[t] += dal[t];
    segment_write_row_backward(n, D, F, c1, in.W1 + off, in.S1 + off, w.a + m * nF, w.err + m * nD, w.eta1 + m * n,
                               w.alpha, w.valid, dW1o ? dW1o + off : nullptr, dS1o ? dS1o + off : nullptr, g.dW1 + off,
                               g.dS1 + off, da.data(), derr.data(), de1.data(), dal.data(), scratch.data());
    for (int64_t t = 0; t < n; ++t) dalpha[t] += dal[t];
    const T *R1 = w.R1 + m * DF, *R1t = w.R1t + m * DF, *R2 = w.R2 + m * DF, *cs = w.colsq + m * F;
    std::fill(dcol.begin(), dcol.end(), T(0));
    for (int64_t t = 0; t < n; ++t) {
      const int64_t i = m * n + t;
      const T *k = w.kt + t * D, *v = w.vt + t * D;
      const T *zv = w.zv + i * F, *svh = w.svh + i * F, *h = w.h + i * F, *a = w.a + i * F;
      const T *e = w.err + i * D, *re = w.re + i * F, *ds = w.ds + i * F;
      T* dkt = dk.data() + t * D;
      T* dat = da.data() + t * F;
      T* det = derr.data() + t * D;
      const T* ddt = ddelta.data() + t * F;
      // η2 = min(η, cap2), cap2 = b / (3 max(curv2, ε)), curv2 = ‖k‖² max((1 + 2 g²) / 3, 1)
      T dcap2, dcap1;
      minGrad(c.clamp, w.eta[t], w.cap2[i], de2[t], deta[t], dcap2);
      minGrad(c.clamp, w.eta[t], w.cap1[i], de1[t], deta[t], dcap1);
      T dgain2 = 0;
      if (dcap2 != T(0) && w.curv2[i] >= T(kCurvEps)) {
        const T dcurv = -dcap2 * w.cap2[i] / w.curv2[i];
        const T mx = std::max(w.g3[i], T(1)), kk = dot(k, k, D);
        for (int64_t j = 0; j < D; ++j) dkt[j] += T(2) * k[j] * dcurv * mx;
        if (w.g3[i] >= T(1)) dgain2 = dcurv * kk * T(2) / T(3);
      }
      if (dcap1 != T(0) && w.curv1[i] >= T(kCurvEps)) {
        const T dcurv = -dcap1 * w.cap1[i] / w.curv1[i];
        for (int64_t f = 0; f < F; ++f) dat[f] += T(2) * a[f] * dcurv;
      }
      // δ = (R1ᵀ e) ⊙ σ'(h); g² = Σ_f σ'(h_f)² colsq_f
      for (int64_t f = 0; f < F; ++f) {
        dre[f] = ddt[f] * ds[f];
        dds[f] = ddt[f] * re[f] + T(2) * ds[f] * cs[f] * dgain2;
        dcol[f] += ds[f] * ds[f] * dgain2;
      }
      rowsum<T, true>(R1t, dre.data(), det, F, D);              // de += R1 dre
      std::memcpy(bw.L1.data() + 3 * t * D, e, sizeof(T) * D);  // dR1 += e ⊗ dre
      std::memcpy(bw.R1.data() + 3 * t * F, dre.data(), sizeof(T) * F);
      // e = 2 (pred − v̂) (L2) or −v̂ (dot); pred = k + R1 a
      for (int64_t j = 0; j < D; ++j) {
        dpred[j] = c.l2 ? T(2) * det[j] : T(0);
        dvh[j] = c.l2 ? -dpred[j] : -det[j];
        dkt[j] += dpred[j];
      }
      rowsum<T, true>(R1, dpred.data(), dat, D, F);                              // da += R1ᵀ dpred
      std::memcpy(bw.L1.data() + (3 * t + 1) * D, dpred.data(), sizeof(T) * D);  // dR1 += dpred ⊗ a
      std::memcpy(bw.R1.data() + (3 * t + 1) * F, a, sizeof(T) * F);
      // a = silu(h), σ'(h) = ds; h = R2 k
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) dh[f] = dat[f] * ds[f] + dds[f] * d2silu(h[f]);
      std::memcpy(bw.L2.data() + 2 * t * F, dh.data(), sizeof(T) * F);  // dR2 += dh ⊗ k
      std::memcpy(bw.R2.data() + 2 * t * D, k, sizeof(T) * D);
      rowsum<T, true>(R2, dh.data(), dkt, F, D);  // dk += R2ᵀ dh
      // v̂ = v + R1 silu(R2 v)
      T* dvt = dv.data() + t * D;
      for (int64_t j = 0; j < D; ++j) dvt[j] += dvh[j];
      rowsum<T, false>(R1, dvh.data(), dsv.data(), D, F);                      // R1ᵀ dv̂
      std::memcpy(bw.L1.data() + (3 * t + 2) * D, dvh.data(), sizeof(T) * D);  // dR1 += dv̂ ⊗ silu(R2 v)
      std::memcpy(bw.R1.data() + (3 * t + 2) * F, svh, sizeof(T) * F);
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) dzv[f] = dsv[f] * dsilu(zv[f]);
      std::memcpy(bw.L2.data() + (2 * t + 1) * F, dzv.data(), sizeof(T) * F);  // dR2 += dzv ⊗ v
      std::memcpy(bw.R2.data() + (2 * t + 1) * D, v, sizeof(T) * D);
      rowsum<T, true>(R2, dzv.data(), dvt, F, D);
    }
    outers(dR1, bw.L1.data(), bw.R1.data(), 3 * n, D, F);
    outers(dR2, bw.L2.data(), bw.R2.data(), 2 * n, F, D);
    for (int64_t dd = 0; dd < D; ++dd)
      for (int64_t f = 0; f < F; ++f) dR1[dd * F + f] += T(2) * R1[dd * F + f] * dcol[f];
  }
  // k = k̃ / max(‖k̃‖, ε), v likewise; the links; the reads o = x + R1 silu(R2 x).
  const int64_t xs = ix.input(b, 0, hd);
  if (d.X == 1) std::fill(g.dx + xs, g.dx + xs + nD, T(0));
  const T* we = in.w_eta + hd * D;
  const T* wa = in.w_alpha + hd * D;
  T* dwe = g.dw_eta + (b * d.H + hd) * D;
  T* dwa = g.dw_alpha + (b * d.H + hd) * D;
  std::fill(dwe, dwe + D, T(0));
  std::fill(dwa, dwa + D, T(0));
  T dbe = 0, dba = 0;
  for (int64_t m = 0; m < kReadMem; ++m) {
    const T* xm = in.x + ix.input(b, m, hd);
    T* dxm = g.dx + ix.input(b, m, hd);
    if (d.X != 1) std::fill(dxm, dxm + nD, T(0));
    const T *R1 = w.R1 + m * DF, *R2 = w.R2 + m * DF;
    T* dR1 = g.dR1 + ix.state(b, m, hd);
    T* dR2 = g.dR2 + ix.state(b, m, hd);
    for (int64_t t = 0; t < n; ++t) {
      const T* o = w.o + (m * n + t) * D;
      if (m == 0 || m == 1) {
        const T nr = m == 0 ? w.kn[t] : w.vn[t];
        const T* u = (m == 0 ? w.kt : w.vt) + t * D;
        const T* du = (m == 0 ? dk.data() : dv.data()) + t * D;
        if (nr >= T(kNormEps)) {
          const T s = dot(u, du, D);
          for (int64_t j = 0; j < D; ++j) dob[j] = (du[j] - u[j] * s) / nr;
        } else {
          for (int64_t j = 0; j < D; ++j) dob[j] = du[j] / T(kNormEps);
        }
      } else if (m == 2) {
        T dze;
        if (c.eta_max > 0) {
          const T s = sigm(w.ze[t]);
          dze = deta[t] * T(c.eta_max) * s * (T(1) - s);
        } else {
          dze = deta[t] * T(c.eta_scale) * (w.ze[t] > T(20) ? T(1) : sigm(w.ze[t]));
        }
        for (int64_t j = 0; j < D; ++j) {
          dob[j] = dze * we[j];
          dwe[j] += dze * o[j];
        }
        dbe += dze;
      } else {
        const T dza = dalpha[t] * w.alpha[t] * (T(1) - w.alpha[t]);
        for (int64_t j = 0; j < D; ++j) {
          dob[j] = dza * wa[j];
          dwa[j] += dza * o[j];
        }
        dba += dza;
      }
      // o = x + R1 sz, sz = silu(z), z = R2 x
      const T *z = w.z + (m * n + t) * F, *sz = w.sz + (m * n + t) * F, *x = xm + t * D;
      T* dx = dxm + t * D;
      for (int64_t j = 0; j < D; ++j) dx[j] += dob[j];
      std::memcpy(bw.L1.data() + t * D, dob.data(), sizeof(T) * D);  // dR1 += dob ⊗ sz
      std::memcpy(bw.R1.data() + t * F, sz, sizeof(T) * F);
      rowsum<T, false>(R1, dob.data(), dsz.data(), D, F);
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) dz[f] = dsz[f] * dsilu(z[f]);
      std::memcpy(bw.L2.data() + t * F, dz.data(), sizeof(T) * F);  // dR2 += dz ⊗ x
      std::memcpy(bw.R2.data() + t * D, x, sizeof(T) * D);
      rowsum<T, true>(R2, dz.data(), dx, F, D);
    }
    outers(dR1, bw.L1.data(), bw.R1.data(), n, D, F);
    outers(dR2, bw.L2.data(), bw.R2.data(), n, F, D);
  }
  g.db_eta[b * d.H + hd] = dbe;
  g.db_alpha[b * d.H + hd] = dba;
}

}  // namespace

template <typename T>
void smt_segment_forward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                         const SmtSegmentOut<T>& out, int64_t p0, int64_t p1) {
  const Index ix{d.H, d.n, d.D, d.F, d.X};
  Work<T> w(d.n, d.D, d.F);
  std::vector<T> scratch(static_cast<size_t>(std::max(d.D, d.F)));
  for (int64_t p = p0; p < p1; ++p)
    out.clamped[p] = forwardPair(d, c, in, out, ix, p / d.H, p % d.H, w, scratch.data());
}

template <typename T>
void smt_segment_backward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                          const T* dW1o, const T* dS1o, const T* dW2o, const T* dS2o, const SmtSegmentGrads<T>& g,
                          int64_t p0, int64_t p1) {
  const Index ix{d.H, d.n, d.D, d.F, d.X};
  Work<T> w(d.n, d.D, d.F);
  Bwd<T> bw(d.n, d.D, d.F);
  for (int64_t p = p0; p < p1; ++p) backwardPair(d, c, in, dW1o, dS1o, dW2o, dS2o, g, ix, p / d.H, p % d.H, w, bw);
}

// ---------------------------------------------------------------------------------------------
// The whole sequence (smt_sequence_forward / _backward).

namespace {

// Segment starts of a sequence (the same rule as smt_chunked) and the segment a start token opens.
struct Segs {
  std::vector<int64_t> start;  // segments + 1 entries, the last = L
  std::vector<int64_t> of;     // token -> index of the segment it starts (-1: not a start)
  Segs(int64_t L, int64_t cm, int64_t co) : of(static_cast<size_t>(L), -1) {
    int64_t s = 0;
    while (s < L) {
      of[s] = static_cast<int64_t>(start.size());
      start.push_back(s);
      int64_t e = s + 1;
      while (e < L && e % cm != 0 && e % co != 0) ++e;
      s = e;
    }
    start.push_back(L);
  }
  int64_t count() const { return static_cast<int64_t>(start.size()) - 1; }
  // The segment starts whose states a (non-ring) forward stores: every one with every <= 1;
  // otherwise segment 0, then the first start at least `every` segments after the last stored one
  // that is a multiple of both chunk sizes (every memory's chunk starts there, so a block between
  // two stored starts reads only states computed inside it), and the end (the final state).
  std::vector<int64_t> stored(int64_t every, int64_t cm, int64_t co) const {
    std::vector<int64_t> st;
    const int64_t both = std::lcm(cm, co);
    for (int64_t j = 0; j < count(); ++j)
      if (j == 0 || every <= 1 || (start[j] % both == 0 && j - st.back() >= every)) st.push_back(j);
    st.push_back(count());
    return st;
  }
  int64_t nmax() const {
    int64_t r = 1;
    for (int64_t j = 0; j < count(); ++j) r = std::max(r, start[j + 1] - start[j]);
    return r;
  }
};

inline int64_t chunkOf(const SmtSequenceDims& d, int64_t m) {
  return m == kMem - 1 ? d.chunk_memory : d.chunk_other;
}

template <typename T>
T frob(const T* W, int64_t k) {
  return std::sqrt(dot(W, W, k));
}

// One pair's view of a segment: a segment call with B = H = 1 on the pair's own buffers.
template <typename T>
struct SeqPair {
  const SmtSequenceDims& d;
  const SmtSequenceArgs<T>& in;
  Segs segs;
  int64_t DF, A, nmax;
  Work<T> w;
  std::vector<T> scratch, x, valid, loss, z, sz, eoa;
  std::vector<int64_t> stored;  // Segs::stored: the segment starts the checkpoint buffer holds
  T* trace = nullptr;           // SmtSequenceOut::trace of a forward (nullptr: none)
  SeqPair(const SmtSequenceDims& d_, const SmtSequenceArgs<T>& in_)
      : d(d_),
        in(in_),
        segs(d_.L, d_.chunk_memory, d_.chunk_other),
        DF(d_.D * d_.F),
        A(kMem * d_.D * d_.F),
        nmax(segs.nmax()),
        w(nmax, d_.D, d_.F),
        scratch(static_cast<size_t>(std::max(d_.D, d_.F))),
        x(static_cast<size_t>(d_.X * nmax * d_.D)),
        valid(static_cast<size_t>(nmax)),
        loss(static_cast<size_t>(kMem * nmax)),
        z(static_cast<size_t>(d_.F)),
        sz(static_cast<size_t>(d_.F)),
        eoa(static_cast<size_t>(nmax)),
        stored(segs.stored(d_.ck_every, d_.chunk_memory, d_.chunk_other)) {}
  bool sparse() const { return static_cast<int64_t>(stored.size()) < segs.count() + 1; }
  int64_t longestBlock() const {
    int64_t r = 1;
    for (size_t i = 0; i + 1 < stored.size(); ++i) r = std::max(r, stored[i + 1] - stored[i]);
    return r;
  }

  // Segment j from the states in cj to cn: the segment's reads, targets and writes, then the
  // state bound (radius rad; factors[j · 10 + k] receives the factor, or with `reuse` supplies it).
  // y, loss: the output read and per-token losses in the sequence's layout, or nullptr (a
  // recomputation for the reverse pass). Returns the clamp count.
  int64_t step(const T* ck, int64_t b, int64_t hd, int64_t j, const T* cj, T* cn, const SmtSegmentCoeffs& c,
               const T* rad, T* factors, bool reuse, T* y, T* lossOut) {
    if (j >= real_segments) {  // pads only (SmtSequenceDims::skip_pad_tail)
      padStep(b, hd, j, cj, cn, rad, factors, reuse, y, lossOut);
      return 0;
    }
    const int64_t s = segs.start[j], n = segs.start[j + 1] - s, D = d.D;
    load(ck, b, hd, j);
    const int64_t qo = ((b * d.H + hd) * d.L + s) * D;
    if (y) readOutput(in.q + qo, y + qo, n);
    SmtSegmentOut<T> o;
    o.W1 = cn;
    o.W2 = cn + A;
    o.S1 = cn + 2 * A;
    o.S2 = cn + 3 * A;
    o.loss = loss.data();
    w.eoa = trace ? eoa.data() : nullptr;
    const int64_t clamped = forwardPair(dims(n), c, args(cj, hd), o, index(n), 0, 0, w, scratch.data(), true);
    if (lossOut)
      for (int64_t m = 0; m < kMem; ++m)
        for (int64_t t = 0; t < n; ++t) lossOut[((b * kMem + m) * d.H + hd) * d.L + s + t] = loss[m * n + t];
    if (trace)  // the workspace still holds the segment's k, v, η, α
      for (int64_t t = 0; t < n; ++t) {
        T* tr = trace + (((b * d.H + hd) * d.L) + s + t) * 4;
        tr[0] = dot(w.kt + t * D, w.vt + t * D, D);
        tr[1] = w.eta[t];
        tr[2] = w.alpha[t];
        tr[3] = eoa[t];
      }
    bound(j, cn, rad, factors, reuse);
    return clamped;
  }

  // The state bound at the end of segment j: W ← W · min(1, radius / max(‖W‖, 1e-12)) for every
  // map of state cn (reuse: with the factor the forward recorded).
  void bound(int64_t j, T* cn, const T* rad, T* factors, bool reuse) const {
    if (in.state_bound <= 0) return;
    for (int64_t k = 0; k < 2 * kMem; ++k) {
      T* W = cn + (k / kMem) * A + (k % kMem) * DF;
      T f;
      if (reuse) {
        f = factors[j * 2 * kMem + k];
      } else {
        f = rad[k] / std::max(std::sqrt(dot(W, W, DF)), T(kCurvEps));
        factors[j * 2 * kMem + k] = f;  // the reverse pass recovers the unbounded state as W / f
      }
      if (f < T(1))
        for (int64_t i = 0; i < DF; ++i) W[i] *= f;
    }
  }

  // Segments [real_segments, count) of the current row hold only pads: step() copies the state
  // through them (padStep). startRow sets it: the segments up to and including the one that holds
  // row b's last real token (0: no real token), or all of them without skip_pad_tail.
  int64_t real_segments = std::numeric_limits<int64_t>::max();
  void startRow(int64_t b) {
    reset();
    real_segments = segs.count();
    if (!d.skip_pad_tail) return;
    int64_t last = d.L - 1;
    while (last >= 0 && in.valid[b * d.L + last] == T(0)) --last;
    real_segments = 0;
    while (real_segments < segs.count() && segs.start[real_segments] <= last) ++real_segments;
  }
  // What step() does to a segment of pads only: cn = cj (the writes of pads change nothing), then
  // the state bound's projection (reuse: with the factors the forward recorded); y and the losses
  // 0 (finish() multiplies both by the mask).
  void padStep(int64_t b, int64_t hd, int64_t j, const T* cj, T* cn, const T* rad, T* factors, bool reuse, T* y,
               T* lossOut) const {
    const int64_t s = segs.start[j], n = segs.start[j + 1] - s, D = d.D;
    std::memcpy(cn, cj, sizeof(T) * 4 * A);
    if (y) std::fill_n(y + ((b * d.H + hd) * d.L + s) * D, n * D, T(0));
    if (trace) std::fill_n(trace + ((b * d.H + hd) * d.L + s) * 4, n * 4, T(0));
    if (lossOut)
      for (int64_t m = 0; m < kMem; ++m) std::fill_n(lossOut + ((b * kMem + m) * d.H + hd) * d.L + s, n, T(0));
    bound(j, cn, rad, factors, reuse);
  }

  SmtSegmentDims dims(int64_t n) const { return SmtSegmentDims{1, 1, n, d.D, d.F, d.X}; }
  Index index(int64_t n) const { return Index{1, n, d.D, d.F, d.X}; }

  // The checkpoint each memory's prepared read state came from (-1: none); reset per pair.
  int64_t from[kMem] = {-1, -1, -1, -1, -1};
  bool ring = false;  // ck holds two state slots (SmtSequenceOut::ring): segment j's in slot j % 2
  int64_t base = 0;   // otherwise segment j's state is in slot j − base
  void reset() { std::fill(from, from + kMem, int64_t(-1)); }
  // Loads segment j's inputs and mask and its read states (each memory's state at the start of
  // its chunk) into the workspace; a read state already there (the same chunk as the segment
  // loaded before, in either direction) is kept.
  void load(const T* ck, int64_t b, int64_t hd, int64_t j) {
    const int64_t s = segs.start[j], n = segs.start[j + 1] - s;
    for (int64_t m = 0; m < kMem; ++m) {
      const int64_t C = chunkOf(d, m), src = segs.of[(s / C) * C];
      if (from[m] == src) continue;
      // (a ring forward loads a read state only when its chunk starts at this segment, src == j,
      // whose slot holds it)
      const T* c = ck + (ring ? (src & 1) : src - base) * 4 * A;
      prepareRead(w, m, c + m * DF, c + A + m * DF);
      from[m] = src;
    }
    for (int64_t mm = 0; mm < d.X; ++mm)
      std::memcpy(x.data() + mm * n * d.D, in.x + (((b * d.X + mm) * d.H + hd) * d.L + s) * d.D, sizeof(T) * n * d.D);
    for (int64_t t = 0; t < n; ++t) valid[t] = in.valid[b * d.L + s + t];
  }
  SmtSegmentArgs<T> args(const T* cj, int64_t hd) const {
    SmtSegmentArgs<T> a;
    a.R1 = w.R1;  // prepared: reads() does not copy them again
    a.R2 = w.R2;
    a.W1 = cj;
    a.W2 = cj + A;
    a.S1 = cj + 2 * A;
    a.S2 = cj + 3 * A;
    a.x = x.data();
    a.w_eta = in.w_eta + hd * d.D;
    a.b_eta = in.b_eta + hd;
    a.w_alpha = in.w_alpha + hd * d.D;
    a.b_alpha = in.b_alpha + hd;
    a.valid = valid.data();
    return a;
  }
  // y = q + R1 silu(R2 q) with the output memory's read state, tokens [s, e).
  void readOutput(const T* q, T* y, int64_t n) {
    const int64_t D = d.D, F = d.F;
    const T *O1 = w.R1 + (kMem - 1) * DF, *O2 = w.R2 + (kMem - 1) * DF;
    for (int64_t t = 0; t < n; ++t) {
      const T* qt = q + t * D;
      for (int64_t f = 0; f < F; ++f) {
        z[f] = dot(O2 + f * D, qt, D);
        sz[f] = z[f] * sigm(z[f]);
      }
      for (int64_t i = 0; i < D; ++i) y[t * D + i] = qt[i] + dot(O1 + i * F, sz.data(), F);
    }
  }
};

}  // namespace

int64_t smt_sequence_segments(int64_t L, int64_t chunk_memory, int64_t chunk_other) {
  return Segs(L, chunk_memory, chunk_other).count();
}

int64_t smt_sequence_checkpoint_slots(const SmtSequenceDims& d) {
  return static_cast<int64_t>(
      Segs(d.L, d.chunk_memory, d.chunk_other).stored(d.ck_every, d.chunk_memory, d.chunk_other).size());
}

int64_t smt_sequence_checkpoint_size(const SmtSequenceDims& d) {
  const int64_t nseg = smt_sequence_segments(d.L, d.chunk_memory, d.chunk_other);
  // the stored states, then the bound's factors of every segment
  return HL_ISA_NS::smt_sequence_checkpoint_slots(d) * 4 * kMem * d.D * d.F + nseg * 2 * kMem;
}

int64_t smt_sequence_ring_size(const SmtSequenceDims& d) {
  const int64_t nseg = HL_ISA_NS::smt_sequence_segments(d.L, d.chunk_memory, d.chunk_other);
  return 2 * 4 * kMem * d.D * d.F + nseg * 2 * kMem;
}

template <typename T>
void smt_sequence_forward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                          const SmtSequenceOut<T>& out, int64_t p0, int64_t p1) {
  SeqPair<T> sp(d, in);
  sp.trace = out.trace;
  // Sparse checkpoints: the segments run on two alternating slots of a local buffer (as a ring
  // forward), and the stored starts are copied into ck.
  const bool sparse = !out.ring && sp.sparse();
  sp.ring = out.ring || sparse;
  const int64_t DF = sp.DF, A = sp.A;
  const int64_t CK = out.ring ? HL_ISA_NS::smt_sequence_ring_size(d) : HL_ISA_NS::smt_sequence_checkpoint_size(d);
  const int64_t slots = out.ring ? 2 : static_cast<int64_t>(sp.stored.size());
  const bool alternate = sp.ring;
  auto slot = [alternate](int64_t j) { return alternate ? (j & 1) : j; };
  const Index gix{d.H, d.L, d.D, d.F, d.X};
  std::vector<T> rad(2 * kMem), work(sparse ? 2 * 4 * A : 0);
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / d.H, hd = p % d.H;
    T* ck = out.ck + p * CK;
    T* st = sparse ? work.data() : ck;  // the states the segments run on
    sp.startRow(b);
    const int64_t b0 = in.shared_start ? 0 : b;  // the row whose start state this sequence takes
    for (int64_t m = 0; m < kMem; ++m) {
      std::memcpy(st + m * DF, in.W1 + gix.state(b0, m, hd), sizeof(T) * DF);
      std::memcpy(st + A + m * DF, in.W2 + gix.state(b0, m, hd), sizeof(T) * DF);
      rad[m] = T(in.state_bound) * frob(st + m * DF, DF);
      rad[kMem + m] = T(in.state_bound) * frob(st + A + m * DF, DF);
    }
    std::fill(st + 2 * A, st + 4 * A, T(0));
    if (sparse) std::memcpy(ck, st, sizeof(T) * 4 * A);
    T* factors = ck + slots * 4 * A;
    int64_t clamped = 0;
    size_t next = 1;  // sp.stored[next]: the next stored start
    const int64_t nseg = sp.segs.count();
    // The row stops after the segment that holds its last real token (SmtSequenceDims::
    // skip_pad_tail): the segments after it hold only pads, which write nothing (W and S come out
    // bit for bit as they went in), read 0 and lose 0, so their states are copies under the state
    // bound's projection (test_kernels aForwardWithoutGradientKeepsTwoSlotsAndTheSameBits,
    // skippingThePadTailKeepsEveryBit). Rows padded to the longest of a batch carry many such
    // segments (docs/KERNELS.md "Trailing pads").
    for (int64_t j = 0; j < nseg; ++j) {
      T* cn = st + slot(j + 1) * 4 * A;
      clamped += sp.step(st, b, hd, j, st + slot(j) * 4 * A, cn, c, rad.data(), factors, false, out.y, out.loss);
      if (sparse && sp.stored[next] == j + 1) std::memcpy(ck + (next++) * 4 * A, cn, sizeof(T) * 4 * A);
    }
    out.clamped[p] = clamped;
  }
}

template <typename T>
void smt_sequence_backward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                           const T* ck0, const T* dy, const T* dW1e, const T* dW2e, const T* dS1e, const T* dS2e,
                           const SmtSequenceGrads<T>& g, int64_t p0, int64_t p1) {
  SeqPair<T> sp(d, in);
  Bwd<T> bw(sp.nmax, d.D, d.F);
  const int64_t DF = sp.DF, A = sp.A, CK = HL_ISA_NS::smt_sequence_checkpoint_size(d), D = d.D, F = d.F;
  const bool sparse = sp.sparse();
  const int64_t slots = static_cast<int64_t>(sp.stored.size());
  // Sparse checkpoints: each block between two stored starts is recomputed into blk (its states
  // at every segment start, as a dense forward stores them) before its reverse pass.
  std::vector<T> blk(sparse ? (sp.longestBlock() + 1) * 4 * A : 0), rbuf(2 * kMem);
  const Index gix{d.H, d.L, d.D, d.F, d.X};
  std::vector<T> dWc(4 * A), dWs(4 * A), pre(2 * A), dpre(2 * A), dRacc(2 * A), rad(2 * kMem), drad(2 * kMem),
      dx(d.X * sp.nmax * D), dwe(D), dwa(D), dsz(F), dz(F);
  T dbe = 0, dba = 0;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t b = p / d.H, hd = p % d.H;
    const T* ck = ck0 + p * CK;
    sp.startRow(b);
    for (int64_t k = 0; k < 2 * kMem; ++k) rad[k] = T(in.state_bound) * frob(ck + (k / kMem) * A + (k % kMem) * DF, DF);
    // The gradients of the final state.
    const T* ends[4] = {dW1e, dW2e, dS1e, dS2e};
    for (int64_t a = 0; a < 4; ++a)
      for (int64_t m = 0; m < kMem; ++m) {
        T* dst = dWc.data() + a * A + m * DF;
        if (ends[a])
          std::memcpy(dst, ends[a] + gix.state(b, m, hd), sizeof(T) * DF);
        else
          std::fill(dst, dst + DF, T(0));
      }
    std::fill(dRacc.begin(), dRacc.end(), T(0));
    std::fill(drad.begin(), drad.end(), T(0));
    T* gwe = g.dw_eta + (b * d.H + hd) * D;
    T* gwa = g.dw_alpha + (b * d.H + hd) * D;
    std::fill(gwe, gwe + D, T(0));
    std::fill(gwa, gwa + D, T(0));
    g.db_eta[b * d.H + hd] = 0;
    g.db_alpha[b * d.H + hd] = 0;
    const T* facs = ck + slots * 4 * A;
    for (int64_t bi = slots - 2; bi >= 0; --bi) {
      const int64_t jb = sp.stored[bi], je = sp.stored[bi + 1];
      const T* states = ck;  // segment j's start state at states + (j − sp.base) · 4A
      sp.base = 0;
      if (sparse) {
        std::memcpy(blk.data(), ck + bi * 4 * A, sizeof(T) * 4 * A);
        sp.base = jb;
        sp.reset();
        for (int64_t j = jb; j + 1 < je; ++j)  // the block's last end state is not needed
          sp.step(blk.data(), b, hd, j, blk.data() + (j - jb) * 4 * A, blk.data() + (j + 1 - jb) * 4 * A, c,
                  rbuf.data(), const_cast<T*>(facs), /*reuse=*/true, nullptr, nullptr);
        states = blk.data();
      }
      for (int64_t j = je - 1; j >= jb; --j) {
        const int64_t s = sp.segs.start[j], n = sp.segs.start[j + 1] - s;
        const T* cj = states + (j - sp.base) * 4 * A;
        const bool padOnly = j >= sp.real_segments;  // the forward copied the state through (padStep)
        if (!padOnly) sp.load(states, b, hd, j);
        const SmtSegmentArgs<T> a = sp.args(cj, hd);
        // The state bound's reverse pass. Where it bound (f < 1) the unbounded end state is the
        // bounded one divided by f (exact up to rounding: no recomputation of the segment).
        const T* gW = dWc.data();
        if (in.state_bound > 0) {
          // the end state: the next segment's start, or (the block's last segment) the next stored one
          const T* cn = j + 1 < je || !sparse ? states + (j + 1 - sp.base) * 4 * A : ck + (bi + 1) * 4 * A;
          const T* fac = facs + j * 2 * kMem;
          for (int64_t k = 0; k < 2 * kMem; ++k) {
            const int64_t off = (k / kMem) * A + (k % kMem) * DF;
            const T* G = dWc.data() + off;
            T* out = dpre.data() + off;
            const T ratio = fac[k];
            if (ratio <= T(0)) {  // a zero radius (a zero start state): nothing to recover
              std::fill(out, out + DF, T(0));
            } else if (ratio <= T(1)) {  // torch::clamp_max passes the gradient at the tie
              T* Wp = pre.data() + off;
              for (int64_t i = 0; i < DF; ++i) Wp[i] = cn[off + i] / ratio;
              const T nrm = frob(Wp, DF), nc = std::max(nrm, T(kCurvEps));
              const T gw = dot(G, Wp, DF);
              drad[k] += gw / nc;
              const T coef = nrm >= T(kCurvEps) ? -gw * rad[k] / (nc * nc) / nrm : T(0);
              for (int64_t i = 0; i < DF; ++i) out[i] = ratio * G[i] + coef * Wp[i];
            } else {
              std::memcpy(out, G, sizeof(T) * DF);
            }
          }
          gW = dpre.data();
        }
        if (padOnly) {  // the copy's reverse: the W gradients through the bound, the S ones as they are
          if (gW != dWc.data()) std::memcpy(dWc.data(), gW, sizeof(T) * 2 * A);
          for (int64_t mm = 0; mm < d.X; ++mm)
            std::fill_n(g.dx + (((b * d.X + mm) * d.H + hd) * d.L + s) * D, n * D, T(0));
          std::fill_n(g.dq + ((b * d.H + hd) * d.L + s) * D, n * D, T(0));
          continue;  // nothing read here: no read-state gradient to hand on at a chunk start
        }
        SmtSegmentGrads<T> lg;
        lg.dR1 = dRacc.data();  // backwardPair adds the segment's read-state gradients to them
        lg.dR2 = dRacc.data() + A;
        lg.dW1 = dWs.data();
        lg.dW2 = dWs.data() + A;
        lg.dS1 = dWs.data() + 2 * A;
        lg.dS2 = dWs.data() + 3 * A;
        lg.dx = dx.data();
        lg.dw_eta = dwe.data();
        lg.db_eta = &dbe;
        lg.dw_alpha = dwa.data();
        lg.db_alpha = &dba;
        backwardPair(sp.dims(n), c, a, gW, dWc.data() + 2 * A, gW + A, dWc.data() + 3 * A, lg, sp.index(n), 0, 0, sp.w,
                     bw, /*prepared=*/true, /*accumulate=*/true);
        for (int64_t i = 0; i < D; ++i) {
          gwe[i] += dwe[i];
          gwa[i] += dwa[i];
        }
        g.db_eta[b * d.H + hd] += dbe;
        g.db_alpha[b * d.H + hd] += dba;
        for (int64_t mm = 0; mm < d.X; ++mm)
          std::memcpy(g.dx + (((b * d.X + mm) * d.H + hd) * d.L + s) * D, dx.data() + mm * n * D, sizeof(T) * n * D);
        // The output read's reverse pass: y = q + O1 silu(O2 q).
        const T *O1 = sp.w.R1 + (kMem - 1) * DF, *O2 = sp.w.R2 + (kMem - 1) * DF;
        T *dO1 = dRacc.data() + (kMem - 1) * DF, *dO2 = dRacc.data() + A + (kMem - 1) * DF;
        const int64_t qo = ((b * d.H + hd) * d.L + s) * D;
        for (int64_t t = 0; t < n; ++t) {
          const T *qt = in.q + qo + t * D, *dyt = dy + qo + t * D;
          T* dqt = g.dq + qo + t * D;
          for (int64_t f = 0; f < F; ++f) {
            sp.z[f] = dot(O2 + f * D, qt, D);
            sp.sz[f] = sp.z[f] * sigm(sp.z[f]);
          }
          rowsum<T, false>(O1, dyt, dsz.data(), D, F);  // O1ᵀ dy
          outer(dO1, dyt, sp.sz.data(), D, F);
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) dz[f] = dsz[f] * dsilu(sp.z[f]);
          outer(dO2, dz.data(), qt, F, D);
          std::memcpy(dqt, dyt, sizeof(T) * D);
          rowsum<T, true>(O2, dz.data(), dqt, F, D);  // + O2ᵀ dz
        }
        // A memory whose chunk starts here read the state at this segment's start.
        for (int64_t m = 0; m < kMem; ++m)
          if (s % chunkOf(d, m) == 0)
            for (int64_t l = 0; l < 2; ++l) {
              T *dst = dWs.data() + l * A + m * DF, *acc = dRacc.data() + l * A + m * DF;
              for (int64_t i = 0; i < DF; ++i) dst[i] += acc[i];
              std::fill(acc, acc + DF, T(0));
            }
        std::swap(dWc, dWs);
      }
    }
    // The start state, and the bound's radius state_bound · ‖W_start‖.
    for (int64_t k = 0; k < 2 * kMem; ++k) {
      const int64_t m = k % kMem;
      const T* W0 = ck + (k / kMem) * A + m * DF;
      T* dst = (k < kMem ? g.dW1 : g.dW2) + gix.state(b, m, hd);
      const T* src = dWc.data() + (k / kMem) * A + m * DF;
      const T n0 = frob(W0, DF);
      const T coef = in.state_bound > 0 && n0 > T(0) ? drad[k] * T(in.state_bound) / n0 : T(0);
      for (int64_t i = 0; i < DF; ++i) dst[i] = src[i] + coef * W0[i];
    }
  }
}

template void smt_segment_forward<float>(const SmtSegmentDims&, const SmtSegmentCoeffs&, const SmtSegmentArgs<float>&,
                                         const SmtSegmentOut<float>&, int64_t, int64_t);
template void smt_segment_forward<double>(const SmtSegmentDims&, const SmtSegmentCoeffs&, const SmtSegmentArgs<double>&,
                                          const SmtSegmentOut<double>&, int64_t, int64_t);
template void smt_segment_backward<float>(const SmtSegmentDims&, const SmtSegmentCoeffs&, const SmtSegmentArgs<float>&,
                                          const float*, const float*, const float*, const float*,
                                          const SmtSegmentGrads<float>&, int64_t, int64_t);
template void smt_segment_backward<double>(const SmtSegmentDims&, const SmtSegmentCoeffs&,
                                           const SmtSegmentArgs<double>&, const double*, const double*, const double*,
                                           const double*, const SmtSegmentGrads<double>&, int64_t, int64_t);

HL_KERNELS_ISA_END

HL_KERNELS_ISA_BEGIN
#define HL_SEQ_INST(T)                                                                                               \
  template void smt_sequence_forward<T>(const SmtSequenceDims&, const SmtSegmentCoeffs&, const SmtSequenceArgs<T>&,  \
                                        const SmtSequenceOut<T>&, int64_t, int64_t);                                 \
  template void smt_sequence_backward<T>(const SmtSequenceDims&, const SmtSegmentCoeffs&, const SmtSequenceArgs<T>&, \
                                         const T*, const T*, const T*, const T*, const T*, const T*,                 \
                                         const SmtSequenceGrads<T>&, int64_t, int64_t);
HL_SEQ_INST(float)
HL_SEQ_INST(double)
#undef HL_SEQ_INST
HL_KERNELS_ISA_END
