// Unit tests of engine/models: blocks, classifier, heads, validation, counts.
#include "engine/torch_wrap.h"  // before any Qt header (TOOLCHAIN.md §4.1)

#include "engine/models/blocks.h"
#include "engine/models/classifier.h"

#include <QtTest>

#include <cmath>
#include <functional>
#include <sstream>

using namespace hl::models;

namespace {

const char* const kTypes[] = {"transformer", "lstm", "retnet", "titans"};

BlockConfig blockOf(const std::string& type, int hidden = 0) {
  BlockConfig b;
  b.type = hl::parse<hl::BlockType>(type, "test");
  b.hidden = hidden;
  return b;
}

// The default model shape: d 128, 2 blocks, 4 heads, ffn_mult 2, vocab 2000, max_len 64.
ModelConfig defaultConfig(const std::string& type, int num_classes = 70) {
  ModelConfig c;
  c.num_classes = num_classes;
  c.blocks = {blockOf(type), blockOf(type)};
  return c;
}

// A small model for the behavioural tests.
ModelConfig smallConfig(const std::string& type, const std::string& head = "softmax") {
  ModelConfig c;
  c.vocab_size = 50;
  c.max_len = 24;
  c.d_model = 32;
  c.num_classes = 4;
  c.head = hl::parse<hl::HeadType>(head, "test");
  c.blocks = {blockOf(type), blockOf(type)};
  return c;
}

// [B, L] bool, row i has lengths[i] real positions first (right padding).
torch::Tensor lengthMask(const std::vector<int64_t>& lengths, int64_t L) {
  auto len = torch::tensor(lengths, torch::kLong).unsqueeze(1);
  return torch::arange(L, torch::kLong).unsqueeze(0) < len;
}

// Right-padded random tokens in [1, vocab) with pad id 0.
torch::Tensor randomTokens(const std::vector<int64_t>& lengths, int64_t L, int vocab) {
  auto tok = torch::randint(1, vocab, {int64_t(lengths.size()), L}, torch::kLong);
  return tok.masked_fill(lengthMask(lengths, L).logical_not(), 0);
}

double maxAbsDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

double relErr(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

bool allFinite(const torch::Tensor& t) {
  return torch::isfinite(t).all().item<bool>();
}

void addTypeRows() {
  QTest::addColumn<QString>("type");
  QTest::addColumn<int>("hidden");
  for (const char* t : kTypes) QTest::newRow(t) << QString(t) << 0;
  QTest::newRow("lstm-hidden48") << QString("lstm") << 48;  // with the output projection
}

}  // namespace

class TestModels : public QObject {
  Q_OBJECT

 private slots:
  void initTestCase() { torch::set_num_threads(1); }

  void blockShapes_data() { addTypeRows(); }
  void blockShapes() {
    QFETCH(QString, type);
    QFETCH(int, hidden);
    torch::manual_seed(0);
    auto block = make_block(blockOf(type.toStdString(), hidden), 32);
    block->eval();
    auto x = torch::randn({3, 7, 32});
    auto y = block->forward(x, lengthMask({7, 4, 0}, 7));  // last row: all padding
    QVERIFY(y.sizes() == x.sizes());
    QVERIFY(y.scalar_type() == torch::kFloat32);
    QVERIFY(allFinite(y));
  }

  // A block's output at real positions ignores what the padded positions hold and how many
  // there are.
  void blockIgnoresPadding_data() { addTypeRows(); }
  void blockIgnoresPadding() {
    QFETCH(QString, type);
    QFETCH(int, hidden);
    torch::manual_seed(1);
    auto block = make_block(blockOf(type.toStdString(), hidden), 32);
    block->eval();
    const std::vector<int64_t> lengths = {9, 5, 2};
    auto x = torch::randn({3, 9, 32});
    auto mask = lengthMask(lengths, 9);
    auto real = mask.unsqueeze(-1);
    auto y = block->forward(x, mask);

    auto x2 = torch::where(real, x, 10 * torch::randn_like(x));  // other padding content
    auto y2 = block->forward(x2, mask);
    QVERIFY2(maxAbsDiff(y.masked_select(real), y2.masked_select(real)) < 1e-5, "padded content changed real positions");

    auto x3 = torch::cat({x, torch::randn({3, 5, 32})}, 1);  // 5 more padded positions
    auto y3 = block->forward(x3, lengthMask(lengths, 14)).narrow(1, 0, 9);
    QVERIFY2(maxAbsDiff(y.masked_select(real), y3.masked_select(real)) < 1e-5, "extra padding changed real positions");
  }

