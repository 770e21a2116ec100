// Kernel tests (label kernels): the fused segment write of kernels/ against the literal recurrence
// in LibTorch ops (values and autograd gradients, float64 1e-10 / 1e-9, float32 1e-5 / 1e-4
// relative), its hand-written reverse pass against central differences, determinism across
// thread counts, and the whole self-modifying Titans fast path with and without the kernel over
// head dims 16-128, odd lengths, chunks that do not divide the length, ragged padded batches, η
// and α at their extremes, an active clamp, a binding state bound and stop-grad writes on and off
// (with differentiable writes the fast path runs the whole-sequence kernel, with stop-grad writes
// the whole-segment kernel); the whole-segment kernel's reverse pass against central
// differences; the fused memory step's determinism across thread counts and float32. The memory head's
// write: the CPU kernel and the sync-free LibTorch rows against the per-key dgd_write loop. The Titans
// long-term memory's kernel (lmm_fused) against lmm_chunked.
#include "engine/torch_wrap.h"  // before any Qt header (TOOLCHAIN.md §4.1)

#include "engine/memory/fused.h"
#include "engine/memory/selfmod_titans.h"
#include "engine/memory/titans_memory.h"
#include "engine/models/classifier.h"
#include "hl_kernels/cpu_isa.h"
#include "hl_kernels/memory_head.h"
#include "kernels/cpu/fast_exp.h"

#include <QtTest>

#include <functional>
#include <limits>
#include <random>
#include <tuple>
#include <vector>

using namespace hl::memory;
using torch::Tensor;
namespace I = torch::indexing;

namespace {

const auto kF64 = torch::dtype(torch::kFloat64);

struct Seg {
  Tensor W0, S0, U, G, eta, alpha, valid;
};

// Random inputs of one segment write: N rows, n tokens, maps O × I; about one token in four a pad.
Seg makeSeg(int64_t N, int64_t n, int64_t O, int64_t I, torch::Dtype dt, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::dtype(dt);
  Seg s;
  s.W0 = torch::randn({N, O, I}, o) * 0.3;
  s.S0 = torch::randn({N, O, I}, o) * 0.05;
  s.U = torch::nn::functional::normalize(torch::randn({N, n, I}, o),
                                         torch::nn::functional::NormalizeFuncOptions().dim(-1));
  s.G = torch::randn({N, n, O}, o);
  s.eta = torch::rand({N, n}, o) * 0.8;
  s.alpha = 0.8 + 0.2 * torch::rand({N, n}, o);
  s.valid = (torch::rand({N, n}) > 0.25).to(dt);
  return s;
}

// The recurrence as docs/KERNELS.md writes it, one token at a time in LibTorch ops.
std::pair<Tensor, Tensor> literal(const Seg& s, double beta, double damp, bool dgd) {
  Tensor W = s.W0, S = s.S0;
  auto e3 = [](const Tensor& v) { return v.view({-1, 1, 1}); };
  for (int64_t t = 0; t < s.U.size(1); ++t) {
    const Tensor u = s.U.select(1, t), g = s.G.select(1, t), m = s.valid.select(1, t);
    const Tensor et = s.eta.select(1, t) * m, a = s.alpha.select(1, t) * m + (1 - m), b = beta * m + (1 - m);
    const Tensor Wu = torch::bmm(W, u.unsqueeze(2)).squeeze(2);
    S = e3(b) * S - e3(damp * et) * (g.unsqueeze(2) * u.unsqueeze(1));
    Tensor Wn = e3(a) * W + e3(m) * S;
    if (dgd) Wn = Wn - e3(et) * (Wu.unsqueeze(2) * u.unsqueeze(1));
    W = Wn;
  }
  return {W, S};
}

double relErr(const Tensor& a, const Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

// Gradients of a fixed random projection of (W, S) with respect to the differentiable inputs.
std::vector<Tensor> gradsOf(Seg s, bool fused, double beta, double damp, bool dgd, uint64_t seed) {
  for (Tensor* t : {&s.W0, &s.S0, &s.U, &s.G, &s.eta, &s.alpha}) *t = t->detach().clone().requires_grad_(true);
  auto [W, S] = fused ? segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, beta, damp, dgd)
                      : literal(s, beta, damp, dgd);
  torch::manual_seed(seed);
  // drawn in float64 whatever the dtype, so that float32 and float64 runs project alike
  const Tensor rw = torch::randn(W.sizes(), kF64).to(W.device(), W.scalar_type()),
               rs = torch::randn(S.sizes(), kF64).to(S.device(), S.scalar_type());
  const Tensor loss = (W * rw).sum() + (S * rs).sum();
  return torch::autograd::grad({loss}, {s.W0, s.S0, s.U, s.G, s.eta, s.alpha});
}

struct SmtCase {
  int64_t heads, head_dim, B, L, chunk_memory, chunk_other;
  bool ragged, stop_grad;
  double eta_bias, alpha_bias;  // added to b_eta, b_alpha (extremes)
  DgdLayers dgd;
  bool separate;
  double eta_max = 1.0;  // 0: the softplus link
  bool dampen = true;
  InnerObjective objective = InnerObjective::L2;
  bool clamp = true;
  double state_bound = 0;
  int64_t hidden = 0;        // memory hidden width F (0: head_dim)
  bool bound_binds = false;  // the case asserts that the state bound projects some final map
  int64_t pad_tail = 0;      // > 0: row b ends with pad_tail · b pads (capped at L), as well as `ragged`'s
};

// smt_chunked with x, W1, W2 and w_eta as fresh leaves: the result and the gradients of loss(result)
// with respect to those four.
std::pair<SmtResult, std::vector<Tensor>> runWithLeaves(const SmtConfig& cfg, const SmtParams& p, const Tensor& x,
                                                        const Tensor& q,
                                                        const std::function<Tensor(const SmtResult&)>& loss) {
  std::vector<Tensor> leaves = {x.clone().requires_grad_(true), p.W1.clone().requires_grad_(true),
                                p.W2.clone().requires_grad_(true), p.w_eta.clone().requires_grad_(true)};
  SmtParams lp = p;
  lp.W1 = leaves[1];
  lp.W2 = leaves[2];
  lp.w_eta = leaves[3];
  SmtResult r = smt_chunked(cfg, lp, leaves[0], q);
  auto g = torch::autograd::grad({loss(r)}, leaves);
  return {r, g};
}

// Inputs of one whole fused segment (smt_segment_fused), random, F ≠ D so that a transposed map
// cannot pass for the right one.
struct WholeSeg {
  std::vector<Tensor> v;  // R1, R2, W1, W2, S1, S2, x, w_eta, b_eta, w_alpha, b_alpha
  Tensor valid;
};
WholeSeg makeWholeSeg(int64_t B, int64_t H, int64_t n, int64_t D, int64_t F, int64_t X, uint64_t seed) {
  torch::manual_seed(seed);
  WholeSeg w;
  auto r = [](std::vector<int64_t> sz, double sc) { return torch::randn(sz, kF64) * sc; };
  w.v = {r({B, 5, H, D, F}, 0.4),
         r({B, 5, H, F, D}, 0.6),
         r({B, 5, H, D, F}, 0.4),
         r({B, 5, H, F, D}, 0.6),
         r({B, 5, H, D, F}, 0.05),
         r({B, 5, H, F, D}, 0.05),
         r({B, X, H, n, D}, 0.7),
         r({H, D}, 0.5),
         r({H}, 0.3),
         r({H, D}, 0.5),
         r({H}, 0.3)};
  w.valid = (torch::rand({B, n}) > 0.25).to(torch::kFloat64);
  return w;
}
std::vector<Tensor> wholeOut(const hl::kernels::SmtSegmentCoeffs& c, const std::vector<Tensor>& v,
                             const Tensor& valid) {
  auto o = smt_segment_fused(c, v[0], v[1], v[2], v[3], v[4], v[5], v[6], valid, v[7], v[8], v[9], v[10]);
  return {o.W1, o.W2, o.S1, o.S2, o.loss, o.clamped};
}

// The memory head's write (issue 10 item 3): n keys written one after the other. Keys of
// norm 0.5–2.5 so that the clamp (3 η ‖u‖² > 1.8 at η 0.5) binds for some and not others.
struct HeadCase {
  Tensor W, S, keys, labels;
};
HeadCase headCase(torch::Dtype dt, int64_t n, int64_t C, int64_t D, uint64_t seed) {
  torch::manual_seed(seed);
  auto o = torch::dtype(dt);
  HeadCase h;
  h.W = torch::randn({C, D}, o) * 0.2;
  h.S = torch::randn({C, D}, o) * 0.02;
  auto dir =
      torch::nn::functional::normalize(torch::randn({n, D}, o), torch::nn::functional::NormalizeFuncOptions().dim(-1));
  h.keys = dir * (0.5 + 2.0 * torch::rand({n, 1}, o));
  h.labels = torch::randint(0, C, {n}, torch::kLong);
  return h;
}
double headLoop(HeadCase& h, double eta, double alpha, double beta, int64_t* clamped) {
  double loss = 0;
  for (int64_t i = 0; i < h.keys.size(0); ++i) {
    auto y = torch::zeros({h.W.size(0)}, h.W.options());
    y[h.labels[i].item<int64_t>()] = 1.0;
    bool cl = false;
    loss += hl::models::dgd_write(h.W, h.S, h.keys[i], y, eta, alpha, beta, &cl);
    *clamped += cl;
  }
  return loss;
}

// The fast path's cases: head dims 16-128, odd lengths, chunks that do not divide the length,
// ragged batches, stop-grad writes, η and α at their extremes, both η links, the dot objective, the
// state bound (binding in the last case), a hidden width other than the head width.
std::vector<SmtCase> smtCases() {
  return {
      {1, 16, 2, 5, 2, 4, false, false, 0, 0, DgdLayers::PerLayer, false},
      {2, 32, 3, 13, 4, 8, true, false, 0, 0, DgdLayers::PerLayer, true},
      {1, 64, 2, 9, 3, 5, true, false, 0, 0, DgdLayers::First, false},
      {1, 128, 1, 7, 4, 4, false, false, 0, 0, DgdLayers::None, false},
      {2, 16, 3, 11, 4, 8, true, true, 0, 0, DgdLayers::PerLayer, false},     // stop-grad writes
      {2, 16, 2, 10, 4, 8, true, false, 8, 6, DgdLayers::PerLayer, true},     // η → η_max, α → 1
      {2, 16, 2, 10, 4, 8, true, false, -8, -6, DgdLayers::PerLayer, false},  // η → 0, α → 0
      // softplus η, heavy-ball momentum, the dot objective, the state bound
      {1, 16, 2, 9, 4, 8, true, false, 0, 0, DgdLayers::PerLayer, false, 0.0, false, InnerObjective::Dot, true, 1.5},
      {2, 32, 2, 8, 2, 8, false, false, 0, 0, DgdLayers::First, true, 1.0, true, InnerObjective::L2, false, 2.0},
      // a memory hidden width other than the head width
      {2, 16, 2, 11, 4, 8, true, false, 0, 0, DgdLayers::PerLayer, true, 1.0, true, InnerObjective::L2, true, 0, 24},
      // a hidden width that is not a multiple of 4: the gradient sums' tail rows (outers tiles rows by 4)
      {1, 16, 2, 7, 4, 8, true, false, 0, 0, DgdLayers::PerLayer, true, 1.0, true, InnerObjective::L2, true, 0, 18},
      // large unclamped writes against the tightest bound: the bound binds (its reverse pass and
      // the radius's gradient are exercised)
      {2, 16, 2, 12, 4, 8, true, false, 2, 0, DgdLayers::PerLayer, true, 3.0, true, InnerObjective::L2, false, 1.0, 0,
       true}};
}

// One fast-path case on `dev` with or without the kernels (fused: CPU kernels on the CPU, the CUDA
// segment write on CUDA), float64: the result and the gradients of a fixed random projection of
// y, W1, W2 with respect to x, q and every outer parameter (on the CPU).
struct SmtRun {
  SmtResult r;
  std::vector<Tensor> grads;
  SmtParams p;
};
SmtRun runSmtCase(const SmtCase& c, bool fused, const torch::Device& dev) {
  SmtConfig cfg;
  cfg.heads = c.heads;
  cfg.head_dim = c.head_dim;
  cfg.hidden = c.hidden;
  cfg.chunk_memory = c.chunk_memory;
  cfg.chunk_other = c.chunk_other;
  cfg.momentum = 0.5;
  cfg.eta_scale = 0.5;
  cfg.eta_max = c.eta_max;
  cfg.dampen = c.dampen;
  cfg.objective = c.objective;
  cfg.clamp = c.clamp;
  cfg.state_bound = c.state_bound;
  cfg.dgd = c.dgd;
  cfg.stop_grad_writes = c.stop_grad;
  cfg.clamp_bound = c.eta_bias > 0 ? 0.05 : 1.8;  // the extreme-η case also clamps
  cfg.fused = fused;
  torch::manual_seed(c.head_dim + c.L);
  SmtParams p = smt_init_params(cfg, 0.9, kF64, 0.6);
  p.w_eta = torch::randn_like(p.w_eta) * 0.5;
  p.w_alpha = torch::randn_like(p.w_alpha) * 0.5;
  p.b_eta = p.b_eta + c.eta_bias;
  p.b_alpha = p.b_alpha + c.alpha_bias;
  auto nrm = [](const Tensor& t) {
    return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(-1));
  };
  const Tensor x = c.separate ? nrm(torch::randn({c.B, 4, c.heads, c.L, c.head_dim}, kF64))
                              : nrm(torch::randn({c.B, c.heads, c.L, c.head_dim}, kF64));
  const Tensor q = nrm(torch::randn({c.B, c.heads, c.L, c.head_dim}, kF64));
  Tensor mask = torch::ones({c.B, c.L}, torch::kBool);
  if (c.ragged)
    for (int64_t b = 1; b < c.B; ++b) mask.index_put_({b, I::Slice(c.L - 2 * b, I::None)}, false);
  for (int64_t b = 1; b < c.B && c.pad_tail > 0; ++b)
    mask.index_put_({b, I::Slice(std::max<int64_t>(0, c.L - c.pad_tail * b), I::None)}, false);
  std::vector<Tensor> leaves = {x.clone(),       q.clone(),       p.W1.clone(),      p.W2.clone(),
                                p.w_eta.clone(), p.b_eta.clone(), p.w_alpha.clone(), p.b_alpha.clone()};
  for (Tensor& t : leaves) t = t.to(dev).requires_grad_(true);
  SmtParams lp{leaves[2], leaves[3], leaves[4], leaves[5], leaves[6], leaves[7]};
  SmtRun out;
  out.r = smt_chunked(cfg, lp, leaves[0], leaves[1], mask.to(dev));
  torch::manual_seed(99);
  auto proj = [&](const Tensor& t) { return torch::randn(t.sizes(), kF64).to(dev); };
  const Tensor loss =
      (out.r.y * proj(out.r.y)).sum() + (out.r.W1 * proj(out.r.W1)).sum() + (out.r.W2 * proj(out.r.W2)).sum();
  out.grads = torch::autograd::grad({loss}, leaves, {}, false, false, /*allow_unused=*/true);
  for (Tensor& g : out.grads)
    if (g.defined()) g = g.cpu();
  for (Tensor* t : {&out.r.y, &out.r.W1, &out.r.W2, &out.r.S1, &out.r.loss_tokens}) *t = t->detach().cpu();
  out.p = p;
  return out;
}

