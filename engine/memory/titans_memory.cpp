// Titans LMM: reference and chunked paths. Equations and conventions: docs/MEMORY.md.
#include "engine/memory/titans_memory.h"

#include "engine/memory/state_bound.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "hl_kernels/lmm.h"

namespace hl::memory {

namespace {

using torch::Tensor;
namespace I = torch::indexing;

// Inputs after validation and sanitising: padded positions hold neutral values (k, v, q = 0,
// θ = 0, η = 1, α = 0) so that whatever a pad carried (even NaN) cannot reach any output.
struct Prep {
  int64_t B = 0, H = 0, L = 0, D = 0, F = 0, C = 1, nChunks = 0;
  Tensor q, k, v, theta, eta, alpha;  // [B,H,L,(D)]
  Tensor m;                           // [B,H,L] 0/1 in the input dtype
  Tensor maskBL;                      // [B,L] bool
  Tensor W1, W2, S1, S2;              // [B,H,...] initial state per sequence
};

Tensor expandState(const Tensor& t, int64_t B, const std::vector<int64_t>& perHead, const char* name) {
  std::vector<int64_t> full = {B};
  full.insert(full.end(), perHead.begin(), perHead.end());
  TORCH_CHECK(t.dim() == static_cast<int64_t>(perHead.size()) || t.dim() == static_cast<int64_t>(full.size()),
              "lmm: state ", name, " has wrong rank");
  if (t.dim() == static_cast<int64_t>(perHead.size())) {
    TORCH_CHECK(t.sizes().vec() == perHead, "lmm: state ", name, " has wrong shape");
    return t.unsqueeze(0).expand(full);
  }
  TORCH_CHECK(t.sizes().vec() == full, "lmm: state ", name, " has wrong shape");
  return t;
}

Prep prepare(const LmmConfig& cfg, const LmmState& init, const Tensor& q, const Tensor& k, const Tensor& v,
             const Tensor& theta, const Tensor& eta, const Tensor& alpha, const Tensor& mask) {
  Prep p;
  TORCH_CHECK(k.dim() == 4, "lmm: k must be [B, H, L, D]");
  p.B = k.size(0);
  p.H = k.size(1);
  p.L = k.size(2);
  p.D = k.size(3);
  p.F = cfg.hiddenWidth();
  p.C = cfg.chunk;
  TORCH_CHECK(p.C >= 1, "lmm: chunk must be >= 1");
  TORCH_CHECK(p.L >= 1, "lmm: empty sequence");
  TORCH_CHECK(p.H == cfg.heads && p.D == cfg.head_dim, "lmm: k shape does not match config");
  TORCH_CHECK(q.sizes() == k.sizes() && v.sizes() == k.sizes(), "lmm: q, k, v shapes differ");
  const std::vector<int64_t> g = {p.B, p.H, p.L};
  TORCH_CHECK(theta.sizes().vec() == g && eta.sizes().vec() == g && alpha.sizes().vec() == g,
              "lmm: theta, eta, alpha must be [B, H, L]");
  p.nChunks = (p.L + p.C - 1) / p.C;

  const auto opts = k.options();
  if (mask.defined()) {
    TORCH_CHECK(mask.dim() == 2 && mask.size(0) == p.B && mask.size(1) == p.L, "lmm: mask must be [B, L]");
    p.maskBL = mask.to(torch::kBool).to(k.device());
  } else {
    p.maskBL = torch::ones({p.B, p.L}, torch::dtype(torch::kBool).device(k.device()));
  }
  const Tensor mb = p.maskBL.unsqueeze(1).expand({p.B, p.H, p.L});  // [B,H,L] bool
  p.m = mb.to(opts.dtype());
  const Tensor mb4 = mb.unsqueeze(-1);
  const Tensor zero = torch::zeros({}, opts), one = torch::ones({}, opts);
  p.q = torch::where(mb4, q, zero);
  p.k = torch::where(mb4, k, zero);
  p.v = torch::where(mb4, v, zero);
  p.theta = torch::where(mb, theta, zero);
  p.eta = torch::where(mb, eta, one);
  p.alpha = torch::where(mb, alpha, zero);

  TORCH_CHECK(init.W1.defined() && init.W2.defined(), "lmm: initial W1, W2 required");
  p.W1 = expandState(init.W1, p.B, {p.H, p.D, p.F}, "W1");
  p.W2 = expandState(init.W2, p.B, {p.H, p.F, p.D}, "W2");
  p.S1 =
      init.S1.defined() ? expandState(init.S1, p.B, {p.H, p.D, p.F}, "S1") : torch::zeros({p.B, p.H, p.D, p.F}, opts);
  p.S2 =
      init.S2.defined() ? expandState(init.S2, p.B, {p.H, p.F, p.D}, "S2") : torch::zeros({p.B, p.H, p.F, p.D}, opts);
  return p;
}

// Read-out M(x) = x + W1 σ(W2 x) for x [B,H,n,D] with W1 [B,H,D,F], W2 [B,H,F,D].
Tensor mlp(const Tensor& W1, const Tensor& W2, const Tensor& x) {
  const Tensor h = torch::einsum("bhnd,bhfd->bhnf", {x, W2});
  return x + torch::einsum("bhnf,bhdf->bhnd", {torch::silu(h), W1});
}

// θ per layer after the clamp 3·θ·‖u‖² ≤ bound, u the layer's input; counts clamped entries.
// The count accumulates on the device (one host sync at the end, not one per chunk).
Tensor clampTheta(const LmmConfig& cfg, const Tensor& theta, const Tensor& u, const Tensor& m, Tensor& clamped) {
  if (!cfg.clamp) return theta;
  const Tensor u2 = u.pow(2).sum(-1).clamp_min(1e-30);
  const Tensor cap = (cfg.clamp_bound / 3.0) / u2;
  const Tensor n = ((theta > cap).logical_and(m > 0)).sum();
  clamped = clamped.defined() ? clamped + n : n;
  return torch::minimum(theta, cap);
}

int64_t countOf(const Tensor& clamped) {
  return clamped.defined() ? clamped.item<int64_t>() : 0;
}

// Straight-through for stop_grad_writes: the value of `now`, the gradient of `start`.
Tensor straightThrough(const Tensor& start, const Tensor& now) {
  return start + (now - start.detach());
}

Tensor driftOf(const Tensor& W1_0, const Tensor& W2_0, const Tensor& W1, const Tensor& W2) {
  const int64_t B = W1.size(0);
  const Tensor d = torch::cat({(W1 - W1_0).reshape({B, -1}), (W2 - W2_0).reshape({B, -1})}, 1);
  const Tensor z = torch::cat({W1_0.reshape({B, -1}), W2_0.reshape({B, -1})}, 1);
  return d.norm(2, 1) / z.norm(2, 1).clamp_min(1e-12);
}

// Shared bookkeeping: chunk token counts, writes, per-chunk mean loss.
void finishLoss(const Prep& p, const std::vector<Tensor>& chunkLossSum, LmmResult& r) {
  const int64_t padTo = p.nChunks * p.C;
  const Tensor m = torch::constant_pad_nd(p.maskBL.to(torch::kLong), {0, padTo - p.L}, 0);
  r.chunk_tokens = m.view({p.B, p.nChunks, p.C}).sum(-1);  // [B, n_chunks]
  const Tensor loss = torch::stack(chunkLossSum, 1);       // [B, n_chunks] sums
  r.loss_per_chunk = loss / (r.chunk_tokens.to(loss.dtype()) * p.H).clamp_min(1.0);
  r.writes = (r.chunk_tokens > 0).sum().item<int64_t>();
}

}  // namespace

// The common end of both paths: outputs (padded tokens read 0), per-chunk loss, clamp count,
// final state (under stop_grad_writes re-attached straight through to the initial state), drift.
// Without an outer graph (evaluation) nothing returned carries one.
void finishResult(const Prep& p, const std::vector<Tensor>& ys, const std::vector<Tensor>& lossSums,
                  const Tensor& clamped, LmmState end, bool sg, bool outerGrad, LmmResult& r) {
  r.y = torch::cat(ys, 2) * p.m.unsqueeze(-1);
  finishLoss(p, lossSums, r);
  r.clamped = countOf(clamped);
  if (sg) {
    end.W1 = straightThrough(p.W1, end.W1);
    end.W2 = straightThrough(p.W2, end.W2);
  }
  r.final_state = end;
  r.drift = driftOf(p.W1, p.W2, r.final_state.W1, r.final_state.W2);
  if (sg) r.drift = r.drift.detach();
  if (!outerGrad) {
    r.y = r.y.detach();
    r.final_state = {end.W1.detach(), end.W2.detach(), end.S1.detach(), end.S2.detach()};
    r.loss_per_chunk = r.loss_per_chunk.detach();
    r.drift = r.drift.detach();
  }
}

// ---------------------------------------------------------------------------------------------
// Reference: per chunk, per token, the gradient of ‖M(k_t) − v_t‖² at the chunk-start weights by
// torch::autograd::grad, then the Titans recurrence one token at a time.
LmmResult lmm_reference(const LmmConfig& cfg, const LmmState& init, const Tensor& q0, const Tensor& k0,
                        const Tensor& v0, const Tensor& theta0, const Tensor& eta0, const Tensor& alpha0,
                        const Tensor& mask) {
  Prep p = prepare(cfg, init, q0, k0, v0, theta0, eta0, alpha0, mask);
  const bool outerGrad = torch::GradMode::is_enabled();  // false: no graph through the writes
  const bool sg = cfg.stop_grad_writes;
  // Write-path inputs. Without an outer graph (stop_grad_writes, or an outer NoGradGuard) every
  // inner gradient is taken at a fresh detached leaf, so the outputs carry no graph either.
  const bool cut = sg || !outerGrad;
  auto wd = [&](const Tensor& t) { return cut ? t.detach() : t; };
  const Tensor k = wd(p.k), v = wd(p.v), theta = wd(p.theta), eta = wd(p.eta), alpha = wd(p.alpha), m = p.m;
  const Tensor wdq = outerGrad ? p.q : p.q.detach();  // reads keep q's graph unless no outer grad
  Tensor W1 = wd(p.W1), W2 = wd(p.W2), S1 = wd(p.S1), S2 = wd(p.S2);
  const Tensor rad1 = boundRadius(cfg.state_bound, W1), rad2 = boundRadius(cfg.state_bound, W2);

  LmmResult r;
  Tensor clamped;
  std::vector<Tensor> ys, lossSums;
  for (int64_t c = 0; c < p.nChunks; ++c) {
    const int64_t t0 = c * p.C, t1 = std::min(p.L, t0 + p.C);
    // Chunk-start weights: every token of the chunk is read and differentiated at these.
    const Tensor W1c = W1, W2c = W2;
    const Tensor R1 = sg ? straightThrough(p.W1, W1c) : W1c;
    const Tensor R2 = sg ? straightThrough(p.W2, W2c) : W2c;
    ys.push_back(mlp(R1, R2, wdq.index({I::Slice(), I::Slice(), I::Slice(t0, t1)})));

    // Differentiate at the chunk-start weights themselves when they carry a graph (so the outer
    // loss sees the write's dependence on them), else at a fresh leaf holding their values.
    const Tensor G1w = (!cut && W1c.requires_grad()) ? W1c : W1c.detach().requires_grad_(true);
    const Tensor G2w = (!cut && W2c.requires_grad()) ? W2c : W2c.detach().requires_grad_(true);
    Tensor lossSum = torch::zeros({p.B}, k.options());
    for (int64_t t = t0; t < t1; ++t) {
      const Tensor kt = k.index({I::Slice(), I::Slice(), t});  // [B,H,D]
      const Tensor vt = v.index({I::Slice(), I::Slice(), t});
      const Tensor mt = m.index({I::Slice(), I::Slice(), t});  // [B,H]
      const bool createGraph = !cut;
      Tensor s, tokLoss, g1, g2;
      {
        // Grad mode only around the inner gradient (an outer NoGradGuard would forbid it).
        torch::AutoGradMode gradOn(true);
        const Tensor h = torch::einsum("bhd,bhfd->bhf", {kt, G2w});
        s = torch::silu(h);
        const Tensor pred = kt + torch::einsum("bhf,bhdf->bhd", {s, G1w});
        tokLoss = (pred - vt).pow(2).sum(-1) * mt;  // [B,H]
        auto grads = torch::autograd::grad({tokLoss.sum()}, {G1w, G2w}, {},
                                           /*retain_graph=*/true, createGraph,
                                           /*allow_unused=*/true);
        g1 = grads[0].defined() ? grads[0] : torch::zeros_like(W1c);
        g2 = grads[1].defined() ? grads[1] : torch::zeros_like(W2c);
      }
      if (!createGraph) {  // the graph to the fresh leaves must not leak out
        s = s.detach();
        tokLoss = tokLoss.detach();
        g1 = g1.detach();
        g2 = g2.detach();
      }
      lossSum = lossSum + tokLoss.sum(1);
      const Tensor th = theta.index({I::Slice(), I::Slice(), t});
      const Tensor th1 = clampTheta(cfg, th, s, mt, clamped);   // W1: u = σ(W2 k)
      const Tensor th2 = clampTheta(cfg, th, kt, mt, clamped);  // W2: u = k
      const Tensor et = eta.index({I::Slice(), I::Slice(), t}).unsqueeze(-1).unsqueeze(-1);
      const Tensor at = (1 - mt * alpha.index({I::Slice(), I::Slice(), t})).unsqueeze(-1).unsqueeze(-1);
      const Tensor m4 = mt.unsqueeze(-1).unsqueeze(-1);
      S1 = et * S1 - th1.unsqueeze(-1).unsqueeze(-1) * g1;
      S2 = et * S2 - th2.unsqueeze(-1).unsqueeze(-1) * g2;
      W1 = at * W1 + m4 * S1;
      W2 = at * W2 + m4 * S2;
    }
    lossSums.push_back(lossSum);
    W1 = boundState(W1, rad1);  // the state bound at the chunk's end (both paths alike)
    W2 = boundState(W2, rad2);
    if (sg) {
      W1 = W1.detach();
      W2 = W2.detach();
      S1 = S1.detach();
      S2 = S2.detach();
    }
  }
  finishResult(p, ys, lossSums, clamped, {W1, W2, S1, S2}, sg, outerGrad, r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Chunked: per chunk, closed-form per-token gradients at the chunk-start weights (batched), and
// the chunk's end state from the linear recurrence
//   S_t = η'_t S_{t−1} − θ'_t G_t,   W_t = a_t W_{t−1} + m_t S_t      (t = 0..n−1 in the chunk)
// solved with cumulative products:  with Dm[i,t] = Π_{i<j≤t} η'_j, P_t = Π_{j≤t} η'_j,
// F_t = Π_{j>t} a_j, A = Π_j a_j:
//   W_end = A W_0 + (Σ_t F_t m_t P_t) S_0 − Σ_i (Σ_{t≥i} F_t m_t Dm[i,t]) θ'_i G_i
//   S_end = P_{n−1} S_0 − Σ_i Dm[i,n−1] θ'_i G_i
// The sums Σ_i c_i G_i are GEMMs over the chunk (G_i is never materialised).
LmmResult lmm_chunked(const LmmConfig& cfg, const LmmState& init, const Tensor& q0, const Tensor& k0, const Tensor& v0,
                      const Tensor& theta0, const Tensor& eta0, const Tensor& alpha0, const Tensor& mask) {
  Prep p = prepare(cfg, init, q0, k0, v0, theta0, eta0, alpha0, mask);
  const bool sg = cfg.stop_grad_writes;
  std::optional<torch::NoGradGuard> noGrad;
  if (sg) noGrad.emplace();
  // Under stop_grad_writes the whole write path runs without autograd; reads are re-attached.
  Tensor W1 = p.W1, W2 = p.W2, S1 = p.S1, S2 = p.S2;
  if (sg) {
    W1 = W1.detach();
    W2 = W2.detach();
    S1 = S1.detach();
    S2 = S2.detach();
  }
  const Tensor rad1 = boundRadius(cfg.state_bound, W1), rad2 = boundRadius(cfg.state_bound, W2);

  LmmResult r;
  Tensor clamped;
  std::vector<Tensor> starts1, starts2, lossSums;
  for (int64_t c = 0; c < p.nChunks; ++c) {
    const int64_t t0 = c * p.C, t1 = std::min(p.L, t0 + p.C), n = t1 - t0;
    const auto sl = [&](const Tensor& t) { return t.index({I::Slice(), I::Slice(), I::Slice(t0, t1)}); };
    starts1.push_back(W1);
    starts2.push_back(W2);
    const Tensor k = sl(p.k), v = sl(p.v), m = sl(p.m);               // [B,H,n,(D)]
    const Tensor th = sl(p.theta), et = sl(p.eta), al = sl(p.alpha);  // [B,H,n]

    const Tensor h = torch::einsum("bhnd,bhfd->bhnf", {k, W2});
    const Tensor sig = torch::sigmoid(h);
    const Tensor s = h * sig;  // SiLU
    const Tensor res = k + torch::einsum("bhnf,bhdf->bhnd", {s, W1}) - v;
    lossSums.push_back(((res.pow(2).sum(-1)) * m).sum({1, 2}));
    const Tensor e = 2 * res * m.unsqueeze(-1);  // dℓ/dM(k), 0 at pads
    const Tensor dsilu = sig * (1 + h * (1 - sig));
    const Tensor delta = torch::einsum("bhnd,bhdf->bhnf", {e, W1}) * dsilu;  // dℓ/dh
    // G1_i = e_i s_iᵀ [D,F],  G2_i = delta_i k_iᵀ [F,D]
    const Tensor th1 = clampTheta(cfg, th, s, m, clamped) * m;
    const Tensor th2 = clampTheta(cfg, th, k, m, clamped) * m;

    const Tensor a = 1 - m * al;  // [B,H,n]
    // Dm[i,t] = Π_{i<j≤t} η_j (t ≥ i), built by a cumulative product along t of
    // X[i,j] = η_j if j > i else 1.
    const auto bopts = torch::dtype(torch::kBool).device(k.device());
    const Tensor upper = torch::ones({n, n}, bopts).triu(1);  // j > i
    const Tensor X = torch::where(upper, et.unsqueeze(-2), torch::ones({}, et.options()));
    const Tensor Dm = torch::cumprod(X, -1) * torch::ones({n, n}, bopts).triu(0).to(et.dtype());
    const Tensor P = torch::cumprod(et, -1);                                        // [B,H,n]
    const Tensor rc = torch::flip(torch::cumprod(torch::flip(a, {-1}), -1), {-1});  // Π_{j≥t} a_j
    const Tensor Fw = torch::cat(
        {rc.index({I::Ellipsis, I::Slice(1, I::None)}), torch::ones_like(rc.index({I::Ellipsis, I::Slice(0, 1)}))}, -1);
    const Tensor A = rc.index({I::Ellipsis, 0});  // [B,H]
    const Tensor fm = Fw * m;
    const Tensor cW = torch::einsum("bhit,bht->bhi", {Dm, fm});  // weight of G_i in W_end
    const Tensor gamma = (fm * P).sum(-1);                       // weight of S_0 in W_end
    const Tensor cS = Dm.index({I::Ellipsis, n - 1});            // weight of G_i in S_end
    const Tensor Pn = P.index({I::Ellipsis, n - 1});

    auto sum1 = [&](const Tensor& w) {  // Σ_i w_i G1_i
      return torch::einsum("bhnd,bhnf->bhdf", {e * w.unsqueeze(-1), s});
    };
    auto sum2 = [&](const Tensor& w) {  // Σ_i w_i G2_i
      return torch::einsum("bhnf,bhnd->bhfd", {delta * w.unsqueeze(-1), k});
    };
    auto x2 = [](const Tensor& t) { return t.unsqueeze(-1).unsqueeze(-1); };
    const Tensor W1n = x2(A) * W1 + x2(gamma) * S1 - sum1(cW * th1);
    const Tensor W2n = x2(A) * W2 + x2(gamma) * S2 - sum2(cW * th2);
    S1 = x2(Pn) * S1 - sum1(cS * th1);
    S2 = x2(Pn) * S2 - sum2(cS * th2);
    W1 = boundState(W1n, rad1);  // the state bound at the chunk's end
    W2 = boundState(W2n, rad2);
  }
  noGrad.reset();

  // Reads: every token of chunk c uses the chunk-start weights.
  std::vector<Tensor> ys;
  for (int64_t c = 0; c < p.nChunks; ++c) {
    const int64_t t0 = c * p.C, t1 = std::min(p.L, t0 + p.C);
    const Tensor R1 = sg ? straightThrough(p.W1, starts1[c]) : starts1[c];
    const Tensor R2 = sg ? straightThrough(p.W2, starts2[c]) : starts2[c];
    ys.push_back(mlp(R1, R2, p.q.index({I::Slice(), I::Slice(), I::Slice(t0, t1)})));
  }
  finishResult(p, ys, lossSums, clamped, {W1, W2, S1, S2}, sg, torch::GradMode::is_enabled(), r);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Fused: the kernel of hl_kernels/lmm.h as one autograd node (inputs q, k, v, θ, η, α, W1_0, W2_0;
// the mask and the configuration carry no gradient).
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

hl::kernels::LmmDims dimsFrom(const Tensor& k, const Tensor& W1, int64_t chunk, bool clamp, double clampBound,
                              double stateBound, bool sg) {
  hl::kernels::LmmDims d;
  d.B = k.size(0);
  d.H = k.size(1);
  d.L = k.size(2);
  d.D = k.size(3);
  d.F = W1.size(-1);
  d.C = chunk;
  d.w0_per_sequence = W1.dim() == 4;
  d.clamp = clamp;
  d.clamp_bound = clampBound;
  d.state_bound = stateBound;
  d.stop_grad = sg;
  return d;
}

// The kernel's view of the (contiguous) inputs, in LmmFunction's argument order.
template <typename T>
hl::kernels::LmmArgs<T> argsOf(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& theta,
                               const Tensor& eta, const Tensor& alpha, const Tensor& valid, const Tensor& W1,
                               const Tensor& W2) {
  hl::kernels::LmmArgs<T> in;
  in.q = q.data_ptr<T>(), in.k = k.data_ptr<T>(), in.v = v.data_ptr<T>();
  in.theta = theta.data_ptr<T>(), in.eta = eta.data_ptr<T>(), in.alpha = alpha.data_ptr<T>();
  in.valid = valid.data_ptr<T>(), in.W1 = W1.data_ptr<T>(), in.W2 = W2.data_ptr<T>();
  return in;
}

struct LmmFunction : public torch::autograd::Function<LmmFunction> {
  // Returns {y, final state [B·H, 4·D·F], loss sums [B·H, chunks] (float64), clamped [B·H] (int64)}.
  static variable_list forward(AutogradContext* ctx, Tensor q, Tensor k, Tensor v, Tensor theta, Tensor eta,
                               Tensor alpha, Tensor W1, Tensor W2, Tensor valid, int64_t chunk, bool clamp,
                               double clampBound, double stateBound, bool sg, bool keep) {
    q = q.contiguous(), k = k.contiguous(), v = v.contiguous();
    theta = theta.contiguous(), eta = eta.contiguous(), alpha = alpha.contiguous();
    W1 = W1.contiguous(), W2 = W2.contiguous(), valid = valid.contiguous();
    const auto d = dimsFrom(k, W1, chunk, clamp, clampBound, stateBound, sg);
    const int64_t P = d.B * d.H, nc = hl::kernels::lmm_chunks(d);
    Tensor y = torch::empty_like(k);
    Tensor fin = torch::empty({P, hl::kernels::lmm_state_size(d)}, k.options());
    Tensor ck = keep ? torch::empty({P, hl::kernels::lmm_checkpoint_size(d)}, k.options()) : Tensor();
    Tensor loss = torch::empty({P, nc}, torch::dtype(torch::kFloat64));
    Tensor clamped = torch::zeros({P}, torch::dtype(torch::kInt64));
    AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "lmm_forward", [&] {
      const auto in = argsOf<scalar_t>(q, k, v, theta, eta, alpha, valid, W1, W2);
      hl::kernels::LmmOut<scalar_t> out;
      out.y = y.data_ptr<scalar_t>();
      out.final_state = fin.data_ptr<scalar_t>();
      out.ck = keep ? ck.data_ptr<scalar_t>() : nullptr;
      out.loss = loss.data_ptr<double>();
      out.clamped = clamped.data_ptr<int64_t>();
      at::parallel_for(0, P, 1,
                       [&](int64_t p0, int64_t p1) { hl::kernels::lmm_forward<scalar_t>(d, in, out, p0, p1); });
    });
    if (keep) {
      ctx->save_for_backward({q, k, v, theta, eta, alpha, W1, W2, valid, ck});
      ctx->saved_data["chunk"] = chunk;
      ctx->saved_data["clamp"] = clamp;
      ctx->saved_data["clamp_bound"] = clampBound;
      ctx->saved_data["state_bound"] = stateBound;
      ctx->saved_data["sg"] = sg;
    }
    ctx->mark_non_differentiable({fin, loss, clamped});
    return {y, fin, loss, clamped};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto s = ctx->get_saved_variables();
    TORCH_CHECK(!s.empty(), "lmm_fused: the forward kept no checkpoint (it ran without a gradient)");
    const Tensor &q = s[0], &k = s[1], &v = s[2], &theta = s[3], &eta = s[4], &alpha = s[5], &W1 = s[6], &W2 = s[7];
    const Tensor &valid = s[8], &ck = s[9];
    const auto d = dimsFrom(k, W1, ctx->saved_data["chunk"].toInt(), ctx->saved_data["clamp"].toBool(),
                            ctx->saved_data["clamp_bound"].toDouble(), ctx->saved_data["state_bound"].toDouble(),
                            ctx->saved_data["sg"].toBool());
    const int64_t P = d.B * d.H;
    const Tensor dy = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(k);
    Tensor dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
    Tensor dth = torch::empty_like(theta), deta = torch::empty_like(eta), dal = torch::empty_like(alpha);
    Tensor dW1 = torch::empty({P, d.D, d.F}, k.options()), dW2 = torch::empty({P, d.F, d.D}, k.options());
    AT_DISPATCH_FLOATING_TYPES(k.scalar_type(), "lmm_backward", [&] {
      const auto in = argsOf<scalar_t>(q, k, v, theta, eta, alpha, valid, W1, W2);
      hl::kernels::LmmGrads<scalar_t> g;
      g.dq = dq.data_ptr<scalar_t>(), g.dk = dk.data_ptr<scalar_t>(), g.dv = dv.data_ptr<scalar_t>();
      g.dtheta = dth.data_ptr<scalar_t>(), g.deta = deta.data_ptr<scalar_t>(), g.dalpha = dal.data_ptr<scalar_t>();
      g.dW1 = dW1.data_ptr<scalar_t>(), g.dW2 = dW2.data_ptr<scalar_t>();
      const scalar_t* ckp = ck.data_ptr<scalar_t>();
      const scalar_t* dyp = dy.data_ptr<scalar_t>();
      at::parallel_for(
          0, P, 1, [&](int64_t p0, int64_t p1) { hl::kernels::lmm_backward<scalar_t>(d, in, ckp, dyp, g, p0, p1); });
    });
    // Per-pair gradients of the start state; a start state shared by the batch gets their sum
    // (one LibTorch sum: deterministic).
    dW1 = d.w0_per_sequence ? dW1.view(W1.sizes()) : dW1.view({d.B, d.H, d.D, d.F}).sum(0);
    dW2 = d.w0_per_sequence ? dW2.view(W2.sizes()) : dW2.view({d.B, d.H, d.F, d.D}).sum(0);
    return {dq, dk, dv, dth, deta, dal, dW1, dW2, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

bool lmm_fused_applies(const Tensor& k) {
  return k.device().is_cpu() && (k.scalar_type() == torch::kFloat32 || k.scalar_type() == torch::kFloat64);
}

LmmResult lmm_fused(const LmmConfig& cfg, const LmmState& init, const Tensor& q0, const Tensor& k0, const Tensor& v0,
                    const Tensor& theta0, const Tensor& eta0, const Tensor& alpha0, const Tensor& mask) {
  // The kernel starts from zero momenta (the Titans mixer's case); an incoming momentum, another
  // device or dtype takes the LibTorch path.
  if (!lmm_fused_applies(k0) || init.S1.defined() || init.S2.defined())
    return lmm_chunked(cfg, init, q0, k0, v0, theta0, eta0, alpha0, mask);
  Prep p = prepare(cfg, init, q0, k0, v0, theta0, eta0, alpha0, mask);
  TORCH_CHECK(init.W1.dim() == init.W2.dim(), "lmm: W1 and W2 must both be per head or both per sequence");
  const bool outerGrad = torch::GradMode::is_enabled();
  const Tensor W1 = init.W1.to(k0.scalar_type()), W2 = init.W2.to(k0.scalar_type());
  bool anyGrad = false;
  for (const Tensor& t : {p.q, p.k, p.v, p.theta, p.eta, p.alpha, W1, W2}) anyGrad |= t.requires_grad();
  const bool keep = outerGrad && anyGrad;
  auto outs = LmmFunction::apply(p.q, p.k, p.v, p.theta, p.eta, p.alpha, W1, W2, p.m.select(1, 0), cfg.chunk, cfg.clamp,
                                 cfg.clamp_bound, cfg.state_bound, cfg.stop_grad_writes, keep);
  LmmResult r;
  r.fused = true;
  r.y = outs[0];
  const int64_t DF = p.D * p.F;
  const Tensor fin = outs[1].view({p.B, p.H, 4, DF});
  r.final_state.W1 = fin.select(2, 0).reshape({p.B, p.H, p.D, p.F});
  r.final_state.W2 = fin.select(2, 1).reshape({p.B, p.H, p.F, p.D});
  r.final_state.S1 = fin.select(2, 2).reshape({p.B, p.H, p.D, p.F});
  r.final_state.S2 = fin.select(2, 3).reshape({p.B, p.H, p.F, p.D});
  const Tensor lossBC = outs[2].view({p.B, p.H, p.nChunks}).sum(1).to(k0.scalar_type());  // [B, chunks]
  finishLoss(p, lossBC.unbind(1), r);
  r.clamped = outs[3].sum().item<int64_t>();
  r.drift = driftOf(p.W1.detach(), p.W2.detach(), r.final_state.W1, r.final_state.W2);
  if (!outerGrad) r.y = r.y.detach();
  return r;
}

LmmState lmm_init_state(const LmmConfig& cfg, const torch::TensorOptions& opts, double w1_scale) {
  const int64_t H = cfg.heads, D = cfg.head_dim, F = cfg.hiddenWidth();
  LmmState s;
  s.W2 = torch::randn({H, F, D}, opts) / std::sqrt(static_cast<double>(D));
  s.W1 = torch::randn({H, D, F}, opts) * (w1_scale / std::sqrt(static_cast<double>(F)));
  s.S1 = torch::zeros({H, D, F}, opts);
  s.S2 = torch::zeros({H, F, D}, opts);
  return s;
}

}  // namespace hl::memory
