// Issue 12, "What to add": the task-end confusion matrices (same predictions as the accuracy
// matrix, streamed as events, stored) and per-level forgetting attribution from task-end
// snapshots, on one tiny Hope run with every kind of level (in-context memory and its other
// memories, CMS levels, the DGD-written memory head, the rest).
#include "engine/torch_wrap.h"

#include <QtTest>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/attribution.h"
#include "engine/train/experiment.h"

using json = nlohmann::json;
using namespace hl::train;

namespace {

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// One Hope block (self-modifying Titans + 2 CMS levels, the slower one on a task clock that never
// ticks in 7 tasks) and the memory head, small enough for seconds on a shared CPU.
json tiny_hope() {
  json s = hl::spec::preset("hope");
  json b = s["model"]["blocks"][0];
  b["heads"] = 2;
  b["levels"] = json::array({{{"clock", 1}, {"lr", 0.0}}, {{"clock", 100}, {"lr", 0.0}}});
  b["clock_unit"] = "tasks";
  s["name"] = "tiny-hope-insight";
  s["model"]["d_model"] = 32;
  s["model"]["vocab_size"] = 300;
  s["model"]["max_len"] = 16;
  s["model"]["blocks"] = json::array({b});
  s["model"]["head"] = {{"type", "memory"}};
  s["optimizer"]["lr"] = 5e-3;
  s["training"]["epochs"] = 1;
  s["training"]["limit_per_class"] = 3;
  s["training"]["eval_limit_per_class"] = 4;
  s["training"]["batch_size"] = 16;
  s["training"]["eval_every"] = 1000;
  s["training"]["threads"] = 1;
  s["experiment"]["dataset"] = "banking77";
  return hl::spec::complete(s);
}

struct Collect : Observer {
  std::vector<Event> confusion, accuracy;
  void onEvent(const Event& e) override {
    if (e.kind == EventKind::Confusion) confusion.push_back(e);
    if (e.kind == EventKind::Accuracy) accuracy.push_back(e);
  }
};

template <class F>
std::string run_error_of(F f) {
  try {
    f();
  } catch (const hl::RunError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

class TestInsight : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  RunOptions opt_;
  std::string db_;
  int64_t run_ = 0;
  json spec_;
  Collect events_;

 private slots:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    torch::set_num_threads(1);
    opt_.data_dir = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT).toStdString();
    opt_.cache_dir = tmp_.filePath("cache").toStdString();
    db_ = tmp_.filePath("runs.db").toStdString();
    opt_.db_path = db_;
    spec_ = tiny_hope();
    QVERIFY(spec_["training"]["snapshots"].get<bool>());  // on by default
    auto r = run_experiment(spec_, opt_, {&events_});
    QVERIFY2(r.status == hl::RunStatus::Finished, r.error.c_str());
    run_ = r.run_id;
  }

  // Row sums are the evaluation rows of each class; the diagonal over a task's rows is the
  // accuracy cell R[i][t], to the bit; the store holds what the events carried.
  void confusionMatrixIsTheAccuracyMatrixPredictions() {
    hl::data::LoadOptions lo;
    lo.data_dir = opt_.data_dir;
    lo.limit_per_class = 3;
    lo.eval_limit_per_class = 4;
    lo.seed = 0;
    lo.split = spec_["experiment"]["split"].get<std::string>();
    const auto ds = hl::data::load("banking77", lo);
    std::vector<int64_t> rows_of(ds.class_names.size(), 0);
    for (const auto& r : ds.test) ++rows_of[r.label];
    const int T = int(ds.tasks.size());
    QCOMPARE(int(events_.confusion.size()), T);
    auto db = hl::store::RunStore::open(db_);
    const auto stored = db->confusion(run_);
    QCOMPARE(int(stored.size()), T);
    std::map<std::pair<int, int>, double> acc;
    for (const auto& c : db->accuracy(run_)) acc[{c.after_task, c.task}] = c.acc;
    for (int i = 0; i < T; ++i) {
      const auto& m = *events_.confusion[i].confusion;
      QCOMPARE(m.after_task, i);
      std::vector<int> seen;
      for (int t = 0; t <= i; ++t) seen.insert(seen.end(), ds.tasks[t].begin(), ds.tasks[t].end());
      QCOMPARE(m.classes, seen);  // task by task, in training order
      for (size_t r = 0; r < m.size(); ++r) QCOMPARE(m.rowSum(r), rows_of[m.classes[r]]);
      for (int t = 0; t <= i; ++t)
        QVERIFY2(same_bits(m.taskAccuracy(t), acc.at({i, t})), qPrintable(QString("%1 %2").arg(i).arg(t)));
      const auto& s = stored[i];
      QCOMPARE(s.after_task, m.after_task);
      QCOMPARE(s.classes, m.classes);
      QCOMPARE(s.tasks, m.tasks);
      QCOMPARE(s.names, m.names);
      QCOMPARE(s.counts, m.counts);
      QCOMPARE(s.names[0], ds.class_names[s.classes[0]]);
    }
    QCOMPARE(int(db->confusion(run_, 2).size()), 1);
    QCOMPARE(db->confusion(run_, 2)[0].after_task, 2);
    QVERIFY(db->confusion(run_, T).empty());
  }

