// Issue 13, part 3: many writers, one database. The app's own store (opened as the main window
// opens it, polled by the Runs tab's reader, with the app's run worker training in this process),
// two `hopelab-cli train` processes and a `hopelab-cli sweep --jobs 2` write one database while
// writers are killed with SIGKILL at random moments and started again. Afterwards, with the
// recovery the product itself does (the Runs tab's poll, the next open): `PRAGMA integrity_check`
// is ok, every run is finished or interrupted, and every point a process reported as committed
// (HOPELAB_COMMIT_LOG for the CLI, RunOptions::on_commit for the app) is in the database.
//
// Seeded: the seed is printed; HL_STRESS_SEED=N repeats a schedule (the kill times, targets and
// delays; what the processes have done by then still depends on the machine's speed).
// HL_STRESS_SECONDS sets how long writers are killed and restarted (default 25).
#include <QtTest>

#include <signal.h>
#include <sqlite3.h>
#include <sys/types.h>

#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <tuple>

#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "ui/run_data.h"
#include "ui/run_worker.h"
#include "ui/runs_browser.h"

using json = nlohmann::json;
using PointKey = std::tuple<int64_t, std::string, std::string, int, int, int64_t>;  // run, series, step

namespace {

// One writer slot: a `train` or a `sweep --jobs 2` that is started again after it ended or was killed.
struct Slot {
  QString name;
  QStringList args;
  std::unique_ptr<QProcess> proc;
  int starts = 0;
  int next_seed = 0;
};

bool alive(qint64 pid) {
  return pid > 0 && hl::store::process_start_time(pid) != 0;  // a zombie counts as gone
}

// The sweep workers of a sweep parent: the processes whose parent it is.
QList<qint64> children_of(qint64 parent) {
  QList<qint64> out;
  QFile f(QString("/proc/%1/task/%1/children").arg(parent));
  if (f.open(QIODevice::ReadOnly))
    for (const auto& w : QString::fromLatin1(f.readAll()).split(' ', Qt::SkipEmptyParts)) out << w.toLongLong();
  return out;
}

}  // namespace

