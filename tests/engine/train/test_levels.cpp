// CMS level mechanics and the memory head (docs/MODELS.md "CMS variants, clocks and transfer",
// "Level stacking", "Memory head"): the DGD write against its formula, recall, parameters
// bit-unchanged between ticks, the nested reset, task clocks with consolidate, level stacking,
// and the memory head on real data with an exact resume.
#include "engine/torch_wrap.h"

#include <QtTest>

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "engine/common/error.h"
#include "engine/models/classifier.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/experiment.h"

using json = nlohmann::json;
using namespace hl::train;

namespace {

// Every probe of a run, by level, in order.
struct Probes {
  std::map<std::string, std::vector<LevelProbe>> by_level;
  void operator()(const LevelProbe& p) { by_level[p.level].push_back(p); }
};

bool same_bytes(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// A small CMS model (embedding + one cms block) on Banking77: 7 tasks.
json cms_spec(int limit, int epochs, json levels) {
  json s = hl::spec::preset("transformer");
  s["model"]["d_model"] = 32;
  s["model"]["vocab_size"] = 300;
  json b = hl::spec::block_defaults("cms");
  b["levels"] = std::move(levels);
  s["model"]["blocks"] = json::array({b});
  s["training"]["epochs"] = epochs;
  s["training"]["limit_per_class"] = limit;
  s["training"]["eval_limit_per_class"] = 5;
  s["training"]["checkpoints"] = false;
  s["training"]["threads"] = 1;
  s["experiment"]["dataset"] = "banking77";
  return hl::spec::complete(s);
}

json clocks(std::initializer_list<int> cs) {
  json a = json::array();
  for (int c : cs) a.push_back({{"clock", c}, {"lr", 0.0}});
  return a;
}

struct Counter : Observer {
  Control* c = nullptr;
  int after = 0, seen = 0;
  std::vector<Event> points;
  void onEvent(const Event& e) override {
    if (e.kind == EventKind::Point) points.push_back(e);
    if (c && e.kind == EventKind::Progress && ++seen == after) c->requestCancel();
  }
};

}  // namespace

class TestLevels : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  RunOptions opt_;

