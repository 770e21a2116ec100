// Science tests of engine/memory/selfmod_titans: the fast path equals the token-by-token
// reference (values, final states and gradients) for chunk sizes 1..16, every dgd_layers and
// inner_objective, ragged and padded batches; one write equals the DGD formula computed by hand;
// gradients through the inner writes match finite differences; padding never writes; stop-grad
// writes cut the write path; clamping keeps the state finite and is counted; the output memory
// learns in context.
#include "engine/torch_wrap.h"  // before any Qt header (TOOLCHAIN.md §4.1)

#include "engine/memory/selfmod_titans.h"

#include <QtTest>

#include <tuple>
#include <vector>

using namespace hl::memory;
using torch::Tensor;
namespace I = torch::indexing;

namespace {

const auto kF64 = torch::dtype(torch::kFloat64);

struct Inputs {
  SmtParams p;
  Tensor x, q, mask;
};

Inputs makeInputs(const SmtConfig& cfg, int64_t B, int64_t L, uint64_t seed) {
  torch::manual_seed(seed);
  Inputs in;
  in.p = smt_init_params(cfg, 0.95, kF64, 0.5);
  in.p.w_eta = torch::randn_like(in.p.w_eta) * 0.5;  // data-dependent η and α that vary
  in.p.w_alpha = torch::randn_like(in.p.w_alpha) * 0.5;
  // Unit-norm memory inputs, as the block feeds them (docs/MEMORY.md).
  in.x = torch::nn::functional::normalize(torch::randn({B, cfg.heads, L, cfg.head_dim}, kF64),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
  in.q = torch::nn::functional::normalize(torch::randn({B, cfg.heads, L, cfg.head_dim}, kF64),
                                          torch::nn::functional::NormalizeFuncOptions().dim(-1));
  return in;
}

double relErr(const Tensor& a, const Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

double resultErr(const SmtResult& a, const SmtResult& b) {
  double e = 0;
  for (auto [u, v] :
       {std::pair{a.y, b.y}, {a.W1, b.W1}, {a.W2, b.W2}, {a.S1, b.S1}, {a.S2, b.S2}, {a.loss_tokens, b.loss_tokens}})
    e = std::max(e, relErr(u, v));
  return e;
}

SmtConfig config(int64_t cm, int64_t co, DgdLayers dgd = DgdLayers::PerLayer, InnerObjective obj = InnerObjective::L2) {
  SmtConfig c;
  c.heads = 2;
  c.head_dim = 4;
  c.chunk_memory = cm;
  c.chunk_other = co;
  c.eta_scale = 0.3;
  c.dgd = dgd;
  c.objective = obj;
  return c;
}

// A scalar of every output, with fixed random weights, for gradient comparisons.
Tensor probe(const SmtResult& r, uint64_t seed) {
  torch::manual_seed(seed);
  auto w = torch::randn(r.y.sizes(), kF64);
  return (r.y * w).sum() + 0.1 * r.W1.pow(2).sum() + 0.1 * r.W2.pow(2).sum();
}

}  // namespace

class TestSelfMod : public QObject {
  Q_OBJECT

 private slots:
  void chunkOneEqualsTheReference();
  void chunkedEqualsTheReferenceForEveryChunkPairAndOption();
  void gradientsOfBothPathsAgree();
  void oneWriteEqualsTheHandComputedDgdStep();
  void gradientsThroughTheWritesMatchFiniteDifferences();
  void paddedTokensNeverWrite();
  void stopGradWritesCutsTheWritePath();
  void clampingKeepsTheStateFiniteAndIsCounted();
  void writeCountsFollowTheChunkSizes();
  void theOutputMemoryLearnsInContext();
  void separateInputsBoundedEtaAndDampingAgreeWithTheReference();
  void boundedEtaAndDampedMomentumFollowTheirFormulas();
  void theStateBoundHoldsAtEveryChunkBoundaryAndBothPathsAgree();
  void writesOffReadsTheInitialStateAndWritesNothing();
};

void TestSelfMod::chunkOneEqualsTheReference() {
  auto c = config(1, 1);
  auto in = makeInputs(c, 3, 9, 1);
  auto a = smt_reference(c, in.p, in.x, in.q);
  auto b = smt_chunked(c, in.p, in.x, in.q);
  QVERIFY2(resultErr(b, a) < 1e-10, qPrintable(QString::number(resultErr(b, a))));
  QVERIFY(std::abs(a.loss_memory - b.loss_memory) < 1e-10 * std::max(1.0, a.loss_memory));
  QVERIFY(std::abs(a.drift_other - b.drift_other) < 1e-10 * std::max(1.0, a.drift_other));
  QVERIFY(a.drift_memory > 0 && a.drift_other > 0);  // the memories did change
}

void TestSelfMod::chunkedEqualsTheReferenceForEveryChunkPairAndOption() {
  const std::vector<std::pair<int64_t, int64_t>> chunks = {{2, 2}, {4, 8}, {8, 4}, {16, 16}, {3, 5}};
  int cases = 0;
  for (auto [cm, co] : chunks)
    for (auto dgd : {DgdLayers::PerLayer, DgdLayers::First, DgdLayers::None})
      for (auto obj : {InnerObjective::L2, InnerObjective::Dot}) {
        auto c = config(cm, co, dgd, obj);
        auto in = makeInputs(c, 3, 13, 100 + cases);  // 13: not divisible by any chunk > 1
        in.mask = torch::ones({3, 13}, torch::kBool);
        in.mask.index_put_({1, I::Slice(7, I::None)}, false);  // ragged: 7 and 1 real tokens
        in.mask.index_put_({2, I::Slice(1, I::None)}, false);
        auto a = smt_reference(c, in.p, in.x, in.q, in.mask);
        auto b = smt_chunked(c, in.p, in.x, in.q, in.mask);
        const double e = resultErr(b, a);
        QVERIFY2(e < 1e-10, qPrintable(QString("chunks %1/%2 case %3: %4").arg(cm).arg(co).arg(cases).arg(e)));
        QCOMPARE(a.clamped, b.clamped);
        QCOMPARE(a.writes_memory, b.writes_memory);
        ++cases;
      }
  QCOMPARE(cases, 30);
}

void TestSelfMod::gradientsOfBothPathsAgree() {
  // η scale 1.5: many writes clamp, so the gradient through the clamp (and the W2 gain) is covered.
  for (auto [cm, co, es] : std::vector<std::tuple<int64_t, int64_t, double>>{{1, 1, 0.3}, {4, 8, 0.3}, {2, 3, 1.5}}) {
    auto c = config(cm, co);
    c.eta_scale = es;
    auto in = makeInputs(c, 2, 11, 7);
    in.mask = torch::ones({2, 11}, torch::kBool);
    in.mask.index_put_({1, I::Slice(6, I::None)}, false);
    std::vector<std::vector<Tensor>> grads;
    for (int path = 0; path < 2; ++path) {
      std::vector<Tensor> leaves = {in.p.W1.clone().requires_grad_(),      in.p.W2.clone().requires_grad_(),
                                    in.p.w_eta.clone().requires_grad_(),   in.p.b_eta.clone().requires_grad_(),
                                    in.p.w_alpha.clone().requires_grad_(), in.p.b_alpha.clone().requires_grad_(),
                                    in.x.clone().requires_grad_(),         in.q.clone().requires_grad_()};
      SmtParams p{leaves[0], leaves[1], leaves[2], leaves[3], leaves[4], leaves[5]};
      auto r = path == 0 ? smt_reference(c, p, leaves[6], leaves[7], in.mask)
                         : smt_chunked(c, p, leaves[6], leaves[7], in.mask);
      if (es > 1) QVERIFY2(r.clamped > 20, qPrintable(QString::number(r.clamped)));
      grads.push_back(torch::autograd::grad({probe(r, 3)}, leaves));
    }
    for (size_t i = 0; i < grads[0].size(); ++i) {
      QVERIFY2(grads[0][i].abs().sum().item<double>() > 0, qPrintable(QString("grad %1 is zero").arg(i)));
      const double e = relErr(grads[1][i], grads[0][i]);
      QVERIFY2(e < 1e-9, qPrintable(QString("chunks %1/%2 grad %3: %4").arg(cm).arg(co).arg(i).arg(e)));
    }
  }
}

// One token, one write, computed here from the formulas of docs/MEMORY.md with no code shared
// with the library: e = 2(M(k) − v̂), G1 = e aᵀ, G2 = ((W1ᵀe) ⊙ σ'(h)) kᵀ, S = −ηG,
// W2' = W2(αI − η k kᵀ) + S2, W1' = W1(αI − η a aᵀ) + S1.
void TestSelfMod::oneWriteEqualsTheHandComputedDgdStep() {
  auto c = config(1, 1);
  c.heads = 1;
  c.clamp = false;
  auto in = makeInputs(c, 1, 1, 11);
  auto r = smt_chunked(c, in.p, in.x, in.q);
  auto silu = [](const Tensor& t) { return t * torch::sigmoid(t); };
  auto Mx = [&](int64_t m, const Tensor& v) {  // v [D]
    auto W1 = in.p.W1[m][0], W2 = in.p.W2[m][0];
    return v + W1.mv(silu(W2.mv(v)));
  };
  auto xv = in.x[0][0][0];
  auto k = Mx(kSmtKey, xv);
  k = k / k.norm();
  auto v = Mx(kSmtValue, xv);
  v = v / v.norm();
  const double eta =
      c.eta_scale * torch::nn::functional::softplus(in.p.w_eta[0].dot(Mx(kSmtEta, xv)) + in.p.b_eta[0]).item<double>();
  const double alpha = torch::sigmoid(in.p.w_alpha[0].dot(Mx(kSmtAlpha, xv)) + in.p.b_alpha[0]).item<double>();
  for (int64_t m = 0; m < kSmtMemories; ++m) {
    auto W1 = in.p.W1[m][0], W2 = in.p.W2[m][0];
    auto h = W2.mv(k);
    auto a = silu(h);
    auto e = 2.0 * (Mx(m, k) - Mx(m, v));
    auto sg = torch::sigmoid(h);
    auto delta = W1.t().mv(e) * (sg * (1 + h * (1 - sg)));
    auto eyeD = torch::eye(k.size(0), kF64), eyeF = torch::eye(a.size(0), kF64);
    auto W2n = W2.mm(alpha * eyeD - eta * torch::outer(k, k)) - eta * torch::outer(delta, k);
    auto W1n = W1.mm(alpha * eyeF - eta * torch::outer(a, a)) - eta * torch::outer(e, a);
    QVERIFY2(relErr(r.W2[0][m][0], W2n) < 1e-12, qPrintable(QString("memory %1 W2").arg(m)));
    QVERIFY2(relErr(r.W1[0][m][0], W1n) < 1e-12, qPrintable(QString("memory %1 W1").arg(m)));
    QVERIFY(relErr(r.S2[0][m][0], -eta * torch::outer(delta, k)) < 1e-12);
  }
  // The read is the output memory at its initial state.
  QVERIFY(relErr(r.y[0][0][0], Mx(kSmtOut, in.q[0][0][0])) < 1e-12);
}

void TestSelfMod::gradientsThroughTheWritesMatchFiniteDifferences() {
  auto c = config(2, 3);
  auto in = makeInputs(c, 2, 7, 21);
  in.mask = torch::ones({2, 7}, torch::kBool);
  in.mask.index_put_({1, I::Slice(5, I::None)}, false);
  // Loss on the outputs of late tokens only: their value depends on the earlier writes.
  auto lossOf = [&](const SmtParams& p, const Tensor& x) {
    auto r = smt_chunked(c, p, x, in.q, in.mask);
    return probe(r, 5);
  };
  std::vector<Tensor> leaves = {in.p.W1.clone().requires_grad_(), in.p.W2.clone().requires_grad_(),
                                in.p.w_eta.clone().requires_grad_(), in.p.b_alpha.clone().requires_grad_(),
                                in.x.clone().requires_grad_()};
  auto mk = [&](const std::vector<Tensor>& l) {
    SmtParams p = in.p;
    p.W1 = l[0];
    p.W2 = l[1];
    p.w_eta = l[2];
    p.b_alpha = l[3];
    return p;
  };
  auto g = torch::autograd::grad({lossOf(mk(leaves), leaves[4])}, leaves);
  torch::NoGradGuard ng;
  const double h = 1e-6;
  int checked = 0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    auto flat = leaves[i].detach().reshape({-1});
    for (int64_t idx : {int64_t(0), flat.numel() / 2, flat.numel() - 1}) {
      std::vector<Tensor> plus, minus;
      for (size_t j = 0; j < leaves.size(); ++j) {
        plus.push_back(leaves[j].detach().clone());
        minus.push_back(leaves[j].detach().clone());
      }
      plus[i].view({-1})[idx] += h;
      minus[i].view({-1})[idx] -= h;
      // Finite differences need the write path too: evaluate with grad mode on but no leaves.
      torch::AutoGradMode on(true);
      const double fd =
          (lossOf(mk(plus), plus[4]).item<double>() - lossOf(mk(minus), minus[4]).item<double>()) / (2 * h);
      const double an = g[i].reshape({-1})[idx].item<double>();
      QVERIFY2(std::abs(fd - an) <= 1e-6 * std::max(1.0, std::abs(an)),
               qPrintable(QString("leaf %1 index %2: analytic %3, numeric %4").arg(i).arg(idx).arg(an).arg(fd)));
      ++checked;
    }
  }
  QCOMPARE(checked, 15);
}

void TestSelfMod::paddedTokensNeverWrite() {
  auto c = config(4, 8);
  auto in = makeInputs(c, 2, 10, 31);
  in.mask = torch::ones({2, 10}, torch::kBool);
  in.mask.index_put_({0, I::Slice(6, I::None)}, false);
  auto x = in.x.clone();
  x.index_put_({0, I::Slice(), I::Slice(6, I::None)}, std::numeric_limits<double>::quiet_NaN());
  auto r = smt_chunked(c, in.p, x, in.q, in.mask);
  // Sequence 0 alone, truncated to its 6 real tokens.
  auto t = smt_chunked(c, in.p, in.x.index({I::Slice(0, 1), I::Slice(), I::Slice(0, 6)}),
                       in.q.index({I::Slice(0, 1), I::Slice(), I::Slice(0, 6)}));
  QVERIFY(torch::isfinite(r.y).all().item<bool>());
  QVERIFY(relErr(r.W1[0], t.W1[0]) < 1e-12);
  QVERIFY(relErr(r.W2[0], t.W2[0]) < 1e-12);
  QVERIFY(relErr(r.S2[0], t.S2[0]) < 1e-12);
  QVERIFY(relErr(r.S1[0], t.S1[0]) < 1e-12);
  QVERIFY(r.y[0].index({I::Slice(), I::Slice(6, I::None)}).abs().max().item<double>() == 0.0);
  QVERIFY(relErr(r.y[0].index({I::Slice(), I::Slice(0, 6)}), t.y[0]) < 1e-12);
}

void TestSelfMod::stopGradWritesCutsTheWritePath() {
  auto c = config(2, 2);
  auto in = makeInputs(c, 2, 8, 41);
  auto W1 = in.p.W1.clone().requires_grad_(), wEta = in.p.w_eta.clone().requires_grad_();
  auto x = in.x.clone().requires_grad_();
  SmtParams p = in.p;
  p.W1 = W1;
  p.w_eta = wEta;
  auto full = smt_chunked(c, p, x, in.q);
  c.stop_grad_writes = true;
  auto sg = smt_chunked(c, p, x, in.q);
  auto ref = smt_reference(c, p, x, in.q);
  QVERIFY(relErr(sg.y, full.y) < 1e-12);  // same values
  auto w = torch::randn(sg.y.sizes(), kF64);
  auto g = torch::autograd::grad({(sg.y * w).sum()}, {W1, wEta, x}, {}, true, false, /*allow_unused=*/true);
  auto gr = torch::autograd::grad({(ref.y * w).sum()}, {W1, wEta, x}, {}, true, false, true);
  // The output memory's initial state gets the straight-through gradient; the k/v/η/α path and
  // the input x only act through writes, so nothing reaches them.
  QVERIFY(g[0][kSmtOut].abs().sum().item<double>() > 0);
  QVERIFY(g[0].index({I::Slice(0, kSmtOut)}).abs().sum().item<double>() == 0.0);
  QVERIFY(!g[1].defined() || g[1].abs().sum().item<double>() == 0.0);
  QVERIFY(!g[2].defined() || g[2].abs().sum().item<double>() == 0.0);
  QVERIFY(relErr(g[0], gr[0]) < 1e-10);  // reference and fast path agree under stop-grad too
}

void TestSelfMod::clampingKeepsTheStateFiniteAndIsCounted() {
  auto c = config(1, 1);
  c.eta_scale = 50.0;  // 3·η·‖k‖² ≫ 1.8: every W2 write must clamp
  c.momentum = 0.0;    // the bound is per write; with momentum 0.9 such η still diverges (MEMORY.md)
  auto in = makeInputs(c, 2, 8, 51);
  auto r = smt_chunked(c, in.p, in.x, in.q);
  QVERIFY(torch::isfinite(r.W1).all().item<bool>() && torch::isfinite(r.W2).all().item<bool>());
  QVERIFY(torch::isfinite(r.y).all().item<bool>());
  // W2 reads k with ‖k‖ = 1: each of its 2·8·5 heads·memories·tokens writes clamps (cap ≤ 0.6 < η).
  QVERIFY2(r.clamped >= 2 * 8 * 5 * 2, qPrintable(QString::number(r.clamped)));
  c.clamp = false;  // the same writes without the clamp leave the state far larger or non-finite
  auto u = smt_chunked(c, in.p, in.x, in.q);
  const double clampedMax = r.W2.abs().max().item<double>();
  QVERIFY2(!torch::isfinite(u.W2).all().item<bool>() || u.W2.abs().max().item<double>() > 100 * clampedMax,
           qPrintable(QString("clamped %1 unclamped %2").arg(clampedMax).arg(u.W2.abs().max().item<double>())));
  c.eta_scale = 0.01;
  QCOMPARE(smt_chunked(c, in.p, in.x, in.q).clamped, int64_t(0));
}

void TestSelfMod::writeCountsFollowTheChunkSizes() {
  auto c = config(4, 8);
  auto in = makeInputs(c, 3, 19, 61);
  in.mask = torch::ones({3, 19}, torch::kBool);
  in.mask.index_put_({1, I::Slice(9, I::None)}, false);  // 9 tokens
  in.mask.index_put_({2, I::Slice(0, I::None)}, false);  // empty sequence
  auto r = smt_chunked(c, in.p, in.x, in.q, in.mask);
  QCOMPARE(r.writes_memory, int64_t(5 + 3));  // ⌈19/4⌉ + ⌈9/4⌉
  QCOMPARE(r.writes_other, int64_t(3 + 2));   // ⌈19/8⌉ + ⌈9/8⌉
  // The level statistics, recomputed here from the per-token losses and the states.
  const int64_t lens[3] = {19, 9, 0};
  auto chunkMean = [&](int64_t C, int64_t m0, int64_t m1) {
    double sum = 0;
    int chunks = 0;
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t c0 = 0; c0 < lens[b]; c0 += C) {
        const int64_t c1 = std::min(lens[b], c0 + C);
        sum += r.loss_tokens.index({b, I::Slice(m0, m1), I::Slice(), I::Slice(c0, c1)}).mean().item<double>();
        ++chunks;
      }
    return sum / chunks;
  };
  QVERIFY(std::abs(r.loss_memory - chunkMean(4, kSmtOut, kSmtOut + 1)) < 1e-12);
  QVERIFY(std::abs(r.loss_other - chunkMean(8, 0, kSmtOut)) < 1e-12);
  auto drift = [&](int64_t m0, int64_t m1) {
    double sum = 0;
    for (int64_t b = 0; b < 2; ++b) {  // the empty sequence is left out
      auto sl = I::Slice(m0, m1);
      auto d2 = (r.W1[b].index({sl}) - in.p.W1.index({sl})).pow(2).sum() +
                (r.W2[b].index({sl}) - in.p.W2.index({sl})).pow(2).sum();
      auto z2 = in.p.W1.index({sl}).pow(2).sum() + in.p.W2.index({sl}).pow(2).sum();
      sum += std::sqrt(d2.item<double>() / z2.item<double>());
    }
    return sum / 2;
  };
  QVERIFY(std::abs(r.drift_memory - drift(kSmtOut, kSmtOut + 1)) < 1e-12);
  QVERIFY(std::abs(r.drift_other - drift(0, kSmtOut)) < 1e-12);
  QVERIFY(r.drift_memory > 0 && r.drift_other > 0);
  QVERIFY(torch::allclose(r.W1[2], in.p.W1) && torch::allclose(r.W2[2], in.p.W2));  // nothing written
}