QString describe(const SmtCase& c) {
  return QString("heads %1 D %2 L %3 chunks %4/%5 ragged %6 stop-grad %7 eta bias %8 dgd %9")
      .arg(c.heads)
      .arg(c.head_dim)
      .arg(c.L)
      .arg(c.chunk_memory)
      .arg(c.chunk_other)
      .arg(c.ragged)
      .arg(c.stop_grad)
      .arg(c.eta_bias)
      .arg(int(c.dgd));
}

// Two runs of one case agree: values and final states 1e-10, clamp counts equal, gradients 1e-9.
void compareSmtRuns(const SmtCase& c, const SmtRun& a, const SmtRun& b) {
  const QString what = describe(c);
  for (auto [x, y] : std::vector<std::pair<Tensor, Tensor>>{
           {a.r.y, b.r.y}, {a.r.W1, b.r.W1}, {a.r.W2, b.r.W2}, {a.r.S1, b.r.S1}, {a.r.loss_tokens, b.r.loss_tokens}})
    QVERIFY2(relErr(x, y) < 1e-10, qPrintable(what + QString(": value %1").arg(relErr(x, y))));
  QCOMPARE(a.r.clamped, b.r.clamped);
  for (size_t i = 0; i < a.grads.size(); ++i) {
    QCOMPARE(a.grads[i].defined(), b.grads[i].defined());
    if (a.grads[i].defined())
      QVERIFY2(relErr(a.grads[i], b.grads[i]) < 1e-9,
               qPrintable(what + QString(": gradient %1: %2").arg(i).arg(relErr(a.grads[i], b.grads[i]))));
  }
}

// Two runs of one case give the same bits: values, final states, losses, clamp counts, gradients.
void compareSmtBits(const QString& what, const SmtRun& a, const SmtRun& b) {
  for (auto [x, y] : std::vector<std::pair<Tensor, Tensor>>{
           {a.r.y, b.r.y}, {a.r.W1, b.r.W1}, {a.r.W2, b.r.W2}, {a.r.S1, b.r.S1}, {a.r.loss_tokens, b.r.loss_tokens}})
    QVERIFY2(torch::equal(x, y), qPrintable(what + ": values differ"));
  QCOMPARE(a.r.clamped, b.r.clamped);
  for (size_t i = 0; i < b.grads.size(); ++i) {
    QCOMPARE(a.grads[i].defined(), b.grads[i].defined());
    if (b.grads[i].defined())
      QVERIFY2(torch::equal(a.grads[i], b.grads[i]), qPrintable(what + QString(": gradient %1").arg(i)));
  }
}

// Whether the CUDA tests can run; the reason they cannot otherwise (QSKIP's message).
QString cudaUnavailable() {
  if (!cuda_kernels_built())
    return "built without the CUDA kernels (no nvcc or LibTorch without CUDA at configure time)";
  if (!torch::cuda::is_available()) return "no CUDA device visible to LibTorch";
  return {};
}
#define HL_REQUIRE_CUDA()                                              \
  do {                                                                 \
    const QString why = cudaUnavailable();                             \
    if (!why.isEmpty()) QSKIP(qPrintable("GPU test skipped: " + why)); \
  } while (0)

}  // namespace

class TestKernels : public QObject {
  Q_OBJECT

 private slots:
  // CTest runs this binary once per instruction set (tests/CMakeLists.txt); a SIMD build this CPU
  // lacks skips the whole run and says so (test_kernels_avx2 on a CPU without AVX2, say).
  void initTestCase() {
    const QByteArray env = qgetenv("HOPELAB_KERNEL_ISA");
    if ((env == "avx2-fma" || env == "avx512") && !hl::kernels::cpu_isa_env_error().empty())
      QSKIP(qPrintable("instruction set not available here: " +
                       QString::fromStdString(hl::kernels::cpu_isa_env_error())));
  }

