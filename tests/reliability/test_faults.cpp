// Issue 13, part 4 and its known bugs: faults a run must survive. A run database or checkpoint
// folder that fills up (RLIMIT_FSIZE lowered on the running process, SIGXFSZ ignored so that writes
// fail with EFBIG as on a full disk) or turns read-only (chmod, or as root the immutable flag, since
// chmod does not stop root) ends the run `failed` with a message naming the path and a non-zero
// exit; the database stays consistent, the last checkpoint is kept and `train --resume` finishes
// the run once the fault is gone. Killing only a `sweep --jobs 2` parent takes its workers along;
// a run whose writer cannot open ends `failed` with the reason.
#include <QtTest>

#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/experiment.h"
#include "tests/cli_process.h"

using json = nlohmann::json;

namespace {

using Result = CliResult;

qint64 size_of(const QString& path) {
  return QFileInfo(path).exists() ? QFileInfo(path).size() : 0;
}

bool alive(qint64 pid) {
  return pid > 0 && hl::store::process_start_time(pid) != 0;  // a zombie counts as gone
}

QString integrity(const QString& db) {
  sqlite3* raw = nullptr;
  if (sqlite3_open_v2(db.toUtf8().constData(), &raw, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) return "cannot open";
  sqlite3_stmt* st = nullptr;
  QString out;
  if (sqlite3_prepare_v2(raw, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK)
    while (sqlite3_step(st) == SQLITE_ROW)
      out += QString::fromUtf8(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)));
  sqlite3_finalize(st);
  sqlite3_close(raw);
  return out;
}

// Read-only for this process's children: chmod for a user; as root (whom chmod does not stop), the
// immutable flag (ext4, xfs, btrfs; needs CAP_LINUX_IMMUTABLE). Returns "" or why it cannot.
QString make_read_only(const QString& path, bool on) {
  if (::geteuid() != 0) {
    QFile::Permissions p = QFileInfo(path).isDir() ? QFile::ReadOwner | QFile::ExeOwner : QFile::ReadOwner;
    QFile::Permissions rw = p | QFile::WriteOwner;
    return QFile::setPermissions(path, on ? p : rw) ? QString() : "chmod failed";
  }
  const int fd = ::open(path.toUtf8().constData(), O_RDONLY | O_NONBLOCK);
  if (fd < 0) return QString("open: ") + std::strerror(errno);
  int flags = 0;
  QString why;
  if (::ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0) {
    why = QString("FS_IOC_GETFLAGS: ") + std::strerror(errno);
  } else {
    flags = on ? (flags | FS_IMMUTABLE_FL) : (flags & ~FS_IMMUTABLE_FL);
    if (::ioctl(fd, FS_IOC_SETFLAGS, &flags) != 0) why = QString("FS_IOC_SETFLAGS: ") + std::strerror(errno);
  }
  ::close(fd);
  return why;
}

}  // namespace