// A repeated pattern: the associative loss of the output memory falls as it is written.
void TestSelfMod::theOutputMemoryLearnsInContext() {
  auto c = config(1, 1);
  c.heads = 1;
  c.head_dim = 8;
  c.eta_scale = 0.1;  // the default
  auto in = makeInputs(c, 1, 4, 71);
  auto x = in.x.repeat({1, 1, 8, 1});  // the same 4 tokens 8 times
  auto q = in.q.repeat({1, 1, 8, 1});
  auto r = smt_chunked(c, in.p, x, q);
  auto lm = r.loss_tokens.index({0, kSmtOut, 0});  // [32]
  const double first = lm.index({I::Slice(0, 4)}).mean().item<double>();
  const double last = lm.index({I::Slice(28, 32)}).mean().item<double>();
  QVERIFY2(last < 0.5 * first, qPrintable(QString("first %1 last %2").arg(first).arg(last)));
}

// Schema 2's options (docs/MEMORY.md "Active memory"): one input per memory [B, 4, H, L, D], the
// bounded η link and the damped momentum keep both paths equal (values, states, gradients).
void TestSelfMod::separateInputsBoundedEtaAndDampingAgreeWithTheReference() {
  int cases = 0;
  for (auto [cm, co] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {4, 8}, {3, 5}})
    for (bool separate : {false, true})
      for (bool damp : {false, true}) {
        auto c = config(cm, co);
        c.eta_max = 1.0;
        c.dampen = damp;
        auto in = makeInputs(c, 2, 11, 300 + cases);
        if (separate) {
          torch::manual_seed(900 + cases);
          in.x = torch::nn::functional::normalize(torch::randn({2, kSmtOut, c.heads, 11, c.head_dim}, kF64),
                                                  torch::nn::functional::NormalizeFuncOptions().dim(-1));
        }
        in.mask = torch::ones({2, 11}, torch::kBool);
        in.mask.index_put_({1, I::Slice(6, I::None)}, false);
        std::vector<std::vector<Tensor>> grads;
        std::vector<SmtResult> rs;
        for (int path = 0; path < 2; ++path) {
          std::vector<Tensor> leaves = {in.p.W1.clone().requires_grad_(), in.p.W2.clone().requires_grad_(),
                                        in.p.w_eta.clone().requires_grad_(), in.p.b_eta.clone().requires_grad_(),
                                        in.x.clone().requires_grad_()};
          SmtParams p{leaves[0], leaves[1], leaves[2], leaves[3], in.p.w_alpha, in.p.b_alpha};
          auto r =
              path == 0 ? smt_reference(c, p, leaves[4], in.q, in.mask) : smt_chunked(c, p, leaves[4], in.q, in.mask);
          grads.push_back(torch::autograd::grad({probe(r, 5)}, leaves));
          rs.push_back(r);
        }
        const QString what = QString("chunks %1/%2 separate %3 damp %4").arg(cm).arg(co).arg(separate).arg(damp);
        QVERIFY2(resultErr(rs[1], rs[0]) < 1e-10, qPrintable(what));
        for (size_t i = 0; i < grads[0].size(); ++i) {
          QVERIFY2(grads[0][i].abs().sum().item<double>() > 0, qPrintable(what + QString(" grad %1 is zero").arg(i)));
          QVERIFY2(relErr(grads[1][i], grads[0][i]) < 1e-9, qPrintable(what + QString(" grad %1").arg(i)));
        }
        ++cases;
      }
  QCOMPARE(cases, 12);
  // A separate input changes what the memories read: k and v differ from the shared case.
  auto c = config(1, 1);
  auto in = makeInputs(c, 1, 4, 5);
  auto shared = smt_chunked(c, in.p, in.x, in.q);
  auto x4 = in.x.unsqueeze(1).repeat({1, kSmtOut, 1, 1, 1});
  QVERIFY(resultErr(smt_chunked(c, in.p, x4, in.q), shared) < 1e-14);  // 4 copies of one input = shared
  x4.select(1, kSmtValue).copy_(in.q);
  QVERIFY(resultErr(smt_chunked(c, in.p, x4, in.q), shared) > 1e-3);
}