 private slots:
  void initTestCase() {
    torch::set_num_threads(1);
    opt_.data_dir = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT).toStdString();
    opt_.cache_dir = tmp_.filePath("cache").toStdString();
  }

  // ---------------------------------------------------------------- memory head: the DGD write
  // S ← βS − η·2(Wu − y)uᵀ;  W ← W(αI − η u uᵀ) + S, computed here element by element in doubles.
  void dgdWriteEqualsTheFormula() {
    const int C = 3, d = 4;
    const double Wv[C][d] = {{0.3, -0.2, 0.1, 0.5}, {-0.4, 0.25, 0.0, 0.15}, {0.05, 0.6, -0.3, -0.1}};
    const double Sv[C][d] = {{0.01, 0.02, -0.03, 0.0}, {0.0, -0.05, 0.04, 0.02}, {0.03, 0.0, 0.01, -0.02}};
    const double u[d] = {0.2, -0.1, 0.4, 0.3};
    const double y[C] = {0, 1, 0};
    const double eta = 0.7, alpha = 0.95, beta = 0.9;  // 3·η·‖u‖² = 0.63 ≤ 1.8: not clamped
    auto W = torch::empty({C, d}, torch::kDouble), S = torch::empty({C, d}, torch::kDouble);
    for (int i = 0; i < C; ++i)
      for (int j = 0; j < d; ++j) W[i][j] = Wv[i][j], S[i][j] = Sv[i][j];
    auto ut = torch::tensor(std::vector<double>(u, u + d), torch::kDouble);
    auto yt = torch::tensor(std::vector<double>(y, y + C), torch::kDouble);
    bool clamped = true;
    const double loss = hl::models::dgd_write(W, S, ut, yt, eta, alpha, beta, &clamped);
    QVERIFY(!clamped);
    double err[C], want_loss = 0;
    for (int i = 0; i < C; ++i) {
      err[i] = -y[i];
      for (int j = 0; j < d; ++j) err[i] += Wv[i][j] * u[j];
      want_loss += err[i] * err[i];
    }
    QVERIFY(std::abs(loss - want_loss) < 1e-12);
    for (int i = 0; i < C; ++i)
      for (int j = 0; j < d; ++j) {
        const double s_new = beta * Sv[i][j] - eta * 2.0 * err[i] * u[j];
        double w_new = s_new;
        for (int k = 0; k < d; ++k) w_new += Wv[i][k] * ((k == j ? alpha : 0.0) - eta * u[k] * u[j]);
        QVERIFY2(std::abs(S[i][j].item<double>() - s_new) < 1e-12, qPrintable(QString("S[%1][%2]").arg(i).arg(j)));
        QVERIFY2(std::abs(W[i][j].item<double>() - w_new) < 1e-12, qPrintable(QString("W[%1][%2]").arg(i).arg(j)));
      }
  }

  // η is clamped so that 3·η·‖u‖² = 1.8 exactly, and the write says so.
  void dgdWriteClampsTheStepOnLargeKeys() {
    auto W = torch::zeros({2, 3}, torch::kDouble), S = torch::zeros({2, 3}, torch::kDouble);
    auto u = torch::tensor({2.0, 0.0, 0.0}, torch::kDouble);  // ‖u‖² = 4: η_max = 0.15
    auto y = torch::tensor({1.0, 0.0}, torch::kDouble);
    bool clamped = false;
    hl::models::dgd_write(W, S, u, y, 0.5, 1.0, 0.0, &clamped);
    QVERIFY(clamped);
    // From W = 0, S = 0: W = 2·η·y·uᵀ with η = 0.15 -> W[0][0] = 0.6.
    QVERIFY(std::abs(W[0][0].item<double>() - 0.6) < 1e-12);
    QVERIFY(std::abs(W.sum().item<double>() - 0.6) < 1e-12);
  }

  // Orthonormal keys, η = 1/2, no momentum, no decay: each write stores y exactly and leaves the
  // others alone, so every key reads back its one-hot label to 1e-12. Near-orthogonal keys with
  // the default momentum still recall every label by argmax.
  void memoryRecallsStoredAssociations() {
    const int d = 32, C = 8;
    torch::manual_seed(1);
    auto q = std::get<0>(torch::linalg_qr(torch::randn({d, d}, torch::kDouble)));  // orthonormal columns
    auto W = torch::zeros({C, d}, torch::kDouble), S = torch::zeros({C, d}, torch::kDouble);
    for (int i = 0; i < C; ++i) {
      auto y = torch::zeros({C}, torch::kDouble);
      y[(i * 3) % C] = 1.0;
      hl::models::dgd_write(W, S, q.select(1, i), y, 0.5, 1.0, 0.0);
    }
    for (int i = 0; i < C; ++i) {
      auto r = torch::mv(W, q.select(1, i));
      auto y = torch::zeros({C}, torch::kDouble);
      y[(i * 3) % C] = 1.0;
      QVERIFY2((r - y).abs().max().item<double>() < 1e-12, qPrintable(QString("key %1").arg(i)));
    }
    torch::manual_seed(3);
    auto keys = q.narrow(1, 0, C).t() + 0.02 * torch::randn({C, d}, torch::kDouble);
    keys = keys / keys.norm(2, 1, true);
    W.zero_();
    S.zero_();
    for (int i = 0; i < C; ++i) {
      auto y = torch::zeros({C}, torch::kDouble);
      y[(i * 5) % C] = 1.0;
      hl::models::dgd_write(W, S, keys[i], y, 0.1, 1.0, 0.9);
    }
    for (int i = 0; i < C; ++i) QCOMPARE(torch::mv(W, keys[i]).argmax().item<int64_t>(), int64_t((i * 5) % C));
  }

  // Through the classifier: keys are the L2-normalised pooled features, the read-out is
  // scale · W û, so after η = 1/2 writes of orthogonal features of any length each reads back its
  // label as scale · one-hot; other heads ignore writes; bad head fields name their path.
  void classifierMemoryHeadWritesAndReads() {
    hl::models::ModelConfig cfg;
    cfg.vocab_size = 16;
    cfg.max_len = 8;
    cfg.d_model = 8;
    cfg.num_classes = 4;
    cfg.head = hl::HeadType::Memory;
    cfg.memory_inner_lr = 0.5;
    cfg.memory_momentum = 0.0;
    cfg.memory_scale = 10.0;
    auto model = hl::models::build(cfg);
    auto pooled = torch::zeros({4, 8});
    for (int i = 0; i < 4; ++i) pooled[i][2 * i] = 3.0 + i;  // orthogonal, norms 3..6
    auto labels = torch::tensor({2, 0, 3, 1}, torch::kLong);
    QCOMPARE(model->logits(pooled).abs().max().item<double>(), 0.0);  // empty memory
    int64_t clamped = 0;
    const double loss = model->memoryWrite(model->memoryKeys(pooled), labels, &clamped);
    QCOMPARE(clamped, int64_t(0));
    QVERIFY(std::abs(loss - 4.0) < 1e-6);  // each row: ‖0 − y‖² = 1 before its write
    auto want = 10.0 * torch::one_hot(labels, 4).to(torch::kFloat);
    QVERIFY((model->logits(pooled) - want).abs().max().item<double>() < 1e-5);
    QCOMPARE(model->memoryW().requires_grad(), false);
    cfg.memory_inner_lr = 0.9;  // 3·0.9·1 > 1.8: every write clamped
    auto m2 = hl::models::build(cfg);
    m2->memoryWrite(m2->memoryKeys(pooled), labels, &clamped);
    QCOMPARE(clamped, int64_t(4));
    cfg.head = hl::HeadType::Softmax;
    auto soft = hl::models::build(cfg);
    QCOMPARE(soft->memoryWrite(pooled, labels, &clamped), 0.0);
    cfg.head = hl::HeadType::Memory;
    cfg.memory_retain = 1.5;
    bool named = false;
    try {
      hl::models::build(cfg);
    } catch (const std::invalid_argument& e) {
      named = std::string(e.what()).find("model.head.retain") != std::string::npos;
    }
    QVERIFY(named);
  }

  // ---------------------------------------------------------------- clocks
  // Between its ticks a level's parameters and optimizer state are byte-identical (AdamW with
  // weight decay 0.01 on); at each tick both change. Clocks 1, 4, 16 over 56 steps.
  void levelParametersBitUnchangedBetweenTicks() {
    json s = cms_spec(10, 2, clocks({1, 4, 16}));
    QCOMPARE(s["optimizer"]["type"].get<std::string>(), std::string("adamw"));
    QVERIFY(s["optimizer"]["weight_decay"].get<double>() > 0);
    Probes pr;
    RunOptions o = opt_;
    o.level_probe = std::ref(pr);
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const int64_t steps = r.summary["steps"].get<int64_t>();
    QCOMPARE(steps, int64_t(56));  // 7 tasks x 100 rows / 32 -> 4 batches x 2 epochs
    const std::map<std::string, int> clock = {{"cms1", 1}, {"cms2", 4}, {"cms3", 16}};
    for (const auto& [name, C] : clock) {
      const auto& v = pr.by_level.at(name);
      QCOMPARE(int64_t(v.size()), steps + 1);  // before training + after every step
      int64_t changes = 0;
      for (size_t k = 1; k < v.size(); ++k) {
        const int64_t st = v[k].step;
        const bool tick = (st + 1) % C == 0;
        const bool same_p = same_bytes(v[k].params, v[k - 1].params);
        const bool same_o = v[k].optimizer_state == v[k - 1].optimizer_state;
        QVERIFY2(same_p != tick, qPrintable(QString("%1 step %2: params %3 at a %4")
                                                .arg(name.c_str())
                                                .arg(st)
                                                .arg(same_p ? "unchanged" : "changed")
                                                .arg(tick ? "tick" : "non-tick")));
        QVERIFY2(same_o != tick, qPrintable(QString("%1 step %2: optimizer state").arg(name.c_str()).arg(st)));
        QCOMPARE(v[k].ticks, (st + 1) / C);
        changes += !same_p;
      }
      QCOMPARE(changes, steps / C);
    }
    for (const auto& c : r.summary["cadence"]) QCOMPARE(c["expected"].get<int64_t>(), c["actual"].get<int64_t>());
  }

  // variant nested (docs/MEMORY.md "Nested CMS"): at each tick of cms2 (clock 4) cms1 restarts from
  // the parameters cms2 holds after its own update, with a fresh optimizer state, byte for byte; at
  // every other step it differs from cms2.
  void nestedResetHappensExactlyAtTheSlowerTick() {
    json s = cms_spec(10, 1, clocks({1, 4}));
    s["model"]["blocks"][0]["variant"] = "nested";
    Probes pr;
    RunOptions o = opt_;
    o.level_probe = std::ref(pr);
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const auto& v = pr.by_level.at("cms1");
    const auto& w = pr.by_level.at("cms2");
    const auto& init = v.front();
    QCOMPARE(init.step, int64_t(-1));
    QCOMPARE(v.size(), w.size());
    int resets = 0;
    for (size_t k = 1; k < v.size(); ++k) {
      QCOMPARE(v[k].step, w[k].step);
      const bool slow_tick = (v[k].step + 1) % 4 == 0;
      const bool at_slow = same_bytes(v[k].params, w[k].params);
      QVERIFY2(at_slow == slow_tick, qPrintable(QString("step %1").arg(v[k].step)));
      if (slow_tick) {
        QVERIFY(v[k].optimizer_state == init.optimizer_state);
        QVERIFY(!same_bytes(v[k].params, init.params));      // not the run-start state (the old reset)
        QVERIFY(!same_bytes(w[k].params, w[k - 1].params));  // cms2 stepped first, then cms1 took its state
      }
      resets += at_slow;
    }
    QCOMPARE(resets, int(r.summary["steps"].get<int64_t>() / 4));
    // cms2 itself is not reset (nested resets only the faster level).
    QVERIFY(!same_bytes(w.back().params, w.front().params));
    // The sequential default never resets.
    json s2 = cms_spec(10, 1, clocks({1, 4}));
    Probes p2;
    o.level_probe = std::ref(p2);
    run_experiment(s2, o, {});
    for (size_t k = 1; k < p2.by_level.at("cms1").size(); ++k)
      QVERIFY(!same_bytes(p2.by_level.at("cms1")[k].params, p2.by_level.at("cms1").front().params));
  }

  // clock_unit tasks + transfer consolidate (β = 0.5), clocks 1 and 2 over 7 tasks: the fastest
  // level steps once per task end, the slow one consolidates at every second task end,
  // θ_slow ← θ_slow + β(θ_fast − θ_slow), and nothing changes between those ticks.
  void taskClocksConsolidateTowardTheFasterLevel() {
    json s = cms_spec(5, 1, clocks({1, 2}));
    s["model"]["blocks"][0]["clock_unit"] = "tasks";
    s["model"]["blocks"][0]["transfer"] = "consolidate";
    Probes pr;
    RunOptions o = opt_;
    o.level_probe = std::ref(pr);
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    std::map<std::string, json> cad;
    for (const auto& c : r.summary["cadence"]) cad[c["level"].get<std::string>()] = c;
    QCOMPARE(cad["cms1"]["expected"].get<int64_t>(), int64_t(7));
    QCOMPARE(cad["cms1"]["actual"].get<int64_t>(), int64_t(7));
    QCOMPARE(cad["cms2"]["expected"].get<int64_t>(), int64_t(3));
    QCOMPARE(cad["cms2"]["actual"].get<int64_t>(), int64_t(3));
    QCOMPARE(cad["cms2"]["clock_unit"].get<std::string>(), std::string("tasks"));
    const auto& fast = pr.by_level.at("cms1");
    const auto& slow = pr.by_level.at("cms2");
    QCOMPARE(fast.size(), slow.size());
    int consolidations = 0, fast_ticks = 0;
    for (size_t k = 1; k < slow.size(); ++k) {
      const bool fast_changed = !same_bytes(fast[k].params, fast[k - 1].params);
      const bool slow_changed = !same_bytes(slow[k].params, slow[k - 1].params);
      QCOMPARE(fast_changed, fast[k].task_end);  // only the task-end ticks move a task-clocked level
      fast_ticks += fast_changed;
      if (!slow[k].task_end || slow[k].ticks == slow[k - 1].ticks) {
        QVERIFY2(!slow_changed, qPrintable(QString("step %1").arg(slow[k].step)));
        continue;
      }
      ++consolidations;
      double worst = 0;
      for (size_t i = 0; i < slow[k].params.size(); ++i) {
        const double want = slow[k - 1].params[i] + 0.5 * (fast[k].params[i] - slow[k - 1].params[i]);
        worst = std::max(worst, std::abs(slow[k].params[i] - want));
      }
      QVERIFY2(worst < 1e-6, qPrintable(QString("consolidation off by %1").arg(worst)));
      QVERIFY(slow_changed);
    }
    QCOMPARE(consolidations, 3);
    QCOMPARE(fast_ticks, 7);
  }

  // consolidate needs levels of equal shapes; task/step and variant names are checked with paths.
  void cmsFieldsAreValidatedWithTheirPaths() {
    json s = cms_spec(5, 1, clocks({1, 2}));
    s["model"]["blocks"][0]["clock_unit"] = "epochs";
    s["model"]["blocks"][0]["variant"] = "braided";
    s["model"]["blocks"][0]["consolidate_rate"] = 1.5;
    auto v = hl::spec::validate(s);
    QVERIFY(!v.ok());
    const std::string f = v.format();
    for (const char* p : {"model.blocks[0].clock_unit", "model.blocks[0].variant", "model.blocks[0].consolidate_rate"})
      QVERIFY2(f.find(p) != std::string::npos, f.c_str());
    json h = cms_spec(5, 1, clocks({1}));
    h["model"]["head"]["type"] = "memory";
    h["model"]["head"]["retain"] = 2.0;
    h["model"]["head"]["clock"] = 0;
    const std::string hf = hl::spec::validate(h).format();
    QVERIFY2(hf.find("model.head.retain") != std::string::npos, hf.c_str());
    QVERIFY2(hf.find("model.head.clock") != std::string::npos, hf.c_str());
    h["model"]["head"]["retain"] = 1.0;
    h["model"]["head"]["clock"] = 1;
    h["model"]["head"]["inner_lr"] = 0.8;
    auto hv = hl::spec::validate(h);
    QVERIFY2(hv.ok() && hv.format().find("warning: model.head.inner_lr") != std::string::npos, hv.format().c_str());
  }

  // ---------------------------------------------------------------- level stacking
  // A level initialised from level 1 of block 0 of a stored checkpoint starts with exactly those
  // parameters; a missing file and a shape mismatch are spec errors (exit 2) naming the field.
  void levelStackingCopiesAStoredLevel() {
    json s = cms_spec(5, 1, clocks({1, 4}));
    s["training"]["checkpoints"] = true;
    Probes src;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("stack.db").toStdString();
    o.level_probe = std::ref(src);
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const std::string ckpt = o.db_path + ".checkpoints/run-" + std::to_string(r.run_id) + "/last.pt";
    QVERIFY(QFile::exists(QString::fromStdString(ckpt)));

    json t = cms_spec(5, 1, clocks({1, 4}));
    t["experiment"]["seed"] = 7;  // another init, so a copy cannot be a coincidence
    t["model"]["blocks"][0]["levels"][0]["init_from"] = {{"checkpoint", ckpt}, {"block", 0}, {"level", 1}};
    Probes dst;
    RunOptions o2 = opt_;
    o2.level_probe = std::ref(dst);
    auto r2 = run_experiment(t, o2, {});
    QCOMPARE(QString::fromStdString(hl::name(r2.status)), QString("finished"));
    QVERIFY(same_bytes(dst.by_level.at("cms1").front().params, src.by_level.at("cms2").back().params));
    QVERIFY(!same_bytes(dst.by_level.at("cms2").front().params, src.by_level.at("cms2").front().params));

    auto spec_error = [&](json bad, const std::string& needle) {
      try {
        run_experiment(bad, o2, {});
      } catch (const hl::SpecError& e) {
        QCOMPARE(e.exitCode(), 2);
        QVERIFY2(std::string(e.what()).find(needle) != std::string::npos, e.what());
        return;
      }
      QFAIL("expected a SpecError");
    };
    json missing = t;
    missing["model"]["blocks"][0]["levels"][0]["init_from"]["checkpoint"] = ckpt + ".nope";
    spec_error(missing, "model.blocks[0].levels[0].init_from.checkpoint");
    json wide = t;
    wide["model"]["blocks"][0]["ffn_mult"] = 3;
    spec_error(wide, "shape mismatch");
    json nolevel = t;
    nolevel["model"]["blocks"][0]["levels"][0]["init_from"]["level"] = 4;
    spec_error(nolevel, "model.blocks[0].levels[0].init_from");
  }

  // The level features are not cms-only: a hope_attention block's levels stack from a cms block's
  // checkpoint, and its nested variant restarts the faster level from the slower level's state.
  void hopeBlockLevelsStackAndNest() {
    json s = cms_spec(5, 1, clocks({1, 4}));
    s["training"]["checkpoints"] = true;
    Probes src;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("stack-hope.db").toStdString();
    o.level_probe = std::ref(src);
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const std::string ckpt = o.db_path + ".checkpoints/run-" + std::to_string(r.run_id) + "/last.pt";

    json t = cms_spec(5, 1, clocks({1, 4}));
    json hb = hl::spec::block_defaults("hope_attention");
    hb["heads"] = 2;
    hb["variant"] = "nested";
    hb["levels"] = clocks({1, 4});
    hb["levels"][0]["init_from"] = {{"checkpoint", ckpt}, {"block", 0}, {"level", 1}};
    t["model"]["blocks"] = json::array({hb});
    t = hl::spec::complete(t);
    Probes dst;
    RunOptions o2 = opt_;
    o2.level_probe = std::ref(dst);
    auto r2 = run_experiment(t, o2, {});
    QCOMPARE(QString::fromStdString(hl::name(r2.status)), QString("finished"));
    const auto& v = dst.by_level.at("cms1");
    const auto& w = dst.by_level.at("cms2");
    QVERIFY(same_bytes(v.front().params, src.by_level.at("cms2").back().params));
    int resets = 0;
    for (size_t k = 1; k < v.size(); ++k) {
      const bool slow_tick = (v[k].step + 1) % 4 == 0;
      QCOMPARE(same_bytes(v[k].params, w[k].params), slow_tick);
      resets += slow_tick;
    }
    QVERIFY(resets >= 3);
    for (const auto& c : r2.summary["cadence"]) QCOMPARE(c["expected"].get<int64_t>(), c["actual"].get<int64_t>());
  }

  // ---------------------------------------------------------------- memory head on real data
  void memoryHeadTrainsAsItsOwnLevel() {
    json s = cms_spec(5, 1, clocks({1, 4}));
    s["model"]["head"]["type"] = "memory";
    s["model"]["head"]["clock"] = 2;
    Probes pr;
    Counter cnt;
    RunOptions o = opt_;
    o.level_probe = std::ref(pr);
    auto r = run_experiment(s, o, {&cnt});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const int64_t steps = r.summary["steps"].get<int64_t>();
    bool found = false;
    for (const auto& c : r.summary["cadence"])
      if (c["level"] == "head") {
        found = true;
        QCOMPARE(c["expected"].get<int64_t>(), steps / 2);
        QCOMPARE(c["actual"].get<int64_t>(), steps / 2);
      }
    QVERIFY(found);
    int losses = 0, drifts = 0;
    for (const auto& e : cnt.points) {
      if (e.level != "head") continue;
      QVERIFY(std::isfinite(e.value));
      QCOMPARE(e.clock, 2);
      losses += e.name == "loss";
      drifts += e.name == "drift_task" || e.name == "drift_run";
    }
    QCOMPARE(int64_t(losses), steps / 2);
    QVERIFY(drifts > 0);
    // W moves only at head ticks.
    const auto& v = pr.by_level.at("head");
    for (size_t k = 1; k < v.size(); ++k) QCOMPARE(!same_bytes(v[k].params, v[k - 1].params), (v[k].step + 1) % 2 == 0);
    // The read-out classifies: the newest task is well above the 1-in-70 chance of its run.
    const auto& M = r.summary["accuracy_matrix"];
    QVERIFY2(M[6][6].get<double>() > 0.1, M.dump().c_str());
  }

  // A memory-head run cancelled mid-task and resumed from its checkpoint ends as an uninterrupted
  // one: same accuracy matrix and same head loss series (its window spans the checkpoint), and
  // the whole cadence audit, the titans block's in-context memory included, covers the run.
  void memoryHeadResumesExactly() {
    json s = cms_spec(6, 2, clocks({1, 3}));
    json titans = hl::spec::block_defaults("titans");
    titans["heads"] = 2;
    s["model"]["blocks"] = json::array({titans, s["model"]["blocks"][0]});
    s = hl::spec::complete(s);
    s["model"]["head"]["type"] = "memory";
    s["model"]["head"]["clock"] = 3;
    s["training"]["checkpoints"] = true;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("memhead-resume.db").toStdString();
    auto full = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(full.status)), QString("finished"));
    Control control;
    Counter c;
    c.c = &control;
    c.after = 14;
    auto cut = run_experiment(s, o, {&c}, &control);
    QCOMPARE(QString::fromStdString(hl::name(cut.status)), QString("cancelled"));
    RunOptions ro = o;
    ro.resume_run = cut.run_id;
    auto resumed = run_experiment(json::object(), ro, {});
    QCOMPARE(QString::fromStdString(hl::name(resumed.status)), QString("finished"));
    QCOMPARE(resumed.summary["accuracy_matrix"].dump(), full.summary["accuracy_matrix"].dump());
    QCOMPARE(resumed.summary["cadence"].dump(), full.summary["cadence"].dump());
    bool context = false;
    for (const auto& c : full.summary["cadence"]) context = context || c["level"] == "context.memory";
    QVERIFY(context);
    QCOMPARE(resumed.summary["clamped_writes"].dump(), full.summary["clamped_writes"].dump());
    auto db = hl::store::RunStore::open(o.db_path);
    auto head_loss = [&](int64_t id) {
      for (const auto& se : db->series(id))
        if (se.name == "loss" && se.level == "head") return se.points;
      return std::vector<std::pair<int64_t, double>>{};
    };
    auto a = head_loss(full.run_id), b = head_loss(cut.run_id);
    QVERIFY(!a.empty());
    QCOMPARE(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) QVERIFY2(a[i] == b[i], qPrintable(QString("point %1").arg(i)));
  }
};

QTEST_GUILESS_MAIN(TestLevels)
#include "test_levels.moc"