class TestManyWriters : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString data_;

  QStringList trainArgs(const QString& db, int seed) const {
    return {"--db",
            db,
            "train",
            "--preset",
            "transformer",
            "--dataset",
            "banking77",
            "--epochs",
            "2",
            "--limit-per-class",
            "4",
            "--eval-limit-per-class",
            "3",
            "--set",
            "model.d_model=32",
            "--set",
            "model.vocab_size=300",
            "--set",
            "training.threads=1",
            "--seed",
            QString::number(seed),
            "--quiet"};
  }

  void start(Slot& s, const QString& db) {
    s.proc = std::make_unique<QProcess>();
    auto e = QProcessEnvironment::systemEnvironment();
    e.insert("HOPELAB_DATA_DIR", data_);
    e.insert("XDG_DATA_HOME", tmp_.filePath("xdg"));
    e.insert("HOPELAB_COMMIT_LOG", tmp_.filePath("commits"));
    e.insert("OMP_NUM_THREADS", "1");
    s.proc->setProcessEnvironment(e);
    s.proc->setProcessChannelMode(QProcess::MergedChannels);
    s.proc->setStandardOutputFile(tmp_.filePath("log-" + s.name), QIODevice::Append);
    QStringList args = s.args;
    if (args.isEmpty()) args = trainArgs(db, s.next_seed++);
    s.proc->start(HL_CLI_PATH, args);
    QVERIFY(s.proc->waitForStarted());
    ++s.starts;
  }

  QString tail(const QString& file) const {
    QFile f(tmp_.filePath(file));
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QString::fromUtf8(f.readAll().right(1500));
  }

 private slots:
  void initTestCase() {
    data_ = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT);
    QVERIFY(QDir().mkpath(tmp_.filePath("commits")));
  }

  void manyWritersOneDatabaseWithRandomKills() {
    const quint64 seed = qEnvironmentVariableIsSet("HL_STRESS_SEED")
                             ? qEnvironmentVariable("HL_STRESS_SEED").toULongLong()
                             : std::random_device{}();
    const int seconds =
        qEnvironmentVariableIntValue("HL_STRESS_SECONDS") > 0 ? qEnvironmentVariableIntValue("HL_STRESS_SECONDS") : 25;
    qInfo("seed %llu (HL_STRESS_SEED=%llu repeats it), %d s of kills", (unsigned long long)seed,
          (unsigned long long)seed, seconds);
    std::mt19937_64 rng(seed);
    auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const QString db = tmp_.filePath("runs.db");

    // The app: its store opened as MainWindow::openDatabase opens it, the Runs tab's reader over it.
    auto store = hl::store::RunStore::open(db.toStdString());
    hl::ui::RunsBrowser browser;
    browser.setStore(store.get());

    // The app's run worker trains in this process, reporting its commits like the CLI's log.
    std::mutex app_mu;
    std::vector<PointKey> app_points;
    hl::ui::RunWorker worker;
    QSignalSpy app_done(&worker, &hl::ui::RunWorker::requestFinished);
    for (int k = 0; k < 2; ++k) {
      json spec = hl::spec::preset("transformer");
      spec["name"] = "app";
      spec["model"]["d_model"] = 32;
      spec["model"]["vocab_size"] = 300;
      spec["experiment"]["dataset"] = "banking77";
      spec["experiment"]["seed"] = 100 + k;
      spec["training"]["epochs"] = 1;
      spec["training"]["limit_per_class"] = 4;
      spec["training"]["eval_limit_per_class"] = 3;
      spec["training"]["threads"] = 1;
      hl::ui::RunRequest r;
      r.spec = hl::spec::complete(spec);
      r.options.data_dir = data_.toStdString();
      r.options.db_path = db.toStdString();
      r.options.cache_dir = tmp_.filePath("xdg/hopelab/cache").toStdString();
      r.options.on_commit = [&](int64_t run, const std::vector<hl::store::CommittedPoint>& pts) {
        std::lock_guard<std::mutex> lock(app_mu);
        for (const auto& p : pts) app_points.emplace_back(run, p.name, p.level, p.block, p.clock, p.step);
      };
      worker.enqueue(r);
    }

    // The CLI writers.
    const QString sweep_file = tmp_.filePath("sweep.json");
    {
      QFile f(sweep_file);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(R"({"name": "stress", "preset": "transformer",
        "set": {"model.d_model": 32, "model.vocab_size": 300, "training.epochs": 2,
                "training.limit_per_class": 4, "training.eval_limit_per_class": 3, "training.threads": 1},
        "grid": {"experiment.strategy.type": ["finetune", "replay"]}, "seeds": [0, 1, 2]})");
    }
    Slot writers[3];
    writers[0].name = "train-a";
    writers[0].next_seed = 1000;
    writers[1].name = "train-b";
    writers[1].next_seed = 2000;
    writers[2].name = "sweep";
    writers[2].args = QStringList{"--db", db, "sweep", sweep_file, "--jobs", "2", "--quiet"};
    for (auto& s : writers) start(s, db);

    // The reader: the Runs tab's poll (which applies the interrupted rule) and the Live view's
    // replay of a run, while the points it sees of each run never go down and no read fails.
    std::map<int64_t, size_t> seen_points;
    QStringList read_errors;
    int polls = 0;
    auto read_once = [&] {
      browser.pollOnce();
      ++polls;
      try {
        const auto runs = store->listRuns();
        if (runs.empty()) return;
        const auto& r = runs[size_t(uniform(0, int(runs.size()) - 1))];
        hl::ui::RunData replay;
        replay.load(*store, r.id);
        size_t n = 0;
        for (const auto& s : store->series(r.id)) n += s.points.size();
        if (n < seen_points[r.id])
          read_errors << QString("run %1: %2 points after %3").arg(r.id).arg(n).arg(seen_points[r.id]);
        seen_points[r.id] = n;
      } catch (const std::exception& e) {
        read_errors << QString::fromUtf8(e.what());
      }
    };

    int kills = 0, killed_parents = 0;
    QStringList kill_log;
    QElapsedTimer clock;
    clock.start();
    qint64 next_kill = uniform(2500, 5000);
    while (clock.elapsed() < seconds * 1000LL) {
      QTest::qWait(150);
      read_once();
      for (auto& s : writers)  // an ended writer starts again after a while (a user starting it again)
        if (s.proc->state() == QProcess::NotRunning && uniform(0, 3) == 0) start(s, db);
      if (clock.elapsed() < next_kill) continue;
      next_kill = clock.elapsed() + uniform(1500, 4000);
      // A random target: a train, the sweep parent, or one of its workers.
      std::vector<std::pair<QString, qint64>> targets;
      for (auto& s : writers)
        if (s.proc->state() == QProcess::Running) {
          targets.emplace_back(s.name, s.proc->processId());
          if (s.name == "sweep")
            for (qint64 w : children_of(s.proc->processId())) targets.emplace_back("sweep worker", w);
        }
      if (targets.empty()) continue;
      const auto& [what, pid] = targets[size_t(uniform(0, int(targets.size()) - 1))];
      ::kill(pid_t(pid), SIGKILL);
      ++kills;
      killed_parents += what == "sweep";
      kill_log << QString("%1 ms: %2 (pid %3)").arg(clock.elapsed()).arg(what).arg(pid);
    }

    // The end: once a CLI process is training a run (so that the last kill interrupts one whatever
    // the schedule did), every CLI writer is killed, the sweep parent first: its workers go with it.
    auto cli_mid_run = [&] {
      try {
        for (const auto& r : store->listRuns())
          if (r.status == hl::RunStatus::Running && r.pid != hl::store::current_pid() && alive(r.pid)) return true;
      } catch (const std::exception&) {
      }
      return false;
    };
    for (QElapsedTimer wait; !cli_mid_run();) {
      if (!wait.isValid()) wait.start();
      QVERIFY2(wait.elapsed() < 120000, "no CLI writer got to train a run");
      for (auto& s : writers)
        if (s.proc->state() == QProcess::NotRunning) start(s, db);
      QTest::qWait(150);
    }
    QList<qint64> workers;
    for (auto& s : writers)
      if (s.proc->state() == QProcess::Running) {
        if (s.name == "sweep") workers = children_of(s.proc->processId());
        ::kill(pid_t(s.proc->processId()), SIGKILL);
        ++kills;
        kill_log << QString("end: %1 (pid %2)").arg(s.name).arg(s.proc->processId());
      }
    for (auto& s : writers)  // (waitForFinished is false for a process that had already ended)
      QVERIFY(s.proc->state() == QProcess::NotRunning || s.proc->waitForFinished(20000));
    for (qint64 w : workers)
      QTRY_VERIFY2_WITH_TIMEOUT(!alive(w), qPrintable(QString("sweep worker %1 outlived its parent").arg(w)), 10000);
    // The app's own runs finish (nobody kills the app).
    QTRY_VERIFY_WITH_TIMEOUT(app_done.count() == 2, 120000);
    qInfo("%d kills (%d of the sweep parent):\n  %s", kills, killed_parents, qPrintable(kill_log.join("\n  ")));

    // Recovery as the product does it: the Runs tab's next poll, then a fresh open.
    QTest::qWait(50);
    browser.pollOnce();
    store.reset();
    store = hl::store::RunStore::open(db.toStdString());

    sqlite3* raw = nullptr;
    QCOMPARE(sqlite3_open_v2(db.toUtf8().constData(), &raw, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(raw, 10000);
    auto query = [&](const char* sql, auto&& row) {
      sqlite3_stmt* st = nullptr;
      QCOMPARE(sqlite3_prepare_v2(raw, sql, -1, &st, nullptr), SQLITE_OK);
      while (sqlite3_step(st) == SQLITE_ROW) row(st);
      sqlite3_finalize(st);
    };
    QString integrity;
    query("PRAGMA integrity_check", [&](sqlite3_stmt* st) {
      integrity += QString::fromUtf8(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
    });
    QCOMPARE(integrity, QString("ok"));

    std::map<std::string, int> statuses;
    QStringList bad;
    for (const auto& r : store->listRuns()) {
      ++statuses[hl::name(r.status)];
      if (r.status != hl::RunStatus::Finished && r.status != hl::RunStatus::Interrupted)
        bad << QString("run %1 (%2, pid %3): %4 %5")
                   .arg(r.id)
                   .arg(QString::fromStdString(r.name))
                   .arg(r.pid)
                   .arg(QString::fromStdString(hl::name(r.status)))
                   .arg(QString::fromStdString(r.error));
    }
    QString counts;
    for (const auto& [k, v] : statuses) counts += QString(" %1 %2").arg(v).arg(QString::fromStdString(k));
    qInfo("runs:%s", qPrintable(counts));
    QVERIFY2(bad.isEmpty(), qPrintable(bad.join("\n") + "\nlogs:\n" + tail("log-train-a") + tail("log-sweep")));

    // Every point reported as committed is stored.
    std::set<PointKey> stored;
    query(
        "SELECT s.run_id, s.name, s.level, s.block, s.clock, p.step FROM points p JOIN series s ON s.id = p.series_id",
        [&](sqlite3_stmt* st) {
          auto text = [&](int c) { return std::string(reinterpret_cast<const char*>(sqlite3_column_text(st, c))); };
          stored.emplace(sqlite3_column_int64(st, 0), text(1), text(2), sqlite3_column_int(st, 3),
                         sqlite3_column_int(st, 4), sqlite3_column_int64(st, 5));
        });
    sqlite3_close(raw);
    std::vector<PointKey> reported = app_points;
    int logs = 0, cut_lines = 0;
    for (const auto& fi : QDir(tmp_.filePath("commits")).entryInfoList({"commits-*.tsv"}, QDir::Files)) {
      std::ifstream in(fi.filePath().toStdString(), std::ios::binary);
      std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      logs += text.find('\n') != std::string::npos;  // a process that reported a committed point
      std::istringstream lines(text);
      std::string line;
      while (std::getline(lines, line)) {
        if (lines.eof() && text.back() != '\n') {  // cut by a SIGKILL while appending: not a report
          ++cut_lines;
          break;
        }
        std::vector<std::string> f;
        std::istringstream fields(line);
        for (std::string x; std::getline(fields, x, '\t');) f.push_back(x);
        QVERIFY2(f.size() == 6, line.c_str());
        reported.emplace_back(std::stoll(f[0]), f[1], f[2], std::stoi(f[3]), std::stoi(f[4]), std::stoll(f[5]));
      }
    }
    size_t missing = 0;
    QString first_missing;
    std::set<int64_t> runs_reported;
    for (const auto& k : reported) {
      runs_reported.insert(std::get<0>(k));
      if (!stored.count(k) && missing++ == 0)
        first_missing = QString("run %1 %2/%3 step %4")
                            .arg(std::get<0>(k))
                            .arg(QString::fromStdString(std::get<1>(k)))
                            .arg(QString::fromStdString(std::get<2>(k)))
                            .arg(std::get<5>(k));
    }
    qInfo(
        "%zu points reported committed by %d processes and the app (%d line(s) cut by a kill), over %zu runs; "
        "%zu stored; %zu missing; %d polls",
        reported.size(), logs, cut_lines, runs_reported.size(), stored.size(), missing, polls);
    QVERIFY2(missing == 0,
             qPrintable(QString("%1 reported points missing, first: %2").arg(missing).arg(first_missing)));
    QVERIFY2(read_errors.isEmpty(), qPrintable(read_errors.join("\n")));

    // The test did what it says: writers were killed mid-run, runs of both kinds exist, and the
    // CLI processes and the app reported points.
    QVERIFY(kills >= 3);
    QVERIFY2(statuses["interrupted"] >= 1, qPrintable(counts));
    QVERIFY2(statuses["finished"] >= 2, qPrintable(counts));
    QVERIFY(!app_points.empty());
    QVERIFY(logs >= 3);
  }
};

QTEST_MAIN(TestManyWriters)
#include "test_many_writers.moc"