  // Appending pad tokens does not change pooled features; an all-padding row stays finite.
  void featuresPaddingInvariant_data() {
    QTest::addColumn<QString>("type");
    QTest::addColumn<QString>("head");
    for (const char* t : kTypes) {
      QTest::newRow(t) << QString(t) << QString("softmax");
      QTest::newRow((std::string(t) + "-ncm").c_str()) << QString(t) << QString("ncm");
    }
  }
  void featuresPaddingInvariant() {
    QFETCH(QString, type);
    QFETCH(QString, head);
    torch::manual_seed(2);
    auto model = build(smallConfig(type.toStdString(), head.toStdString()));
    model->eval();
    auto tokens = randomTokens({12, 5, 1, 0}, 12, 50);
    auto f = model->features(tokens);
    QVERIFY(f.sizes() == torch::IntArrayRef({4, 32}));
    QVERIFY(allFinite(f));
    auto f2 = model->features(torch::cat({tokens, torch::zeros({4, 6}, torch::kLong)}, 1));
    QVERIFY2(maxAbsDiff(f, f2) < 1e-5, "appending padding changed pooled features");
    model->ncmObserve(f, torch::tensor({0, 1, 2, 1}, torch::kLong));
    auto logits = model->logits(f);
    QVERIFY(logits.sizes() == torch::IntArrayRef({4, 4}));
    QVERIFY(allFinite(logits));
  }

  // model.pooling last: the feature of a row is its last real token's, wherever the padding sits.
  // Without token mixing (no blocks, no positions) two rows that end in the same token pool to the
  // same feature (mean pooling tells them apart); with causal attention earlier tokens reach it;
  // padding never does, and an all-padding row pools to zeros.
  void lastPoolingReadsTheLastRealToken() {
    torch::manual_seed(3);
    ModelConfig c = smallConfig("transformer");
    c.blocks = {};
    c.positions = hl::Positions::None;
    c.pooling = hl::Pooling::Last;
    auto bare = build(c);
    bare->eval();
    const auto tokens =
        torch::tensor({{5, 7, 9, 0, 0}, {11, 3, 9, 0, 0}, {0, 0, 4, 8, 9}, {0, 0, 0, 0, 0}}, torch::kLong);
    const auto f = bare->features(tokens);
    QCOMPARE(maxAbsDiff(f[0], f[1]), 0.0);
    QCOMPARE(maxAbsDiff(f[0], f[2]), 0.0);  // left padding: the last real position, not the last column
    QCOMPARE(f[3].abs().max().item<double>(), 0.0);
    c.pooling = hl::Pooling::Mean;
    auto meanModel = build(c);
    {
      torch::NoGradGuard ng;
      const auto from = bare->named_parameters();
      for (auto& p : meanModel->named_parameters()) p.value().copy_(from[p.key()]);
    }
    meanModel->eval();
    const auto fm = meanModel->features(tokens);
    QVERIFY2(maxAbsDiff(fm[0], fm[1]) > 1e-3, "mean pooling should see the earlier tokens");

    ModelConfig t = smallConfig("transformer");
    t.pooling = hl::Pooling::Last;
    auto model = build(t);
    model->eval();
    const auto x = randomTokens({7, 5}, 9, 50);
    const auto g = model->features(x);
    auto changed = x.clone();
    changed[0][0] = (x[0][0].item<int64_t>() % 49) + 1;
    QVERIFY2(maxAbsDiff(model->features(changed)[0], g[0]) > 1e-4, "causal attention should carry token 0 to the last");
    QVERIFY(maxAbsDiff(model->features(changed)[1], g[1]) < 1e-6);
    const auto padded = model->features(torch::cat({x, torch::zeros({2, 4}, torch::kLong)}, 1));
    QVERIFY2(maxAbsDiff(padded, g) < 1e-5, "appending padding changed the last-token feature");
  }

