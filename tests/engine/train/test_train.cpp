// The trainer on the real datasets: short class-incremental runs, determinism, divergence,
// cancellation, joint protocol, the NCM reference, and what reaches the store.
#include "engine/torch_wrap.h"

#include <QtTest>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "engine/common/error.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/checkpoint_format.h"
#include "engine/train/evaluator.h"
#include "engine/train/experiment.h"
#include "engine/train/inference.h"
#include "engine/train/model_config.h"

using json = nlohmann::json;
using namespace hl::train;

namespace {

struct Recorder : Observer {
  std::vector<Event> events;
  void onEvent(const Event& e) override { events.push_back(e); }
  std::vector<double> values(const std::string& name) const {
    std::vector<double> v;
    for (const auto& e : events)
      if (e.kind == EventKind::Point && e.name == name) v.push_back(e.value);
    return v;
  }
};

struct Canceller : Observer {
  Control* c;
  int after;
  int seen = 0;
  void onEvent(const Event& e) override {
    if (e.kind == EventKind::Progress && ++seen == after) c->requestCancel();
  }
};

json small_spec(const std::string& dataset, int limit, int epochs) {
  json s = hl::spec::preset("transformer");
  s["model"]["d_model"] = 64;
  s["optimizer"]["lr"] = 5e-3;  // few rows per class: a larger step learns them within the test's budget
  s["model"]["blocks"] = json::array({hl::spec::block_defaults("transformer")});
  s["model"]["vocab_size"] = 500;
  s["training"]["epochs"] = epochs;
  s["training"]["limit_per_class"] = limit;
  s["training"]["eval_limit_per_class"] = 10;
  s["training"]["checkpoints"] = false;
  s["training"]["threads"] = 1;
  s["experiment"]["dataset"] = dataset;
  return hl::spec::complete(s);
}

}  // namespace

