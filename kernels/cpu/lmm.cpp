// CPU kernel of the Titans long-term memory (kernels/include/hl_kernels/lmm.h), compiled once per
// ISA (kernels/cpu/isa.h). One (sequence, head) pair at a time; its running state (4 · D · F
// values) and a chunk's per-token quantities stay in a per-thread workspace. The reverse pass
// walks the chunks backwards: it recomputes a chunk from its checkpointed start state (keeping the
// state after every token), reverses the state bound and the token recurrence, then the chain rule
// through the clamps, the inner gradients and the reads. Derivation: docs/KERNELS.md
// "Titans long-term memory".
#include "isa.h"
#include "isa_api.h"
#include "fast_exp.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

HL_KERNELS_ISA_BEGIN

namespace {

constexpr double kNormEps = 1e-12;  // boundState's clamp_min of ‖W‖
constexpr double kU2Eps = 1e-30;    // clampTheta's clamp_min of ‖u‖²

template <typename T>
inline T sigmoidOf(T z) {
  return T(1) / (T(1) + expT(-z));
}

// y[r] = Σ_c A[r, c] x[c]  (A [rows, cols])
template <typename T>
inline void mv(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = A + r * cols;
    T acc = 0;
#pragma omp simd reduction(+ : acc)
    for (int64_t c = 0; c < cols; ++c) acc += a[c] * x[c];
    y[r] = acc;
  }
}

// y[c] = Σ_r A[r, c] x[r]  (A [rows, cols]; rows of A scaled and summed)
template <typename T>
inline void mtv(const T* __restrict A, const T* __restrict x, T* __restrict y, int64_t rows, int64_t cols) {
  std::fill(y, y + cols, T(0));
  for (int64_t r = 0; r < rows; ++r) {
    const T xr = x[r];
    const T* a = A + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) y[c] += xr * a[c];
  }
}

// A[r, c] += s · x[r] y[c]
template <typename T>
inline void outerAdd(T* __restrict A, T s, const T* __restrict x, const T* __restrict y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const T xr = s * x[r];
    T* a = A + r * cols;
#pragma omp simd
    for (int64_t c = 0; c < cols; ++c) a[c] += xr * y[c];
  }
}

template <typename T>
inline T dotN(const T* __restrict a, const T* __restrict b, int64_t n) {
  T acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += a[i] * b[i];
  return acc;
}

template <typename T>
inline double normOf(const T* a, int64_t n) {
  double acc = 0;
  for (int64_t i = 0; i < n; ++i) acc += double(a[i]) * double(a[i]);
  return std::sqrt(acc);
}

// Clamp outcome of min(θ, cap) (torch::minimum: a tie splits the gradient in halves).
enum : int8_t { kTheta = 0, kCap = 1, kTie = 2 };

// One pair's pointers and the per-thread workspace.
template <typename T>
struct Pair {
  const T *q, *k, *v, *theta, *eta, *alpha, *valid;  // the pair's rows
  const T *W1, *W2, *S1, *S2;                        // start state (S may be nullptr)
};

template <typename T>
struct Work {
  int64_t C = 0, D = 0, F = 0;
  // per token of a chunk
  std::vector<T> h, sg, s, dl, e, r, delta;  // [C, F] / [C, D]
  std::vector<T> th1, th2, cap1, cap2, u2s, u2k;
  std::vector<int8_t> on, f1, f2;
  // reverse pass, per token
  std::vector<T> deR, dsR, ddR, dkR;
  std::vector<T> states;  // (C + 1) · 4DF: the chunk's state before / after every token
  std::vector<T> tmpD, tmpD2, tmpF, tmpF2, tmpF3;
  std::vector<T> grad;  // 4DF: gradient of the running state (W1, W2, S1, S2)
  std::vector<T> dR0;   // 2DF: stop-grad reads' gradient of the start state

  void ensure(int64_t C_, int64_t D_, int64_t F_) {
    if (C_ == C && D_ == D && F_ == F) return;
    C = C_, D = D_, F = F_;
    const auto cF = size_t(C * F), cD = size_t(C * D), c = size_t(C), DF = size_t(D * F);
    for (auto* v : {&h, &sg, &s, &dl, &r, &delta, &dsR, &ddR}) v->assign(cF, T(0));
    for (auto* v : {&e, &deR, &dkR}) v->assign(cD, T(0));
    for (auto* v : {&th1, &th2, &cap1, &cap2, &u2s, &u2k}) v->assign(c, T(0));
    for (auto* v : {&on, &f1, &f2}) v->assign(c, int8_t(0));
    states.assign(size_t(C + 1) * 4 * DF, T(0));
    for (auto* v : {&tmpD, &tmpD2}) v->assign(size_t(D), T(0));
    for (auto* v : {&tmpF, &tmpF2, &tmpF3}) v->assign(size_t(F), T(0));
    grad.assign(4 * DF, T(0));
    dR0.assign(2 * DF, T(0));
  }
};

