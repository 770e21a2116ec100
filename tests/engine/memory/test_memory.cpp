// Unit + science tests of engine/memory: the Titans LMM reference and chunked paths agree, padding
// never writes memory, gradients through the inner writes match finite differences, stop-grad
// writes stop gradient, clamping keeps the state finite, and the memory learns an association.
#include "engine/torch_wrap.h"  // before any Qt header (TOOLCHAIN.md §4.1)

#include "engine/memory/titans_memory.h"

#include <QtTest>

#include <limits>
#include <vector>

using namespace hl::memory;
using torch::Tensor;
namespace I = torch::indexing;

namespace {

const auto kF64 = torch::dtype(torch::kFloat64);

struct Inputs {
  LmmState init;
  Tensor q, k, v, theta, eta, alpha, mask;
};

// Random float64 inputs. thetaMax near the clamp cap so that some writes clamp.
Inputs makeInputs(const LmmConfig& cfg, int64_t B, int64_t L, uint64_t seed, double thetaMax = 0.5) {
  torch::manual_seed(seed);
  const int64_t H = cfg.heads, D = cfg.head_dim;
  Inputs in;
  in.init = lmm_init_state(cfg, kF64, 0.5);
  in.init.S1 = torch::randn_like(in.init.S1) * 0.05;  // a non-zero incoming momentum
  in.init.S2 = torch::randn_like(in.init.S2) * 0.05;
  in.q = torch::randn({B, H, L, D}, kF64) * 0.5;
  in.k = torch::randn({B, H, L, D}, kF64) * 0.5;
  in.v = torch::randn({B, H, L, D}, kF64) * 0.5;
  in.theta = 0.05 + (thetaMax - 0.05) * torch::rand({B, H, L}, kF64);
  in.eta = 0.5 + 0.45 * torch::rand({B, H, L}, kF64);
  in.alpha = 0.1 * torch::rand({B, H, L}, kF64);
  return in;
}

LmmResult runRef(const LmmConfig& c, const Inputs& in) {
  return lmm_reference(c, in.init, in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.mask);
}
LmmResult runChunked(const LmmConfig& c, const Inputs& in) {
  return lmm_chunked(c, in.init, in.q, in.k, in.v, in.theta, in.eta, in.alpha, in.mask);
}

double relErr(const Tensor& a, const Tensor& b) {
  const double scale = std::max(b.abs().max().item<double>(), 1e-300);
  return (a - b).abs().max().item<double>() / scale;
}

// Compares every output of two results; returns the largest relative error.
double resultErr(const LmmResult& a, const LmmResult& b) {
  double e = 0;
  e = std::max(e, relErr(a.y, b.y));
  e = std::max(e, relErr(a.loss_per_chunk, b.loss_per_chunk));
  e = std::max(e, relErr(a.drift, b.drift));
  e = std::max(e, relErr(a.final_state.W1, b.final_state.W1));
  e = std::max(e, relErr(a.final_state.W2, b.final_state.W2));
  e = std::max(e, relErr(a.final_state.S1, b.final_state.S1));
  e = std::max(e, relErr(a.final_state.S2, b.final_state.S2));
  return e;
}

// The scalar the gradient tests differentiate: a fixed projection of y and the final state.
Tensor probe(const LmmResult& r, uint64_t seed) {
  torch::manual_seed(seed);
  const Tensor R = torch::randn(r.y.sizes(), kF64);
  const Tensor R2 = torch::randn(r.final_state.W2.sizes(), kF64);
  return (r.y * R).sum() + 0.3 * (r.final_state.W2 * R2).sum() + r.loss_per_chunk.sum() * 0.1;
}

}  // namespace

