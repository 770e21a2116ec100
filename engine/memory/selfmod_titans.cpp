// Self-modifying Titans: reference and fast paths. Equations and conventions: docs/MEMORY.md.
#include "engine/memory/selfmod_titans.h"

#include "engine/memory/fused.h"
#include "engine/memory/state_bound.h"

#include <cmath>
#include <optional>
#include <tuple>
#include <utility>
#include <stdexcept>
#include <vector>

namespace hl::memory {

namespace {

using torch::Tensor;
namespace I = torch::indexing;
namespace Fn = torch::nn::functional;

constexpr int64_t M = kSmtMemories;

struct Prep {
  int64_t B = 0, H = 0, L = 0, D = 0, F = 0;
  int64_t X = 1;  // memory inputs: 1 (shared by k, v, η, α) or 4 (one each)
  Tensor x, q;    // [B, X, H, L, D], [B, H, L, D], padded positions zeroed
  Tensor valid;   // [B, L] bool
  Tensor W1, W2;  // [B, 5, H, D, F], [B, 5, H, F, D] initial state per sequence
};

Prep prepare(const SmtConfig& cfg, const SmtParams& p, const Tensor& x, const Tensor& q, const Tensor& mask) {
  TORCH_CHECK(x.dim() == 4 || (x.dim() == 5 && x.size(1) == kSmtOut), "smt: x must be [B, H, L, D] or [B, 4, H, L, D]");
  const Tensor x5 = x.dim() == 4 ? x.unsqueeze(1) : x;
  TORCH_CHECK(q.dim() == 4 && q.sizes() == x5.select(1, 0).sizes(), "smt: q and x shapes differ");
  TORCH_CHECK(cfg.chunk_memory >= 1 && cfg.chunk_other >= 1, "smt: chunks must be >= 1");
  TORCH_CHECK(cfg.eta_max == 0 || cfg.eta_max > cfg.eta_scale, "smt: eta_max must be 0 or above eta_scale");
  TORCH_CHECK(cfg.state_bound == 0 || cfg.state_bound >= 1, "smt: state_bound must be 0 or at least 1");
  Prep r;
  r.B = q.size(0);
  r.X = x5.size(1);
  r.H = q.size(1);
  r.L = q.size(2);
  r.D = q.size(3);
  r.F = cfg.hiddenWidth();
  TORCH_CHECK(r.L >= 1, "smt: empty sequence");
  TORCH_CHECK(r.H == cfg.heads && r.D == cfg.head_dim, "smt: x shape does not match config");
  TORCH_CHECK(p.W1.sizes() == torch::IntArrayRef({M, r.H, r.D, r.F}), "smt: W1 must be [5, H, D, F]");
  TORCH_CHECK(p.W2.sizes() == torch::IntArrayRef({M, r.H, r.F, r.D}), "smt: W2 must be [5, H, F, D]");
  r.valid = mask.defined() ? mask.to(torch::kBool).to(x.device())
                           : torch::ones({r.B, r.L}, torch::TensorOptions().dtype(torch::kBool).device(x.device()));
  TORCH_CHECK(r.valid.sizes() == torch::IntArrayRef({r.B, r.L}), "smt: mask must be [B, L]");
  auto pad = r.valid.logical_not().view({r.B, 1, r.L, 1});
  r.x = x5.masked_fill(pad.unsqueeze(1), 0.0);
  r.q = q.masked_fill(pad, 0.0);
  r.W1 = p.W1.to(x.scalar_type()).unsqueeze(0).expand({r.B, M, r.H, r.D, r.F});
  r.W2 = p.W2.to(x.scalar_type()).unsqueeze(0).expand({r.B, M, r.H, r.F, r.D});
  return r;
}

// M(X) = X + W1 σ(W2 X) for row vectors X [..., N, D] against W1 [..., D, F], W2 [..., F, D].
Tensor mlp(const Tensor& W1, const Tensor& W2, const Tensor& X) {
  return X + torch::silu(X.matmul(W2.transpose(-1, -2))).matmul(W1.transpose(-1, -2));
}

// k, v, η, α from the outputs of the k, v, η, α memories outs [B, 4, H, N, D].
struct Reads {
  Tensor k, v, eta, alpha;  // [B, H, N, D] x2, [B, H, N] x2
};
Reads readouts(const SmtConfig& cfg, const SmtParams& p, const Tensor& outs) {
  Reads r;
  r.k = Fn::normalize(outs.select(1, kSmtKey), Fn::NormalizeFuncOptions().dim(-1).eps(1e-6));
  // v is L2-normalised too (our choice, docs/MEMORY.md): with an unbounded v the self-generated
  // targets M(v) feed back into the value memory's own growth and the state diverges.
  r.v = Fn::normalize(outs.select(1, kSmtValue), Fn::NormalizeFuncOptions().dim(-1).eps(1e-6));
  const auto H = outs.size(2);
  auto dot = [&](const Tensor& o, const Tensor& w, const Tensor& b) {
    return (o * w.to(o.scalar_type()).view({1, H, 1, -1})).sum(-1) + b.to(o.scalar_type()).view({1, H, 1});
  };
  const Tensor ze = dot(outs.select(1, kSmtEta), p.w_eta, p.b_eta);
  r.eta = cfg.eta_max > 0 ? cfg.eta_max * torch::sigmoid(ze) : cfg.eta_scale * Fn::softplus(ze);
  r.alpha = torch::sigmoid(dot(outs.select(1, kSmtAlpha), p.w_alpha, p.b_alpha));
  return r;
}

// η for one write of a map: min(η, bound / (3·c)) with c the write's curvature scale: ‖u‖² for
// the last layer W1 (DECISIONS.md's 3·η·‖u‖² ≤ 1.8), ‖u‖²·max(1, (1 + 2g²)/3) for W2 (never looser
// than DECISIONS' rule; tighter when the layer above has gain g² > 1; docs/MEMORY.md).
// `clampedOut` accumulates the count of clamped real writes.
Tensor clampEta(const SmtConfig& cfg, const Tensor& eta, const Tensor& curv, const Tensor& valid, Tensor& clampedOut) {
  if (!cfg.clamp) return eta;
  auto cap = cfg.clamp_bound / (3.0 * curv.clamp_min(1e-12));
  {
    torch::NoGradGuard ng;
    auto c = (eta.detach() > cap.detach()).logical_and(valid).sum();
    clampedOut = clampedOut.defined() ? clampedOut + c : c;
  }
  return torch::minimum(eta, cap);
}

// Refreshes the read state of every memory whose chunk starts at token t.
Tensor refresh(const SmtConfig& cfg, int64_t t, const Tensor& running, const Tensor& read) {
  const bool out = t % cfg.chunk_memory == 0, other = t % cfg.chunk_other == 0;
  if (out && other) return running;
  if (!out && !other) return read;
  std::vector<bool> sel(M, other);
  sel[kSmtOut] = out;
  auto m = torch::zeros({1, M, 1, 1, 1}, torch::TensorOptions().dtype(torch::kBool).device(running.device()));
  for (int64_t i = 0; i < M; ++i)
    if (sel[i]) m.index_put_({0, i}, true);
  return torch::where(m, running, read);
}

// Whether a segment ends after token t: a chunk boundary of either size, or the sequence end. The
// state bound acts there in both paths.
bool segmentEndsAfter(const SmtConfig& cfg, int64_t t, int64_t L) {
  const int64_t e = t + 1;
  return e == L || e % cfg.chunk_memory == 0 || e % cfg.chunk_other == 0;
}

// The end (exclusive) of the segment that starts at token s.
int64_t segmentEnd(const SmtConfig& cfg, int64_t s, int64_t L) {
  int64_t e = s + 1;
  while (!segmentEndsAfter(cfg, e - 1, L)) ++e;
  return e;
}

// SmtConfig as the fused kernels' constants.
hl::kernels::SmtSegmentCoeffs kernelCoeffs(const SmtConfig& cfg) {
  hl::kernels::SmtSegmentCoeffs c;
  c.beta = cfg.momentum;
  c.damp = cfg.dampen ? 1.0 - cfg.momentum : 1.0;
  c.dgd2 = cfg.dgd != DgdLayers::None;
  c.dgd1 = cfg.dgd == DgdLayers::PerLayer;
  c.l2 = cfg.objective == InnerObjective::L2;
  c.clamp = cfg.clamp;
  c.clamp_bound = cfg.clamp_bound;
  c.eta_scale = cfg.eta_scale;
  c.eta_max = cfg.eta_max;
  return c;
}

Tensor straightThrough(const Tensor& start, const Tensor& now) {
  return start + (now - start.detach());
}

// Which (sequence, chunk) pairs a path actually wrote, marked by the write loops themselves (so the
// cadence audit's "actual" is counted from the executed writes, not re-derived from the mask).
struct WriteLog {
  Tensor mem, other;  // [B, ⌈L / C⌉] bool, per chunk size
  WriteLog(const SmtConfig& cfg, const Prep& p) {
    auto o = torch::TensorOptions().dtype(torch::kBool).device(p.valid.device());
    mem = torch::zeros({p.B, (p.L + cfg.chunk_memory - 1) / cfg.chunk_memory}, o);
    other = torch::zeros({p.B, (p.L + cfg.chunk_other - 1) / cfg.chunk_other}, o);
  }
  // Tokens [s, e) of one chunk of each size were written where `wrote` [B] is true.
  void mark(const SmtConfig& cfg, int64_t s, const Tensor& wrote) {
    torch::NoGradGuard ng;
    mem.select(1, s / cfg.chunk_memory).logical_or_(wrote);
    other.select(1, s / cfg.chunk_other).logical_or_(wrote);
  }
};

void levelStats(const SmtConfig& cfg, const Prep& p, const Tensor& lossTok, const Tensor& clamped, const WriteLog& log,
                SmtResult& r);

// The output memory's read of the queries in `tokens` at its read state; when the writes are cut
// (stop_grad_writes with an outer graph) the state is re-attached straight through to the initial one.
Tensor readOutput(const Prep& p, const Tensor& R1, const Tensor& R2, bool straight, const I::Slice& tokens) {
  Tensor O1 = R1.select(1, kSmtOut), O2 = R2.select(1, kSmtOut);
  if (straight) {
    O1 = straightThrough(p.W1.select(1, kSmtOut), O1);
    O2 = straightThrough(p.W2.select(1, kSmtOut), O2);
  }
  return mlp(O1, O2, p.q.index({I::Slice(), I::Slice(), tokens}));
}

// The common end of both paths: outputs (0 at pads), per-token losses, the final state (under
// stop_grad_writes re-attached straight through to the initial state) and the level statistics.
struct FinalState {
  Tensor W1, W2, S1, S2;
};
SmtResult finish(const SmtConfig& cfg, const Prep& p, const std::vector<Tensor>& ys, const std::vector<Tensor>& losses,
                 FinalState st, const Tensor& clamped, const WriteLog& log, bool outerGrad, bool stats = true) {
  SmtResult r;
  const auto dt = p.x.scalar_type();
  r.y = torch::cat(ys, 2) * p.valid.view({p.B, 1, p.L, 1}).to(dt);
  r.loss_tokens = torch::cat(losses, -1) * p.valid.view({p.B, 1, 1, p.L}).to(dt);
  if (cfg.stop_grad_writes && outerGrad) {
    st.W1 = straightThrough(p.W1, st.W1);
    st.W2 = straightThrough(p.W2, st.W2);
  }
  r.W1 = st.W1;
  r.W2 = st.W2;
  r.S1 = st.S1;
  r.S2 = st.S2;
  if (stats)
    levelStats(cfg, p, r.loss_tokens, clamped, log, r);
  else
    r.clamped = clamped.defined() ? clamped.item<int64_t>() : 0;
  return r;
}

// Level statistics from per-token losses and the initial/final states.
void levelStats(const SmtConfig& cfg, const Prep& p, const Tensor& lossTok, const Tensor& clamped, const WriteLog& log,
                SmtResult& r) {
  torch::NoGradGuard ng;
  const Tensor lt = lossTok.detach().to(torch::kFloat64);  // [B, 5, H, L]
  const Tensor v = p.valid.to(torch::kFloat64);            // [B, L]
  auto chunkStats = [&](int64_t C, int64_t m0, int64_t m1, double& loss) {
    const int64_t n = (p.L + C - 1) / C, padL = n * C - p.L;
    auto perTok = lt.index({I::Slice(), I::Slice(m0, m1)}).mean({1, 2});  // [B, L]
    auto tok = Fn::pad(perTok * v, Fn::PadFuncOptions({0, padL})).view({p.B, n, C}).sum(-1);
    auto cnt = Fn::pad(v, Fn::PadFuncOptions({0, padL})).view({p.B, n, C}).sum(-1);
    auto has = cnt.gt(0);
    loss = has.any().item<bool>() ? (tok / cnt.clamp_min(1)).masked_select(has).mean().item<double>() : 0.0;
  };
  chunkStats(cfg.chunk_memory, kSmtOut, kSmtOut + 1, r.loss_memory);
  chunkStats(cfg.chunk_other, 0, kSmtOut, r.loss_other);
  r.writes_memory = log.mem.sum().item<int64_t>();
  r.writes_other = log.other.sum().item<int64_t>();
  auto drift = [&](int64_t m0, int64_t m1) {
    auto sl = I::Slice(m0, m1);
    auto W10 = p.W1.index({I::Slice(), sl}).reshape({p.B, -1}), W20 = p.W2.index({I::Slice(), sl}).reshape({p.B, -1});
    auto d = torch::cat({r.W1.index({I::Slice(), sl}).reshape({p.B, -1}) - W10,
                         r.W2.index({I::Slice(), sl}).reshape({p.B, -1}) - W20},
                        1)
                 .norm(2, 1);
    auto z = torch::cat({W10, W20}, 1).norm(2, 1).clamp_min(1e-12);
    auto seq = p.valid.any(1);
    const double ns = seq.sum().item<double>();
    return ns > 0 ? (d / z).to(torch::kFloat64).masked_select(seq).sum().item<double>() / ns : 0.0;
  };
  r.drift_memory = drift(kSmtOut, kSmtOut + 1);
  r.drift_other = drift(0, kSmtOut);
  r.clamped = clamped.defined() ? clamped.item<int64_t>() : 0;
}

}  // namespace

// The writes of one segment (n tokens between chunk boundaries) to one linear map W [N, O, I]
// (N = batch · memories · heads, contiguous) with momentum S, in closed form. Per token t
// (m_t = 1 for a real token, 0 for a pad; d = 1, or 1 − β with momentum dampening):
//   S_t = β_t S_{t−1} − d η_t g_t u_tᵀ;   W_t = W_{t−1}(α_t I − η_t u_t u_tᵀ) + m_t S_t
// with β_t, α_t = 1 and η_t = 0 at pads (so a pad changes nothing) and the u uᵀ term only with the
// DGD factor. Unrolled: W_t = a_t W_0 + b_t S_0 + Σ_r h_{t,r} u_rᵀ and S_t = B_t S_0 + Σ_r
// s_{t,r} g_r u_rᵀ: only O-vectors h and scalars are carried from token to token, and the
// full-size maps are formed once per segment. Inputs: U [N, I, n] (u_t as columns), G [N, n, O]
// (g_t as rows), eta, alpha, valid [N, n] (valid 0/1).
std::pair<Tensor, Tensor> segment_write_torch(const Tensor& W0, const Tensor& S0, const Tensor& U, const Tensor& G,
                                              const Tensor& eta, const Tensor& alpha, const Tensor& valid, double beta,
                                              double damp, bool dgdFactor) {
  const int64_t n = valid.size(1);
  const auto gs = G.unbind(1);                                    // g_t [N, O]
  const auto ms = valid.unbind(1), es = (eta * valid).unbind(1);  // [N]
  const auto as = (alpha * valid + (1.0 - valid)).unbind(1);
  const auto bs = (beta * valid + (1.0 - valid)).unbind(1);
  std::vector<Tensor> w0u, s0u, gram;
  if (dgdFactor) {
    w0u = torch::bmm(W0, U).unbind(2);  // W_0 u_t [N, O]
    s0u = torch::bmm(S0, U).unbind(2);
    gram = torch::bmm(U.transpose(1, 2), U).unbind(2);  // column t: u_rᵀ u_t [N, n]
  }
  Tensor a, b, Bc;            // [N]
  std::vector<Tensor> h, sc;  // h_{t,r} [N, O]; s_{t,r} [N]
  for (int64_t t = 0; t < n; ++t) {
    const Tensor &m = ms[t], &et = es[t], &at = as[t], &bt = bs[t];
    Tensor Wu;
    if (dgdFactor) {
      Wu = t == 0 ? w0u[0] : a.unsqueeze(1) * w0u[t] + b.unsqueeze(1) * s0u[t];
      for (int64_t r = 0; r < t; ++r) Wu = Wu + h[r] * gram[t].select(1, r).unsqueeze(1);
    }
    Bc = t == 0 ? bt : bt * Bc;
    for (auto& c : sc) c = bt * c;
    sc.push_back(damp == 1.0 ? -et : -damp * et);
    for (int64_t r = 0; r < t; ++r) h[r] = at.unsqueeze(1) * h[r] + (m * sc[r]).unsqueeze(1) * gs[r];
    Tensor ht = (m * sc[t]).unsqueeze(1) * gs[t];
    if (dgdFactor) ht = ht - et.unsqueeze(1) * Wu;
    h.push_back(ht);
    a = t == 0 ? at : at * a;
    b = t == 0 ? m * Bc : at * b + m * Bc;
  }
  const Tensor Ut = U.transpose(1, 2);  // [N, n, I]
  auto e2 = [](const Tensor& s) { return s.view({-1, 1, 1}); };
  const Tensor W = torch::baddbmm(e2(a) * W0 + e2(b) * S0, torch::stack(h, 2), Ut);
  std::vector<Tensor> sg;
  for (int64_t r = 0; r < n; ++r) sg.push_back(sc[r].unsqueeze(1) * gs[r]);
  const Tensor S = torch::baddbmm(e2(Bc) * S0, torch::stack(sg, 2), Ut);
  return {W, S};
}

// The ablation with the writes off (SmtConfig::writes false), for both paths: the output memory
// reads every query at its initial state; no state moves, nothing is written or clamped.
SmtResult staticRead(const SmtConfig& cfg, const Prep& p) {
  const bool outerGrad = torch::GradMode::is_enabled();
  const Tensor W1 = outerGrad ? p.W1 : p.W1.detach(), W2 = outerGrad ? p.W2 : p.W2.detach();
  const Tensor q = outerGrad ? p.q : p.q.detach();
  const Tensor y = mlp(W1.select(1, kSmtOut), W2.select(1, kSmtOut), q);
  const Tensor losses = torch::zeros({p.B, M, p.H, p.L}, p.x.options().requires_grad(false));
  return finish(cfg, p, {y}, {losses}, {W1, W2, torch::zeros_like(W1), torch::zeros_like(W2)}, Tensor(),
                WriteLog(cfg, p), outerGrad);
}

// ---------------------------------------------------------------------------------------------
// Reference: token by token. At token t every memory reads with its state at the start of its
// chunk; the inner gradient G = ∇_W L(W; k_t, v̂_t) comes from autograd (v̂ held constant), and
// the write is the literal matrix form W ← W (α I − η u uᵀ) + S.
SmtResult smt_reference(const SmtConfig& cfg, const SmtParams& par, const Tensor& x0, const Tensor& q0,
                        const Tensor& mask) {
  Prep p = prepare(cfg, par, x0, q0, mask);
  if (!cfg.writes) return staticRead(cfg, p);
  const bool outerGrad = torch::GradMode::is_enabled();
  const bool cut = cfg.stop_grad_writes || !outerGrad;
  auto wd = [&](const Tensor& t) { return cut ? t.detach() : t; };
  const Tensor x = wd(p.x);
  Tensor W1 = wd(p.W1), W2 = wd(p.W2);
  const Tensor rad1 = boundRadius(cfg.state_bound, W1), rad2 = boundRadius(cfg.state_bound, W2);  // the state bound
  Tensor S1 = torch::zeros_like(W1), S2 = torch::zeros_like(W2);
  Tensor R1 = W1, R2 = W2;  // read states
  const auto eyeD = torch::eye(p.D, x.options()), eyeF = torch::eye(p.F, x.options());
  std::vector<Tensor> ys, losses;
  Tensor clamped;
  WriteLog log(cfg, p);
  for (int64_t t = 0; t < p.L; ++t) {
    R1 = refresh(cfg, t, W1, R1);
    R2 = refresh(cfg, t, W2, R2);
    ys.push_back(readOutput(p, R1, R2, cut && outerGrad, I::Slice(t, t + 1)));

    const Tensor xt = x.index({I::Slice(), I::Slice(), I::Slice(), I::Slice(t, t + 1)});  // [B,X,H,1,D]
    const Tensor sl4 = torch::arange(0, kSmtOut, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    Reads rd = readouts(cfg, par, mlp(R1.index_select(1, sl4), R2.index_select(1, sl4), xt));
    Reads r{wd(rd.k), wd(rd.v), wd(rd.eta), wd(rd.alpha)};
    const Tensor k1 = r.k.unsqueeze(1);                 // [B,1,H,1,D]
    const Tensor vhat = mlp(R1, R2, r.v.unsqueeze(1));  // [B,5,H,1,D]
    Tensor G1, G2, lossTok;
    {
      torch::AutoGradMode on(true);
      // A fresh node per state, so the gradient is taken along the M(k) path only (v̂ is held
      // constant); a detached leaf when no outer graph needs the write path.
      auto node = [&](const Tensor& R) {
        return cut || !R.requires_grad() ? R.detach().requires_grad_(true) : R.clone();
      };
      Tensor A1 = node(R1), A2 = node(R2);
      Tensor pred = mlp(A1, A2, k1);
      lossTok = (pred - vhat).pow(2).sum(-1);  // [B,5,H,1]
      Tensor obj = cfg.objective == InnerObjective::L2 ? lossTok.sum() : -(pred * vhat).sum();
      auto g = torch::autograd::grad({obj}, {A1, A2}, {}, /*retain_graph=*/true, /*create_graph=*/!cut);
      G1 = cut ? g[0].detach() : g[0];
      G2 = cut ? g[1].detach() : g[1];
      if (cut) lossTok = lossTok.detach();
    }
    losses.push_back(lossTok.detach());                                     // [B,5,H,1]
    const Tensor valid = p.valid.index({I::Slice(), t}).view({p.B, 1, 1});  // [B,1,1]
    // Map inputs: W2 reads k; W1 reads σ(W2 k) at the read state.
    const Tensor u2 = k1.squeeze(-2);                                                             // [B,1,H,D]
    const Tensor u1 = torch::silu(k1.matmul(R2.transpose(-1, -2))).squeeze(-2);                   // [B,5,H,F]
    const Tensor eta = r.eta.squeeze(-1).unsqueeze(1), alpha = r.alpha.squeeze(-1).unsqueeze(1);  // [B,1,H]
    // W2's curvature carries the gain of the layer above it: g² = ‖W1 diag σ'(h)‖_F².
    const Tensor hk = k1.matmul(R2.transpose(-1, -2)).squeeze(-2);  // [B,5,H,F]
    const Tensor sgk = torch::sigmoid(hk);
    const Tensor gain2 = (R1 * (sgk * (1.0 + hk * (1.0 - sgk))).unsqueeze(-2)).pow(2).sum({-1, -2});  // [B,5,H]
    const Tensor eta2 = clampEta(cfg, eta.expand({p.B, M, p.H}),
                                 u2.pow(2).sum(-1) * torch::clamp_min((1.0 + 2.0 * gain2) / 3.0, 1.0), valid, clamped);
    const Tensor eta1 = clampEta(cfg, eta.expand({p.B, M, p.H}), u1.pow(2).sum(-1), valid, clamped);
    auto e4 = [](const Tensor& s) { return s.unsqueeze(-1).unsqueeze(-1); };
    Tensor A2 = e4(alpha) * eyeD;
    if (cfg.dgd != DgdLayers::None) A2 = A2 - e4(eta2) * (u2.unsqueeze(-1) * u2.unsqueeze(-2));
    Tensor A1 = e4(alpha) * eyeF;
    if (cfg.dgd == DgdLayers::PerLayer) A1 = A1 - e4(eta1) * (u1.unsqueeze(-1) * u1.unsqueeze(-2));
    const double damp = cfg.dampen ? 1.0 - cfg.momentum : 1.0;
    const Tensor S2n = cfg.momentum * S2 - damp * e4(eta2) * G2;
    const Tensor S1n = cfg.momentum * S1 - damp * e4(eta1) * G1;
    const Tensor W2n = W2.matmul(A2) + S2n, W1n = W1.matmul(A1) + S1n;
    const Tensor v5 = valid.view({p.B, 1, 1, 1, 1});
    log.mark(cfg, t, valid.view({p.B}));
    S2 = torch::where(v5, S2n, S2);
    S1 = torch::where(v5, S1n, S1);
    W2 = torch::where(v5, W2n, W2);
    W1 = torch::where(v5, W1n, W1);
    if (segmentEndsAfter(cfg, t, p.L)) {
      W1 = boundState(W1, rad1);
      W2 = boundState(W2, rad2);
    }
  }
  return finish(cfg, p, ys, losses, {W1, W2, S1, S2}, clamped, log, outerGrad);
}

// ---------------------------------------------------------------------------------------------
// Fast path: between two chunk boundaries (of either chunk size) every read state is fixed, so
// reads, targets and closed-form inner gradients are batched over those tokens; the writes are
// rank-1 updates applied token by token:
//   L2:  e = 2(M(k) − v̂);  dot: e = −v̂;   h = W2 k, a = σ(h)
//   G1 = e aᵀ;  G2 = ((W1ᵀ e) ⊙ σ'(h)) kᵀ
//   W (α I − η u uᵀ) = α W − η (W u) uᵀ
SmtResult smt_chunked(const SmtConfig& cfg, const SmtParams& par, const Tensor& x0, const Tensor& q0,
                      const Tensor& mask, SmtTrace* trace) {
  Prep p = prepare(cfg, par, x0, q0, mask);
  if (!cfg.writes) return staticRead(cfg, p);
  const bool outerGrad = torch::GradMode::is_enabled();
  const bool cut = cfg.stop_grad_writes || !outerGrad;
  const Tensor x = cut ? p.x.detach() : p.x;
  Tensor W1 = cut ? p.W1.detach() : p.W1, W2 = cut ? p.W2.detach() : p.W2;
  std::vector<Tensor> ys, losses;
  Tensor clamped;
  WriteLog log(cfg, p);
  const bool fused = cfg.fused && segment_write_fused_applies(W1);
  // The whole segment in one kernel where it applies (CPU only: on CUDA the per-op path below with
  // the CUDA segment write); the diagnostics trace comes from the whole-sequence kernel without a
  // gradient, from the per-op path otherwise.
  const bool wholeSegment = fused && smt_fused_applies(W1) && (trace == nullptr || !outerGrad);
  const hl::kernels::SmtSegmentCoeffs segCoeffs = kernelCoeffs(cfg);
  // The whole sequence in one kernel (docs/KERNELS.md "Whole sequence"): with differentiable
  // writes or without any gradient. Stop-gradient writes under an outer gradient (their output read
  // is re-attached straight through) take the per-segment kernel below.
  if (wholeSegment && !(cut && outerGrad)) {
    const bool stats = cfg.level_stats || outerGrad;
    if (stats)
      for (int64_t s = 0, e = 0; s < p.L; s = e) {
        e = segmentEnd(cfg, s, p.L);
        log.mark(cfg, s, p.valid.index({I::Slice(), I::Slice(s, e)}).any(1));
      }
    Tensor tr;
    auto o = smt_sequence_fused(segCoeffs, cfg.chunk_memory, cfg.chunk_other, cfg.state_bound, W1, W2, x, p.q,
                                p.valid.to(x.scalar_type()), par.w_eta, par.b_eta, par.w_alpha, par.b_alpha, stats,
                                trace ? &tr : nullptr);
    if (trace) {  // one entry for the whole sequence (SmtTrace allows any split into segments)
      trace->cos_kv.push_back(tr.select(-1, 0));
      trace->eta.push_back(tr.select(-1, 1));
      trace->alpha.push_back(tr.select(-1, 2));
      trace->erase_over_assoc.push_back(tr.select(-1, 3));
      trace->valid.push_back(p.valid);
    }
    ys.push_back(o.y);
    losses.push_back(o.loss);
    if (cfg.clamp) clamped = o.clamped;
    SmtResult r = finish(cfg, p, ys, losses, {o.W1, o.W2, o.S1, o.S2}, clamped, log, outerGrad, stats);
    r.fused = fused;
    return r;
  }
  const Tensor rad1 = boundRadius(cfg.state_bound, W1), rad2 = boundRadius(cfg.state_bound, W2);  // the state bound
  Tensor S1 = torch::zeros_like(W1), S2 = torch::zeros_like(W2);
  Tensor R1 = W1, R2 = W2;
  int64_t s = 0;
  while (s < p.L) {
    const int64_t e = segmentEnd(cfg, s, p.L);
    const int64_t n = e - s;
    const auto seg = I::Slice(s, e);
    R1 = refresh(cfg, s, W1, R1);
    R2 = refresh(cfg, s, W2, R2);
    ys.push_back(readOutput(p, R1, R2, cut && outerGrad, seg));
    {
      std::optional<torch::NoGradGuard> ng;
      if (cut) ng.emplace();
      const Tensor xs = x.index({I::Slice(), I::Slice(), I::Slice(), seg});  // [B,X,H,n,D]
      if (wholeSegment) {  // everything below in one kernel (docs/KERNELS.md "Whole segment")
        const Tensor valid = p.valid.index({I::Slice(), seg});
        log.mark(cfg, s, valid.any(1));
        auto o = smt_segment_fused(segCoeffs, R1, R2, W1, W2, S1, S2, xs, valid.to(x.scalar_type()), par.w_eta,
                                   par.b_eta, par.w_alpha, par.b_alpha);
        losses.push_back(o.loss);
        if (cfg.clamp) clamped = clamped.defined() ? clamped + o.clamped : o.clamped;
        W1 = boundState(o.W1, rad1);
        W2 = boundState(o.W2, rad2);
        S1 = o.S1;
        S2 = o.S2;
        s = e;
        continue;
      }
      // A shared input: all five memories read it (the output memory's read is unused), cheaper than
      // a copy of four; separate inputs: the k, v, η, α memories read one each.
      Reads r =
          readouts(cfg, par, p.X == 1 ? mlp(R1, R2, xs) : mlp(R1.narrow(1, 0, kSmtOut), R2.narrow(1, 0, kSmtOut), xs));
      const Tensor k1 = r.k.unsqueeze(1);                 // [B,1,H,n,D]
      const Tensor vhat = mlp(R1, R2, r.v.unsqueeze(1));  // [B,5,H,n,D]
      const Tensor h = k1.matmul(R2.transpose(-1, -2));   // [B,5,H,n,F]
      const Tensor a = torch::silu(h);
      const Tensor pred = k1 + a.matmul(R1.transpose(-1, -2));
      const Tensor diff = pred - vhat;
      losses.push_back(diff.detach().pow(2).sum(-1));  // [B,5,H,n]
      const Tensor err = cfg.objective == InnerObjective::L2 ? 2.0 * diff : -vhat;
      const Tensor sg = torch::sigmoid(h);
      const Tensor dsilu = sg * (1.0 + h * (1.0 - sg));                     // σ'(h)
      const Tensor delta = err.matmul(R1) * dsilu;                          // [B,5,H,n,F]
      const Tensor valid = p.valid.index({I::Slice(), seg});                // [B,n]
      const Tensor eta = r.eta.unsqueeze(1), alpha = r.alpha.unsqueeze(1);  // [B,1,H,n]
      const Tensor v4 = valid.view({p.B, 1, 1, n});
      // W2's curvature carries the gain of the layer above it: g² = ‖W1 diag σ'(h)‖_F².
      const Tensor gain2 = dsilu.pow(2).matmul(R1.pow(2).sum(-2).unsqueeze(-1)).squeeze(-1);  // [B,5,H,n]
      const Tensor eta2 = clampEta(cfg, eta.expand({p.B, M, p.H, n}),
                                   k1.pow(2).sum(-1) * torch::clamp_min((1.0 + 2.0 * gain2) / 3.0, 1.0), v4, clamped);
      const Tensor eta1 = clampEta(cfg, eta.expand({p.B, M, p.H, n}), a.pow(2).sum(-1), v4, clamped);
      if (trace) {  // W1 a = pred − k (the residual MLP), e = err: the write's erase and association sizes
        torch::NoGradGuard tg;
        trace->cos_kv.push_back((r.k * r.v).sum(-1).detach());
        trace->eta.push_back(r.eta.detach());
        trace->alpha.push_back(r.alpha.detach());
        const Tensor wa = (pred - k1).select(1, kSmtOut).detach(), eo = err.select(1, kSmtOut).detach();
        trace->erase_over_assoc.push_back(wa.norm(2, -1) / eo.norm(2, -1).clamp_min(1e-12));
        trace->valid.push_back(valid.detach());
      }
      // Flatten (batch, memory, head) into one contiguous batch for the writes.
      const int64_t N = p.B * M * p.H;
      auto flat = [&](const Tensor& t) {  // [B, 5|1, H, ...] -> [N, ...]
        std::vector<int64_t> sz = {p.B, M, p.H};
        for (int64_t i = 3; i < t.dim(); ++i) sz.push_back(t.size(i));
        std::vector<int64_t> out = {N};
        out.insert(out.end(), sz.begin() + 3, sz.end());
        return t.expand(sz).reshape(out);
      };
      log.mark(cfg, s, valid.any(1));
      const Tensor vf = flat(valid.to(x.scalar_type()).view({p.B, 1, 1, n}));
      const Tensor af = flat(alpha);
      const double damp = cfg.dampen ? 1.0 - cfg.momentum : 1.0;
      Tensor W2f, S2f, W1f, S1f;
      if (fused) {  // the kernels take u_t as rows [N, n, I]
        std::tie(W2f, S2f) = segment_write_fused(flat(W2), flat(S2), flat(k1), flat(delta), flat(eta2), af, vf,
                                                 cfg.momentum, damp, cfg.dgd != DgdLayers::None);
        std::tie(W1f, S1f) = segment_write_fused(flat(W1), flat(S1), flat(a), flat(err), flat(eta1), af, vf,
                                                 cfg.momentum, damp, cfg.dgd == DgdLayers::PerLayer);
      } else {
        std::tie(W2f, S2f) = segment_write_torch(flat(W2), flat(S2), flat(k1.transpose(-1, -2)), flat(delta),
                                                 flat(eta2), af, vf, cfg.momentum, damp, cfg.dgd != DgdLayers::None);
        std::tie(W1f, S1f) = segment_write_torch(flat(W1), flat(S1), flat(a.transpose(-1, -2)), flat(err), flat(eta1),
                                                 af, vf, cfg.momentum, damp, cfg.dgd == DgdLayers::PerLayer);
      }
      W2 = W2f.view({p.B, M, p.H, p.F, p.D});
      S2 = S2f.view({p.B, M, p.H, p.F, p.D});
      W1 = W1f.view({p.B, M, p.H, p.D, p.F});
      S1 = S1f.view({p.B, M, p.H, p.D, p.F});
      W1 = boundState(W1, rad1);  // every segment ends at a chunk boundary or the sequence end
      W2 = boundState(W2, rad2);
    }
    s = e;
  }
  SmtResult r = finish(cfg, p, ys, losses, {W1, W2, S1, S2}, clamped, log, outerGrad);
  r.fused = fused;
  return r;
}

SmtParams smt_init_params(const SmtConfig& cfg, double retain, const torch::TensorOptions& opts, double w1_scale) {
  const int64_t H = cfg.heads, D = cfg.head_dim, F = cfg.hiddenWidth();
  SmtParams p;
  p.W1 = torch::randn({M, H, D, F}, opts) * (w1_scale / std::sqrt(double(F)));
  p.W2 = torch::randn({M, H, F, D}, opts) / std::sqrt(double(D));
  p.w_eta = torch::randn({H, D}, opts) * (0.1 / std::sqrt(double(D)));
  p.w_alpha = torch::randn({H, D}, opts) * (0.1 / std::sqrt(double(D)));
  const double e0 = cfg.eta_max > 0 ? std::min(cfg.eta_scale / cfg.eta_max, 1.0 - 1e-6) : 0.0;
  p.b_eta = torch::full({H}, cfg.eta_max > 0 ? std::log(e0 / (1.0 - e0)) : std::log(std::expm1(1.0)), opts);
  const double r = std::min(std::max(retain, 1e-6), 1.0 - 1e-6);
  p.b_alpha = torch::full({H}, std::log(r / (1.0 - r)), opts);
  return p;
}

}  // namespace hl::memory