template <typename T>
Work<T>& workspace(const LmmDims& d) {
  thread_local Work<T> w;
  w.ensure(d.C, d.D, d.F);
  return w;
}

template <typename T>
Pair<T> pairOf(const LmmDims& d, const LmmArgs<T>& in, int64_t p) {
  const int64_t b = p / d.H, hd = p % d.H, DF = d.D * d.F;
  const int64_t w0 = (d.w0_per_sequence ? p : hd) * DF;
  Pair<T> P;
  P.q = in.q + p * d.L * d.D;
  P.k = in.k + p * d.L * d.D;
  P.v = in.v + p * d.L * d.D;
  P.theta = in.theta + p * d.L;
  P.eta = in.eta + p * d.L;
  P.alpha = in.alpha + p * d.L;
  P.valid = in.valid + b * d.L;
  P.W1 = in.W1 + w0;
  P.W2 = in.W2 + w0;
  P.S1 = in.S1 ? in.S1 + w0 : nullptr;
  P.S2 = in.S2 ? in.S2 + w0 : nullptr;
  return P;
}

// The per-token quantities of tokens t0 .. t0 + n − 1 at the chunk-start weights W1c, W2c; the
// loss of the real tokens is added to *loss and the clamped writes to *clamped (either may be null).
template <typename T>
void innerGradients(const LmmDims& d, const Pair<T>& P, int64_t t0, int64_t n, const T* W1c, const T* W2c, Work<T>& w,
                    double* loss, int64_t* clamped) {
  const int64_t D = d.D, F = d.F;
  const T third = T(d.clamp_bound / 3.0);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t t = t0 + j;
    w.on[j] = P.valid[t] != T(0);
    if (!w.on[j]) continue;
    const T *kt = P.k + t * D, *vt = P.v + t * D;
    T *h = &w.h[j * F], *sg = &w.sg[j * F], *s = &w.s[j * F], *dl = &w.dl[j * F];
    T *e = &w.e[j * D], *r = &w.r[j * F], *delta = &w.delta[j * F];
    mv(W2c, kt, h, F, D);
    for (int64_t f = 0; f < F; ++f) {
      const T g = sigmoidOf(h[f]);
      sg[f] = g;
      s[f] = h[f] * g;
      dl[f] = g * (T(1) + h[f] * (T(1) - g));
    }
    mv(W1c, s, e, D, F);  // W1 s, then the error
    double l = 0;
    for (int64_t i = 0; i < D; ++i) {
      const T res = kt[i] + e[i] - vt[i];
      l += double(res) * double(res);
      e[i] = T(2) * res;
    }
    if (loss) *loss += l;
    mtv(W1c, e, r, D, F);
    for (int64_t f = 0; f < F; ++f) delta[f] = r[f] * dl[f];
    const T th = P.theta[t];
    w.th1[j] = w.th2[j] = th;
    w.f1[j] = w.f2[j] = kTheta;
    if (d.clamp) {
      const T ss = dotN(s, s, F), kk = dotN(kt, kt, D);
      w.u2s[j] = ss;
      w.u2k[j] = kk;
      const T c1 = third / std::max(ss, T(kU2Eps)), c2 = third / std::max(kk, T(kU2Eps));
      w.cap1[j] = c1;
      w.cap2[j] = c2;
      if (th > c1)
        w.th1[j] = c1, w.f1[j] = kCap;
      else if (th == c1)
        w.f1[j] = kTie;
      if (th > c2)
        w.th2[j] = c2, w.f2[j] = kCap;
      else if (th == c2)
        w.f2[j] = kTie;
      if (clamped) *clamped += (th > c1) + (th > c2);
    }
  }
}