  void featuresRejectTooLong() {
    auto model = build(smallConfig("transformer"));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, model->features(torch::ones({1, 25}, torch::kLong)));
  }

  void retnetDecays() {
    auto g = RetNetBlockImpl::decays(4);
    QCOMPARE(int(g.size()), 4);
    QCOMPARE(g[0], 1.0 - 1.0 / 32);
    QCOMPARE(g[3], 1.0 - 1.0 / 256);
  }

  // Parallel (Q K^T (.) D) V equals the recurrence S_n = gamma S_{n-1} + k_n^T v_n, o_n = q_n S_n,
  // for the bare retention and for the whole block (with padding).
  void retnetParallelEqualsRecurrent_data() {
    QTest::addColumn<bool>("float64");
    QTest::addColumn<double>("tolerance");
    QTest::newRow("float64") << true << 1e-10;
    QTest::newRow("float32") << false << 1e-5;
  }
  void retnetParallelEqualsRecurrent() {
    QFETCH(bool, float64);
    QFETCH(double, tolerance);
    const auto dtype = float64 ? torch::kFloat64 : torch::kFloat32;
    torch::manual_seed(3);
    auto q = torch::randn({2, 4, 40, 8}, dtype), k = torch::randn({2, 4, 40, 8}, dtype),
         v = torch::randn({2, 4, 40, 6}, dtype);
    auto gamma = torch::tensor(RetNetBlockImpl::decays(4), dtype);
    auto rp = RetNetBlockImpl::retentionParallel(q, k, v, gamma);
    auto rr = RetNetBlockImpl::retentionRecurrent(q, k, v, gamma);
    QVERIFY(rp.sizes() == torch::IntArrayRef({2, 4, 40, 6}));
    const double eRet = relErr(rp, rr);
    QVERIFY2(eRet <= tolerance, qPrintable(QString("retention rel err %1").arg(eRet)));

    auto block = std::make_shared<RetNetBlockImpl>(32, 4, 2, 0.1);
    block->to(dtype);
    block->eval();
    auto x = torch::randn({3, 20, 32}, dtype);
    auto mask = lengthMask({20, 13, 0}, 20);
    QVERIFY(!block->recurrent());
    auto yp = block->forward(x, mask);
    block->setRecurrent(true);
    auto yr = block->forward(x, mask);
    const double eBlock = relErr(yp, yr);
    qInfo("relative error: retention %.3g, block %.3g", eRet, eBlock);
    QVERIFY2(eBlock <= tolerance, qPrintable(QString("block rel err %1").arg(eBlock)));
  }

  void ncmHead() {
    torch::manual_seed(4);
    auto cfg = smallConfig("transformer", "ncm");
    cfg.num_classes = 5;
    auto model = build(cfg);
    model->eval();
    QVERIFY(!model->headIsTrainable());
    QVERIFY(model->headParameters().empty());
    // Nothing observed yet: every class is masked.
    QVERIFY(model->logits(torch::randn({2, 32})).eq(kNcmUnseenLogit).all().item<bool>());

    auto feats = torch::randn({9, 32}).requires_grad_(true);  // observing must not need grad
    auto labels = torch::tensor({0, 0, 0, 1, 1, 2, 2, 2, 2}, torch::kLong);
    model->ncmObserve(feats, labels);
    for (int c = 0; c < 3; ++c) {
      auto mean = feats.detach().index({labels.eq(c)}).mean(0, true);
      auto lg = model->logits(mean);
      QCOMPARE(lg.argmax(1).item<int64_t>(), int64_t(c));
      QVERIFY(std::abs(lg[0][c].item<double>() - cfg.ncm_scale) < 1e-4);  // cosine 1
      QCOMPARE(lg[0][3].item<double>(), kNcmUnseenLogit);                 // unseen classes stay masked
      QCOMPARE(lg[0][4].item<double>(), kNcmUnseenLogit);
    }

    // Gradient reaches the encoder through the cosine logits.
    auto out = model->forward(randomTokens({6, 3}, 6, 50));
    QVERIFY(out.requires_grad());

    // The class statistics are buffers: they save and load with the module.
    std::stringstream ss;
    torch::save(model, ss);
    auto loaded = build(cfg);
    torch::load(loaded, ss);
    auto probe = torch::randn({4, 32});
    QVERIFY(maxAbsDiff(model->logits(probe), loaded->logits(probe)) == 0.0);

    model->ncmReset();
    QVERIFY(model->logits(probe).eq(kNcmUnseenLogit).all().item<bool>());
  }