  // Restoring every level at once gives back the model of each task end: evaluated over the
  // classes seen then, it reproduces R[j][j] bit for bit; nothing restored reproduces R[T−1][j].
  // A CMS level whose task clock never ticked did not change, so restoring it gains exactly 0.
  void attributionReproducesTheTaskEndModels() {
    const Attribution a = attribute_forgetting(db_, run_, {opt_.data_dir, opt_.cache_dir, {}, nullptr, {}});
    const int T = a.num_tasks;
    QCOMPARE(T, 7);
    auto db = hl::store::RunStore::open(db_);
    std::map<std::pair<int, int>, double> R;
    for (const auto& c : db->accuracy(run_)) R[{c.after_task, c.task}] = c.acc;
    for (int j = 0; j < T; ++j) {
      QVERIFY(same_bits(a.final_acc[j], R.at({T - 1, j})));
      if (j + 1 == T) continue;
      QVERIFY2(same_bits(a.reproduced[j], R.at({j, j})), qPrintable(QString::number(j)));
      QVERIFY(same_bits(a.acc_at_end[j], R.at({j, j})));
    }
    QVERIFY(a.exact);
    QStringList labels;
    int64_t total = 0;
    for (const auto& l : a.levels) {
      labels << QString::fromStdString(l.label);
      QVERIFY2(l.numel > 0, l.label.c_str());
      total += l.numel;
    }
    QCOMPARE(labels,
             QStringList({"outer (the rest)", "b0 · context.memory", "b0 · context.other", "b0 · cms1 (clock 1 tasks)",
                          "b0 · cms2 (clock 100 tasks)", "head (memory, DGD-written)"}));
    QVERIFY(total > db->getRun(run_)->params);  // parameters and the head's buffers, each entry once
    for (int j = 0; j + 1 < T; ++j) {
      QCOMPARE(a.gain[4][j], 0.0);  // cms2 never ticked
      QVERIFY(!std::isnan(a.gain_all[j]) && !std::isnan(a.forgetting[j]));
      for (size_t l = 0; l < a.levels.size(); ++l) QVERIFY(std::abs(a.gain[l][j]) <= 1.0);
    }
    QVERIFY(std::isnan(a.gain[0][T - 1]));
    const json j = a.toJson();
    QCOMPARE(j["gain"].size(), a.levels.size());
    QVERIFY(j["gain"][0][T - 1].is_null());
    QCOMPARE(j["exact"].get<bool>(), true);
  }