class TestFaults : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString data_;

  QProcessEnvironment env() const {
    auto e = QProcessEnvironment::systemEnvironment();
    e.insert("HOPELAB_DATA_DIR", data_);
    e.insert("XDG_DATA_HOME", tmp_.filePath("xdg"));
    e.insert("OMP_NUM_THREADS", "1");
    return e;
  }

  Result cli(const QStringList& args, int timeout_ms = 240000) { return runCli(HL_CLI_PATH, args, env(), timeout_ms); }

  // A run of 7 tasks, long enough that a fault set after its first checkpoint meets it mid-run.
  QStringList trainArgs(const QString& db, int d_model, int epochs) const {
    return {"--db",
            db,
            "train",
            "--preset",
            "transformer",
            "--dataset",
            "banking77",
            "--epochs",
            QString::number(epochs),
            "--limit-per-class",
            "6",
            "--eval-limit-per-class",
            "3",
            "--set",
            "model.d_model=" + QString::number(d_model),
            "--set",
            "model.vocab_size=300",
            "--set",
            "training.threads=1",
            "--quiet"};
  }

  // Starts a run whose writes fail with EFBIG (not SIGXFSZ) once its file-size limit is lowered.
  std::unique_ptr<QProcess> startRun(const QStringList& args) {
    auto p = std::make_unique<QProcess>();
    p->setProcessEnvironment(env());
    p->setChildProcessModifier([] { ::signal(SIGXFSZ, SIG_IGN); });
    p->start(HL_CLI_PATH, args);
    return p;
  }

  // Waits for the run's first task-end checkpoint: the file (it appears by a rename, whole) and its
  // row in the database (what `--resume` reads).
  bool waitForCheckpoint(QProcess& p, const QString& db, const QString& ckpt, int64_t run = 1) {
    QElapsedTimer t;
    t.start();
    auto stored = [&] {
      try {
        return !hl::store::RunStore::open(db.toStdString())->checkpoints(run).empty();
      } catch (const std::exception&) {
        return false;
      }
    };
    while (t.elapsed() < 180000 && p.state() == QProcess::Running) {
      if (QFileInfo::exists(ckpt) && stored()) return true;
      QTest::qWait(20);
    }
    return false;
  }

  // The stored run once the fault is gone: consistent, failed as said, then resumed to the end
  // from its last checkpoint with every step's loss exactly once.
  void checkFailedThenResume(const QString& db, const QString& must_name, const QString& stderr_text, int64_t run = 1) {
    QCOMPARE(integrity(db), QString("ok"));
    auto store = hl::store::RunStore::open(db.toStdString());
    auto r = store->getRun(run);
    QVERIFY(r.has_value());
    QCOMPARE(QString::fromStdString(hl::name(r->status)), QString("failed"));
    QVERIFY2(QString::fromStdString(r->error).contains(must_name), r->error.c_str());
    QVERIFY2(stderr_text.contains(must_name), qPrintable(stderr_text));
    store.reset();
    auto resumed = cli({"--db", db, "train", "--resume", QString::number(run), "--quiet"});
    QVERIFY2(resumed.code == 0, qPrintable(resumed.err));
    store = hl::store::RunStore::open(db.toStdString());
    r = store->getRun(run);
    QCOMPARE(QString::fromStdString(hl::name(r->status)), QString("finished"));
    const json summary = json::parse(r->summary_json);
    QCOMPARE(summary["tasks_completed"].get<int>(), 7);
    for (const auto& s : store->series(run))
      if (s.name == "loss" && s.level == "outer") {
        QCOMPARE(int64_t(s.points.size()), summary["steps"].get<int64_t>());
        for (size_t i = 0; i < s.points.size(); ++i) QCOMPARE(s.points[i].first, int64_t(i));
      }
    QCOMPARE(integrity(db), QString("ok"));
  }

 private slots:
  void initTestCase() { data_ = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT); }

  // A failed check can leave a file read-only: the temporary folder must still go.
  void cleanupTestCase() {
    QDirIterator it(tmp_.path(), QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden, QDirIterator::Subdirectories);
    while (it.hasNext()) make_read_only(it.next(), false);
  }

  // The checkpoint folder fills up: the next checkpoint cannot be written (EFBIG) while the
  // database still can; the previous checkpoint stays whole.
  void fullCheckpointFolderFailsTheRunNamingTheFile() {
    const QString db = tmp_.filePath("ckpt-full.db"), dir = db + ".checkpoints/run-1";
    auto p = startRun(trainArgs(db, 64, 1));  // checkpoints of 1.8 MB, far above the WAL
    QVERIFY(p->waitForStarted());
    QVERIFY2(waitForCheckpoint(*p, db, dir + "/last.pt"), qPrintable(p->readAllStandardError()));
    const qint64 ckpt = size_of(dir + "/last.pt");
    const qint64 db_files = std::max(size_of(db), size_of(db + "-wal"));
    QVERIFY2(ckpt > db_files + 512 * 1024,
             qPrintable(QString("checkpoint %1 bytes, database %2").arg(ckpt).arg(db_files)));
    const rlimit limit{rlim_t(db_files + (ckpt - db_files) / 2), rlim_t(db_files + (ckpt - db_files) / 2)};
    QCOMPARE(::prlimit(pid_t(p->processId()), RLIMIT_FSIZE, &limit, nullptr), 0);
    QVERIFY(p->waitForFinished(180000));
    const QString err = QString::fromUtf8(p->readAllStandardError());
    qInfo("%s", qPrintable(err.trimmed()));
    QVERIFY2(p->exitStatus() == QProcess::NormalExit && p->exitCode() == 4, qPrintable(err));
    QVERIFY2(err.contains("cannot write the checkpoint " + dir) && err.contains("File too large"), qPrintable(err));
    QVERIFY(!QFileInfo::exists(dir + "/last.pt.tmp") && !QFileInfo::exists(dir + "/best.pt.tmp"));
    checkFailedThenResume(db, "cannot write the checkpoint " + dir, err);
  }

  // The database fills up: the writer's transaction is refused (EFBIG), the run stops at its next
  // step and its end is still stored (after a checkpoint that moves the WAL into the database).
  // The WAL is grown first (a run of this app with many points, kept open so that nothing
  // checkpoints it), so that the limit, the WAL's size, is above every checkpoint file: only the
  // database can meet it, wherever the run is when it is set.
  void fullDatabaseFailsTheRunNamingIt() {
    const QString db = tmp_.filePath("db-full.db"), dir = db + ".checkpoints/run-2";
    auto keep = hl::store::RunStore::open(db.toStdString());
    {
      hl::store::RunRecord filler;
      filler.name = "filler";
      filler.status = hl::RunStatus::Finished;
      hl::store::RunWriter w(db.toStdString(), keep->createRun(filler));
      for (int64_t step = 0; size_of(db + "-wal") < 1536 * 1024; ++step) {
        w.point("loss", "outer", -1, 1, step, 1.0);
        if (step % 5000 == 4999) w.flush();
      }
      w.flush();
    }
    auto p = startRun(trainArgs(db, 16, 3));
    QVERIFY(p->waitForStarted());
    QVERIFY2(waitForCheckpoint(*p, db, dir + "/last.pt", 2), qPrintable(p->readAllStandardError()));
    const qint64 wal = size_of(db + "-wal");
    QVERIFY2(wal > size_of(dir + "/last.pt") + 128 * 1024,
             qPrintable(QString("WAL %1 bytes, checkpoint %2").arg(wal).arg(size_of(dir + "/last.pt"))));
    const rlimit limit{rlim_t(wal), rlim_t(wal)};
    QCOMPARE(::prlimit(pid_t(p->processId()), RLIMIT_FSIZE, &limit, nullptr), 0);
    QVERIFY(p->waitForFinished(180000));
    keep.reset();
    const QString err = QString::fromUtf8(p->readAllStandardError());
    qInfo("%s", qPrintable(err.trimmed()));
    QVERIFY2(p->exitStatus() == QProcess::NormalExit && p->exitCode() == 4, qPrintable(err));
    QVERIFY2(err.contains("run database " + db) && err.contains("File too large"), qPrintable(err));
    checkFailedThenResume(db, "run database " + db, err, 2);
  }

  // The checkpoint folder turns read-only after the first checkpoint.
  void readOnlyCheckpointFolderFailsTheRunNamingTheFile() {
    const QString db = tmp_.filePath("ckpt-ro.db"), dir = db + ".checkpoints/run-1";
    auto p = startRun(trainArgs(db, 16, 3));
    QVERIFY(p->waitForStarted());
    QVERIFY2(waitForCheckpoint(*p, db, dir + "/last.pt"), qPrintable(p->readAllStandardError()));
    const QString why = make_read_only(dir, true);
    if (!why.isEmpty()) {
      p->kill();
      p->waitForFinished();
      QSKIP(qPrintable("cannot make a folder read-only here (" + why + ")"));
    }
    QVERIFY(p->waitForFinished(180000));
    QCOMPARE(make_read_only(dir, false), QString());
    const QString err = QString::fromUtf8(p->readAllStandardError());
    qInfo("%s", qPrintable(err.trimmed()));
    QVERIFY2(p->exitStatus() == QProcess::NormalExit && p->exitCode() == 4, qPrintable(err));
    QVERIFY2(err.contains("cannot write the checkpoint " + dir), qPrintable(err));
    checkFailedThenResume(db, "cannot write the checkpoint " + dir, err);
  }

  // The database turns read-only mid-run. Only the immutable flag does that to a file already
  // open (chmod is checked at open), so this needs root; the run cannot store its end in a file
  // it cannot write: it is `interrupted` at the next open and resumes from its checkpoint. A
  // read-only database at the start refuses the run before it exists, naming the file.
  void readOnlyDatabaseStopsTheRunNamingIt() {
    const QString db = tmp_.filePath("db-ro.db"), dir = db + ".checkpoints/run-1";
    auto p = startRun(trainArgs(db, 16, 3));
    QVERIFY(p->waitForStarted());
    QVERIFY2(waitForCheckpoint(*p, db, dir + "/last.pt"), qPrintable(p->readAllStandardError()));
    QString why = ::geteuid() == 0 ? make_read_only(db, true) : "chmod does not stop a writer that has the file open";
    if (why.isEmpty()) why = make_read_only(db + "-wal", true);
    if (!why.isEmpty()) {
      p->kill();
      p->waitForFinished();
      make_read_only(db, false);
      qInfo("mid-run read-only database not tested: %s", qPrintable(why));
    } else {
      QVERIFY(p->waitForFinished(180000));
      QCOMPARE(make_read_only(db + "-wal", false), QString());
      QCOMPARE(make_read_only(db, false), QString());
      const QString err = QString::fromUtf8(p->readAllStandardError());
      qInfo("%s", qPrintable(err.trimmed()));
      QVERIFY2(p->exitCode() == 4, qPrintable(err));
      QVERIFY2(err.contains("run database " + db) && err.contains("could not record"), qPrintable(err));
      QCOMPARE(integrity(db), QString("ok"));
      auto store = hl::store::RunStore::open(db.toStdString());
      QCOMPARE(QString::fromStdString(hl::name(store->getRun(1)->status)), QString("interrupted"));
      store.reset();
      auto resumed = cli({"--db", db, "train", "--resume", "1", "--quiet"});
      QVERIFY2(resumed.code == 0, qPrintable(resumed.err));
    }
    // Read-only before the run: refused (exit 5), naming the file, nothing created.
    const QString ro = tmp_.filePath("ro-at-start.db");
    {
      auto s = hl::store::RunStore::open(ro.toStdString());  // a valid, empty run database
    }
    const QString no_wal = make_read_only(ro, true);
    if (!no_wal.isEmpty()) QSKIP(qPrintable("cannot make a file read-only here (" + no_wal + ")"));
    auto r = cli(trainArgs(ro, 16, 1));
    QCOMPARE(make_read_only(ro, false), QString());
    qInfo("%s", qPrintable(r.err.trimmed()));
    QVERIFY2(r.code == 5 && r.err.contains(ro), qPrintable(r.err));
    QCOMPARE(integrity(ro), QString("ok"));
    QVERIFY(hl::store::RunStore::open(ro.toStdString())->listRuns().empty());
  }

  // Killing only the parent of `sweep --jobs 2` (SIGKILL, then SIGTERM) takes its workers along:
  // killed, their runs are interrupted; terminated, they cancel their runs and the sweep exits 130.
  void sweepWorkersDieWithTheirParent() {
    const QString file = tmp_.filePath("long_sweep.json");
    {
      QFile f(file);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(R"({"name": "long", "preset": "transformer",
        "set": {"model.d_model": 16, "model.vocab_size": 300, "training.epochs": 5000,
                "training.limit_per_class": 3, "training.eval_limit_per_class": 3, "training.threads": 1},
        "seeds": [0, 1]})");
    }
    for (int sig : {SIGKILL, SIGTERM}) {
      const QString db = tmp_.filePath(QString("sweep-%1.db").arg(sig));
      QProcess parent;
      parent.setProcessEnvironment(env());
      parent.start(HL_CLI_PATH, {"--db", db, "sweep", file, "--jobs", "2", "--quiet"});
      QVERIFY(parent.waitForStarted());
      // Both workers have a run going (stored with their pid) and have trained a step.
      std::vector<hl::store::RunRecord> runs;
      QElapsedTimer t;
      t.start();
      while (t.elapsed() < 120000 && parent.state() == QProcess::Running) {
        QTest::qWait(200);
        if (!QFileInfo::exists(db)) continue;
        try {
          auto store = hl::store::RunStore::open(db.toStdString());
          runs = store->listRuns();
          int stepping = 0;
          for (const auto& r : runs)
            for (const auto& s : store->series(r.id)) stepping += s.name == "loss" && !s.points.empty();
          if (runs.size() == 2 && stepping == 2) break;
        } catch (const std::exception&) {  // created just now: the next try
        }
      }
      QCOMPARE(int(runs.size()), 2);
      for (const auto& r : runs) QVERIFY(alive(r.pid));
      ::kill(pid_t(parent.processId()), sig);
      QVERIFY(parent.waitForFinished(60000));
      for (const auto& r : runs)
        QTRY_VERIFY2_WITH_TIMEOUT(!alive(r.pid), qPrintable(QString("worker %1 outlived the sweep").arg(r.pid)), 30000);
      const char* expected = sig == SIGKILL ? "interrupted" : "cancelled";
      if (sig == SIGTERM) QCOMPARE(parent.exitCode(), 130);
      auto store = hl::store::RunStore::open(db.toStdString());  // the open applies the interrupted rule
      for (const auto& r : store->listRuns()) QCOMPARE(QString::fromStdString(hl::name(r.status)), QString(expected));
    }
  }

  // A run whose writer cannot open once the run exists ends `failed` with the reason instead of
  // staying `running` for as long as the process (a GUI) lives.
  void runWhoseWriterCannotOpenEndsFailed() {
    const QString db = tmp_.filePath("writer.db");
    json spec = hl::spec::preset("transformer");
    spec["model"]["d_model"] = 16;
    spec["model"]["vocab_size"] = 300;
    spec["experiment"]["dataset"] = "banking77";
    spec["training"]["limit_per_class"] = 3;
    spec["training"]["eval_limit_per_class"] = 3;
    hl::train::RunOptions opt;
    opt.data_dir = data_.toStdString();
    opt.db_path = db.toStdString();
    opt.cache_dir = tmp_.filePath("xdg/hopelab/cache").toStdString();
    opt.writer_open_fault = [] { throw hl::StoreError("cannot open run database: Too many open files (test)"); };
    QString thrown;
    try {
      hl::train::run_experiment(hl::spec::complete(spec), opt, {});
    } catch (const hl::StoreError& e) {
      thrown = QString::fromUtf8(e.what());
    }
    QVERIFY2(thrown.contains("Too many open files"), qPrintable(thrown));
    qInfo("%s", qPrintable(thrown));
    auto store = hl::store::RunStore::open(db.toStdString());
    auto r = store->getRun(1);
    QVERIFY(r.has_value());
    QCOMPARE(QString::fromStdString(hl::name(r->status)), QString("failed"));
    QVERIFY2(r->error.find("writer could not open") != std::string::npos &&
                 r->error.find("Too many open files") != std::string::npos,
             r->error.c_str());
    QVERIFY(r->finished_at > 0);
  }
};

QTEST_GUILESS_MAIN(TestFaults)
#include "test_faults.moc"