  void softmaxHead() {
    auto model = build(smallConfig("lstm"));
    QVERIFY(model->headIsTrainable());
    auto hp = model->headParameters();
    QCOMPARE(int(hp.size()), 2);
    QCOMPARE(qint64(hp[0].numel() + hp[1].numel()), qint64(32 * 4 + 4));
    model->ncmObserve(torch::randn({2, 32}), torch::tensor({0, 1}, torch::kLong));  // no-op
    auto names = model->named_parameters().keys();
    QVERIFY(std::find(names.begin(), names.end(), "blocks.1.lstm.weight_hh_l0") != names.end());
  }

  // Hand-computed parameter counts, d = 128, vocab 2000, max_len 64, 70 classes, 2 blocks:
  //   token embedding 2000*128 = 256000; positions 64*128 = 8192; final LayerNorm 2*128 = 256;
  //   softmax head 128*70 + 70 = 9030.  Shared part: 273478.
  //   transformer block: LN1 256 + qkv (128*384 + 384 = 49536) + out (128*128 + 128 = 16512)
  //     + LN2 256 + FFN (128*256 + 256 = 33024) + (256*128 + 128 = 32896) = 132480
  //     -> 273478 + 2*132480 = 538438
  //   lstm block (hidden 128): LN 256 + LSTM 4*128*(128 + 128) + 2*4*128 = 132096 -> 132352
  //     -> 273478 + 2*132352 = 538182
  //   lstm block (hidden 64): LN 256 + 4*64*(128 + 64) + 8*64 = 49664 + proj 64*128 + 128 = 8320
  //     = 58240 -> 273478 + 2*58240 = 389958
  //   retnet block: LN1 256 + q,k,v,gate,out 5*128*128 = 81920 (no bias) + GroupNorm 256
  //     + LN2 256 + FFN 65920 = 148608 -> 273478 + 2*148608 = 570694
  //   ncm head: no parameters -> transformer 538438 - 9030 = 529408
  void paramCounts() {
    QCOMPARE(qint64(count_params(*build(defaultConfig("transformer")))), qint64(538438));
    QCOMPARE(qint64(count_params(*build(defaultConfig("lstm")))), qint64(538182));
    QCOMPARE(qint64(count_params(*build(defaultConfig("retnet")))), qint64(570694));
    // titans block: LN1 256 + q,k,v 3*16384 (no bias) + depthwise conv 384*4 + 384 = 1920
    //   + gates 128*12 + 12 = 1548 + output gate 16384 + 128 + out 16384 (no bias)
    //   + memory W1, W2 2 * 4*32*32 = 8192 + LN2 256 + FFN 65920 = 160140
    //   -> 273478 + 2*160140 = 593758
    QCOMPARE(qint64(count_params(*build(defaultConfig("titans")))), qint64(593758));
    auto lstm64 = defaultConfig("lstm");
    for (auto& b : lstm64.blocks) b.hidden = 64;
    QCOMPARE(qint64(count_params(*build(lstm64))), qint64(389958));
    auto ncm = defaultConfig("transformer");
    ncm.head = hl::HeadType::Ncm;
    QCOMPARE(qint64(count_params(*build(ncm))), qint64(529408));
  }