// One token's write: from state `src` to `dst` (4DF each; may be the same array).
template <typename T>
inline void tokenWrite(const LmmDims& d, const Pair<T>& P, int64_t t, int64_t j, const Work<T>& w, const T* src,
                       T* dst) {
  const int64_t D = d.D, F = d.F, DF = D * F;
  const T et = P.eta[t], a = T(1) - P.alpha[t];
  const T *e = &w.e[j * D], *s = &w.s[j * F], *delta = &w.delta[j * F], *kt = P.k + t * D;
  const T t1 = w.th1[j], t2 = w.th2[j];
  // layer 1: S1[i, f] = η S1 − θ1 e_i s_f; W1 = a W1 + S1
  for (int64_t i = 0; i < D; ++i) {
    const T ce = t1 * e[i];
    const T *W = src + i * F, *S = src + 2 * DF + i * F;
    T *Wd = dst + i * F, *Sd = dst + 2 * DF + i * F;
#pragma omp simd
    for (int64_t f = 0; f < F; ++f) {
      const T sn = et * S[f] - ce * s[f];
      Sd[f] = sn;
      Wd[f] = a * W[f] + sn;
    }
  }
  // layer 2: S2[f, i] = η S2 − θ2 δ_f k_i; W2 = a W2 + S2
  for (int64_t f = 0; f < F; ++f) {
    const T cd = t2 * delta[f];
    const T *W = src + DF + f * D, *S = src + 3 * DF + f * D;
    T *Wd = dst + DF + f * D, *Sd = dst + 3 * DF + f * D;
#pragma omp simd
    for (int64_t i = 0; i < D; ++i) {
      const T sn = et * S[i] - cd * kt[i];
      Sd[i] = sn;
      Wd[i] = a * W[i] + sn;
    }
  }
}

// The bound's factor min(1, radius / max(‖W‖, eps)); *norm receives ‖W‖.
template <typename T>
inline T boundFactor(const T* W, int64_t n, double radius, double* norm) {
  const double nrm = normOf(W, n);
  if (norm) *norm = nrm;
  return T(std::min(1.0, radius / std::max(nrm, kNormEps)));
}

template <typename T>
void startState(const LmmDims& d, const Pair<T>& P, T* st) {
  const int64_t DF = d.D * d.F;
  std::memcpy(st, P.W1, sizeof(T) * DF);
  std::memcpy(st + DF, P.W2, sizeof(T) * DF);
  if (P.S1)
    std::memcpy(st + 2 * DF, P.S1, sizeof(T) * DF);
  else
    std::fill(st + 2 * DF, st + 3 * DF, T(0));
  if (P.S2)
    std::memcpy(st + 3 * DF, P.S2, sizeof(T) * DF);
  else
    std::fill(st + 3 * DF, st + 4 * DF, T(0));
}

template <typename T>
void forwardPair(const LmmDims& d, const LmmArgs<T>& in, const LmmOut<T>& out, int64_t p) {
  const int64_t D = d.D, F = d.F, DF = D * F, L = d.L, C = d.C, nc = lmm_chunks(d), SZ = 4 * DF;
  Work<T>& w = workspace<T>(d);
  const Pair<T> P = pairOf(d, in, p);
  T* st = w.states.data();  // the running state (slot 0)
  startState(d, P, st);
  const double rad1 = d.state_bound > 0 ? d.state_bound * normOf(P.W1, DF) : 0;
  const double rad2 = d.state_bound > 0 ? d.state_bound * normOf(P.W2, DF) : 0;
  T* y = out.y + p * L * D;
  int64_t clamped = 0;
  for (int64_t c = 0; c < nc; ++c) {
    const int64_t t0 = c * C, n = std::min(C, L - t0);
    if (out.ck) std::memcpy(out.ck + p * nc * SZ + c * SZ, st, sizeof(T) * SZ);
    const T *W1c = st, *W2c = st + DF;
    // reads at the chunk-start weights
    for (int64_t t = t0; t < t0 + n; ++t) {
      T* yt = y + t * D;
      if (P.valid[t] == T(0)) {
        std::fill(yt, yt + D, T(0));
        continue;
      }
      const T* qt = P.q + t * D;
      T* z = w.tmpF.data();
      mv(W2c, qt, z, F, D);
      for (int64_t f = 0; f < F; ++f) z[f] = z[f] * sigmoidOf(z[f]);
      mv(W1c, z, yt, D, F);
      for (int64_t i = 0; i < D; ++i) yt[i] += qt[i];
    }
    double l = 0;
    innerGradients(d, P, t0, n, W1c, W2c, w, &l, &clamped);
    if (out.loss) out.loss[p * nc + c] = l;
    for (int64_t j = 0; j < n; ++j)
      if (w.on[j]) tokenWrite(d, P, t0 + j, j, w, st, st);
    if (d.state_bound > 0) {
      const T f1 = boundFactor(st, DF, rad1, nullptr), f2 = boundFactor(st + DF, DF, rad2, nullptr);
      for (int64_t i = 0; i < DF; ++i) st[i] *= f1;
      for (int64_t i = 0; i < DF; ++i) st[DF + i] *= f2;
    }
  }
  if (out.final_state) std::memcpy(out.final_state + p * SZ, st, sizeof(T) * SZ);
  if (out.clamped) out.clamped[p] = clamped;
}