  void attributionNamesWhatIsMissing() {
    // No such run.
    try {
      attribute_forgetting(db_, 999, {opt_.data_dir, opt_.cache_dir, {}, nullptr, {}});
      QFAIL("no error for a missing run");
    } catch (const hl::SpecError& e) {
      QVERIFY2(std::string(e.what()).find("run 999 is not in") != std::string::npos, e.what());
    }
    // A run recorded without snapshots (a transformer: seconds).
    json s = hl::spec::preset("transformer");
    s["model"]["d_model"] = 32;
    s["model"]["vocab_size"] = 300;
    s["model"]["max_len"] = 16;
    s["training"]["epochs"] = 1;
    s["training"]["limit_per_class"] = 2;
    s["training"]["eval_limit_per_class"] = 2;
    s["training"]["snapshots"] = false;
    s["training"]["threads"] = 1;
    s = hl::spec::complete(s);
    auto r = run_experiment(s, opt_, {});
    QVERIFY2(r.status == hl::RunStatus::Finished, r.error.c_str());
    const std::string none = run_error_of([&] {
      attribute_forgetting(db_, r.run_id, {opt_.data_dir, "", {}, nullptr, {}});
    });
    QVERIFY2(none.find("without task-end snapshots") != std::string::npos &&
                 none.find("training.snapshots") != std::string::npos,
             none.c_str());
    // The snapshot switch saves or not; it never changes what a configuration is.
    json with = s;
    with["training"]["snapshots"] = true;
    QCOMPARE(hl::spec::config_hash(with), hl::spec::config_hash(s));
    QCOMPARE(hl::spec::run_hash(with), hl::spec::run_hash(s));
    // A snapshot file gone: named.
    std::string moved;
    auto db = hl::store::RunStore::open(db_);
    for (const auto& c : db->checkpoints(run_))
      if (c.kind == hl::CheckpointKind::Snapshot && c.task == 3) moved = c.path;
    QVERIFY(!moved.empty());
    std::filesystem::rename(moved, moved + ".away");
    const std::string gone = run_error_of([&] {
      attribute_forgetting(db_, run_, {opt_.data_dir, "", {}, nullptr, {}});
    });
    std::filesystem::rename(moved + ".away", moved);
    QVERIFY2(gone.find(moved) != std::string::npos && gone.find("task 4") != std::string::npos, gone.c_str());
    // Cancelled between evaluations.
    std::atomic<bool> cancel{true};
    const std::string cancelled = run_error_of([&] {
      attribute_forgetting(db_, run_, {opt_.data_dir, "", {}, &cancel, {}});
    });
    QVERIFY2(cancelled.find("cancelled") != std::string::npos, cancelled.c_str());
  }