// Two tokens at chunk 1, by hand: η = η_max σ(⟨w_η, M_η(x)⟩ + b_η) with b_η = logit(η₀/η_max), and
// the damped momentum S₂ = β S₁ − (1 − β) η₂ G₂ (the second write's gradient at the first write's
// state), checked on the output memory's W1, whose input a = σ(W2 k) and error e come from the
// library's own first state (the one-write test checks that state by hand).
void TestSelfMod::boundedEtaAndDampedMomentumFollowTheirFormulas() {
  auto c = config(1, 1);
  c.heads = 1;
  c.clamp = false;
  c.eta_max = 0.8;
  c.eta_scale = 0.2;
  c.dampen = true;
  c.momentum = 0.7;
  auto in = makeInputs(c, 1, 2, 13);
  // Initial η: exactly η₀ when the data term is 0.
  auto p0 = smt_init_params(c, 0.9, kF64);
  QVERIFY(std::abs(c.eta_max * torch::sigmoid(p0.b_eta[0]).item<double>() - c.eta_scale) < 1e-12);
  auto r1 = smt_chunked(c, in.p, in.x.narrow(2, 0, 1), in.q.narrow(2, 0, 1));
  auto r2 = smt_chunked(c, in.p, in.x, in.q);
  auto silu = [](const Tensor& t) { return t * torch::sigmoid(t); };
  const int64_t m = kSmtOut;
  auto W1a = r1.W1[0][m][0], W2a = r1.W2[0][m][0], S1a = r1.S1[0][m][0];
  // Token 1's reads at the state after token 0 (chunk 1: every memory refreshes).
  auto Mx = [&](int64_t mm, const Tensor& v) { return v + r1.W1[0][mm][0].mv(silu(r1.W2[0][mm][0].mv(v))); };
  auto xv = in.x[0][0][1];
  auto k = Mx(kSmtKey, xv);
  k = k / k.norm();
  auto v = Mx(kSmtValue, xv);
  v = v / v.norm();
  const double eta = c.eta_max * torch::sigmoid(in.p.w_eta[0].dot(Mx(kSmtEta, xv)) + in.p.b_eta[0]).item<double>();
  QVERIFY(eta > 0 && eta < c.eta_max);
  const double alpha = torch::sigmoid(in.p.w_alpha[0].dot(Mx(kSmtAlpha, xv)) + in.p.b_alpha[0]).item<double>();
  auto a = silu(W2a.mv(k));
  auto e = 2.0 * (Mx(m, k) - Mx(m, v));
  auto S1 = c.momentum * S1a - (1 - c.momentum) * eta * torch::outer(e, a);
  auto W1 = W1a.mm(alpha * torch::eye(a.size(0), kF64) - eta * torch::outer(a, a)) + S1;
  QVERIFY2(relErr(r2.S1[0][m][0], S1) < 1e-12, qPrintable(QString::number(relErr(r2.S1[0][m][0], S1))));
  QVERIFY2(relErr(r2.W1[0][m][0], W1) < 1e-12, qPrintable(QString::number(relErr(r2.W1[0][m][0], W1))));
}