  void segmentWriteMatchesTheLiteralRecurrenceInFloat64() {
    for (auto [N, n, O, I] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {3, 1, 4, 4}, {5, 4, 16, 16}, {4, 7, 32, 32}, {2, 8, 128, 128}, {6, 3, 17, 9}}) {
      for (auto [beta, damp, dgd] : std::vector<std::tuple<double, double, bool>>{
               {0.5, 0.5, true}, {0.9, 1.0, true}, {0.0, 1.0, false}, {0.99, 0.01, true}}) {
        const Seg s = makeSeg(N, n, O, I, torch::kFloat64, 11 + n);
        auto [Wf, Sf] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, beta, damp, dgd);
        auto [Wl, Sl] = literal(s, beta, damp, dgd);
        QVERIFY2(relErr(Wf, Wl) < 1e-10 && relErr(Sf, Sl) < 1e-10,
                 qPrintable(QString("N %1 n %2 O %3 I %4 beta %5 dgd %6: W %7 S %8")
                                .arg(N)
                                .arg(n)
                                .arg(O)
                                .arg(I)
                                .arg(beta)
                                .arg(dgd)
                                .arg(relErr(Wf, Wl))
                                .arg(relErr(Sf, Sl))));
        const auto gf = gradsOf(s, true, beta, damp, dgd, 5), gl = gradsOf(s, false, beta, damp, dgd, 5);
        for (size_t i = 0; i < gf.size(); ++i)
          QVERIFY2(relErr(gf[i], gl[i]) < 1e-9, qPrintable(QString("gradient %1 (N %2 n %3 O %4 I %5 dgd %6): %7")
                                                               .arg(i)
                                                               .arg(N)
                                                               .arg(n)
                                                               .arg(O)
                                                               .arg(I)
                                                               .arg(dgd)
                                                               .arg(relErr(gf[i], gl[i]))));
      }
    }
  }

  // The kernel against the closed-form LibTorch segment write it replaces (values and gradients).
  void segmentWriteMatchesTheLibTorchClosedForm() {
    for (auto [n, dgd] : std::vector<std::pair<int64_t, bool>>{{1, true}, {4, true}, {8, false}, {5, true}}) {
      const Seg s = makeSeg(6, n, 16, 24, torch::kFloat64, 40 + n);
      auto [Wf, Sf] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.5, 0.5, dgd);
      auto [Wt, St] = segment_write_torch(s.W0, s.S0, s.U.transpose(1, 2), s.G, s.eta, s.alpha, s.valid, 0.5, 0.5, dgd);
      QVERIFY2(relErr(Wf, Wt) < 1e-10 && relErr(Sf, St) < 1e-10, qPrintable(QString("n %1").arg(n)));
    }
  }

  void aPaddedTokenChangesNothingAndGetsNoGradient() {
    Seg s = makeSeg(4, 5, 8, 8, torch::kFloat64, 3);
    s.valid.zero_();
    auto [W, S] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.9, 1.0, true);
    QVERIFY(torch::equal(W, s.W0) && torch::equal(S, s.S0));
    const auto g = gradsOf(s, true, 0.9, 1.0, true, 1);
    for (int i : {2, 3, 4, 5}) QCOMPARE(g[i].abs().max().item<double>(), 0.0);  // U, G, eta, alpha
  }

  void segmentWriteAgreesInFloat32() {
    const Seg s64 = makeSeg(8, 6, 32, 32, torch::kFloat64, 21);
    Seg s32;
    for (auto [d, src] : std::vector<std::pair<Tensor*, const Tensor*>>{{&s32.W0, &s64.W0},
                                                                        {&s32.S0, &s64.S0},
                                                                        {&s32.U, &s64.U},
                                                                        {&s32.G, &s64.G},
                                                                        {&s32.eta, &s64.eta},
                                                                        {&s32.alpha, &s64.alpha},
                                                                        {&s32.valid, &s64.valid}})
      *d = src->to(torch::kFloat32);
    auto [W32, S32] = segment_write_fused(s32.W0, s32.S0, s32.U, s32.G, s32.eta, s32.alpha, s32.valid, 0.5, 0.5, true);
    auto [W64, S64] = literal(s64, 0.5, 0.5, true);
    QVERIFY2(relErr(W32.to(torch::kFloat64), W64) < 1e-5,
             qPrintable(QString::number(relErr(W32.to(torch::kFloat64), W64))));
    QVERIFY(relErr(S32.to(torch::kFloat64), S64) < 1e-5);
    const auto g32 = gradsOf(s32, true, 0.5, 0.5, true, 2), g64 = gradsOf(s64, false, 0.5, 0.5, true, 2);
    for (size_t i = 0; i < g32.size(); ++i)
      QVERIFY2(relErr(g32[i].to(torch::kFloat64), g64[i]) < 1e-4,
               qPrintable(QString("gradient %1: %2").arg(i).arg(relErr(g32[i].to(torch::kFloat64), g64[i]))));
  }

  // The hand-written reverse pass against central differences of the forward (float64, step 1e-6,
  // agreement 1e-6 relative to the largest gradient).
  void reversePassMatchesCentralDifferences() {
    const Seg s = makeSeg(2, 3, 3, 4, torch::kFloat64, 8);
    const auto g = gradsOf(s, true, 0.7, 0.3, true, 9);
    torch::manual_seed(9);
    auto [W, S] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.7, 0.3, true);
    const Tensor rw = torch::randn_like(W), rs = torch::randn_like(S);
    auto f = [&](const Seg& q) {
      auto [w, st] = segment_write_fused(q.W0, q.S0, q.U, q.G, q.eta, q.alpha, q.valid, 0.7, 0.3, true);
      return ((w * rw).sum() + (st * rs).sum()).item<double>();
    };
    const double h = 1e-6;
    std::vector<Tensor Seg::*> fields = {&Seg::W0, &Seg::S0, &Seg::U, &Seg::G, &Seg::eta, &Seg::alpha};
    for (size_t fi = 0; fi < fields.size(); ++fi) {
      const Tensor base = s.*fields[fi];
      Tensor num = torch::zeros_like(base);
      auto flat = num.view({-1});
      for (int64_t j = 0; j < base.numel(); ++j) {
        Seg p = s, m = s;
        p.*fields[fi] = base.clone();
        m.*fields[fi] = base.clone();
        (p.*fields[fi]).view({-1})[j] += h;
        (m.*fields[fi]).view({-1})[j] -= h;
        flat[j] = (f(p) - f(m)) / (2 * h);
      }
      const double err = (num - g[fi]).abs().max().item<double>() / std::max(1.0, g[fi].abs().max().item<double>());
      QVERIFY2(err < 1e-6, qPrintable(QString("input %1: %2").arg(fi).arg(err)));
    }
  }

  void fusedWriteIsDeterministicAcrossThreadCounts() {
    const Seg s = makeSeg(64, 4, 32, 32, torch::kFloat32, 4);
    const int threads = torch::get_num_threads();
    std::vector<std::vector<Tensor>> runs;
    for (int t : {1, 2, 1}) {
      torch::set_num_threads(t);
      auto [W, S] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.5, 0.5, true);
      auto g = gradsOf(s, true, 0.5, 0.5, true, 3);
      g.push_back(W);
      g.push_back(S);
      runs.push_back(g);
    }
    torch::set_num_threads(threads);
    for (size_t r = 1; r < runs.size(); ++r)
      for (size_t i = 0; i < runs[0].size(); ++i) QVERIFY(torch::equal(runs[0][i], runs[r][i]));
  }

  void aSecondDerivativeThrowsAndNamesTheReferencePath() {
    Seg s = makeSeg(2, 2, 4, 4, torch::kFloat64, 1);
    s.W0.requires_grad_(true);
    auto [W, S] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.5, 0.5, true);
    bool threw = false;
    try {
      torch::autograd::grad({W.pow(2).sum()}, {s.W0}, {}, true, /*create_graph=*/true);
    } catch (const std::exception& e) {
      threw = QString(e.what()).contains("reference");
    }
    QVERIFY(threw);
  }

  void badShapesAreRefused() {
    Seg s = makeSeg(2, 3, 4, 5, torch::kFloat64, 1);
    QVERIFY_THROWS_EXCEPTION(c10::Error, segment_write_fused(s.W0, s.S0, s.U.transpose(1, 2).contiguous(), s.G, s.eta,
                                                             s.alpha, s.valid, 0.5, 1.0, true));
    QVERIFY_THROWS_EXCEPTION(c10::Error, segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta.to(torch::kFloat32), s.alpha,
                                                             s.valid, 0.5, 1.0, true));
    QVERIFY(!segment_write_fused_applies(s.W0.to(torch::kBFloat16)));
  }

  // The whole fast path: fused segment writes against the LibTorch segment writes (float64: values
  // and final states 1e-10, gradients of x, q and every outer parameter 1e-9).
  void smtFastPathWithTheKernelEqualsTheLibTorchPath() {
    const torch::Device cpu(torch::kCPU);
    for (const SmtCase& c : smtCases()) {
      const SmtRun fused = runSmtCase(c, true, cpu), ref = runSmtCase(c, false, cpu);
      QCOMPARE(fused.r.fused, true);
      QCOMPARE(ref.r.fused, false);
      compareSmtRuns(c, fused, ref);
      if (QTest::currentTestFailed()) return;
      const QString what = describe(c);
      if (c.bound_binds) {  // some final map sits on its radius state_bound · ‖W0‖
        const Tensor ratio = fused.r.W1.pow(2).sum({-2, -1}).sqrt() /
                             (c.state_bound * fused.p.W1.pow(2).sum({-2, -1}).sqrt().unsqueeze(0));
        QVERIFY2((ratio - 1).abs().min().item<double>() < 1e-9, qPrintable(what + ": the state bound never bound"));
      }
      if (c.eta_bias > 0 && c.clamp) QVERIFY2(fused.r.clamped > 0, qPrintable(what + ": the clamp never acted"));
    }
  }

  // Sparse checkpoints (SmtSequenceDims::ck_every > 1: the reverse pass recomputes each block
  // between stored states) do the same arithmetic as storing every segment: the same bits in
  // values, final states and every gradient, for spacings that do and do not fit the chunk sizes'
  // common multiple, ragged batches, a binding state bound, float64 and float32.
  // The whole-sequence kernel skips each row's trailing pad segments (SmtSequenceDims::
  // skip_pad_tail): outputs, final states and every gradient bit-identical to running those
  // segments, with dense and sparse checkpoints, a state bound that binds, and rows whose tail is
  // one segment, several, or the whole row; and within 1e-10 / 1e-9 of the LibTorch path.
  void skippingThePadTailKeepsEveryBit() {
    const torch::Device cpu(torch::kCPU);
    std::vector<SmtCase> cases = smtCases();
    SmtCase some = cases[0];
    some.B = 3;
    some.L = 29;
    some.pad_tail = 9;             // row 1: 9 pads, row 2: 18
    SmtCase bound = cases.back();  // the binding bound
    bound.B = 3;
    bound.L = 40;
    bound.pad_tail = 20;  // row 2: no real token
    for (const SmtCase& c : {some, bound})
      for (int64_t every : {1, 2}) {
        set_sequence_checkpoint_every(every);
        set_sequence_skip_pad_tail(false);
        const SmtRun full = runSmtCase(c, true, cpu);
        set_sequence_skip_pad_tail(true);
        const SmtRun skip = runSmtCase(c, true, cpu);
        compareSmtBits(describe(c) + QString(" every %1").arg(every), skip, full);
        if (every == 1) compareSmtRuns(c, skip, runSmtCase(c, false, cpu));
      }
    set_sequence_checkpoint_every(0);
  }

  void sparseCheckpointsGiveTheSameBits() {
    const torch::Device cpu(torch::kCPU);
    std::vector<SmtCase> cases = smtCases();
    SmtCase odd = cases[1];  // chunks 3 and 5: stored starts only at multiples of 15
    odd.chunk_memory = 3;
    odd.chunk_other = 5;
    odd.L = 47;
    SmtCase longer = cases.back();  // the binding bound, 40 tokens
    longer.L = 40;
    for (SmtCase c : {cases[0], cases[1], odd, longer}) {
      set_sequence_checkpoint_every(1);
      const SmtRun dense = runSmtCase(c, true, cpu);
      for (int64_t every : {2, 3, 5, 1000}) {
        set_sequence_checkpoint_every(every);
        const SmtRun sparse = runSmtCase(c, true, cpu);
        compareSmtBits(describe(c) + QString(" every %1").arg(every), sparse, dense);
      }
    }
    // float32 through the kernel benchmark's shape (4 heads of 32, chunks 4 / 8), 40 segments:
    // the automatic spacing (0) is sparse there.
    SmtConfig cfg;
    cfg.heads = 4;
    cfg.head_dim = 32;
    cfg.chunk_memory = 4;
    cfg.chunk_other = 8;
    cfg.state_bound = 2.0;
    torch::manual_seed(3);
    const SmtParams p0 = smt_init_params(cfg, 0.95, torch::dtype(torch::kFloat32), 0.6);
    const Tensor x = torch::randn({2, 4, 160, 32}) * 0.2, q = torch::randn({2, 4, 160, 32}) * 0.2;
    std::vector<std::vector<Tensor>> outs;
    for (int64_t every : {1, 0}) {
      set_sequence_checkpoint_every(every);
      std::vector<Tensor> leaves = {x.clone().requires_grad_(true), p0.W1.clone().requires_grad_(true)};
      SmtParams p = p0;
      p.W1 = leaves[1];
      const SmtResult r = smt_chunked(cfg, p, leaves[0], q);
      QVERIFY(r.fused);
      auto g = torch::autograd::grad({r.y.pow(2).sum()}, leaves);
      g.push_back(r.y.detach());
      outs.push_back(g);
    }
    set_sequence_checkpoint_every(0);
    for (size_t i = 0; i < outs[0].size(); ++i) QVERIFY(torch::equal(outs[0][i], outs[1][i]));
  }

  // The whole-segment kernel's hand-written reverse pass against central differences of its forward
  // (float64, step 1e-6, agreement 1e-6 relative to the largest gradient): every entry of every
  // input, F ≠ D, a pad in the segment, both η links, both objectives, shared and separate inputs,
  // the clamp binding for some writes.
  void wholeSegmentReversePassMatchesCentralDifferences() {
    struct Cfg {
      int64_t X;
      double eta_max;
      bool l2, dgd1;
      double bound;
    };
    for (const Cfg& k : {Cfg{4, 1.0, true, true, 0.4}, Cfg{1, 0.0, false, false, 1.8}}) {
      hl::kernels::SmtSegmentCoeffs c;
      c.beta = 0.6;
      c.damp = 0.4;
      c.dgd1 = k.dgd1;
      c.l2 = k.l2;
      c.clamp_bound = k.bound;
      c.eta_scale = 0.3;
      c.eta_max = k.eta_max;
      const WholeSeg w = makeWholeSeg(2, 1, 3, 3, 4, k.X, 5);
      torch::manual_seed(6);
      std::vector<Tensor> rs;
      for (int i = 0; i < 4; ++i) rs.push_back(torch::randn_like(i % 2 == 0 ? w.v[2] : w.v[3]));
      auto f = [&](const std::vector<Tensor>& v) {
        const auto o = wholeOut(c, v, w.valid);
        Tensor l = torch::zeros({}, kF64);
        for (int i = 0; i < 4; ++i) l = l + (o[i] * rs[i]).sum();
        return l;
      };
      std::vector<Tensor> leaves;
      for (const Tensor& t : w.v) leaves.push_back(t.clone().requires_grad_(true));
      const auto g = torch::autograd::grad({f(leaves)}, leaves);
      if (k.bound < 1) QVERIFY(wholeOut(c, w.v, w.valid)[5].item<int64_t>() > 0);  // the clamp binds
      const double h = 1e-6;
      for (size_t i = 0; i < w.v.size(); ++i) {
        Tensor num = torch::zeros_like(w.v[i]);
        for (int64_t j = 0; j < w.v[i].numel(); ++j) {
          auto p = w.v, m = w.v;
          p[i] = w.v[i].clone();
          m[i] = w.v[i].clone();
          p[i].view({-1})[j] += h;
          m[i].view({-1})[j] -= h;
          num.view({-1})[j] = (f(p).item<double>() - f(m).item<double>()) / (2 * h);
        }
        const double err = (num - g[i]).abs().max().item<double>() / std::max(1.0, g[i].abs().max().item<double>());
        QVERIFY2(err < 1e-6, qPrintable(QString("X %1 input %2: %3").arg(k.X).arg(i).arg(err)));
      }
    }
  }

  // A whole Hope memory step (smt_chunked through the whole-sequence kernel, threaded over the
  // (sequence, head) pairs) in float32 with 1, 2, 1 threads: outputs, states and every gradient
  // bit-identical.
  void fusedMemoryStepIsDeterministicAcrossThreadCounts() {
    SmtConfig cfg;
    cfg.heads = 4;
    cfg.head_dim = 32;
    cfg.eta_max = 1.0;
    cfg.dampen = true;
    cfg.state_bound = 2;
    torch::manual_seed(12);
    const SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(torch::kFloat32), 0.6);
    const Tensor x = torch::randn({6, 4, 4, 19, 32}), q = torch::randn({6, 4, 19, 32});
    const int threads = torch::get_num_threads();
    std::vector<std::vector<Tensor>> runs;
    for (int t : {1, 2, 1}) {
      torch::set_num_threads(t);
      auto [r, g] = runWithLeaves(cfg, p, x, q, [](const SmtResult& r) { return r.y.sum() + r.W1.pow(2).sum(); });
      QVERIFY(r.fused);
      g.push_back(r.y.detach());
      g.push_back(r.W2.detach());
      runs.push_back(g);
    }
    torch::set_num_threads(threads);
    for (size_t r = 1; r < runs.size(); ++r)
      for (size_t i = 0; i < runs[0].size(); ++i)
        QVERIFY2(torch::equal(runs[0][i], runs[r][i]), qPrintable(QString("run %1 tensor %2").arg(r).arg(i)));
  }

  // float32 through the whole-sequence kernel against the float64 LibTorch path: 1e-5 values, 1e-4
  // gradients.
  void fusedMemoryStepAgreesInFloat32() {
    SmtConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 32;
    cfg.eta_max = 1.0;
    cfg.eta_scale = 0.3;
    cfg.dampen = true;
    torch::manual_seed(21);
    const SmtParams p = smt_init_params(cfg, 0.9, kF64, 0.6);
    const Tensor x = torch::randn({3, 4, 2, 13, 32}, kF64) * 0.3, q = torch::randn({3, 2, 13, 32}, kF64) * 0.3;
    std::vector<std::vector<Tensor>> out;
    for (bool f32 : {true, false}) {
      cfg.fused = f32;
      auto dt = f32 ? torch::kFloat32 : torch::kFloat64;
      std::vector<Tensor> leaves = {x.to(dt).requires_grad_(true), p.W1.to(dt).requires_grad_(true),
                                    p.W2.to(dt).requires_grad_(true)};
      SmtParams lp{leaves[1], leaves[2], p.w_eta.to(dt), p.b_eta.to(dt), p.w_alpha.to(dt), p.b_alpha.to(dt)};
      SmtResult r = smt_chunked(cfg, lp, leaves[0], q.to(dt));
      QCOMPARE(r.fused, f32);
      torch::manual_seed(3);
      auto g = torch::autograd::grad({(r.y * torch::randn(r.y.sizes(), kF64).to(dt)).sum()}, leaves);
      g.insert(g.begin(), {r.y.detach(), r.W1.detach()});
      for (auto& t : g) t = t.to(torch::kFloat64);
      out.push_back(g);
    }
    QVERIFY2(relErr(out[0][0], out[1][0]) < 1e-5, qPrintable(QString::number(relErr(out[0][0], out[1][0]))));
    QVERIFY2(relErr(out[0][1], out[1][1]) < 1e-5, qPrintable(QString::number(relErr(out[0][1], out[1][1]))));
    for (size_t i = 2; i < out[0].size(); ++i)
      QVERIFY2(relErr(out[0][i], out[1][i]) < 1e-4, qPrintable(QString::number(relErr(out[0][i], out[1][i]))));
  }

  // The kernels' float e^x (kernels/cpu/fast_exp.h, here its baseline build): within 2 ulp of
  // std::exp wherever the result is a normal float (every 1/1024 over [-87, 88] and at a million
  // random points), close in the subnormal range, 0 and inf beyond the ends as std::exp gives.
  void fastExpIsWithinTwoUlpOfTheLibrary() {
    auto ulps = [](float a, float b) {
      return std::abs(int64_t(__builtin_bit_cast(int32_t, a)) - int64_t(__builtin_bit_cast(int32_t, b)));
    };
    int64_t worst = 0;
    float worstAt = 0;
    auto check = [&](float x) {
      const int64_t u = ulps(hl::kernels::baseline::expT(x), std::exp(x));
      if (u > worst) worst = u, worstAt = x;
    };
    for (int i = -87 * 1024; i <= 88 * 1024; ++i) check(float(i) / 1024.f);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> U(-87.f, 88.f);
    for (int i = 0; i < 1000000; ++i) check(U(rng));
    qInfo("fast exp: worst %lld ulp (at %g)", static_cast<long long>(worst), double(worstAt));
    QVERIFY2(worst <= 2, qPrintable(QString("%1 ulp at %2").arg(worst).arg(worstAt)));
    for (float x : {-88.f, -95.f, -100.f, -103.f}) {  // subnormal results: relative 1e-3 of std::exp
      const float a = hl::kernels::baseline::expT(x), b = std::exp(x);
      QVERIFY2(std::abs(a - b) <= 1e-3f * b + 1e-45f, qPrintable(QString("x %1: %2 vs %3").arg(x).arg(a).arg(b)));
    }
    QCOMPARE(hl::kernels::baseline::expT(-110.f), 0.f);
    QCOMPARE(hl::kernels::baseline::expT(-1e30f), 0.f);
    QVERIFY(std::isinf(hl::kernels::baseline::expT(89.f)) && std::isinf(hl::kernels::baseline::expT(1e30f)));
    QVERIFY(std::isfinite(hl::kernels::baseline::expT(88.7f)));
    QCOMPARE(hl::kernels::baseline::expT(0.f), 1.f);
  }

  // The kernels exist in three instruction sets (docs/KERNELS.md "Instruction sets"). This binary
  // runs three times under CTest: as test_kernels (the CPU's best ISA), test_kernels_avx2 and
  // test_kernels_baseline, so every test above checks each build against LibTorch. Here:
  // the environment's choice is the one in force, set_cpu_isa switches and refuses what the CPU
  // lacks, and the AVX2 and (where the CPU has it) AVX-512 builds agree with the baseline on a
  // whole-sequence forward + backward in float64 within 1e-10 relative (FMA rounds once where the
  // baseline rounds twice; wider vectors sum in another order) and in float32 within 1e-5.
  void instructionSetsAgreeAndTheEnvironmentsChoiceIsHonoured() {
    using hl::kernels::CpuIsa;
    const QByteArray env = qgetenv("HOPELAB_KERNEL_ISA");
    const CpuIsa start = hl::kernels::cpu_isa();
    if (env == "baseline") QCOMPARE(start, CpuIsa::Baseline);
    if (env == "avx2-fma") QCOMPARE(start, CpuIsa::Avx2Fma);
    if (env.isEmpty() || env == "auto")  // the best this CPU and build have
      QCOMPARE(start, hl::kernels::cpu_isa_available(CpuIsa::Avx512)    ? CpuIsa::Avx512
                      : hl::kernels::cpu_isa_available(CpuIsa::Avx2Fma) ? CpuIsa::Avx2Fma
                                                                        : CpuIsa::Baseline);
    if (hl::kernels::cpu_isa_available(CpuIsa::Avx512))  // AVX-512 implies the AVX2 build
      QVERIFY(hl::kernels::cpu_isa_available(CpuIsa::Avx2Fma));
    QVERIFY(hl::kernels::cpu_isa_env_error().empty());
    QVERIFY(hl::kernels::cpu_isa_available(CpuIsa::Baseline));
    {  // a value the kernels cannot honour stops a fused call with what to set
      qputenv("HOPELAB_KERNEL_ISA", "sse9");
      const std::string e = hl::kernels::cpu_isa_env_error();
      QVERIFY2(e.find("HOPELAB_KERNEL_ISA") != std::string::npos && e.find("baseline") != std::string::npos, e.c_str());
      SmtConfig c0;
      c0.heads = 1;
      c0.head_dim = 8;
      const SmtParams p0 = smt_init_params(c0, 0.9, torch::dtype(torch::kFloat32), 0.6);
      bool threw = false;
      try {
        smt_chunked(c0, p0, torch::randn({1, 4, 1, 5, 8}), torch::randn({1, 1, 5, 8}));
      } catch (const std::exception& ex) {
        threw = std::string(ex.what()).find("HOPELAB_KERNEL_ISA") != std::string::npos;
      }
      if (env.isNull())
        qunsetenv("HOPELAB_KERNEL_ISA");
      else
        qputenv("HOPELAB_KERNEL_ISA", env);
      QVERIFY2(threw, "a bad HOPELAB_KERNEL_ISA did not stop the fused path");
    }
    if (!hl::kernels::cpu_isa_available(CpuIsa::Avx2Fma)) {
      QVERIFY(!hl::kernels::set_cpu_isa(CpuIsa::Avx2Fma));
      QCOMPARE(hl::kernels::cpu_isa(), start);
      QSKIP("no AVX2 + FMA build or CPU here: only the baseline ISA exists");
    }
    SmtConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 32;
    cfg.eta_max = 1.0;
    cfg.dampen = true;
    cfg.state_bound = 2;
    for (auto dt : {torch::kFloat64, torch::kFloat32}) {
      torch::manual_seed(31);
      const SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(dt), 0.6);
      const Tensor x = torch::randn({3, 4, 2, 21, 32}, dt) * 0.5, q = torch::randn({3, 2, 21, 32}, dt) * 0.5;
      std::vector<std::vector<Tensor>> out;
      std::vector<CpuIsa> isas{CpuIsa::Baseline, CpuIsa::Avx2Fma};
      if (hl::kernels::cpu_isa_available(CpuIsa::Avx512))
        isas.push_back(CpuIsa::Avx512);
      else
        QVERIFY(!hl::kernels::set_cpu_isa(CpuIsa::Avx512));
      for (CpuIsa isa : isas) {
        QVERIFY(hl::kernels::set_cpu_isa(isa));
        QCOMPARE(hl::kernels::cpu_isa(), isa);
        auto [r, g] =
            runWithLeaves(cfg, p, x, q, [](const SmtResult& r) { return r.y.pow(2).sum() + r.W1.pow(2).sum(); });
        QVERIFY(r.fused);
        g.insert(g.begin(), {r.y.detach(), r.W1.detach(), r.W2.detach()});
        out.push_back(g);
      }
      QVERIFY(hl::kernels::set_cpu_isa(start));
      const double tol = dt == torch::kFloat64 ? 1e-10 : 1e-5;
      for (size_t k = 1; k < out.size(); ++k) {  // every SIMD build against the baseline
        bool differ = false;
        for (size_t i = 0; i < out[0].size(); ++i) {
          const double e = relErr(out[0][i].to(torch::kFloat64), out[k][i].to(torch::kFloat64));
          QVERIFY2(e < tol,
                   qPrintable(QString("%1, tensor %2: %3").arg(hl::kernels::cpu_isa_name(isas[k])).arg(i).arg(e)));
          differ = differ || !torch::equal(out[0][i], out[k][i]);
        }
        // Both really ran: FMA contraction changes some bits somewhere.
        QVERIFY2(differ, qPrintable(QString("the baseline and %1 builds gave identical bits: did both run?")
                                        .arg(hl::kernels::cpu_isa_name(isas[k]))));
      }
    }
  }

  // A forward that no reverse pass follows (no gradient: evaluation) keeps two state slots instead
  // of a checkpoint per segment (SmtSequenceOut::ring). Same arithmetic: every output bit-identical
  // to the checkpointed forward's, for chunk pairs whose read states lie one and several segments
  // back, an odd length and a padded batch. The ring forward also stops at each row's last real
  // token (the segments after it hold only pads): rows with a long pad tail and one with no real
  // token, and a state bound tight enough to bind, whose projection must still reach the final
  // states as if the pad segments had run.
  void aForwardWithoutGradientKeepsTwoSlotsAndTheSameBits() {
    for (auto [cm, co, L, bound] : std::vector<std::tuple<int64_t, int64_t, int64_t, double>>{
             {4, 8, 19, 1.5}, {3, 5, 17, 1.5}, {2, 16, 33, 1.5}, {4, 8, 19, 1.0}, {2, 3, 23, 1.0}}) {
      SmtConfig cfg;
      cfg.heads = 2;
      cfg.head_dim = 16;
      cfg.chunk_memory = cm;
      cfg.chunk_other = co;
      cfg.eta_max = 1.0;
      cfg.dampen = true;
      cfg.state_bound = bound;
      torch::manual_seed(41);
      SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(torch::kFloat32), 0.6);
      if (bound == 1.0) {  // large unclamped writes with heavy momentum: the state grows past the bound
        cfg.eta_scale = 5.0;
        cfg.eta_max = 0;  // unbounded η
        cfg.clamp = false;
        cfg.momentum = 0.9;
        cfg.dampen = false;
      }
      const Tensor x = torch::randn({5, 4, 2, L, 16}), q = torch::randn({5, 2, L, 16});
      Tensor mask = torch::ones({5, L});
      mask[1].narrow(0, L - 5, 5).zero_();
      mask[2].narrow(0, 3, L - 3).zero_();  // 3 real tokens, then pads only
      mask[3].zero_();                      // no real token
      mask[4].narrow(0, 0, 2).zero_();      // left padding and a pad tail
      mask[4].narrow(0, L - 7, 7).zero_();
      SmtResult ref;
      {
        p.W1.requires_grad_(true);  // the checkpointed forward (a reverse pass could follow)
        ref = smt_chunked(cfg, p, x, q, mask);
        p.W1 = p.W1.detach();
      }
      torch::NoGradGuard ng;
      const SmtResult r = smt_chunked(cfg, p, x, q, mask);
      QVERIFY(r.fused && ref.fused);
      const std::vector<std::pair<Tensor, Tensor>> pairs = {{r.y, ref.y},   {r.W1, ref.W1},
                                                            {r.W2, ref.W2}, {r.S1, ref.S1},
                                                            {r.S2, ref.S2}, {r.loss_tokens, ref.loss_tokens}};
      for (size_t i = 0; i < pairs.size(); ++i)
        QVERIFY2(
            torch::equal(pairs[i].first, pairs[i].second.detach()),
            qPrintable(QString("chunks %1/%2, L %3, bound %4, output %5").arg(cm).arg(co).arg(L).arg(bound).arg(i)));
      QCOMPARE(r.clamped, ref.clamped);
      if (bound == 1.0)  // the tight bound binds (else this case would not test the projection of pad segments)
        QVERIFY(!torch::equal(r.W1, smt_chunked(
                                        [&] {
                                          SmtConfig loose = cfg;
                                          loose.state_bound = 0;
                                          return loose;
                                        }(),
                                        p, x, q, mask)
                                        .W1));
    }
  }

  // An evaluation forward (no gradient, level_stats false): the whole-sequence kernel reads the
  // start state broadcast over the batch from one copy (SmtSequenceArgs::shared_start) and copies
  // no final state out; y, the per-token losses and the clamp count keep every bit. Start states
  // that differ per sequence (no broadcast) take the per-sequence copies and give their own bits.
  void anEvaluationForwardReadsOneStartStateAndKeepsItsOutputs() {
    SmtConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 16;
    cfg.eta_max = 1.0;
    cfg.state_bound = 1.5;
    torch::manual_seed(43);
    const SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(torch::kFloat32), 0.6);
    const int64_t B = 4, L = 21;
    const Tensor x = torch::randn({B, 4, 2, L, 16}), q = torch::randn({B, 2, L, 16});
    Tensor mask = torch::ones({B, L});
    mask[1].narrow(0, L - 6, 6).zero_();
    mask[3].narrow(0, 2, L - 2).zero_();
    torch::NoGradGuard ng;
    const SmtResult full = smt_chunked(cfg, p, x, q, mask);
    SmtConfig lean = cfg;
    lean.level_stats = false;
    const SmtResult r = smt_chunked(lean, p, x, q, mask);
    QVERIFY(r.fused && full.fused);
    QVERIFY(torch::equal(r.y, full.y));
    QVERIFY(torch::equal(r.loss_tokens, full.loss_tokens));
    QCOMPARE(r.clamped, full.clamped);
    QVERIFY(!r.W1.defined() && !r.S2.defined());
    QCOMPARE(r.writes_memory, int64_t(0));
    QVERIFY(full.writes_memory > 0 && full.drift_memory > 0);
    // Per-sequence start states: row 2 starts elsewhere; the kernel must read each row's own.
    hl::kernels::SmtSegmentCoeffs c;  // the defaults with cfg's η bound
    c.eta_max = cfg.eta_max;
    auto W1 = p.W1.unsqueeze(0).expand({B, 5, 2, 16, 16}).contiguous(),
         W2 = p.W2.unsqueeze(0).expand({B, 5, 2, 16, 16}).contiguous();
    W1[2].mul_(0.5);
    const Tensor xm = x.masked_fill(mask.logical_not().view({B, 1, 1, L, 1}), 0.0),
                 qm = q.masked_fill(mask.logical_not().view({B, 1, L, 1}), 0.0);
    const auto shared = smt_sequence_fused(
        c, cfg.chunk_memory, cfg.chunk_other, cfg.state_bound, p.W1.unsqueeze(0).expand({B, 5, 2, 16, 16}),
        p.W2.unsqueeze(0).expand({B, 5, 2, 16, 16}), xm, qm, mask, p.w_eta, p.b_eta, p.w_alpha, p.b_alpha);
    const auto own = smt_sequence_fused(c, cfg.chunk_memory, cfg.chunk_other, cfg.state_bound, W1, W2, xm, qm, mask,
                                        p.w_eta, p.b_eta, p.w_alpha, p.b_alpha);
    for (int64_t b : {0, 1, 3}) {
      QVERIFY(torch::equal(own.y[b], shared.y[b]));
      QVERIFY(torch::equal(own.W1[b], shared.W1[b]));
    }
    QVERIFY(!torch::equal(own.y[2], shared.y[2]));
    QVERIFY(torch::equal(own.y, smt_sequence_fused(c, cfg.chunk_memory, cfg.chunk_other, cfg.state_bound, W1, W2, xm,
                                                   qm, mask, p.w_eta, p.b_eta, p.w_alpha, p.b_alpha, false)
                                    .y));
  }

  // The diagnostics' per-token trace (cos(k, v), η, α, erase ÷ association) from the
  // whole-sequence kernel equals the per-op path's at every real token: float64 within 1e-10,
  // float32 within 1e-5 (absolute, or relative for the ratio), pads, chunk sizes that do not
  // divide L, separate inputs, the clamp active.
  void theKernelsDiagnosticsTraceMatchesThePerOpPath() {
    for (auto [dt, tol] : {std::pair{torch::kFloat64, 1e-10}, std::pair{torch::kFloat32, 1e-5}})
      for (auto [cm, co, X] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{4, 8, 1}, {3, 5, 4}}) {
        SmtConfig cfg;
        cfg.heads = 2;
        cfg.head_dim = 8;
        cfg.chunk_memory = cm;
        cfg.chunk_other = co;
        cfg.eta_scale = 2.0;  // large writes: the clamp binds
        cfg.state_bound = 1.5;
        torch::manual_seed(44);
        const SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(dt), 0.6);
        const int64_t B = 3, L = 17;
        const Tensor x = X == 1 ? torch::randn({B, 2, L, 8}, dt) : torch::randn({B, 4, 2, L, 8}, dt);
        const Tensor q = torch::randn({B, 2, L, 8}, dt);
        Tensor mask = torch::ones({B, L});
        mask[1].narrow(0, L - 9, 9).zero_();
        mask[2].narrow(0, 0, 2).zero_();
        torch::NoGradGuard ng;
        SmtTrace kt, rt;
        const SmtResult k = smt_chunked(cfg, p, x, q, mask, &kt);
        SmtConfig perOp = cfg;
        perOp.fused = false;
        const SmtResult r = smt_chunked(perOp, p, x, q, mask, &rt);
        QVERIFY(k.fused && !r.fused);
        QCOMPARE(int(kt.cos_kv.size()), 1);  // one entry: the kernel's
        QVERIFY(rt.cos_kv.size() > 1);       // one per segment
        QVERIFY(k.clamped > 0);
        QCOMPARE(k.clamped, r.clamped);
        const Tensor v = torch::cat(rt.valid, -1).unsqueeze(1).expand({B, 2, L});
        QVERIFY(torch::equal(torch::cat(kt.valid, -1), torch::cat(rt.valid, -1)));
        const std::vector<std::pair<const std::vector<Tensor>*, const std::vector<Tensor>*>> parts = {
            {&kt.cos_kv, &rt.cos_kv},
            {&kt.eta, &rt.eta},
            {&kt.alpha, &rt.alpha},
            {&kt.erase_over_assoc, &rt.erase_over_assoc}};
        for (size_t i = 0; i < parts.size(); ++i) {
          const Tensor a = torch::cat(*parts[i].first, -1).masked_select(v).to(torch::kFloat64);
          const Tensor b = torch::cat(*parts[i].second, -1).masked_select(v).to(torch::kFloat64);
          const double err = ((a - b).abs() / b.abs().clamp_min(1.0)).max().item<double>();
          QVERIFY2(err < tol, qPrintable(QString("dtype %1, chunks %2/%3, X %4, quantity %5: %6")
                                             .arg(dt == torch::kFloat64 ? 64 : 32)
                                             .arg(cm)
                                             .arg(co)
                                             .arg(X)
                                             .arg(i)
                                             .arg(err)));
          QVERIFY(b.abs().max().item<double>() > 0);
        }
        QVERIFY((k.y - r.y).abs().max().item<double>() < tol * 10);
      }
  }

  void wholeSegmentSecondDerivativeThrowsAndBadShapesAreRefused() {
    const WholeSeg w = makeWholeSeg(1, 1, 2, 4, 4, 1, 3);
    hl::kernels::SmtSegmentCoeffs c;
    std::vector<Tensor> v = w.v;
    v[0] = v[0].clone().requires_grad_(true);
    const auto o = wholeOut(c, v, w.valid);
    bool threw = false;
    try {
      torch::autograd::grad({o[0].pow(2).sum()}, {v[0]}, {}, true, /*create_graph=*/true);
    } catch (const std::exception& e) {
      threw = QString(e.what()).contains("reference");
    }
    QVERIFY(threw);
    std::vector<Tensor> bad = w.v;
    bad[1] = bad[1].transpose(-1, -2).contiguous().narrow(-1, 0, 3);
    QVERIFY_THROWS_EXCEPTION(c10::Error, wholeOut(c, bad, w.valid));
    bad = w.v;
    bad[6] = bad[6].to(torch::kFloat32);
    QVERIFY_THROWS_EXCEPTION(c10::Error, wholeOut(c, bad, w.valid));
  }

  // The whole-sequence function: a second derivative throws and names the reference path; shapes
  // that do not fit are refused with a message.
  void wholeSequenceSecondDerivativeThrowsAndBadShapesAreRefused() {
    torch::manual_seed(4);
    const int64_t B = 2, H = 1, L = 6, D = 4, F = 4;
    Tensor W1 = (torch::randn({B, 5, H, D, F}, kF64) * 0.4).requires_grad_(true);
    const Tensor W2 = torch::randn({B, 5, H, F, D}, kF64) * 0.6, x = torch::randn({B, 4, H, L, D}, kF64),
                 q = torch::randn({B, H, L, D}, kF64), valid = torch::ones({B, L}, kF64);
    const Tensor we = torch::randn({H, D}, kF64), be = torch::zeros({H}, kF64);
    hl::kernels::SmtSegmentCoeffs c;
    const auto o = smt_sequence_fused(c, 2, 4, 1.5, W1, W2, x, q, valid, we, be, we, be);
    QCOMPARE(o.y.sizes(), q.sizes());
    bool threw = false;
    try {
      torch::autograd::grad({o.y.pow(2).sum()}, {W1}, {}, true, /*create_graph=*/true);
    } catch (const std::exception& e) {
      threw = QString(e.what()).contains("reference");
    }
    QVERIFY(threw);
    {  // checkpoint buffers are pooled: a later call must not overwrite what an earlier one returned
      torch::NoGradGuard ng;  // one sequence and one head: the case where a reshape could be a view
      auto one = [](const Tensor& t) { return t.narrow(0, 0, 1).contiguous(); };
      const auto a = smt_sequence_fused(c, 2, 4, 1.5, one(W1), one(W2), one(x), one(q), one(valid), we, be, we, be);
      const std::vector<Tensor> keep = {a.y.clone(), a.W1.clone(), a.W2.clone(), a.S1.clone(), a.S2.clone()};
      const auto b =
          smt_sequence_fused(c, 2, 4, 1.5, one(W1) * 0.5, one(W2), one(x) * 2, one(q), one(valid), we, be, we, be);
      const std::vector<Tensor> now = {a.y, a.W1, a.W2, a.S1, a.S2};
      for (size_t i = 0; i < keep.size(); ++i) QVERIFY2(torch::equal(keep[i], now[i]), qPrintable(QString::number(i)));
      QVERIFY(!torch::equal(a.W1, b.W1));
    }
    QVERIFY_THROWS_EXCEPTION(c10::Error,
                             smt_sequence_fused(c, 2, 4, 0, W1, W2, x, q.narrow(2, 0, L - 1), valid, we, be, we, be));
    QVERIFY_THROWS_EXCEPTION(c10::Error, smt_sequence_fused(c, 0, 4, 0, W1, W2, x, q, valid, we, be, we, be));
    QVERIFY_THROWS_EXCEPTION(c10::Error,
                             smt_sequence_fused(c, 2, 4, 0, W1, W2.to(torch::kFloat32), x, q, valid, we, be, we, be));
  }

  void otherDtypesAndTheReferenceSwitchTakeTheLibTorchPath() {
    SmtConfig cfg;
    cfg.heads = 1;
    cfg.head_dim = 8;
    const SmtParams p = smt_init_params(cfg, 0.9, torch::dtype(torch::kBFloat16), 0.5);
    const Tensor x = torch::randn({1, 1, 5, 8}).to(torch::kBFloat16), q = x.clone();
    QVERIFY(!smt_chunked(cfg, p, x, q).fused);
    cfg.fused = false;
    const SmtParams p32 = smt_init_params(cfg, 0.9, torch::dtype(torch::kFloat32), 0.5);
    QVERIFY(!smt_chunked(cfg, p32, x.to(torch::kFloat32), q.to(torch::kFloat32)).fused);
    cfg.fused = true;
    QVERIFY(smt_chunked(cfg, p32, x.to(torch::kFloat32), q.to(torch::kFloat32)).fused);
  }

  // The Titans long-term memory's kernel (lmm_fused) against the LibTorch chunked path:
  // values and the gradients of every input, float64 1e-10 / 1e-9 relative, over hidden widths
  // other than D, lengths that chunks do not divide, a ragged batch whose pads hold NaN, a θ large
  // enough that the clamp binds on some tokens and not others, a binding state bound, start states
  // per head and per sequence, and stop-grad writes on and off.
  void titansMemoryKernelMatchesTheChunkedPath_data() {
    QTest::addColumn<int>("D");
    QTest::addColumn<int>("F");
    QTest::addColumn<int>("chunk");
    QTest::addColumn<int>("len");
    QTest::addColumn<double>("bound");
    QTest::addColumn<bool>("perSequence");
    QTest::addColumn<bool>("stopGrad");
    QTest::newRow("D16_C4_L13") << 16 << 16 << 4 << 13 << 0.0 << false << false;
    QTest::newRow("D8_F12_C5_L21_bound") << 8 << 12 << 5 << 21 << 1.0 << false << false;
    QTest::newRow("D32_C1_L7") << 32 << 32 << 1 << 7 << 0.0 << false << false;
    QTest::newRow("D6_F5_C8_L19_perseq_bound") << 6 << 5 << 8 << 19 << 1.0 << true << false;
    QTest::newRow("D16_C4_L13_stopgrad") << 16 << 16 << 4 << 13 << 1.0 << false << true;
  }
  void titansMemoryKernelMatchesTheChunkedPath() {
    QFETCH(int, D);
    QFETCH(int, F);
    QFETCH(int, chunk);
    QFETCH(int, len);
    QFETCH(double, bound);
    QFETCH(bool, perSequence);
    QFETCH(bool, stopGrad);
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = D;
    cfg.hidden = F;
    cfg.chunk = chunk;
    cfg.state_bound = bound;
    cfg.stop_grad_writes = stopGrad;
    const int64_t B = 3, H = 2, L = len;
    torch::manual_seed(7 + D + chunk);
    LmmState init = lmm_init_state(cfg, kF64, 0.5);
    init.S1 = init.S2 = Tensor();
    if (perSequence) {
      init.W1 = init.W1.unsqueeze(0).repeat({B, 1, 1, 1}) + 0.05 * torch::randn({B, H, D, F}, kF64);
      init.W2 = init.W2.unsqueeze(0).repeat({B, 1, 1, 1}) + 0.05 * torch::randn({B, H, F, D}, kF64);
    }
    auto unit = [](Tensor t) {
      return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(-1));
    };
    Tensor q = unit(torch::randn({B, H, L, D}, kF64)), k = unit(torch::randn({B, H, L, D}, kF64));
    Tensor v = torch::randn({B, H, L, D}, kF64) * 0.5;
    // θ from 0.05 to 1.5: the clamp's cap b / (3‖u‖²) is 0.6 for a unit k, so it binds on some tokens.
    Tensor theta = 0.05 + 1.45 * torch::rand({B, H, L}, kF64);
    Tensor eta = 0.5 + 0.45 * torch::rand({B, H, L}, kF64), alpha = 0.1 * torch::rand({B, H, L}, kF64);
    Tensor mask = torch::ones({B, L}, torch::kBool);
    mask.index_put_({1, I::Slice(L - 5, I::None)}, false);
    mask.index_put_({2, I::Slice(1, I::None)}, false);
    const Tensor pads = mask.logical_not().view({B, 1, L, 1}).expand({B, H, L, D});
    const double nan = std::numeric_limits<double>::quiet_NaN();
    q = q.masked_fill(pads, nan), k = k.masked_fill(pads, nan), v = v.masked_fill(pads, nan);
    theta = theta.masked_fill(pads.select(3, 0), nan);
    std::vector<Tensor*> leaves = {&init.W1, &init.W2, &q, &k, &v, &theta, &eta, &alpha};
    struct Run {
      LmmResult r;
      std::vector<Tensor> grads;
    };
    auto run = [&](bool fused) {
      std::vector<Tensor> xs;
      for (Tensor* t : leaves) xs.push_back(t->detach().clone().requires_grad_(true));
      LmmState st;
      st.W1 = xs[0], st.W2 = xs[1];
      Run out;
      out.r = fused ? lmm_fused(cfg, st, xs[2], xs[3], xs[4], xs[5], xs[6], xs[7], mask)
                    : lmm_chunked(cfg, st, xs[2], xs[3], xs[4], xs[5], xs[6], xs[7], mask);
      torch::manual_seed(99);
      const Tensor R = torch::randn(out.r.y.sizes(), kF64);
      (out.r.y * R).sum().backward();
      for (auto& x : xs) out.grads.push_back(x.grad().defined() ? x.grad() : torch::zeros_like(x));
      return out;
    };
    const Run f = run(true), c = run(false);
    QVERIFY(f.r.fused);
    QVERIFY(!c.r.fused);
    QVERIFY(torch::isfinite(f.r.y).all().item<bool>());
    QVERIFY2(relErr(f.r.y, c.r.y) < 1e-10, qPrintable(QString("y %1").arg(relErr(f.r.y, c.r.y))));
    QVERIFY(relErr(f.r.loss_per_chunk, c.r.loss_per_chunk) < 1e-10);
    QVERIFY(relErr(f.r.drift, c.r.drift) < 1e-10);
    QVERIFY(relErr(f.r.final_state.W1, c.r.final_state.W1) < 1e-10);
    QVERIFY(relErr(f.r.final_state.W2, c.r.final_state.W2) < 1e-10);
    QVERIFY(relErr(f.r.final_state.S1, c.r.final_state.S1) < 1e-10);
    QVERIFY(relErr(f.r.final_state.S2, c.r.final_state.S2) < 1e-10);
    QCOMPARE(f.r.clamped, c.r.clamped);
    QCOMPARE(f.r.writes, c.r.writes);
    QVERIFY(f.r.clamped > 0);                                            // the clamp binds on some tokens ...
    QVERIFY(f.r.clamped < 2 * int64_t(mask.sum().item<int64_t>()) * H);  // ... not on all
    const char* names[] = {"W1", "W2", "q", "k", "v", "theta", "eta", "alpha"};
    for (size_t i = 0; i < f.grads.size(); ++i) {
      QVERIFY2(torch::isfinite(f.grads[i]).all().item<bool>(), names[i]);
      const double e = (f.grads[i] - c.grads[i]).abs().max().item<double>() /
                       std::max(c.grads[i].abs().max().item<double>(), 1e-300);
      QVERIFY2(e < 1e-9, qPrintable(QString("gradient of %1: %2").arg(names[i]).arg(e)));
    }
    if (stopGrad)
      QCOMPARE(f.grads[3].abs().max().item<double>(), 0.0);  // writes carry no gradient to k
    else
      QVERIFY(f.grads[3].abs().max().item<double>() > 0);
  }

  // The same in float32 (1e-5 relative in values, 1e-4 in gradients), an evaluation forward (no
  // gradient: no checkpoint kept) with the same outputs, and another device or dtype falling back.
  // The kernel's reverse pass against central differences (h 1e-6, float64) for every entry of
  // every input, on a case where the clamp binds on some tokens and the state bound binds; and the
  // same bits with 1, 2 and 1 threads.
  void titansMemoryKernelReversePassMatchesCentralDifferences() {
    LmmConfig cfg;
    cfg.heads = 1;
    cfg.head_dim = 3;
    cfg.hidden = 2;
    cfg.chunk = 2;
    cfg.state_bound = 1.0;
    torch::manual_seed(5);
    LmmState init = lmm_init_state(cfg, kF64, 0.8);
    init.S1 = init.S2 = Tensor();
    const int64_t B = 2, L = 5;
    std::vector<Tensor> xs = {init.W1.clone(),
                              init.W2.clone(),
                              torch::randn({B, 1, L, 3}, kF64) * 0.7,
                              torch::randn({B, 1, L, 3}, kF64) * 0.7,
                              torch::randn({B, 1, L, 3}, kF64),
                              0.2 + 1.5 * torch::rand({B, 1, L}, kF64),
                              0.3 + 0.6 * torch::rand({B, 1, L}, kF64),
                              0.2 * torch::rand({B, 1, L}, kF64)};
    Tensor mask = torch::ones({B, L}, torch::kBool);
    mask.index_put_({1, 4}, false);
    const Tensor R = torch::randn({B, 1, L, 3}, kF64);
    auto f = [&](const std::vector<Tensor>& in, LmmResult* out = nullptr) {
      LmmState st;
      st.W1 = in[0], st.W2 = in[1];
      const LmmResult r = lmm_fused(cfg, st, in[2], in[3], in[4], in[5], in[6], in[7], mask);
      if (out) *out = r;
      return (r.y * R).sum();
    };
    std::vector<Tensor> leaves;
    for (auto& x : xs) leaves.push_back(x.clone().requires_grad_(true));
    LmmResult r;
    f(leaves, &r).backward();
    QVERIFY(r.fused);
    QVERIFY(r.clamped > 0);
    const double h = 1e-6;
    for (size_t i = 0; i < xs.size(); ++i) {
      const Tensor flat = xs[i].view(-1);
      const Tensor g = leaves[i].grad().view(-1);
      for (int64_t j = 0; j < flat.numel(); ++j) {
        std::vector<Tensor> plus = xs, minus = xs;
        plus[i] = xs[i].clone(), minus[i] = xs[i].clone();
        plus[i].view(-1)[j] += h;
        minus[i].view(-1)[j] -= h;
        torch::NoGradGuard ng;
        const double num = (f(plus).item<double>() - f(minus).item<double>()) / (2 * h);
        QVERIFY2(std::abs(num - g[j].item<double>()) < 1e-6 * std::max(1.0, std::abs(num)),
                 qPrintable(QString("input %1 entry %2: %3 vs %4").arg(i).arg(j).arg(g[j].item<double>()).arg(num)));
      }
    }
    // Determinism across thread counts (float32, a batch the threads split).
    const int threads = torch::get_num_threads();
    std::vector<Tensor> first;
    for (int t : {1, 2, 1}) {
      torch::set_num_threads(t);
      std::vector<Tensor> in;
      for (auto& x : xs) in.push_back(x.to(torch::kFloat32).clone().requires_grad_(true));
      LmmState st;
      st.W1 = in[0], st.W2 = in[1];
      const LmmResult rr = lmm_fused(cfg, st, in[2], in[3], in[4], in[5], in[6], in[7], mask);
      (rr.y * R.to(torch::kFloat32)).sum().backward();
      std::vector<Tensor> got = {rr.y.detach()};
      for (auto& x : in) got.push_back(x.grad());
      if (first.empty())
        first = got;
      else
        for (size_t i = 0; i < got.size(); ++i) QVERIFY(torch::equal(got[i], first[i]));
    }
    torch::set_num_threads(threads);
  }

  void titansMemoryKernelInFloat32AndWithoutGradient() {
    LmmConfig cfg;
    cfg.heads = 4;
    cfg.head_dim = 32;
    cfg.chunk = 4;
    cfg.state_bound = 2.0;
    const int64_t B = 4, L = 37;
    torch::manual_seed(3);
    const auto f32 = torch::dtype(torch::kFloat32);
    LmmState init = lmm_init_state(cfg, f32, 0.1);
    init.S1 = init.S2 = Tensor();
    auto unit = [](Tensor t) {
      return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(-1));
    };
    const Tensor q = unit(torch::randn({B, 4, L, 32}, f32)), k = unit(torch::randn({B, 4, L, 32}, f32));
    const Tensor v = torch::randn({B, 4, L, 32}, f32);
    const Tensor theta = 0.3 * torch::rand({B, 4, L}, f32), eta = 0.9 * torch::rand({B, 4, L}, f32);
    const Tensor alpha = 0.01 * torch::rand({B, 4, L}, f32);
    Tensor mask = torch::ones({B, L}, torch::kBool);
    mask.index_put_({0, I::Slice(20, I::None)}, false);
    auto grads = [&](bool fused) {
      Tensor qq = q.clone().requires_grad_(true), W1 = init.W1.clone().requires_grad_(true);
      LmmState st;
      st.W1 = W1, st.W2 = init.W2;
      const LmmResult r = fused ? lmm_fused(cfg, st, qq, k, v, theta, eta, alpha, mask)
                                : lmm_chunked(cfg, st, qq, k, v, theta, eta, alpha, mask);
      (r.y * v).sum().backward();
      return std::make_tuple(r.y.detach(), qq.grad(), W1.grad());
    };
    const auto [yf, gqf, gwf] = grads(true);
    const auto [yc, gqc, gwc] = grads(false);
    QVERIFY2(relErr(yf, yc) < 1e-5, qPrintable(QString::number(relErr(yf, yc))));
    QVERIFY2(relErr(gqf, gqc) < 1e-4, qPrintable(QString::number(relErr(gqf, gqc))));
    QVERIFY2(relErr(gwf, gwc) < 1e-4, qPrintable(QString::number(relErr(gwf, gwc))));
    {
      torch::NoGradGuard ng;
      const LmmResult r = lmm_fused(cfg, init, q, k, v, theta, eta, alpha, mask);
      QVERIFY(r.fused);
      QVERIFY(!r.y.requires_grad());
      QVERIFY(torch::equal(r.y, yf));  // the same bits as the training forward
    }
    // Half precision and an incoming momentum take the LibTorch path.
    LmmState withMomentum = init;
    withMomentum.S1 = torch::zeros_like(init.W1);
    QVERIFY(!lmm_fused(cfg, withMomentum, q, k, v, theta, eta, alpha, mask).fused);
    QVERIFY(!lmm_fused_applies(q.to(torch::kBFloat16)));
  }

  void memoryHeadWriteMatchesThePerKeyLoop() {
    for (auto [dt, tol] : {std::pair{torch::kFloat64, 1e-11}, std::pair{torch::kFloat32, 2e-5}}) {
      HeadCase ref = headCase(dt, 48, 7, 24, 5), ker = headCase(dt, 48, 7, 24, 5), rows = headCase(dt, 48, 7, 24, 5);
      int64_t c_ref = 0, c_ker = 0, c_rows = 0;
      const double l_ref = headLoop(ref, 0.5, 0.99, 0.9, &c_ref);
      double l_ker = 0;
      if (dt == torch::kFloat64)
        l_ker = hl::kernels::memory_head_write<double>(ker.W.data_ptr<double>(), ker.S.data_ptr<double>(),
                                                       ker.keys.data_ptr<double>(), ker.labels.data_ptr<int64_t>(), 48,
                                                       7, 24, 0.5, 0.99, 0.9, &c_ker);
      else
        l_ker = hl::kernels::memory_head_write<float>(ker.W.data_ptr<float>(), ker.S.data_ptr<float>(),
                                                      ker.keys.data_ptr<float>(), ker.labels.data_ptr<int64_t>(), 48, 7,
                                                      24, 0.5, 0.99, 0.9, &c_ker);
      const double l_rows = hl::models::dgd_write_rows(rows.W, rows.S, rows.keys, rows.labels, 0.5, 0.99, 0.9, &c_rows);
      QVERIFY2(c_ref > 0 && c_ref < 48, "the clamp binds for some keys, not all");
      QCOMPARE(c_ker, c_ref);
      QCOMPARE(c_rows, c_ref);
      for (const auto* h : {&ker, &rows}) {
        const double scale = ref.W.abs().max().item<double>();
        QVERIFY2((h->W - ref.W).abs().max().item<double>() <= tol * scale, "W differs from the loop");
        QVERIFY2((h->S - ref.S).abs().max().item<double>() <= tol * scale, "S differs from the loop");
      }
      QVERIFY(std::abs(l_ker - l_ref) <= tol * std::abs(l_ref));
      QVERIFY(std::abs(l_rows - l_ref) <= tol * std::abs(l_ref));
    }
  }

  void memoryHeadWriteRefusesALabelOutOfRangeBeforeWriting() {
    HeadCase h = headCase(torch::kFloat64, 6, 5, 8, 2);
    h.labels[4] = 5;  // C = 5: out of range
    const Tensor W0 = h.W.clone();
    int64_t cl = 0;
    QCOMPARE(hl::kernels::memory_head_write<double>(h.W.data_ptr<double>(), h.S.data_ptr<double>(),
                                                    h.keys.data_ptr<double>(), h.labels.data_ptr<int64_t>(), 6, 5, 8,
                                                    0.5, 1.0, 0.9, &cl),
             -1.0);
    QVERIFY(torch::equal(h.W, W0));  // nothing written, not even the keys before the bad one
    QCOMPARE(cl, int64_t(0));
  }

  // ---- CUDA (CTest test_kernels_gpu, label gpu; each skips with the reason without a GPU) ----

  // The CUDA segment write against the CPU kernel: float64 values 1e-10 and gradients 1e-9 over
  // head widths 4-128, tokens 1-8, odd shapes, pads, DGD on and off, heavy and light momentum;
  // float32 against the float64 recurrence 1e-5 / 1e-4.
  void cudaSegmentWriteMatchesTheCpuKernel() {
    HL_REQUIRE_CUDA();
    const torch::Device gpu(torch::kCUDA);
    auto onGpu = [&](Seg s) {
      for (Tensor* t : {&s.W0, &s.S0, &s.U, &s.G, &s.eta, &s.alpha, &s.valid}) *t = t->to(gpu);
      return s;
    };
    for (auto [N, n, O, I] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
             {3, 1, 4, 4}, {5, 4, 16, 16}, {4, 7, 32, 32}, {2, 8, 128, 128}, {6, 3, 17, 9}, {3, 5, 24, 40}}) {
      for (auto [beta, damp, dgd] : std::vector<std::tuple<double, double, bool>>{
               {0.5, 0.5, true}, {0.9, 1.0, true}, {0.0, 1.0, false}, {0.99, 0.01, true}}) {
        const QString what =
            QString("N %1 n %2 O %3 I %4 beta %5 dgd %6").arg(N).arg(n).arg(O).arg(I).arg(beta).arg(dgd);
        const Seg s = makeSeg(N, n, O, I, torch::kFloat64, 11 + n), sg = onGpu(s);
        auto [Wc, Sc] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, beta, damp, dgd);
        auto [Wg, Sg] = segment_write_fused(sg.W0, sg.S0, sg.U, sg.G, sg.eta, sg.alpha, sg.valid, beta, damp, dgd);
        QVERIFY2(Wg.is_cuda() && Sg.is_cuda(), qPrintable(what));
        QVERIFY2(relErr(Wg.cpu(), Wc) < 1e-10 && relErr(Sg.cpu(), Sc) < 1e-10,
                 qPrintable(what + QString(": W %1 S %2").arg(relErr(Wg.cpu(), Wc)).arg(relErr(Sg.cpu(), Sc))));
        const auto gc = gradsOf(s, true, beta, damp, dgd, 5), gg = gradsOf(sg, true, beta, damp, dgd, 5);
        for (size_t i = 0; i < gc.size(); ++i)
          QVERIFY2(relErr(gg[i].cpu(), gc[i]) < 1e-9,
                   qPrintable(what + QString(": gradient %1: %2").arg(i).arg(relErr(gg[i].cpu(), gc[i]))));
      }
    }
    const Seg s64 = makeSeg(8, 6, 32, 32, torch::kFloat64, 21);
    Seg s32 = s64;
    for (Tensor* t : {&s32.W0, &s32.S0, &s32.U, &s32.G, &s32.eta, &s32.alpha, &s32.valid})
      *t = t->to(gpu, torch::kFloat32);
    auto [W32, S32] = segment_write_fused(s32.W0, s32.S0, s32.U, s32.G, s32.eta, s32.alpha, s32.valid, 0.5, 0.5, true);
    auto [W64, S64] = literal(s64, 0.5, 0.5, true);
    QVERIFY2(relErr(W32.to(torch::kCPU, torch::kFloat64), W64) < 1e-5 &&
                 relErr(S32.to(torch::kCPU, torch::kFloat64), S64) < 1e-5,
             "float32 values");
    const auto g32 = gradsOf(s32, true, 0.5, 0.5, true, 2), g64 = gradsOf(s64, false, 0.5, 0.5, true, 2);
    for (size_t i = 0; i < g32.size(); ++i)
      QVERIFY2(
          relErr(g32[i].to(torch::kCPU, torch::kFloat64), g64[i]) < 1e-4,
          qPrintable(
              QString("float32 gradient %1: %2").arg(i).arg(relErr(g32[i].to(torch::kCPU, torch::kFloat64), g64[i]))));
  }

  // Every reduction of the CUDA kernel has a fixed order: two runs give the same bits.
  void cudaSegmentWriteIsDeterministic() {
    HL_REQUIRE_CUDA();
    Seg s = makeSeg(64, 4, 32, 32, torch::kFloat32, 4);
    for (Tensor* t : {&s.W0, &s.S0, &s.U, &s.G, &s.eta, &s.alpha, &s.valid}) *t = t->to(torch::kCUDA);
    std::vector<std::vector<Tensor>> runs;
    for (int r = 0; r < 2; ++r) {
      auto [W, S] = segment_write_fused(s.W0, s.S0, s.U, s.G, s.eta, s.alpha, s.valid, 0.5, 0.5, true);
      auto g = gradsOf(s, true, 0.5, 0.5, true, 3);
      g.push_back(W);
      g.push_back(S);
      runs.push_back(g);
    }
    for (size_t i = 0; i < runs[0].size(); ++i) QVERIFY(torch::equal(runs[0][i], runs[1][i]));
  }

  // The whole fast path on CUDA (per-op recurrence with the CUDA segment write) against the CPU
  // LibTorch path, every case of smtFastPathWithTheKernelEqualsTheLibTorchPath, float64.
  void cudaFastPathEqualsTheCpuLibTorchPath() {
    HL_REQUIRE_CUDA();
    for (const SmtCase& c : smtCases()) {
      const SmtRun gpu = runSmtCase(c, true, torch::Device(torch::kCUDA)),
                   ref = runSmtCase(c, false, torch::Device(torch::kCPU));
      QVERIFY2(gpu.r.fused, qPrintable(describe(c) + ": the CUDA run did not take the fused segment write"));
      compareSmtRuns(c, gpu, ref);
      if (QTest::currentTestFailed()) return;
    }
  }

  // Without a GPU the CUDA tests skip (and say why) rather than pass vacuously; this one always
  // runs: the fused path's reach matches the build.
  void cudaReachFollowsTheBuild() {
    const Tensor w = torch::zeros({2, 3, 3}, kF64);
    QVERIFY(segment_write_fused_applies(w));
    QVERIFY(smt_fused_applies(w));
    if (cuda_kernels_built() && torch::cuda::is_available()) {
      QVERIFY(segment_write_fused_applies(w.to(torch::kCUDA)));
      QVERIFY(!smt_fused_applies(w.to(torch::kCUDA)));
    }
    QVERIFY(!segment_write_fused_applies(w.to(torch::kBFloat16)));
  }
};

QTEST_APPLESS_MAIN(TestKernels)
#include "test_kernels.moc"