class TestMemory : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { torch::set_num_threads(1); }

  // C = 1: the chunked path is the token-by-token Titans recurrence.
  void chunkOneMatchesSequential() {
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 6;
    cfg.hidden = 5;
    cfg.chunk = 1;
    Inputs in = makeInputs(cfg, 2, 11, 1);
    const LmmResult ref = runRef(cfg, in), ch = runChunked(cfg, in);
    QVERIFY2(resultErr(ch, ref) < 1e-10, qPrintable(QString::number(resultErr(ch, ref))));
    QCOMPARE(ch.clamped, ref.clamped);
    QCOMPARE(ch.writes, ref.writes);
    QCOMPARE(ch.writes, int64_t(2 * 11));
    QCOMPARE(ch.loss_per_chunk.size(1), int64_t(11));
  }

  // Chunked == naive per-chunk loop, for several C, lengths not divisible by C, padded batches;
  // outputs and the gradients of a probe w.r.t. every input.
  // With the state bound (a Hope block's Titans memory, docs/MEMORY.md "State bound"; radius 1×
  // the initial norm, so that it binds) both paths project at every chunk end alike.
  void chunkedMatchesReference_data() {
    QTest::addColumn<int>("chunk");
    QTest::addColumn<int>("len");
    QTest::addColumn<double>("bound");
    for (int c : {2, 4, 8, 16})
      for (int L : {13, 16, 21}) QTest::newRow(qPrintable(QString("C%1_L%2").arg(c).arg(L))) << c << L << 0.0;
    for (int c : {2, 4, 8})
      for (int L : {13, 21}) QTest::newRow(qPrintable(QString("C%1_L%2_bound1").arg(c).arg(L))) << c << L << 1.0;
  }
  void chunkedMatchesReference() {
    QFETCH(int, chunk);
    QFETCH(int, len);
    QFETCH(double, bound);
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 4;
    cfg.hidden = 6;
    cfg.chunk = chunk;
    cfg.state_bound = bound;
    const int64_t B = 3;
    Inputs in = makeInputs(cfg, B, len, 100 + chunk + len);
    in.mask = torch::ones({B, len}, torch::kBool);
    in.mask.index_put_({1, I::Slice(len - 5, I::None)}, false);  // right padding
    in.mask.index_put_({2, I::Slice(1, I::None)}, false);        // a 1-token sequence
    std::vector<Tensor*> leaves = {&in.init.W1, &in.init.W2, &in.init.S1, &in.q,    &in.k,
                                   &in.v,       &in.theta,   &in.eta,     &in.alpha};
    for (Tensor* t : leaves) t->requires_grad_(true);
    const LmmResult ref = runRef(cfg, in), ch = runChunked(cfg, in);
    QVERIFY2(resultErr(ch, ref) < 1e-10, qPrintable(QString::number(resultErr(ch, ref))));
    QCOMPARE(ch.clamped, ref.clamped);
    if (bound > 0) {  // it binds (the run differs from an unbounded one) and holds at the end
      LmmConfig free = cfg;
      free.state_bound = 0;
      QVERIFY(resultErr(runChunked(free, in), ch) > 1e-6);
      auto norms = [](const Tensor& W) { return W.pow(2).sum({-2, -1}).sqrt(); };
      const Tensor over = norms(ch.final_state.W1) - bound * norms(in.init.W1);
      QVERIFY2(over.max().item<double>() < 1e-12, qPrintable(QString::number(over.max().item<double>())));
    }
    const int64_t nc = (len + chunk - 1) / chunk;
    const int64_t expectWrites = nc + (len - 5 + chunk - 1) / chunk + 1;
    QCOMPARE(ch.writes, expectWrites);
    QCOMPARE(ref.writes, expectWrites);
    std::vector<Tensor> inputs;
    for (Tensor* t : leaves) inputs.push_back(*t);
    // allow_unused: with one chunk (C ≥ L) the incoming momentum S1 reaches no probed output
    const auto gr = torch::autograd::grad({probe(ref, 7)}, inputs, {}, std::nullopt, false, true);
    const auto gc = torch::autograd::grad({probe(ch, 7)}, inputs, {}, std::nullopt, false, true);
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Tensor a = gc[i].defined() ? gc[i] : torch::zeros_like(inputs[i]);
      const Tensor b = gr[i].defined() ? gr[i] : torch::zeros_like(inputs[i]);
      if (b.abs().max().item<double>() == 0) {
        QVERIFY(a.abs().max().item<double>() == 0);
        continue;
      }
      const double e = relErr(a, b);
      QVERIFY2(e < 1e-9, qPrintable(QString("input %1: grad rel err %2").arg(i).arg(e)));
    }
  }

  // Appending pads changes nothing; a padded token's values (even NaN) do not matter.
  void paddingInvariance() {
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 4;
    cfg.chunk = 4;
    const int64_t B = 2, L = 10, P = 7;
    Inputs base = makeInputs(cfg, B, L, 5);
    base.mask = torch::ones({B, L}, torch::kBool);
    base.mask.index_put_({1, I::Slice(6, I::None)}, false);
    Inputs padded = base;
    auto pad4 = [&](const Tensor& t, double val) {
      return torch::cat({t, torch::full({B, cfg.heads, P, cfg.head_dim}, val, kF64)}, 2);
    };
    auto pad3 = [&](const Tensor& t, double val) {
      return torch::cat({t, torch::full({B, cfg.heads, P}, val, kF64)}, 2);
    };
    const double nan = std::numeric_limits<double>::quiet_NaN();
    padded.q = pad4(base.q, nan);
    padded.k = pad4(base.k, 1e30);
    padded.v = pad4(base.v, nan);
    padded.theta = pad3(base.theta, 1e3);
    padded.eta = pad3(base.eta, 0.0);
    padded.alpha = pad3(base.alpha, 1.0);
    padded.mask = torch::cat({base.mask, torch::zeros({B, P}, torch::kBool)}, 1);
    // garbage inside the existing padding too
    padded.k = padded.k.clone();
    padded.k.index_put_({1, I::Slice(), I::Slice(6, L)}, nan);
    padded.theta = padded.theta.clone();
    padded.theta.index_put_({1, I::Slice(), I::Slice(6, L)}, 50.0);
    const int64_t nc = (L + cfg.chunk - 1) / cfg.chunk;
    for (bool chunked : {false, true}) {
      const LmmResult a = chunked ? runChunked(cfg, base) : runRef(cfg, base);
      const LmmResult b = chunked ? runChunked(cfg, padded) : runRef(cfg, padded);
      QVERIFY(torch::isfinite(b.y).all().item<bool>());
      QVERIFY(relErr(b.y.index({I::Slice(), I::Slice(), I::Slice(0, L)}), a.y) < 1e-14);
      const Tensor tail = b.y.index({I::Slice(), I::Slice(), I::Slice(L, I::None)});
      QVERIFY(tail.abs().max().item<double>() == 0);
      QVERIFY(relErr(b.final_state.W1, a.final_state.W1) < 1e-14);
      QVERIFY(relErr(b.final_state.W2, a.final_state.W2) < 1e-14);
      QVERIFY(relErr(b.final_state.S2, a.final_state.S2) < 1e-14);
      QVERIFY(relErr(b.drift, a.drift) < 1e-14);
      const Tensor lossHead = b.loss_per_chunk.index({I::Slice(), I::Slice(0, nc)});
      QVERIFY(relErr(lossHead, a.loss_per_chunk) < 1e-14);
      QVERIFY(b.chunk_tokens.index({I::Slice(), I::Slice(nc, I::None)}).sum().item<int64_t>() == 0);
      QCOMPARE(b.writes, a.writes);
      QCOMPARE(b.clamped, a.clamped);
      QCOMPARE(a.writes, int64_t(nc + 2));  // sequence 1 has 6 tokens: 2 chunks of 4
    }
  }

  // Autograd through the inner writes == central differences (float64, eps 1e-6).
  void gradcheck_data() {
    QTest::addColumn<bool>("chunked");
    QTest::newRow("reference") << false;
    QTest::newRow("chunked") << true;
  }
  void gradcheck() {
    QFETCH(bool, chunked);
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 3;
    cfg.hidden = 4;
    cfg.chunk = 3;
    Inputs in = makeInputs(cfg, 2, 7, 11, 0.3);
    in.mask = torch::ones({2, 7}, torch::kBool);
    in.mask.index_put_({1, I::Slice(5, I::None)}, false);
    auto run = [&](const Inputs& x) { return chunked ? runChunked(cfg, x) : runRef(cfg, x); };
    std::vector<Tensor*> params = {&in.init.W1, &in.init.W2, &in.theta, &in.eta, &in.alpha};
    const char* names[] = {"W1_0", "W2_0", "theta", "eta", "alpha"};
    for (Tensor* t : params) t->requires_grad_(true);
    std::vector<Tensor> ps;
    for (Tensor* t : params) ps.push_back(*t);
    const auto grads = torch::autograd::grad({probe(run(in), 3)}, ps);
    const double eps = 1e-6;
    torch::NoGradGuard ng;  // the reference re-enables grad internally for its inner gradients
    for (size_t i = 0; i < params.size(); ++i) {
      const Tensor base = params[i]->detach().clone();
      Tensor num = torch::zeros_like(base);
      auto flat = base.view(-1);
      for (int64_t j = 0; j < flat.numel(); ++j) {
        Tensor plus = base.clone(), minus = base.clone();
        plus.view(-1)[j] += eps;
        minus.view(-1)[j] -= eps;
        auto setParam = [&](Inputs& z, const Tensor& val) {
          switch (i) {
            case 0:
              z.init.W1 = val;
              break;
            case 1:
              z.init.W2 = val;
              break;
            case 2:
              z.theta = val;
              break;
            case 3:
              z.eta = val;
              break;
            default:
              z.alpha = val;
              break;
          }
        };
        Inputs xp = in, xm = in;
        setParam(xp, plus);
        setParam(xm, minus);
        const double fp = probe(run(xp), 3).item<double>();
        const double fm = probe(run(xm), 3).item<double>();
        num.view(-1)[j] = (fp - fm) / (2 * eps);
      }
      const double e = relErr(grads[i].detach(), num);
      QVERIFY2(e < 1e-6, qPrintable(QString("%1: rel err %2").arg(names[i]).arg(e)));
      QVERIFY(grads[i].abs().max().item<double>() > 0);
    }
  }

  // stop_grad_writes: same forward values; no gradient reaches θ, η, α or k through the writes;
  // the initial state still gets a (straight-through) gradient.
  void stopGradWrites_data() { gradcheck_data(); }
  void stopGradWrites() {
    QFETCH(bool, chunked);
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 4;
    cfg.chunk = 3;
    Inputs in = makeInputs(cfg, 2, 8, 21);
    const LmmResult full = chunked ? runChunked(cfg, in) : runRef(cfg, in);
    LmmConfig sgc = cfg;
    sgc.stop_grad_writes = true;
    for (Tensor* t : {&in.init.W1, &in.init.W2, &in.theta, &in.eta, &in.alpha, &in.k, &in.q}) t->requires_grad_(true);
    const LmmResult sg = chunked ? runChunked(sgc, in) : runRef(sgc, in);
    QVERIFY(resultErr(sg, full) < 1e-12);
    QCOMPARE(sg.clamped, full.clamped);
    const Tensor f = (sg.y * sg.y).sum() + sg.final_state.W1.sum();
    const auto g = torch::autograd::grad({f}, {in.theta, in.eta, in.alpha, in.k, in.init.W1, in.q}, {}, std::nullopt,
                                         false, /*allow_unused=*/true);
    for (int i = 0; i < 4; ++i) QVERIFY(!g[i].defined() || g[i].abs().max().item<double>() == 0);
    QVERIFY(g[4].defined() && g[4].abs().max().item<double>() > 0);
    QVERIFY(g[5].defined() && g[5].abs().max().item<double>() > 0);
  }

  // Under an outer NoGradGuard (evaluation) both paths give the grad-mode values and no graph.
  // (Regression: the reference once differentiated at a no-grad view of a requires-grad leaf.)
  void noGradMatchesGradMode() {
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 4;
    cfg.chunk = 3;
    Inputs in = makeInputs(cfg, 2, 10, 51);
    for (Tensor* t : {&in.init.W1, &in.init.W2, &in.theta, &in.k, &in.q}) t->requires_grad_(true);
    for (int variant = 0; variant < 4; ++variant) {
      const bool chunked = variant & 1;
      cfg.stop_grad_writes = variant & 2;
      const LmmResult a = chunked ? runChunked(cfg, in) : runRef(cfg, in);
      torch::NoGradGuard ng;
      const LmmResult b = chunked ? runChunked(cfg, in) : runRef(cfg, in);
      QVERIFY(resultErr(b, a) < 1e-12);
      QVERIFY2(!b.y.requires_grad() && !b.final_state.W1.requires_grad(),
               qPrintable(QString("variant %1: y %2 W1 %3")
                              .arg(variant)
                              .arg(b.y.requires_grad())
                              .arg(b.final_state.W1.requires_grad())));
      QVERIFY(!b.loss_per_chunk.requires_grad());
    }
  }

  // float32 runs and the paths agree to float precision.
  void float32Agrees() {
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 8;
    cfg.chunk = 4;
    Inputs in = makeInputs(cfg, 2, 15, 61);
    for (Tensor* t :
         {&in.init.W1, &in.init.W2, &in.init.S1, &in.init.S2, &in.q, &in.k, &in.v, &in.theta, &in.eta, &in.alpha})
      *t = t->to(torch::kFloat32);
    const LmmResult ref = runRef(cfg, in), ch = runChunked(cfg, in);
    QCOMPARE(ch.y.scalar_type(), torch::kFloat32);
    QVERIFY2(resultErr(ch, ref) < 1e-4, qPrintable(QString::number(resultErr(ch, ref))));
  }

  // A huge θ: the clamp engages, the state stays finite, both paths agree on it.
  void clampEngages() {
    LmmConfig cfg;
    cfg.heads = 2;
    cfg.head_dim = 4;
    cfg.chunk = 4;
    Inputs in = makeInputs(cfg, 2, 16, 31);
    in.theta = torch::full_like(in.theta, 1e6);
    in.eta = torch::zeros_like(in.eta);  // no momentum pile-up: each write is one clamped step
    const LmmResult ref = runRef(cfg, in), ch = runChunked(cfg, in);
    QVERIFY(ch.clamped > 0);
    // every W2 write (u = k) clamps; a W1 write (u = σ(W2 k)) may not where σ(W2 k) ≈ 0
    QVERIFY(ch.clamped >= int64_t(2 * 2 * 16) && ch.clamped <= int64_t(2 * 2 * 16 * 2));
    QCOMPARE(ref.clamped, ch.clamped);
    QVERIFY(torch::isfinite(ch.y).all().item<bool>());
    QVERIFY(torch::isfinite(ch.final_state.W1).all().item<bool>());
    QVERIFY(torch::isfinite(ch.final_state.W2).all().item<bool>());
    QVERIFY(torch::isfinite(ch.drift).all().item<bool>());
    QVERIFY(resultErr(ch, ref) < 1e-10);
    LmmConfig off = cfg;
    off.clamp = false;
    QCOMPARE(runChunked(off, in).clamped, int64_t(0));
  }

  // A memory written with one association recalls it: loss before later writes < first loss,
  // and the read-out of q = k moves towards v.
  void learnsAssociation() {
    LmmConfig cfg;
    cfg.heads = 1;
    cfg.head_dim = 8;
    cfg.chunk = 4;
    const int64_t L = 32;
    torch::manual_seed(41);
    LmmState init = lmm_init_state(cfg, kF64, 1.0);
    Tensor key = torch::randn({cfg.head_dim}, kF64);
    key = key / key.norm();
    const Tensor val = torch::randn({cfg.head_dim}, kF64);
    const Tensor k = key.view({1, 1, 1, -1}).expand({1, 1, L, cfg.head_dim});
    const Tensor v = val.view({1, 1, 1, -1}).expand({1, 1, L, cfg.head_dim});
    const Tensor theta = torch::full({1, 1, L}, 0.05, kF64);
    const Tensor eta = torch::full({1, 1, L}, 0.5, kF64);
    const Tensor alpha = torch::full({1, 1, L}, 0.001, kF64);
    for (bool chunked : {false, true}) {
      const LmmResult r = chunked ? lmm_chunked(cfg, init, k, k, v, theta, eta, alpha)
                                  : lmm_reference(cfg, init, k, k, v, theta, eta, alpha);
      const double first = r.loss_per_chunk.index({0, 0}).item<double>();
      const double last = r.loss_per_chunk.index({0, -1}).item<double>();
      QVERIFY2(last < 0.1 * first, qPrintable(QString("loss %1 -> %2").arg(first).arg(last)));
      const double e0 = (r.y.index({0, 0, 0}) - val).norm().item<double>();
      const double e1 = (r.y.index({0, 0, L - 1}) - val).norm().item<double>();
      QVERIFY(e1 < 0.5 * e0);
      QVERIFY(r.drift.item<double>() > 0);
    }
  }
};

QTEST_GUILESS_MAIN(TestMemory)
#include "test_memory.moc"