class TestTrain : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  RunOptions opt_;

  static void checkLowerTriangular(const json& M, int T) {
    QCOMPARE(int(M.size()), T);
    for (int i = 0; i < T; ++i) {
      QCOMPARE(int(M[i].size()), T);
      for (int j = 0; j < T; ++j) {
        if (j <= i) {
          QVERIFY2(M[i][j].is_number(), qPrintable(QString("R[%1][%2] missing").arg(i).arg(j)));
          double a = M[i][j].get<double>();
          QVERIFY(a >= 0.0 && a <= 1.0);
        } else {
          QVERIFY2(M[i][j].is_null(), qPrintable(QString("R[%1][%2] should be null").arg(i).arg(j)));
        }
      }
    }
  }

 private slots:
  // The spec -> model-config boundary parses every kind once; a value no enum knows (a spec that
  // skipped validation, e.g. an old checkpoint's) is refused there, naming the field.
  void modelConfigRefusesAnUnknownKindNamingTheField() {
    struct Case {
      const char* path;
      const char* value;
      const char* message;
    };
    for (const Case& c : {Case{"/model/blocks/0/type", "gru", "model.blocks[0].type: unknown block type \"gru\""},
                          Case{"/model/positions", "sinusoidal", "model.positions: unknown positions \"sinusoidal\""},
                          Case{"/model/head/type", "knn", "model.head.type: unknown head type \"knn\""}}) {
      json spec = hl::spec::complete(hl::spec::preset("transformer"));
      spec[json::json_pointer(c.path)] = c.value;
      try {
        hl::train::model_config(spec, 100, 16, 4, 0);
        QFAIL(c.path);
      } catch (const hl::SpecError& e) {
        QVERIFY2(std::string(e.what()).rfind(c.message, 0) == 0, e.what());
      }
    }
    json spec = hl::spec::complete(hl::spec::preset("hope"));
    auto cfg = hl::train::model_config(spec, 100, 16, 4, 0);
    QVERIFY(cfg.blocks.at(0).type == hl::BlockType::Hope && cfg.blocks.at(0).mixer == hl::Mixer::Selfmod);
  }

  void initTestCase() {
    torch::set_num_threads(1);
    opt_.data_dir = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT).toStdString();
    opt_.cache_dir = tmp_.filePath("cache").toStdString();
  }

  void shortClassIncrementalRunOnEachDataset_data() {
    QTest::addColumn<QString>("dataset");
    QTest::addColumn<int>("tasks");
    QTest::newRow("clinc150") << "clinc150" << 15;
    QTest::newRow("banking77") << "banking77" << 7;
    QTest::newRow("dbpedia70") << "dbpedia70" << 7;
  }
  void shortClassIncrementalRunOnEachDataset() {
    QFETCH(QString, dataset);
    QFETCH(int, tasks);
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("ci.db").toStdString();
    auto r = run_experiment(small_spec(dataset.toStdString(), 30, 5), o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    checkLowerTriangular(r.summary["accuracy_matrix"], tasks);
    // Sanity: right after training a task, that task is well above chance among the seen classes
    // (fine-tuning favours the newest classes): the mean diagonal R[i][i] exceeds 0.25, 2.5x the
    // chance level of a 10-class task.
    const auto& M = r.summary["accuracy_matrix"];
    double diag = 0;
    for (int i = 0; i < tasks; ++i) diag += M[i][i].get<double>() / tasks;
    QVERIFY2(diag > 0.25, M.dump().c_str());
    QVERIFY(r.summary["forgetting"].is_number());
    QVERIFY(r.summary["bwt"].is_number());
    QVERIFY(r.summary["macro_f1"].get<double>() >= 0.0);
    // The store holds the finished run, every accuracy cell, and one loss point per step.
    auto db = hl::store::RunStore::open(o.db_path);
    auto rec = db->getRun(r.run_id);
    QVERIFY(rec);
    QCOMPARE(QString::fromStdString(hl::name(rec->status)), QString("finished"));
    QVERIFY(rec->finished_at > 0);
    QCOMPARE(int(db->accuracy(r.run_id).size()), tasks * (tasks + 1) / 2);
    bool found = false;
    for (const auto& s : db->series(r.run_id))
      if (s.name == "loss" && s.level == "outer") {
        found = true;
        QCOMPARE(int64_t(s.points.size()), r.summary["steps"].get<int64_t>());
      }
    QVERIFY(found);
  }

  void sameSeedGivesBitIdenticalSeries() {
    json s = small_spec("banking77", 6, 1);
    Recorder a, b;
    auto ra = run_experiment(s, opt_, {&a});
    auto rb = run_experiment(s, opt_, {&b});
    auto la = a.values("loss"), lb = b.values("loss");
    QVERIFY(!la.empty());
    QCOMPARE(la.size(), lb.size());
    for (size_t i = 0; i < la.size(); ++i) QVERIFY2(la[i] == lb[i], qPrintable(QString("step %1").arg(i)));
    QCOMPARE(ra.summary["accuracy_matrix"].dump(), rb.summary["accuracy_matrix"].dump());
    s["experiment"]["seed"] = 1;
    Recorder c;
    run_experiment(s, opt_, {&c});
    QVERIFY(c.values("loss") != la);
  }

  void nanLossMarksTheRunDivergedAndKeepsItsPoints() {
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("div.db").toStdString();
    o.poison_loss = [](int64_t step) { return step == 5; };
    auto r = run_experiment(small_spec("banking77", 6, 1), o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("diverged"));
    QCOMPARE(r.diverged_step, int64_t(5));
    QVERIFY(r.error.find("step 5") != std::string::npos);
    auto db = hl::store::RunStore::open(o.db_path);
    auto rec = db->getRun(r.run_id);
    QCOMPARE(QString::fromStdString(hl::name(rec->status)), QString("diverged"));
    QCOMPARE(rec->diverged_step, int64_t(5));
    for (const auto& s : db->series(r.run_id))
      if (s.name == "loss") QCOMPARE(int(s.points.size()), 5);  // steps 0..4 were committed
  }

  // A diverged run says what to change: with no in-context memory, the outer step (and whether a
  // clip is already set); when an in-context memory's inner loss blew up inside the forward (where
  // no gradient clip reaches), that memory's blocks and their write size. The blow-up is forced:
  // hope-no-selfmod (the plain Titans memory) with its state bound off, its writes at θ 9, no decay
  // and a large outer step diverges within a few steps (measured: NaN at step 1, both blocks); the
  // same run with the bound at its default finishes.
  void divergenceMessageNamesWhatToChange() {
    RunOptions o = opt_;
    o.poison_loss = [](int64_t step) { return step == 2; };
    json t = small_spec("banking77", 6, 1);
    t["training"]["grad_clip"] = 0.5;
    auto r = run_experiment(t, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("diverged"));
    QVERIFY2(r.error.find("lower optimizer.lr (training.grad_clip is already 0.5)") != std::string::npos,
             r.error.c_str());
    t["training"]["grad_clip"] = 0;
    r = run_experiment(t, o, {});
    QVERIFY2(r.error.find("lower optimizer.lr or set training.grad_clip") != std::string::npos, r.error.c_str());

    json h = hl::spec::preset("hope-no-selfmod");
    h["model"]["d_model"] = 32;
    h["model"]["vocab_size"] = 300;
    h["model"]["max_len"] = 32;
    for (auto& b : h["model"]["blocks"]) {
      b["heads"] = 2;
      b["inner_lr"] = 9.0;
      b["eta_max"] = 10.0;
      b["retain"] = 1.0;
      b["state_bound"] = 0.0;  // no bound: with the default (2) the same run finishes, checked below
    }
    h["optimizer"]["lr"] = 0.05;
    h["experiment"]["dataset"] = "banking77";
    h["experiment"]["protocol"] = "joint";
    h["training"]["limit_per_class"] = 3;
    h["training"]["eval_limit_per_class"] = 2;
    h["training"]["epochs"] = 2;
    h["training"]["checkpoints"] = false;
    h["training"]["threads"] = 1;
    r = run_experiment(hl::spec::complete(h), opt_, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("diverged"));
    QVERIFY2(r.error.find("the in-context memory's inner loss blew up in block(s) ") != std::string::npos,
             r.error.c_str());
    QVERIFY2(r.error.find("model.blocks.N.inner_lr") != std::string::npos, r.error.c_str());
    QVERIFY2(r.error.find("model.blocks.N.state_bound") != std::string::npos, r.error.c_str());
    for (auto& b : h["model"]["blocks"]) b["state_bound"] = 2.0;
    r = run_experiment(hl::spec::complete(h), opt_, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));

    // The titans baseline's blocks: no bound by default (their runs as before the field reached
    // them), and the same bound stops the same blow-up.
    json t2 = h;
    t2["name"] = "titans";
    for (auto& b : t2["model"]["blocks"]) {
      json tb = hl::spec::block_defaults("titans");
      QCOMPARE(tb["state_bound"].get<double>(), 0.0);
      for (const char* k : {"heads", "inner_lr", "retain"}) tb[k] = b[k];
      b = tb;
    }
    r = run_experiment(hl::spec::complete(t2), opt_, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("diverged"));
    QVERIFY2(r.error.find("the in-context memory's inner loss blew up in block(s) ") != std::string::npos,
             r.error.c_str());
    for (auto& b : t2["model"]["blocks"]) b["state_bound"] = 2.0;
    r = run_experiment(hl::spec::complete(t2), opt_, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
  }

  void cancelStopsTheRunAndStoresItCancelled() {
    Control control;
    Canceller c;
    c.c = &control;
    c.after = 3;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("cancel.db").toStdString();
    auto r = run_experiment(small_spec("banking77", 6, 1), o, {&c}, &control);
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("cancelled"));
    auto db = hl::store::RunStore::open(o.db_path);
    QCOMPARE(QString::fromStdString(hl::name(db->getRun(r.run_id)->status)), QString("cancelled"));
  }

  // Checkpoints carry model, optimizer, strategy state and every random generator: a run cancelled
  // mid-task and resumed from its last task-end checkpoint ends bit-identical to an uninterrupted one.
  void resumedRunEqualsAnUninterruptedRun_data() {
    QTest::addColumn<QString>("strategy");
    QTest::addColumn<bool>("cms");
    QTest::newRow("finetune") << "finetune" << false;
    QTest::newRow("replay") << "replay" << false;
    QTest::newRow("ewc") << "ewc" << false;
    // CMS windows that span the checkpoint (clock 3 and 5 do not divide a task's 4 steps) resume
    // with their accumulated gradients.
    QTest::newRow("ewc+cms") << "ewc" << true;
  }
  void resumedRunEqualsAnUninterruptedRun() {
    QFETCH(QString, strategy);
    QFETCH(bool, cms);
    json s = small_spec("banking77", 6, 2);
    if (cms)
      s["model"]["blocks"].push_back({{"type", "cms"}, {"levels", json::array({{{"clock", 3}}, {{"clock", 5}}})}});
    s = hl::spec::complete(s);
    s["training"]["checkpoints"] = true;
    s["experiment"]["strategy"]["type"] = strategy.toStdString();
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("resume-" + strategy + (cms ? "-cms" : "") + ".db").toStdString();
    auto full = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(full.status)), QString("finished"));

    Control control;
    Canceller c;
    c.c = &control;
    c.after = 14;  // 4 steps per task (60 rows: 2 batches x 2 epochs): step 14 is inside task 4
    auto cut = run_experiment(s, o, {&c}, &control);
    QCOMPARE(QString::fromStdString(hl::name(cut.status)), QString("cancelled"));
    QVERIFY(cut.summary["tasks_completed"].get<int>() >= 1);

    RunOptions ro = o;
    ro.resume_run = cut.run_id;
    Recorder rec;
    auto resumed = run_experiment(json::object(), ro, {&rec});
    QCOMPARE(QString::fromStdString(hl::name(resumed.status)), QString("finished"));
    QCOMPARE(resumed.run_id, cut.run_id);
    QCOMPARE(resumed.summary["accuracy_matrix"].dump(), full.summary["accuracy_matrix"].dump());
    QCOMPARE(resumed.summary["steps"].get<int64_t>(), full.summary["steps"].get<int64_t>());
    auto db = hl::store::RunStore::open(o.db_path);
    QCOMPARE(QString::fromStdString(hl::name(db->getRun(cut.run_id)->status)), QString("finished"));
    auto loss_of = [&](int64_t id) {
      for (const auto& se : db->series(id))
        if (se.name == "loss") return se.points;
      return std::vector<std::pair<int64_t, double>>{};
    };
    auto a = loss_of(full.run_id), b = loss_of(cut.run_id);
    QCOMPARE(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) QVERIFY2(a[i] == b[i], qPrintable(QString("step %1").arg(i)));
    // A finished run cannot be resumed again.
    bool refused = false;
    try {
      run_experiment(json::object(), ro, {});
    } catch (const hl::SpecError&) {
      refused = true;
    }
    QVERIFY(refused);
  }

  // A resumed run's train_seconds is the whole run's: the seconds saved in the checkpoint it
  // resumed from plus its own (before, only its own: a run cut late reported a fraction). The
  // same for eval_seconds, the part of them spent evaluating: 0 < eval_seconds < train_seconds.
  void resumedRunCountsTheTrainAndEvalSecondsBeforeTheCut() {
    json s = hl::spec::complete(small_spec("banking77", 6, 2));
    s["training"]["checkpoints"] = true;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("resume-seconds.db").toStdString();
    Control control;
    Canceller c;
    c.c = &control;
    c.after = 26;  // 4 steps per task, 7 tasks: inside the last task, 6 tasks checkpointed
    auto cut = run_experiment(s, o, {&c}, &control);
    QCOMPARE(QString::fromStdString(hl::name(cut.status)), QString("cancelled"));
    QCOMPARE(cut.summary["tasks_completed"].get<int>(), 6);
    const double cut_eval = cut.summary["eval_seconds"].get<double>();
    QVERIFY2(cut_eval > 0 && cut_eval < cut.summary["train_seconds"].get<double>(),
             qPrintable(QString::number(cut_eval)));
    double saved = -1, saved_eval = -1;
    for (const auto& ck : hl::store::RunStore::open(o.db_path)->checkpoints(cut.run_id))
      if (ck.kind == hl::CheckpointKind::Last) {
        torch::serialize::InputArchive ar;
        ar.load_from(ck.path);
        c10::IValue v, e;
        QVERIFY(ar.try_read("hopelab.train_seconds", v) && v.isDouble());
        QVERIFY(ar.try_read("hopelab.eval_seconds", e) && e.isDouble());
        saved = v.toDouble();
        saved_eval = e.toDouble();
      }
    QVERIFY2(saved > 0 && saved <= cut.summary["train_seconds"].get<double>(), qPrintable(QString::number(saved)));
    QVERIFY2(saved_eval > 0 && saved_eval < saved && saved_eval <= cut_eval, qPrintable(QString::number(saved_eval)));
    RunOptions ro = o;
    ro.resume_run = cut.run_id;
    const auto t0 = std::chrono::steady_clock::now();
    auto resumed = run_experiment(json::object(), ro, {});
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    QCOMPARE(QString::fromStdString(hl::name(resumed.status)), QString("finished"));
    const double total = resumed.summary["train_seconds"].get<double>();
    // saved ≤ total ≤ saved + this process's wall time.
    QVERIFY2(total >= saved && total <= saved + wall,
             qPrintable(QString("saved %1 total %2 wall %3").arg(saved).arg(total).arg(wall)));
    const double total_eval = resumed.summary["eval_seconds"].get<double>();
    QVERIFY2(total_eval > saved_eval && total_eval <= saved_eval + wall && total_eval < total,
             qPrintable(QString("saved %1 total %2 wall %3").arg(saved_eval).arg(total_eval).arg(wall)));
  }

  // Issue 8: checkpoints carry a format version; one this build cannot read is refused by resume
  // and by inference with a message naming the file and both versions.
  void checkpointOfAnotherFormatVersionIsRefused() {
    json s = hl::spec::complete(small_spec("banking77", 6, 1));
    s["training"]["checkpoints"] = true;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("format.db").toStdString();
    auto r = run_experiment(s, o, {});
    auto db = hl::store::RunStore::open(o.db_path);
    std::string last;
    for (const auto& c : db->checkpoints(r.run_id))
      if (c.kind == hl::CheckpointKind::Last) last = c.path;
    QVERIFY(!last.empty());
    torch::serialize::InputArchive current;
    current.load_from(last);
    QCOMPARE(hl::train::check_checkpoint_format(current, last), hl::train::kCheckpointFormat);

    const std::string future = tmp_.filePath("future.pt").toStdString();
    {
      torch::serialize::OutputArchive ar;
      ar.write(hl::train::kCheckpointFormatKey, c10::IValue(int64_t(99)));
      ar.write("hopelab.spec", c10::IValue(s.dump()));
      ar.save_to(future);
    }
    auto refusal = [&](const std::function<void()>& f) {
      try {
        f();
      } catch (const hl::RunError& e) {
        return std::string(e.what());
      }
      return std::string("(accepted)");
    };
    const std::string versions = "format version 99, but this Hope Lab build reads versions 1 to " +
                                 std::to_string(hl::train::kCheckpointFormat);
    std::string m = refusal([&] { hl::train::Predictor::load(future); });
    QVERIFY2(m.find(future) != std::string::npos && m.find(versions) != std::string::npos, m.c_str());
    // Resume: an interrupted run whose last checkpoint is that file.
    hl::store::RunRecord rec;
    rec.status = hl::RunStatus::Interrupted;
    rec.spec_json = s.dump();
    const int64_t id = db->createRun(rec);
    {
      hl::store::RunWriter w(o.db_path, id);
      w.checkpoint({hl::CheckpointKind::Last, future, 4, 0, 0.0});
      w.flush();
    }
    RunOptions ro = o;
    ro.resume_run = id;
    m = refusal([&] { run_experiment(json::object(), ro, {}); });
    QVERIFY2(m.find(future) != std::string::npos && m.find(versions) != std::string::npos, m.c_str());
  }

  // training.dev_fraction holds out ⌊fraction · n⌋ train rows per class; best.pt is chosen by the
  // dev set's mean accuracy over the seen tasks (ties: the later task), not by the test set.
  void devFractionHoldsOutRowsAndPicksBestOnThem() {
    json s = small_spec("banking77", 10, 1);
    s["training"]["dev_fraction"] = 0.2;
    s["training"]["checkpoints"] = true;
    RunOptions o = opt_;
    o.checkpoint_dir = tmp_.filePath("dev-ckpt").toStdString();
    Recorder rec;
    auto r = run_experiment(s, o, {&rec});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    QCOMPARE(r.summary["dev_rows"].get<int64_t>(), int64_t(7 * 10 * 2));  // 2 of 10 rows, 70 classes
    QCOMPARE(r.summary["steps"].get<int64_t>(), int64_t(7 * 3));          // 80 train rows per task: 3 batches
    auto dev = rec.values("dev_avg_acc");
    QCOMPARE(int(dev.size()), 7);
    std::vector<double> best;
    for (const auto& e : rec.events)
      if (e.kind == EventKind::Checkpoint && e.checkpoint == hl::CheckpointKind::Best) best.push_back(e.value);
    std::vector<double> want;
    double top = -1;
    for (double d : dev)
      if (d >= top) want.push_back(top = d);
    QCOMPARE(best, want);
    auto bad = s;
    bad["training"]["dev_fraction"] = 0.9;
    QVERIFY(hl::spec::validate(bad).format().find("training.dev_fraction") != std::string::npos);
  }

  void jointProtocolFillsOnlyTheLastRow() {
    json s = small_spec("banking77", 30, 3);
    s["experiment"]["protocol"] = "joint";
    auto r = run_experiment(s, opt_, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const auto& M = r.summary["accuracy_matrix"];
    for (int j = 0; j < 7; ++j) {
      QVERIFY(M[6][j].is_number());
      for (int i = 0; i < 6; ++i) QVERIFY(M[i][j].is_null());
    }
    QVERIFY(r.summary["forgetting"].is_null());
    QVERIFY2(r.summary["final_avg_acc"].get<double>() > 0.2, r.summary.dump().c_str());  // chance: 1/70
  }

  void ncmHeadTrainsNothingAndBeatsChance() {
    json s = small_spec("banking77", 12, 1);
    s["model"]["head"]["type"] = "ncm";
    Recorder rec;
    auto r = run_experiment(s, opt_, {&rec});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    QVERIFY(rec.values("loss").empty());
    QVERIFY(r.summary["final_avg_acc"].get<double>() > 1.5 / 70);
  }

  void replayAndEwcRun() {
    for (const char* strat : {"replay", "ewc"}) {
      json s = small_spec("banking77", 6, 1);
      s["experiment"]["strategy"]["type"] = strat;
      auto r = run_experiment(s, opt_, {});
      QVERIFY2(r.status == hl::RunStatus::Finished, strat);
      checkLowerTriangular(r.summary["accuracy_matrix"], 7);
    }
  }

  void invalidSpecThrowsBeforeAnythingIsStored() {
    json s = small_spec("banking77", 6, 1);
    s["optimizer"]["lr"] = -1;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("bad.db").toStdString();
    bool threw = false;
    try {
      run_experiment(s, o, {});
    } catch (const hl::SpecError& e) {
      threw = std::string(e.what()).find("optimizer.lr") != std::string::npos;
    }
    QVERIFY(threw);
    QVERIFY(!QFile::exists(QString::fromStdString(o.db_path)));
  }

  // CMS levels step exactly every C outer steps on the training stream (across task boundaries),
  // and the cadence audit agrees: expected floor(steps / C) = actual.
  void cmsLevelsTickOnTheirClocks() {
    json s = small_spec("banking77", 8, 2);
    s["model"]["blocks"].push_back(
        {{"type", "cms"}, {"levels", json::array({{{"clock", 1}}, {{"clock", 4}}, {{"clock", 16}}})}});
    s = hl::spec::complete(s);
    QVERIFY(hl::spec::validate(s).ok());
    Recorder rec;
    auto r = run_experiment(s, opt_, {&rec});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    const int64_t steps = r.summary["steps"].get<int64_t>();
    QVERIFY(steps > 40);
    std::map<std::string, std::vector<int64_t>> ticks;
    for (const auto& e : rec.events)
      if (e.kind == EventKind::Point && e.name == "loss") ticks[e.level].push_back(e.step);
    const std::map<std::string, int> clocks = {{"outer", 1}, {"cms1", 1}, {"cms2", 4}, {"cms3", 16}};
    for (const auto& [level, clock] : clocks) {
      const auto& t = ticks[level];
      QCOMPARE(int64_t(t.size()), steps / clock);
      for (size_t i = 0; i < t.size(); ++i) QCOMPARE(t[i], int64_t((i + 1) * clock - 1));
    }
    for (const auto& c : r.summary["cadence"]) {
      QCOMPARE(c["expected"].get<int64_t>(), c["actual"].get<int64_t>());
      QCOMPARE(c["expected"].get<int64_t>(), steps / c["clock"].get<int64_t>());
    }
    QCOMPARE(int(r.summary["cadence"].size()), 4);
  }

  // A Titans block followed by a CMS block: every level (in-context memory, each CMS level, outer)
  // has its loss and drift series in the store, and the cadence audit is exact for all of them.
  void everyLevelHasLossAndDriftSeries() {
    json s = small_spec("clinc150", 6, 1);
    s["model"]["blocks"] =
        json::array({{{"type", "titans"}, {"heads", 4}},
                     {{"type", "cms"}, {"levels", json::array({{{"clock", 1}}, {{"clock", 4}}, {{"clock", 16}}})}}});
    s = hl::spec::complete(s);
    QVERIFY2(hl::spec::validate(s).ok(), hl::spec::validate(s).format().c_str());
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("levels.db").toStdString();
    auto r = run_experiment(s, o, {});
    QCOMPARE(QString::fromStdString(hl::name(r.status)), QString("finished"));
    auto db = hl::store::RunStore::open(o.db_path);
    std::set<std::string> loss, drift;
    for (const auto& se : db->series(r.run_id)) {
      if (se.name == "loss" && !se.points.empty()) loss.insert(se.level);
      if ((se.name == "drift" || se.name == "drift_task") && !se.points.empty()) drift.insert(se.level);
      for (const auto& p : se.points) QVERIFY2(std::isfinite(p.second), (se.name + "/" + se.level).c_str());
    }
    for (const char* level : {"context.memory", "cms1", "cms2", "cms3", "outer"}) {
      QVERIFY2(loss.count(level), level);
      QVERIFY2(drift.count(level), level);
    }
    QCOMPARE(int(r.summary["cadence"].size()), 5);
    for (const auto& c : r.summary["cadence"]) QVERIFY2(c["expected"] == c["actual"], c.dump().c_str());
  }

  void checkpointsLiveBesideTheirDatabase() {
    json s = small_spec("banking77", 6, 1);
    s["training"]["checkpoints"] = true;
    RunOptions o = opt_;
    o.db_path = tmp_.filePath("beside.db").toStdString();
    auto r = run_experiment(s, o, {});
    auto db = hl::store::RunStore::open(o.db_path);
    auto cks = db->checkpoints(r.run_id);
    int best_last = 0;
    std::set<int> snapshots;  // training.snapshots (default): the model at each of the 7 task ends
    for (const auto& c : cks)
      if (c.kind == hl::CheckpointKind::Snapshot)
        snapshots.insert(c.task);
      else
        ++best_last;
    QCOMPARE(best_last, 2);  // best and last
    QCOMPARE(snapshots, (std::set<int>{0, 1, 2, 3, 4, 5, 6}));
    for (const auto& c : cks) {
      QVERIFY2(c.path.rfind(o.db_path + ".checkpoints/run-" + std::to_string(r.run_id) + "/", 0) == 0, c.path.c_str());
      QVERIFY(QFile::exists(QString::fromStdString(c.path)));
    }
  }

  void taskWithoutTestRowsIsADataError() {
    QTemporaryDir dir;
    auto write = [&](const char* name, const QByteArray& text) {
      QFile f(dir.filePath(name));
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(text);
    };
    write("train.csv", "text,label\nhello there,a\ngood morning,a\nsee you,b\nbye now,b\n");
    write("test.csv", "text,label\nhello,a\nmorning,a\n");  // class b (task 2) has no test rows
    json s = small_spec(dir.path().toStdString(), 0, 1);
    s["experiment"]["data"]["classes_per_task"] = 1;
    s["model"]["vocab_size"] = 40;
    bool threw = false;
    try {
      run_experiment(s, opt_, {});
    } catch (const hl::DataError& e) {
      threw = std::string(e.what()).find("task 2") != std::string::npos;
    }
    QVERIFY(threw);
  }

  // Evaluation batches (docs/KERNELS.md "Evaluation batches"): every row exactly once, at most
  // kEvalBatch per batch, rows of similar length together (padding at most 5/4 of the real tokens
  // once a batch holds kEvalMinBatch rows), shortest and longest alternating within a batch.
  void evaluationBatchesHoldEveryRowOnceAndGroupSimilarLengths() {
    Encoded e;
    std::mt19937 gen(7);
    for (int i = 0; i < 700; ++i) {
      const int len = i % 50 == 0 ? 120 : 1 + int(gen() % 40);  // a few long outliers
      e.ids.emplace_back(size_t(len), int64_t(5));
      e.labels.push_back(i % 7);
    }
    e.ids[3].clear();  // an empty row (tokenised to nothing) still gets a place
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < 700; i += 2) rows.push_back(i);
    const auto batches = eval_batches(e, rows);
    std::vector<int64_t> seen;
    int64_t positions = 0, real = 0, filePositions = 0;
    for (const auto& b : batches) {
      QVERIFY(!b.empty() && int64_t(b.size()) <= kEvalBatch);
      size_t longest = 0;
      for (int64_t i : b) longest = std::max(longest, e.ids[size_t(i)].size());
      for (int64_t i : b) real += int64_t(e.ids[size_t(i)].size());
      positions += int64_t(b.size() * longest);
      if (int64_t(b.size()) > kEvalMinBatch) {
        int64_t sum = 0;
        for (int64_t i : b) sum += std::max<int64_t>(1, int64_t(e.ids[size_t(i)].size()));
        QVERIFY2(4 * int64_t(b.size()) * int64_t(longest) <= 5 * sum, "a batch padded past 5/4 of its tokens");
      }
      if (b.size() >= 2)  // shortest first, then the longest
        QCOMPARE(e.ids[size_t(b[1])].size(), longest);
      seen.insert(seen.end(), b.begin(), b.end());
    }
    std::sort(seen.begin(), seen.end());
    QCOMPARE(seen, rows);
    for (size_t s = 0; s < rows.size(); s += size_t(kEvalBatch)) {  // the file-order batches of 256
      size_t longest = 0;
      for (size_t k = s; k < std::min(rows.size(), s + size_t(kEvalBatch)); ++k)
        longest = std::max(longest, e.ids[size_t(rows[k])].size());
      filePositions += int64_t(std::min(rows.size() - s, size_t(kEvalBatch)) * longest);
    }
    QVERIFY2(positions * 2 < filePositions,
             qPrintable(QString("%1 positions against %2 in file order").arg(positions).arg(filePositions)));
    QVERIFY(positions >= real);
    QVERIFY(eval_batches(e, {}).empty());
  }

  void describeCountsParametersWithoutData() {
    json d = describe(hl::spec::preset("transformer"));
    QVERIFY(d["params"].get<int64_t>() > 100000);
    QVERIFY(d["flops_per_sample"].get<double>() > 0);
    QCOMPARE(d["num_classes"].get<int>(), 70);
  }
};

QTEST_GUILESS_MAIN(TestTrain)
#include "test_train.moc"