// state_bound: a memory driven to grow (η scale 5, no clamp, heavy-ball momentum) stays within
// state_bound · ‖W_0‖_F per map at the end (1e-9), where without the bound it grows past it or
// diverges; the
// reference, the fast path with the kernel and the fast path without it agree in values (1e-10)
// and gradients (1e-9) with the bound active; a bound that never binds changes nothing bit for bit.
void TestSelfMod::theStateBoundHoldsAtEveryChunkBoundaryAndBothPathsAgree() {
  auto c = config(4, 8);
  c.eta_scale = 5.0;
  c.clamp = false;
  c.momentum = 0.9;
  auto in = makeInputs(c, 3, 19, 77);
  in.mask = torch::ones({3, 19}, torch::kBool);
  in.mask.index_put_({2, I::Slice(6, I::None)}, false);
  auto maxRatio = [&](const SmtResult& r) {
    auto ratio = [&](const Tensor& W, const Tensor& W0) {
      return (W.pow(2).sum({-2, -1}).sqrt() / W0.pow(2).sum({-2, -1}).sqrt()).max().item<double>();
    };
    return std::max(ratio(r.W1, in.p.W1.unsqueeze(0)), ratio(r.W2, in.p.W2.unsqueeze(0)));
  };
  const SmtResult free = smt_chunked(c, in.p, in.x, in.q, in.mask);
  QVERIFY2(!(maxRatio(free) <= 2.5), qPrintable(QString::number(maxRatio(free))));  // grows past it, or diverges
  c.state_bound = 2.0;
  const SmtResult ref = smt_reference(c, in.p, in.x, in.q, in.mask);
  QVERIFY2(maxRatio(ref) <= 2.0 + 1e-9, qPrintable(QString::number(maxRatio(ref))));
  std::vector<std::vector<Tensor>> grads;
  for (int path = 0; path < 3; ++path) {  // reference, fast + kernel, fast without
    SmtConfig cp = c;
    cp.fused = path == 1;
    std::vector<Tensor> leaves = {in.p.W1.clone().requires_grad_(true), in.p.W2.clone().requires_grad_(true),
                                  in.p.w_eta.clone().requires_grad_(true), in.x.clone().requires_grad_(true)};
    SmtParams p = in.p;
    p.W1 = leaves[0];
    p.W2 = leaves[1];
    p.w_eta = leaves[2];
    const SmtResult r =
        path == 0 ? smt_reference(cp, p, leaves[3], in.q, in.mask) : smt_chunked(cp, p, leaves[3], in.q, in.mask);
    if (path > 0) QVERIFY2(resultErr(r, ref) < 1e-10, qPrintable(QString::number(resultErr(r, ref))));
    grads.push_back(torch::autograd::grad({probe(r, 5)}, leaves));
  }
  for (int path = 1; path < 3; ++path)
    for (size_t i = 0; i < grads[0].size(); ++i)
      QVERIFY2(
          relErr(grads[path][i], grads[0][i]) < 1e-9,
          qPrintable(QString("path %1 gradient %2: %3").arg(path).arg(i).arg(relErr(grads[path][i], grads[0][i]))));
  // A bound far above what the state reaches is the identity, bit for bit (a tame memory: the
  // fixture's η scale 0.3 with the clamp).
  c = config(4, 8);
  c.state_bound = 1000;
  const SmtResult loose = smt_chunked(c, in.p, in.x, in.q, in.mask);
  c.state_bound = 0;
  QVERIFY(torch::equal(loose.y, smt_chunked(c, in.p, in.x, in.q, in.mask).y));
}