  // flops = 2 x multiply-adds; d 8, L 4, ffn_mult 2, 3 classes, one block; head 2*8*3 = 48.
  //   transformer: 4*L*d^2 + 2*L^2*d + 2*f*L*d^2 = 1024 + 256 + 1024 = 2304 -> 4608 + 48 = 4656
  //   retnet:      5*L*d^2 + 2*L^2*d + 2*f*L*d^2 = 1280 + 256 + 1024 = 2560 -> 5120 + 48 = 5168
  //   lstm h 4:    L*4h(d+h) + L*h*d = 768 + 128 = 896 -> 1792 + 48 = 1840
  void flopsFormula() {
    auto cfg = [](const std::string& type, int hidden) {
      ModelConfig c;
      c.d_model = 8;
      c.num_classes = 3;
      c.blocks = {blockOf(type, hidden)};
      c.blocks[0].heads = 2;
      return c;
    };
    QCOMPARE(flops_per_sample(cfg("transformer", 0), 4), 4656.0);
    QCOMPARE(flops_per_sample(cfg("retnet", 0), 4), 5168.0);
    QCOMPARE(flops_per_sample(cfg("lstm", 4), 4), 1840.0);
    // titans, 2 heads (D 4): 5*L*d^2 + 3*H*L*d + 12*L*d + 10*L*d*D + 2*f*L*d^2
    //   = 1280 + 192 + 384 + 1280 + 1024 = 4160 -> 8320 + 48 = 8368
    QCOMPARE(flops_per_sample(cfg("titans", 0), 4), 8368.0);
  }

  // The transformer's dropout sites (docs/MODELS.md "Dropout sites"): each one, alone (residual
  // dropout 0), makes two training-mode forwards differ and leaves eval mode equal to the model
  // without it (same weights: the sites add no parameters); at 0 the forward draws no random numbers.
  void transformerDropoutSitesActOnlyWhileTraining() {
    for (int site = 0; site < 3; ++site) {
      auto base = smallConfig("transformer");
      for (auto& b : base.blocks) b.dropout = 0;
      auto cfg = base;
      if (site == 0) cfg.embedding_dropout = 0.3;
      for (auto& b : cfg.blocks) {
        if (site == 1) b.attention_dropout = 0.3;
        if (site == 2) b.ffn_dropout = 0.3;
      }
      torch::manual_seed(5);
      auto m = build(cfg);
      torch::manual_seed(5);
      auto ref = build(base);
      QCOMPARE(count_params(*m), count_params(*ref));
      auto tok = randomTokens({10, 7, 12}, 12, 50);
      m->train();
      auto a = m->features(tok), b = m->features(tok);
      QVERIFY2((a - b).abs().max().item<double>() > 1e-4, qPrintable(QString("site %1 inactive").arg(site)));
      m->eval();
      ref->eval();
      QVERIFY((m->features(tok) - ref->features(tok)).abs().max().item<double>() < 1e-6);
      ref->train();  // every site 0: no random numbers drawn
      torch::manual_seed(11);
      ref->features(tok);
      const auto after = torch::rand({1}).item<double>();
      torch::manual_seed(11);
      QCOMPARE(torch::rand({1}).item<double>(), after);
    }
  }