// The gradient of a map through W = Wn · min(1, radius / max(‖Wn‖, eps)) (clamp_max passes the
// gradient where radius / norm ≤ 1); dW in place becomes dWn; returns the radius's gradient.
template <typename T>
double boundBackward(T* dW, const T* Wn, int64_t n, double radius) {
  const double nrm = normOf(Wn, n), nc = std::max(nrm, kNormEps);
  const double ratio = radius / nc;
  if (ratio > 1.0) return 0;  // the bound did not bind: W = Wn
  double g = 0;
  for (int64_t i = 0; i < n; ++i) g += double(dW[i]) * double(Wn[i]);
  const double dn = -g * radius / (nc * nc);
  const double coef = nrm >= kNormEps ? dn / nrm : 0.0;
  for (int64_t i = 0; i < n; ++i) dW[i] = T(ratio * double(dW[i]) + coef * double(Wn[i]));
  return g / nc;
}

template <typename T>
void backwardPair(const LmmDims& d, const LmmArgs<T>& in, const T* ckAll, const T* dyAll, const LmmGrads<T>& g,
                  int64_t p) {
  const int64_t D = d.D, F = d.F, DF = D * F, L = d.L, C = d.C, nc = lmm_chunks(d), SZ = 4 * DF;
  Work<T>& w = workspace<T>(d);
  const Pair<T> P = pairOf(d, in, p);
  const T* ck = ckAll + p * nc * SZ;
  const T* dy = dyAll + p * L * D;
  T *dq = g.dq + p * L * D, *dk = g.dk + p * L * D, *dv = g.dv + p * L * D;
  T *dth = g.dtheta + p * L, *deta = g.deta + p * L, *dal = g.dalpha + p * L;
  std::fill(dq, dq + L * D, T(0));
  std::fill(dk, dk + L * D, T(0));
  std::fill(dv, dv + L * D, T(0));
  std::fill(dth, dth + L, T(0));
  std::fill(deta, deta + L, T(0));
  std::fill(dal, dal + L, T(0));
  T* G = w.grad.data();  // gradient of the running state: dW1, dW2, dS1, dS2
  std::fill(G, G + SZ, T(0));
  T* dR0 = w.dR0.data();
  std::fill(dR0, dR0 + 2 * DF, T(0));
  T *dW1 = G, *dW2 = G + DF, *dS1 = G + 2 * DF, *dS2 = G + 3 * DF;
  const double n1 = d.state_bound > 0 ? normOf(P.W1, DF) : 0, n2 = d.state_bound > 0 ? normOf(P.W2, DF) : 0;
  const double rad1 = d.state_bound * n1, rad2 = d.state_bound * n2;  // the bound's radii (0: no bound)
  double dr1 = 0, dr2 = 0;
  T *tD = w.tmpD.data(), *tD2 = w.tmpD2.data(), *tF = w.tmpF.data(), *tF2 = w.tmpF2.data(), *tF3 = w.tmpF3.data();

  for (int64_t c = nc - 1; c >= 0; --c) {
    const int64_t t0 = c * C, n = std::min(C, L - t0);
    const T* start = ck + c * SZ;
    const T *W1c = start, *W2c = start + DF;
    if (!d.stop_grad) {
      // Recompute the chunk, keeping the state before and after every token.
      T* S = w.states.data();
      std::memcpy(S, start, sizeof(T) * SZ);
      innerGradients(d, P, t0, n, W1c, W2c, w, nullptr, nullptr);
      for (int64_t j = 0; j < n; ++j) {
        if (w.on[j])
          tokenWrite(d, P, t0 + j, j, w, S + j * SZ, S + (j + 1) * SZ);
        else
          std::memcpy(S + (j + 1) * SZ, S + j * SZ, sizeof(T) * SZ);
      }
      if (d.state_bound > 0) {
        const T* end = S + n * SZ;
        dr1 += boundBackward(dW1, end, DF, rad1);
        dr2 += boundBackward(dW2, end + DF, DF, rad2);
      }
      // The token recurrence backwards.
      for (int64_t j = n - 1; j >= 0; --j) {
        if (!w.on[j]) continue;
        const int64_t t = t0 + j;
        const T* prev = S + j * SZ;
        const T et = P.eta[t], a = T(1) - P.alpha[t];
        for (int64_t i = 0; i < DF; ++i) dS1[i] += dW1[i];
        for (int64_t i = 0; i < DF; ++i) dS2[i] += dW2[i];
        const T da = dotN(dW1, prev, DF) + dotN(dW2, prev + DF, DF);
        dal[t] = -da;
        for (int64_t i = 0; i < 2 * DF; ++i) G[i] *= a;
        deta[t] = dotN(dS1, prev + 2 * DF, DF) + dotN(dS2, prev + 3 * DF, DF);
        const T *e = &w.e[j * D], *s = &w.s[j * F], *delta = &w.delta[j * F], *kt = P.k + t * D;
        // layer 1: −θ1 e sᵀ
        mv(dS1, s, tD, D, F);   // dS1 s   [D]
        mtv(dS1, e, tF, D, F);  // dS1ᵀ e  [F]
        const T dth1 = -dotN(e, tD, D);
        T *deR = &w.deR[j * D], *dsR = &w.dsR[j * F], *ddR = &w.ddR[j * F], *dkR = &w.dkR[j * D];
        for (int64_t i = 0; i < D; ++i) deR[i] = -w.th1[j] * tD[i];
        for (int64_t f = 0; f < F; ++f) dsR[f] = -w.th1[j] * tF[f];
        // layer 2: −θ2 δ kᵀ
        mv(dS2, kt, tF2, F, D);      // dS2 k   [F]
        mtv(dS2, delta, tD2, F, D);  // dS2ᵀ δ  [D]
        const T dth2 = -dotN(delta, tF2, F);
        for (int64_t f = 0; f < F; ++f) ddR[f] = -w.th2[j] * tF2[f];
        for (int64_t i = 0; i < D; ++i) dkR[i] = -w.th2[j] * tD2[i];
        for (int64_t i = 0; i < 2 * DF; ++i) G[2 * DF + i] *= et;
        // the clamps θ_l = min(θ, cap_l), cap_l = b / (3 max(‖u_l‖², eps))
        T dtheta = 0;
        auto clampBack = [&](int8_t flag, T dthl, T cap, T u2, const T* u, T* du, int64_t m) {
          const T toTheta = flag == kTheta ? dthl : flag == kTie ? dthl / T(2) : T(0);
          const T toCap = flag == kCap ? dthl : flag == kTie ? dthl / T(2) : T(0);
          dtheta += toTheta;
          if (toCap != T(0) && u2 >= T(kU2Eps)) {
            const T du2 = -cap / u2 * toCap;
            for (int64_t i = 0; i < m; ++i) du[i] += T(2) * du2 * u[i];
          }
        };
        clampBack(w.f1[j], dth1, w.cap1[j], w.u2s[j], s, dsR, F);
        clampBack(w.f2[j], dth2, w.cap2[j], w.u2k[j], kt, dkR, D);
        dth[t] = dtheta;
      }
      // The inner gradients backwards, at the chunk-start weights (G now holds the gradient of
      // the chunk-start state through the recurrence; these terms add to its W1, W2).
      for (int64_t j = 0; j < n; ++j) {
        if (!w.on[j]) continue;
        const int64_t t = t0 + j;
        const T *e = &w.e[j * D], *s = &w.s[j * F], *r = &w.r[j * F], *dl = &w.dl[j * F], *h = &w.h[j * F];
        const T *sg = &w.sg[j * F], *kt = P.k + t * D;
        const T *deR = &w.deR[j * D], *dsR = &w.dsR[j * F], *ddR = &w.ddR[j * F], *dkR = &w.dkR[j * D];
        // δ = r ⊙ silu'(h), r = W1ᵀ e
        for (int64_t f = 0; f < F; ++f) tF[f] = ddR[f] * dl[f];  // dr
        outerAdd(dW1, T(1), e, tF, D, F);
        mv(W1c, tF, tD, D, F);  // W1 dr: the error's gradient through r
        // e = 2 res, res = k + W1 s − v
        for (int64_t i = 0; i < D; ++i) tD[i] = T(2) * (tD[i] + deR[i]);  // dres
        for (int64_t i = 0; i < D; ++i) {
          dk[t * D + i] += tD[i] + dkR[i];
          dv[t * D + i] -= tD[i];
        }
        outerAdd(dW1, T(1), tD, s, D, F);
        mtv(W1c, tD, tF2, D, F);  // W1ᵀ dres
        // s = silu(h): dh = ds silu'(h) + d(silu'(h)) silu''(h)
        for (int64_t f = 0; f < F; ++f) {
          const T ds = dsR[f] + tF2[f];
          const T g2 = sg[f] * (T(1) - sg[f]) * (T(2) + h[f] * (T(1) - T(2) * sg[f]));
          tF3[f] = ds * dl[f] + ddR[f] * r[f] * g2;
        }
        outerAdd(dW2, T(1), tF3, kt, F, D);
        mtv(W2c, tF3, tD2, F, D);
        for (int64_t i = 0; i < D; ++i) dk[t * D + i] += tD2[i];
      }
    }
    // The reads y = q + W1 silu(W2 q) at the chunk-start weights.
    T* rW1 = d.stop_grad ? dR0 : dW1;
    T* rW2 = d.stop_grad ? dR0 + DF : dW2;
    for (int64_t t = t0; t < t0 + n; ++t) {
      if (P.valid[t] == T(0)) continue;
      const T *qt = P.q + t * D, *dyt = dy + t * D;
      mv(W2c, qt, tF, F, D);  // z
      for (int64_t f = 0; f < F; ++f) {
        const T sgz = sigmoidOf(tF[f]);
        tF2[f] = tF[f] * sgz;                          // silu(z)
        tF3[f] = sgz * (T(1) + tF[f] * (T(1) - sgz));  // silu'(z)
      }
      outerAdd(rW1, T(1), dyt, tF2, D, F);
      mtv(W1c, dyt, tF, D, F);                          // W1ᵀ dy
      for (int64_t f = 0; f < F; ++f) tF[f] *= tF3[f];  // dz
      outerAdd(rW2, T(1), tF, qt, F, D);
      mtv(W2c, tF, tD, F, D);
      for (int64_t i = 0; i < D; ++i) dq[t * D + i] += dyt[i] + tD[i];
    }
  }
  // The start state: the recurrence's gradient (or, with stop-grad writes, the reads'), plus the
  // radius's gradient r = state_bound ‖W_0‖.
  T *oW1 = g.dW1 + p * DF, *oW2 = g.dW2 + p * DF;
  const T* src = d.stop_grad ? dR0 : G;
  std::memcpy(oW1, src, sizeof(T) * DF);
  std::memcpy(oW2, src + DF, sizeof(T) * DF);
  if (!d.stop_grad && d.state_bound > 0) {
    if (n1 > 0)
      for (int64_t i = 0; i < DF; ++i) oW1[i] += T(d.state_bound * dr1 / n1 * double(P.W1[i]));
    if (n2 > 0)
      for (int64_t i = 0; i < DF; ++i) oW2[i] += T(d.state_bound * dr2 / n2 * double(P.W2[i]));
  }
  if (g.dS1) {
    if (d.stop_grad)
      std::fill(g.dS1 + p * DF, g.dS1 + (p + 1) * DF, T(0));
    else
      std::memcpy(g.dS1 + p * DF, dS1, sizeof(T) * DF);
  }
  if (g.dS2) {
    if (d.stop_grad)
      std::fill(g.dS2 + p * DF, g.dS2 + (p + 1) * DF, T(0));
    else
      std::memcpy(g.dS2 + p * DF, dS2, sizeof(T) * DF);
  }
}

}  // namespace

template <typename T>
void lmm_forward(const LmmDims& d, const LmmArgs<T>& in, const LmmOut<T>& out, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) forwardPair(d, in, out, p);
}

template <typename T>
void lmm_backward(const LmmDims& d, const LmmArgs<T>& in, const T* ck, const T* dy, const LmmGrads<T>& g, int64_t p0,
                  int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) backwardPair(d, in, ck, dy, g, p);
}

template void lmm_forward<float>(const LmmDims&, const LmmArgs<float>&, const LmmOut<float>&, int64_t, int64_t);
template void lmm_forward<double>(const LmmDims&, const LmmArgs<double>&, const LmmOut<double>&, int64_t, int64_t);
template void lmm_backward<float>(const LmmDims&, const LmmArgs<float>&, const float*, const float*,
                                  const LmmGrads<float>&, int64_t, int64_t);
template void lmm_backward<double>(const LmmDims&, const LmmArgs<double>&, const double*, const double*,
                                   const LmmGrads<double>&, int64_t, int64_t);

HL_KERNELS_ISA_END