  // Test-time ablation: the saved final model reproduces the stored final row bit for bit; an
  // override that changes nothing changes nothing; writes off change the predictions; what cannot
  // be done is said.
  void evaluateAblatesTheSavedModelWithoutTraining() {
    auto db = hl::store::RunStore::open(db_);
    std::map<int, double> last_row;
    for (const auto& c : db->accuracy(run_))
      if (c.after_task == 6) last_row[c.task] = c.acc;
    AblationOptions o{opt_.data_dir, opt_.cache_dir, "last", {"model.blocks.0.memory_writes=true"}};
    const Ablation same = ablate_run(db_, run_, o);
    QCOMPARE(int(same.tasks.size()), 7);
    QVERIFY(same.exact);
    for (size_t i = 0; i < same.tasks.size(); ++i) {
      QCOMPARE(same.tasks[i], int(i));
      QVERIFY(same_bits(same.stored[i], last_row.at(int(i))));
      QVERIFY(same_bits(same.ablated[i], same.as_saved[i]));  // writes are on already: the same model
      QVERIFY(same_bits(same.ablated_til[i], same.as_saved_til[i]));
    }
    o.sets = {};
    o.writes_off = true;  // the tiny model's one block
    const Ablation off = ablate_run(db_, run_, o);
    QCOMPARE(off.sets, std::vector<std::string>({"model.blocks.0.memory_writes=false"}));
    QVERIFY(off.exact);
    o.writes_off = false;
    o.sets = {"model.blocks.0.memory_writes=false"};
    double moved = 0;
    for (size_t i = 0; i < off.tasks.size(); ++i) {
      QVERIFY(same_bits(off.as_saved[i], same.as_saved[i]));
      QVERIFY(off.ablated[i] >= 0 && off.ablated[i] <= 1);
      moved += std::abs(off.ablated[i] - off.as_saved[i]) + std::abs(off.ablated_til[i] - off.as_saved_til[i]);
    }
    QVERIFY2(moved > 0, "turning the block's writes off changed no prediction");
    const json j = off.toJson();
    QCOMPARE(j["tasks"][0].get<int>(), 1);
    QCOMPARE(j["sets"][0].get<std::string>(), std::string("model.blocks.0.memory_writes=false"));
    QCOMPARE(j["mean"]["change"].get<double>(), off.mean(off.ablated) - off.mean(off.as_saved));
    // best.pt evaluates too; it is not claimed to be the stored model.
    o.which = "best";
    QVERIFY(!ablate_run(db_, run_, o).exact);

    auto spec_error = [&](const AblationOptions& bad) -> std::string {
      try {
        ablate_run(db_, run_, bad);
      } catch (const hl::SpecError& e) {
        return e.what();
      }
      return "";
    };
    const std::string none = spec_error({opt_.data_dir, opt_.cache_dir, "last", {}});
    QVERIFY2(none.find("--set") != std::string::npos && none.find("--writes-off") != std::string::npos, none.c_str());
    // Cancelled before the ablated evaluation.
    std::atomic<bool> stop{true};
    AblationOptions cancelled{opt_.data_dir, opt_.cache_dir, "last", {}, true, &stop, {}};
    const std::string c = run_error_of([&] { ablate_run(db_, run_, cancelled); });
    QVERIFY2(c.find("cancelled") != std::string::npos, c.c_str());
    const std::string unknown = spec_error({opt_.data_dir, opt_.cache_dir, "last", {"model.blocks.0.no_such=1"}});
    QVERIFY2(unknown.find("no_such") != std::string::npos, unknown.c_str());
    const std::string shape = run_error_of([&] {
      ablate_run(db_, run_, {opt_.data_dir, opt_.cache_dir, "last", {"model.d_model=48"}});
    });
    QVERIFY2(shape.find("do not fit") != std::string::npos && shape.find("model.d_model=48") != std::string::npos,
             shape.c_str());
    std::string last;
    for (const auto& c : db->checkpoints(run_))
      if (c.kind == hl::CheckpointKind::Last) last = c.path;
    std::filesystem::rename(last, last + ".away");
    const std::string gone = run_error_of([&] {
      ablate_run(db_, run_, o = {opt_.data_dir, "", "last", {"model.blocks.0.memory_writes=false"}});
    });
    std::filesystem::rename(last + ".away", last);
    QVERIFY2(gone.find(last) != std::string::npos && gone.find("missing") != std::string::npos, gone.c_str());
  }

  // A run whose checkpoint rows point at another run's files (a merged database whose shard's
  // checkpoint folder was later reused, run numbers and all): evaluate and attribute refuse them,
  // naming the file and the first field where the saved spec differs, instead of measuring another
  // run's model under this run's name.
  void evaluationRefusesACheckpointAnotherRunWrote() {
    auto db = hl::store::RunStore::open(db_);
    hl::store::RunRecord other = *db->getRun(run_);
    json spec = json::parse(other.spec_json);
    spec["experiment"]["seed"] = spec["experiment"]["seed"].get<int64_t>() + 1;
    other.spec_json = spec.dump();
    other.uuid.clear();
    const int64_t id = db->createRun(other);
    {
      hl::store::RunWriter w(db_, id);
      for (const auto& c : db->accuracy(run_)) w.accuracy(c);
      for (const auto& c : db->checkpoints(run_)) w.checkpoint(c);
      w.flush();
    }
    const std::string ev = run_error_of([&] {
      ablate_run(db_, id, {opt_.data_dir, opt_.cache_dir, "last", {"model.blocks.0.memory_writes=false"}});
    });
    QVERIFY2(ev.find("was written by another run") != std::string::npos &&
                 ev.find("/experiment/seed") != std::string::npos && ev.find("last.pt") != std::string::npos,
             ev.c_str());
    const std::string at = run_error_of([&] {
      attribute_forgetting(db_, id, {opt_.data_dir, opt_.cache_dir, {}, nullptr, {}});
    });
    QVERIFY2(at.find("snapshot of the end of task 1") != std::string::npos &&
                 at.find("was written by another run") != std::string::npos,
             at.c_str());
    db->deleteRun(id);
  }
};

QTEST_GUILESS_MAIN(TestInsight)
#include "test_insight.moc"