  // Each model drives the loss on a fixed batch (16 sequences, 4 classes) below 0.1.
  void overfitsSmallBatch_data() {
    QTest::addColumn<QString>("type");
    for (const char* t : kTypes) QTest::newRow(t) << QString(t);
  }
  void overfitsSmallBatch() {
    QFETCH(QString, type);
    torch::manual_seed(5);
    auto model = build(smallConfig(type.toStdString()));
    std::vector<int64_t> lengths;
    std::vector<int64_t> labels;
    for (int i = 0; i < 16; ++i) {
      lengths.push_back(4 + i % 9);
      labels.push_back(i % 4);
    }
    auto tokens = randomTokens(lengths, 12, 50);
    auto y = torch::tensor(labels, torch::kLong);
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(3e-3));
    model->train();
    for (int step = 0; step < 100; ++step) {
      opt.zero_grad();
      auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), y);
      loss.backward();
      opt.step();
    }
    model->eval();
    const double loss = torch::nn::functional::cross_entropy(model->forward(tokens), y).item<double>();
    qInfo("final loss %.3g", loss);
    QVERIFY2(loss < 0.1, qPrintable(QString("final loss %1").arg(loss)));
  }

  void badConfigsThrow() {
    struct Case {
      std::function<void(ModelConfig&)> mutate;
      std::string expected;  // prefix of the message
    };
    const std::vector<Case> cases = {
        {[](ModelConfig& c) { c.blocks[1].heads = 5; }, "model.blocks[1].heads: 5 does not divide d_model 128"},
        {[](ModelConfig& c) {
           c.blocks[0].type = hl::BlockType::Retnet;
           c.blocks[0].heads = 0;
         },
         "model.blocks[0].heads:"},
        {[](ModelConfig& c) { c.blocks[1].ffn_mult = 0; }, "model.blocks[1].ffn_mult:"},
        {[](ModelConfig& c) { c.blocks[0].dropout = 1.0; }, "model.blocks[0].dropout:"},
        {[](ModelConfig& c) {
           c.blocks[1].type = hl::BlockType::Lstm;
           c.blocks[1].hidden = -1;
         },
         "model.blocks[1].hidden:"},
        {[](ModelConfig& c) {
           c.blocks[1].type = hl::BlockType::Titans;
           c.blocks[1].heads = 5;
         },
         "model.blocks[1].heads: 5 does not divide d_model 128"},
        {[](ModelConfig& c) {
           c.blocks[0].type = hl::BlockType::Titans;
           c.blocks[0].chunk = 0;
         },
         "model.blocks[0].chunk:"},
        {[](ModelConfig& c) {
           c.blocks[0].type = hl::BlockType::Titans;
           c.blocks[0].inner_lr = 0;
         },
         "model.blocks[0].inner_lr:"},
        {[](ModelConfig& c) {
           c.blocks[1].type = hl::BlockType::Titans;
           c.blocks[1].momentum = 1.5;
         },
         "model.blocks[1].momentum:"},
        {[](ModelConfig& c) {
           c.blocks[1].type = hl::BlockType::Titans;
           c.blocks[1].retain = -0.1;
         },
         "model.blocks[1].retain:"},
        {[](ModelConfig& c) {
           c.blocks[0].type = hl::BlockType::Titans;
           c.blocks[0].ffn_mult = 0;
         },
         "model.blocks[0].ffn_mult:"},
        {[](ModelConfig& c) { c.d_model = 0; }, "model.d_model:"},
        {[](ModelConfig& c) { c.vocab_size = 0; }, "model.vocab_size:"},
        {[](ModelConfig& c) { c.max_len = 0; }, "model.max_len:"},
        {[](ModelConfig& c) { c.num_classes = 0; }, "model.num_classes:"},
        {[](ModelConfig& c) { c.pad_id = 2000; }, "model.pad_id:"},
        {[](ModelConfig& c) {
           c.head = hl::HeadType::Ncm;
           c.ncm_scale = 0;
         },
         "model.ncm_scale:"},
    };
    for (const auto& tc : cases) {
      auto cfg = defaultConfig("transformer");
      tc.mutate(cfg);
      for (int via = 0; via < 2; ++via) {  // build() and flops_per_sample() both validate
        std::string msg;
        try {
          if (via == 0)
            build(cfg);
          else
            flops_per_sample(cfg, 64);
        } catch (const std::invalid_argument& e) {
          msg = e.what();
        }
        QVERIFY2(msg.rfind(tc.expected, 0) == 0,
                 qPrintable(QString("expected '%1...', got '%2'")
                                .arg(QString::fromStdString(tc.expected), QString::fromStdString(msg))));
      }
    }
    // Fields a block type does not use are not checked: heads 5 is fine for an lstm.
    auto lstm = defaultConfig("lstm");
    lstm.blocks[0].heads = 5;
    build(lstm);
  }

  // The outer loss reaches the memory's initial weights and the gate layers (θ, η, α logits)
  // through the differentiable writes; contextStats() reports each titans block's memory.
  void titansGradientsAndStats() {
    torch::manual_seed(7);
    auto cfg = smallConfig("titans");
    cfg.blocks = {blockOf("titans"), blockOf("transformer"), blockOf("titans")};
    auto model = build(cfg);
    model->eval();
    auto tokens = randomTokens({12, 9, 5, 0}, 12, 50);
    auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), torch::tensor({0, 1, 2, 3}, torch::kLong));
    loss.backward();
    auto t = std::dynamic_pointer_cast<TitansBlockImpl>(model->blocks()[0]);
    QVERIFY(t != nullptr);
    auto nonzero = [](const torch::Tensor& g) {
      return g.defined() && allFinite(g) && g.abs().sum().item<double>() > 0;
    };
    QVERIFY2(nonzero(t->memW1().grad()), "no gradient on the memory's initial W1");
    QVERIFY2(nonzero(t->memW2().grad()), "no gradient on the memory's initial W2");
    auto gw = t->gateLayer()->weight.grad();
    QVERIFY2(nonzero(gw), "no gradient on the gate layer");
    // Each of the θ, η, α rows (gate layer output 3*H, grouped by gate) gets a gradient.
    for (int64_t g = 0; g < 3; ++g)
      QVERIFY2(nonzero(gw.narrow(0, g * 4, 4)), qPrintable(QString("gate %1 has no gradient").arg(g)));

    auto stats = model->contextStats();
    QCOMPARE(int(stats.size()), 2);
    QCOMPARE(stats[0].block, 0);
    QCOMPARE(stats[1].block, 2);
    for (const auto& s : stats) {
      QVERIFY(std::isfinite(s.loss) && s.loss > 0);
      QVERIFY(std::isfinite(s.drift) && s.drift > 0);
      QVERIFY(s.clamped >= 0);
      // Chunks (of 4) with a real token: 3 + 3 + 2 + 0 = 8 per block.
      QCOMPARE(qint64(s.writes), qint64(8));
    }

    // stop_grad_writes: the initial weights still get a gradient through the reads.
    auto sg = smallConfig("titans");
    for (auto& b : sg.blocks) b.stop_grad_writes = true;
    auto m2 = build(sg);
    torch::nn::functional::cross_entropy(m2->forward(tokens), torch::tensor({0, 1, 2, 3}, torch::kLong)).backward();
    auto t2 = std::dynamic_pointer_cast<TitansBlockImpl>(m2->blocks()[0]);
    QVERIFY(nonzero(t2->memW1().grad()));
  }

  void determinism() {
    ModelConfig cfg = smallConfig("transformer");
    cfg.blocks = {blockOf("transformer"), blockOf("lstm"), blockOf("retnet")};
    auto paramsAt = [&](uint64_t seed) {
      torch::manual_seed(seed);
      return build(cfg)->parameters();
    };
    auto a = paramsAt(123), b = paramsAt(123), c = paramsAt(124);
    QCOMPARE(int(a.size()), int(b.size()));
    bool anyDiffers = false;
    for (size_t i = 0; i < a.size(); ++i) {
      QVERIFY(torch::equal(a[i], b[i]));
      anyDiffers = anyDiffers || !torch::equal(a[i], c[i]);
    }
    QVERIFY(anyDiffers);
  }

  // The numbers docs/MODELS.md quotes (HL_MODELS_REPORT=1 prints them).
  void reportDefaults() {
    if (qEnvironmentVariableIsEmpty("HL_MODELS_REPORT")) QSKIP("set HL_MODELS_REPORT=1");
    for (const char* t : kTypes) {
      auto cfg = defaultConfig(t);
      qInfo("%-12s params %lld  flops/sample L=64 %.0f", t, static_cast<long long>(count_params(*build(cfg))),
            flops_per_sample(cfg, 64));
    }
  }
};

QTEST_APPLESS_MAIN(TestModels)
#include "test_models.moc"