// Issue 9 item 4's ablation (memory_writes false): every token reads the output memory at its
// initial state, y_t = q_t + W1 silu(W2 q_t) (0 at pads), on both paths; no state moves, nothing is
// written, so earlier tokens cannot change a read; the gradient reaches only the output memory's
// initial state and q.
void TestSelfMod::writesOffReadsTheInitialStateAndWritesNothing() {
  auto c = config(4, 8);
  c.writes = false;
  auto in = makeInputs(c, 2, 11, 77);
  in.mask = torch::ones({2, 11}, torch::kBool);
  in.mask.index_put_({1, I::Slice(7, I::None)}, false);
  auto W1 = in.p.W1.clone().requires_grad_(true), W2 = in.p.W2.clone().requires_grad_(true);
  auto q = in.q.clone().requires_grad_(true);
  SmtParams p = in.p;
  p.W1 = W1;
  p.W2 = W2;
  const SmtResult r = smt_chunked(c, p, in.x, q, in.mask), ref = smt_reference(c, p, in.x, q, in.mask);
  // By hand, per head: o = q + W1[out] silu(W2[out] q).
  const auto O1 = in.p.W1.select(0, kSmtOut), O2 = in.p.W2.select(0, kSmtOut);  // [H, D, F], [H, F, D]
  const auto hand = (in.q + torch::silu(in.q.matmul(O2.transpose(-1, -2))).matmul(O1.transpose(-1, -2))) *
                    in.mask.view({2, 1, 11, 1}).to(torch::kFloat64);
  QVERIFY2(relErr(r.y, hand) < 1e-14, qPrintable(QString::number(relErr(r.y, hand))));
  QVERIFY(resultErr(r, ref) < 1e-14);
  QVERIFY(torch::equal(r.W1, in.p.W1.unsqueeze(0).expand_as(r.W1)));
  QVERIFY(torch::equal(r.W2, in.p.W2.unsqueeze(0).expand_as(r.W2)));
  QCOMPARE(r.S1.abs().max().item<double>(), 0.0);
  QCOMPARE(r.loss_tokens.abs().max().item<double>(), 0.0);
  QCOMPARE(r.writes_memory, int64_t(0));
  QCOMPARE(r.writes_other, int64_t(0));
  QCOMPARE(r.clamped, int64_t(0));
  QCOMPARE(r.drift_memory, 0.0);
  QVERIFY(!r.fused);
  // Context cannot reach a read: other memory inputs and other earlier queries leave token 8 as it is.
  auto q2 = in.q.detach().clone();
  q2.index_put_({I::Slice(), I::Slice(), I::Slice(0, 8)}, 0.5);
  const auto r2 = smt_chunked(c, in.p, torch::randn_like(in.x), q2, in.mask);
  QVERIFY(torch::equal(r2.y.index({I::Slice(), I::Slice(), 8}), r.y.detach().index({I::Slice(), I::Slice(), 8})));
  // The same block with the writes on does depend on the context (the ablation removes something).
  c.writes = true;
  const auto on = smt_chunked(c, in.p, in.x, in.q, in.mask),
             on2 = smt_chunked(c, in.p, torch::randn_like(in.x), q2, in.mask);
  QVERIFY(relErr(on2.y.index({0, I::Slice(), 8}), on.y.index({0, I::Slice(), 8})) > 1e-3);
  // Gradients: the output memory's initial state and q only.
  // (of the reads: the final states are the initial ones, so their gradient reaches every memory)
  const auto g = torch::autograd::grad({(r.y * torch::randn_like(r.y)).sum()}, {W1, W2, q}, {}, false, false, true);
  QVERIFY(g[0].select(0, kSmtOut).abs().max().item<double>() > 0);
  QCOMPARE(g[0].narrow(0, 0, kSmtOut).abs().max().item<double>(), 0.0);
  QCOMPARE(g[1].narrow(0, 0, kSmtOut).abs().max().item<double>(), 0.0);
  QVERIFY(g[2].abs().max().item<double>() > 0);
}

QTEST_APPLESS_MAIN(TestSelfMod)
#include "test_selfmod.moc"
