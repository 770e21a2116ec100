// hopelab-cli as a user runs it: exit codes, messages that name the file, the stored run and its
// JSON, export, Ctrl-C, and a SIGKILL mid-run leaving an intact database marked interrupted.
#include <QRegularExpression>
#include <QtTest>

#include <signal.h>

#include <nlohmann/json.hpp>

#include "engine/store/store.h"
#include "tests/cli_process.h"

using json = nlohmann::json;

namespace {

using Result = CliResult;

}  // namespace

class TestCli : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString data_;

  QProcessEnvironment env() const {
    auto e = QProcessEnvironment::systemEnvironment();
    e.insert("HOPELAB_DATA_DIR", data_);
    e.insert("XDG_DATA_HOME", tmp_.filePath("xdg"));
    return e;
  }

  Result cli(const QStringList& args, int timeout_ms = 600000, QProcessEnvironment e = {}) {
    return runCli(HL_CLI_PATH, args, e.isEmpty() ? env() : e, timeout_ms);
  }

  QStringList tiny(const QString& db, const QString& epochs = "1") const {
    return {"--db",
            db,
            "train",
            "--preset",
            "transformer",
            "--dataset",
            "banking77",
            "--epochs",
            epochs,
            "--limit-per-class",
            "6",
            "--eval-limit-per-class",
            "5",
            "--set",
            "model.d_model=32",
            "--set",
            "model.vocab_size=400",
            "--quiet"};
  }

 private slots:
  void initTestCase() { data_ = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT); }

  void presetsListsTheBaselines() {
    auto r = cli({"presets"});
    QCOMPARE(r.code, 0);
    for (const char* n : {"transformer", "lstm", "retnet"}) QVERIFY2(r.out.contains(n), qPrintable(r.out));
  }

  void usageErrorsExitTwo() {
    QCOMPARE(cli({"train", "--no-such-flag"}).code, 2);
    QCOMPARE(cli({}).code, 2);
    auto r = cli({"train", "--preset", "nope", "--no-store"});
    QCOMPARE(r.code, 2);
    QVERIFY(r.err.contains("unknown preset"));
  }

  void validateNamesTheBadField() {
    QString spec = tmp_.filePath("bad.json");
    QFile f(spec);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write(R"({"model": {"d_model": 100, "blocks": [{"type": "transformer", "heads": 3}]}})");
    f.close();
    auto r = cli({"validate", spec});
    QCOMPARE(r.code, 2);
    QVERIFY2(r.out.contains("model.blocks[0].heads"), qPrintable(r.out));
    auto ok = cli({"validate", "transformer"});
    QCOMPARE(ok.code, 0);
    QVERIFY(ok.out.contains("params"));
  }

  void trainShowRunsExport() {
    QString db = tmp_.filePath("runs.db");
    auto t = cli(tiny(db) << "--tag"
                          << "smoke");
    QVERIFY2(t.code == 0, qPrintable(t.err));
    auto s = cli({"--db", db, "show", "1", "--json"});
    QCOMPARE(s.code, 0);
    json j = json::parse(s.out.toStdString());
    QCOMPARE(QString::fromStdString(j["status"].get<std::string>()), QString("finished"));
    for (const char* k : {"id", "status", "dataset", "protocol", "config_hash", "run_hash", "params", "accuracy_matrix",
                          "final_avg_acc", "forgetting", "bwt", "macro_f1", "task_il_acc", "series"})
      QVERIFY2(j.contains(k), k);
    QCOMPARE(int(j["accuracy_matrix"].size()), 7);
    // The machine that made it (what train_seconds depends on): CPU and thread count from the summary.
    QVERIFY2(j["cpu"].is_string() && !j["cpu"].get<std::string>().empty(), j.dump().c_str());
    QVERIFY2(j["threads"].is_number_integer() && j["threads"].get<int>() >= 1, j.dump().c_str());
    QVERIFY(j.contains("kernel_isa"));
    QVERIFY(j["accuracy_matrix"][0][1].is_null());
    QVERIFY(j["accuracy_matrix"][6][0].is_number());
    bool loss = false;
    for (const auto& se : j["series"])
      if (se["name"] == "loss") {
        loss = true;
        QVERIFY(se["points"].size() > 10);
        QCOMPARE(se["level"].get<std::string>(), std::string("outer"));
      }
    QVERIFY(loss);
    auto runs = cli({"--db", db, "runs", "--format", "json", "--tag", "smoke"});
    QCOMPARE(runs.code, 0);
    QCOMPARE(int(json::parse(runs.out.toStdString()).size()), 1);
    auto tex = cli({"--db", db, "export", "--format", "latex"});
    QCOMPARE(tex.code, 0);
    QVERIFY2(tex.out.contains("\\begin{tabular}"), qPrintable(tex.out));
    QVERIFY(cli({"--db", db, "show", "99"}).code != 0);
    // Global options after the subcommand (issue 8: "arguments were not expected"), also nested.
    auto after = cli({"runs", "--db", db, "--format", "json", "--tag", "smoke"});
    QCOMPARE(after.code, 0);
    QCOMPARE(after.out, runs.out);
    QCOMPARE(cli({"show", "1", "--json", "--db", db}).code, 0);
    QCOMPARE(cli({"data", "list", "--data-dir", data_}).code, 0);

    // The run records the commit the binary was built from (refreshed at build time; "-dirty"
    // when the tree had uncommitted changes), as does --version.
    QProcess git;
    git.setWorkingDirectory(HL_SOURCE_DIR);
    git.start("git", {"describe", "--always", "--dirty"});
    if (git.waitForFinished(20000) && git.exitStatus() == QProcess::NormalExit && git.exitCode() == 0) {
      const QString described = QString::fromUtf8(git.readAllStandardOutput()).trimmed();
      // (A failure after a commit without a rebuild says so: build again, then test.)
      QVERIFY2(QString::fromStdString(j["app_version"].get<std::string>()) == described,
               qPrintable("the run says " + QString::fromStdString(j["app_version"].get<std::string>()) +
                          ", the tree is " + described + ": rebuild before testing"));
      QVERIFY2(cli({"--version"}).out.contains(described), qPrintable(described));
    } else {
      qWarning("not a git checkout: app_version not compared");
    }
  }

  // Issue 12: `runs confusion` (summary, CSV matrix, JSON, errors) and `attribute` (the table; a
  // run recorded without snapshots: exit 4 naming training.snapshots), on trainShowRunsExport's
  // run (trained here when this test runs alone).
  void confusionAndAttributeCommands() {
    const QString db = tmp_.filePath("runs.db");
    if (cli({"--db", db, "show", "1"}).code != 0) {
      auto t = cli(tiny(db));
      QVERIFY2(t.code == 0, qPrintable(t.err));
    }
    auto sum = cli({"--db", db, "runs", "confusion", "1"});
    QVERIFY2(sum.code == 0, qPrintable(sum.err));
    QVERIFY2(sum.out.contains("confusion after task 7") && sum.out.contains("most frequent confusions"),
             qPrintable(sum.out));
    auto js = cli({"--db", db, "runs", "confusion", "1", "--task", "2", "--json"});
    QVERIFY2(js.code == 0, qPrintable(js.err));
    const json m = json::parse(js.out.toStdString());
    QCOMPARE(m["after_task"].get<int>(), 1);
    QCOMPARE(int(m["classes"].size()), 20);  // two tasks of 10 classes
    int64_t rows = 0;
    for (const auto& row : m["counts"]) {
      int64_t n = 0;
      for (const auto& v : row) n += v.get<int64_t>();
      QCOMPARE(n, int64_t(5));  // --eval-limit-per-class 5
      rows += n;
    }
    QCOMPARE(m["rows"].get<int64_t>(), rows);
    const QString csv_path = tmp_.filePath("c.csv");
    auto csv = cli({"--db", db, "runs", "confusion", "1", "--task", "2", "--csv", "--out", csv_path});
    QCOMPARE(csv.code, 0);
    QFile f(csv_path);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(f.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), 21);  // header + 20 classes
    QVERIFY2(lines[0].startsWith("true \\ predicted,"), qPrintable(lines[0]));
    QCOMPARE(lines[1].count(','), 20);
    auto later = cli({"--db", db, "runs", "confusion", "1", "--task", "9"});
    QCOMPARE(later.code, 2);
    QVERIFY2(later.err.contains("no confusion matrix after task 9"), qPrintable(later.err));
    QCOMPARE(cli({"--db", db, "runs", "confusion", "1", "--csv", "--json"}).code, 2);

    auto table = cli({"--db", db, "attribute", "1"});
    QVERIFY2(table.code == 0, qPrintable(table.err));
    QVERIFY2(table.out.contains("outer (the rest)") && table.out.contains("every level at once") &&
                 table.out.contains("forgetting F_j") && table.out.contains("exactly (bit for bit)"),
             qPrintable(table.out));
    // A finished run recorded without snapshots (an older build, or training.snapshots false).
    {
      auto store = hl::store::RunStore::open(db.toStdString());
      hl::store::RunRecord r;
      r.status = hl::RunStatus::Finished;
      r.name = "no-snapshots";
      r.protocol = "class-incremental";
      const int64_t id = store->createRun(r);
      hl::store::RunWriter w(db.toStdString(), id);
      for (int i = 0; i < 2; ++i)
        for (int j = 0; j <= i; ++j) w.accuracy({i, j, 0.5, 0.5});
      w.flush();
      auto none = cli({"--db", db, "attribute", QString::number(id)});
      QCOMPARE(none.code, 4);
      QVERIFY2(none.err.contains("without task-end snapshots") && none.err.contains("training.snapshots"),
               qPrintable(none.err));
    }
    QCOMPARE(cli({"--db", db, "attribute", "99"}).code, 2);
    auto help = cli({"attribute", "--help"});
    QVERIFY(help.out.contains("--json") && help.out.contains("snapshots"));

    // `evaluate` (test-time ablation): the saved model as saved reproduces the stored row; an
    // override that an evaluation does not see (dropout) changes no number; a resizing override
    // exits 4 naming the parameter; no --set is a usage error.
    auto ev = cli({"--db", db, "evaluate", "1", "--set", "model.blocks.0.dropout=0.5"});
    QVERIFY2(ev.code == 0, qPrintable(ev.err));
    QVERIFY2(ev.out.contains("as saved reproduces the stored accuracies bit for bit") &&
                 ev.out.contains("override: model.blocks.0.dropout=0.5") && ev.out.contains("mean"),
             qPrintable(ev.out));
    auto evj = cli({"--db", db, "evaluate", "1", "--set", "model.blocks.0.dropout=0.5", "--json"});
    QVERIFY2(evj.code == 0, qPrintable(evj.err));
    const json a = json::parse(evj.out.toStdString());
    QCOMPARE(a["exact"].get<bool>(), true);
    QCOMPARE(int(a["tasks"].size()), 7);
    QCOMPARE(a["ablated"], a["as_saved"]);
    QCOMPARE(a["mean"]["change"].get<double>(), 0.0);
    auto resized = cli({"--db", db, "evaluate", "1", "--set", "model.blocks.0.ffn_mult=2"});
    QCOMPARE(resized.code, 4);
    QVERIFY2(resized.err.contains("do not fit") && resized.err.contains("blocks.0."), qPrintable(resized.err));
    QCOMPARE(cli({"--db", db, "evaluate", "1"}).code, 2);
    auto nowrites = cli({"--db", db, "evaluate", "1", "--writes-off"});  // a Transformer writes nothing
    QCOMPARE(nowrites.code, 2);
    QVERIFY2(nowrites.err.contains("no self-modifying Titans block"), qPrintable(nowrites.err));
    QCOMPARE(cli({"--db", db, "evaluate", "99", "--set", "model.blocks.0.dropout=0.5"}).code, 2);
    // Several runs (the seeds of one configuration): one line each and the change's mean ± std.
    auto second = cli(tiny(db));
    QVERIFY2(second.code == 0, qPrintable(second.err));
    const QString id2 = QString::number(hl::store::RunStore::open(db.toStdString())->listRuns().front().id);
    auto many = cli({"--db", db, "evaluate", "1," + id2 + ",1", "--set", "model.blocks.0.dropout=0.5"});
    QVERIFY2(many.code == 0, qPrintable(many.err));
    QVERIFY2(many.out.contains("+0.0 ± 0.0 points over 2 runs") && many.out.contains("\n" + id2 + " "),
             qPrintable(many.out));
    auto manyj = cli({"--db", db, "evaluate", "1-1," + id2, "--set", "model.blocks.0.dropout=0.5", "--json"});
    QVERIFY2(manyj.code == 0, qPrintable(manyj.err));
    const json arr = json::parse(manyj.out.toStdString());
    QVERIFY(arr.is_array() && arr.size() == 2);
    QCOMPARE(arr[1]["run"].get<int64_t>(), id2.toLongLong());
    QCOMPARE(cli({"--db", db, "evaluate", "1,x", "--set", "model.blocks.0.dropout=0.5"}).code, 2);
    // --record stores each result (show --json lists it; report tabulates it); --missing-only then
    // evaluates nothing; --skip-without-writes skips a Transformer instead of failing.
    auto rec = cli({"--db", db, "evaluate", "1," + id2, "--set", "model.blocks.0.dropout=0.5", "--record"});
    QVERIFY2(rec.code == 0, qPrintable(rec.err));
    for (const QString& id : {QString("1"), id2}) {
      const json shown = json::parse(cli({"--db", db, "show", id, "--json"}).out.toStdString());
      QCOMPARE(int(shown["ablations"].size()), 1);
      const json& ab = shown["ablations"][0];
      QCOMPARE(QString::fromStdString(ab["overrides"].get<std::string>()), QString("model.blocks.0.dropout=0.5"));
      QCOMPARE(QString::fromStdString(ab["checkpoint"].get<std::string>()), QString("last"));
      QCOMPARE(ab["as_saved"], ab["ablated"]);  // dropout is off in evaluation
      QCOMPARE(ab["exact"].get<bool>(), true);
    }
    auto again =
        cli({"--db", db, "evaluate", "1," + id2, "--set", "model.blocks.0.dropout=0.5", "--record", "--missing-only"});
    QVERIFY2(again.code == 0 && again.out.contains("nothing to evaluate") && again.err.contains("recorded already"),
             qPrintable(again.out + again.err));
    auto skipped = cli({"--db", db, "evaluate", "1", "--writes-off", "--skip-without-writes"});
    QVERIFY2(skipped.code == 0 && skipped.err.contains("no in-context writes to turn off"), qPrintable(skipped.err));
    QCOMPARE(cli({"--db", db, "evaluate", "1", "--set", "model.blocks.0.dropout=0.5", "--missing-only"}).code, 2);
  }

  // A relative --db ("runs.db") stored relative checkpoint paths, which named other files as soon
  // as the database was opened from another working directory (the app, `evaluate`): the stored
  // paths are absolute, and the run evaluates from anywhere.
  void relativeDatabasePathStoresAbsoluteCheckpointPaths() {
    QDir().mkpath(tmp_.filePath("rel/elsewhere"));
    QProcess p;
    p.setProcessEnvironment(env());
    p.setWorkingDirectory(tmp_.filePath("rel"));
    p.start(HL_CLI_PATH, tiny("runs.db"));
    QVERIFY(p.waitForFinished(600000));
    QVERIFY2(p.exitCode() == 0, p.readAllStandardError().constData());
    const QString db = tmp_.filePath("rel/runs.db");
    const json shown = json::parse(cli({"--db", db, "show", "1", "--json"}).out.toStdString());
    QVERIFY(shown["checkpoints"].size() >= 2);
    for (const auto& c : shown["checkpoints"]) {
      const QString path = QString::fromStdString(c["path"].get<std::string>());
      QVERIFY2(QDir::isAbsolutePath(path) && QFileInfo::exists(path), qPrintable(path));
      QVERIFY2(path.startsWith(QFileInfo(db).absoluteFilePath() + ".checkpoints/run-1/"), qPrintable(path));
    }
    QProcess e;
    e.setProcessEnvironment(env());
    e.setWorkingDirectory(tmp_.filePath("rel/elsewhere"));
    e.start(HL_CLI_PATH, {"--db", "../runs.db", "evaluate", "1", "--set", "model.blocks.0.dropout=0.5"});
    QVERIFY(e.waitForFinished(600000));
    QVERIFY2(e.exitCode() == 0 && e.readAllStandardOutput().contains("bit for bit"),
             e.readAllStandardError().constData());
  }

  // Issue 8: `data import` (and fetch) wrote to the user data dir even when $HOPELAB_DATA_DIR or
  // --data-dir pointed elsewhere, so the imported files were not where training then looked.
  void dataImportWritesWhereTheProductReads() {
    QDir src(tmp_.filePath("import-src"));
    QVERIFY(src.mkpath("banking77"));
    for (const char* f : {"train.csv", "test.csv", "categories.json"})
      QVERIFY(QFile::copy(data_ + "/banking77/" + f, src.filePath(QString("banking77/") + f)));
    auto e = env();
    const QString byEnv = tmp_.filePath("by-env"), byFlag = tmp_.filePath("by-flag");
    e.insert("HOPELAB_DATA_DIR", byEnv);
    auto r = cli({"data", "import", src.path()}, 60000, e);
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(QFile::exists(byEnv + "/banking77/train.csv"));
    QVERIFY2(r.err.contains("writing datasets to " + byEnv + " ($HOPELAB_DATA_DIR)"), qPrintable(r.err));
    QVERIFY(!QFile::exists(tmp_.filePath("xdg/hopelab/datasets/banking77/train.csv")));
    r = cli({"--data-dir", byFlag, "data", "import", src.path()}, 60000, e);  // the flag wins
    QVERIFY2(r.code == 0, qPrintable(r.err));
    QVERIFY(QFile::exists(byFlag + "/banking77/categories.json"));
    QVERIFY2(r.out.contains("datasets in " + byFlag), qPrintable(r.out));
    // and `data verify` reads exactly there
    r = cli({"data", "verify", "--data-dir", byFlag}, 60000, e);
    QVERIFY2(r.out.contains(byFlag), qPrintable(r.out));
  }

  // Issue 11 (the machinery): a sweep file's grid becomes runs; --index runs one, --jobs splits
  // the rest over processes, finished runs are skipped, an interrupted one is resumed, and a bad
  // grid point is refused before anything runs, naming the file and the point.
  void sweepRunsTheGridSkipsFinishedAndResumesInterrupted() {
    const QString db = tmp_.filePath("sweep.db"), file = tmp_.filePath("tiny_sweep.json");
    {
      QFile f(file);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(R"({"name": "tiny", "preset": "transformer",
        "set": {"model.d_model": 32, "model.vocab_size": 300, "training.epochs": 1,
                "training.limit_per_class": 3, "training.eval_limit_per_class": 3, "training.threads": 1},
        "grid": {"experiment.strategy.type": ["finetune", "replay"]}, "seeds": [0, 1]})");
    }
    auto list = cli({"--db", db, "sweep", file, "--list"});
    QCOMPARE(list.code, 0);
    QCOMPARE(list.out.count(" todo "), 4);
    QVERIFY2(list.out.contains("experiment.strategy.type=replay seed=1"), qPrintable(list.out));
    QCOMPARE(cli({"--db", db, "sweep", file, "--index", "1", "--quiet"}).code, 0);
    auto runs = [&] { return json::parse(cli({"--db", db, "runs", "--format", "json"}).out.toStdString()); };
    QCOMPARE(int(runs().size()), 1);
    QCOMPARE(runs()[0]["seed"].get<int>(), 1);
    auto all = cli({"--db", db, "sweep", file, "--jobs", "2", "--quiet"});
    QVERIFY2(all.code == 0, qPrintable(all.err));
    QCOMPARE(int(runs().size()), 4);
    for (const auto& r : runs()) {
      QCOMPARE(QString::fromStdString(r["status"].get<std::string>()), QString("finished"));
      QVERIFY(r["tags"].dump().find("sweep:tiny") != std::string::npos);
    }
    auto again = cli({"--db", db, "sweep", file, "--quiet"});
    QCOMPARE(again.code, 0);
    QVERIFY2(again.out.contains("0 run(s) here, 4 already done"), qPrintable(again.out));
    // An interrupted run (its checkpoints kept) is resumed, not run again.
    QProcess sql;
    sql.start("sqlite3", {db, "UPDATE runs SET status='interrupted' WHERE id=2"});
    QVERIFY(sql.waitForFinished(30000) && sql.exitCode() == 0);
    auto resumed = cli({"--db", db, "sweep", file, "--quiet"});
    QVERIFY2(resumed.code == 0, qPrintable(resumed.err));
    QVERIFY2(resumed.out.contains("(resuming run 2)"), qPrintable(resumed.out));
    QCOMPARE(int(runs().size()), 4);
    // A grid point the validator refuses: nothing runs, the file and the point are named.
    QFile bad(tmp_.filePath("bad_sweep.json"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write(R"({"grid": {"training.epochs": [1, -1]}})");
    bad.close();
    auto refused = cli({"--db", db, "sweep", bad.fileName()});
    QCOMPARE(refused.code, 2);
    QVERIFY2(refused.err.contains("bad_sweep.json") && refused.err.contains("training.epochs=-1"),
             qPrintable(refused.err));
    QCOMPARE(int(runs().size()), 4);
    QCOMPARE(cli({"--db", db, "sweep", file, "--index", "9"}).code, 2);
    // Seeds are the sweep's own axis: a grid over experiment.seed is refused, naming it.
    QFile seeded(tmp_.filePath("seed_sweep.json"));
    QVERIFY(seeded.open(QIODevice::WriteOnly));
    seeded.write(R"({"grid": {"experiment.seed": [0, 1]}})");
    seeded.close();
    auto seedRefused = cli({"--db", db, "sweep", seeded.fileName(), "--list"});
    QCOMPARE(seedRefused.code, 2);
    QVERIFY2(seedRefused.err.contains("grid.experiment.seed"), qPrintable(seedRefused.err));
    // A diverged run is not run again with the same seed (it would diverge the same way).
    QProcess mark;
    mark.start("sqlite3", {db, "UPDATE runs SET status='diverged' WHERE id=3"});
    QVERIFY(mark.waitForFinished(30000) && mark.exitCode() == 0);
    auto skipsDiverged = cli({"--db", db, "sweep", file, "--quiet"});
    QCOMPARE(skipsDiverged.code, 0);
    QVERIFY2(skipsDiverged.out.contains("diverged as run 3, skipped (delete that run to try again)"),
             qPrintable(skipsDiverged.out));
    QCOMPARE(int(runs().size()), 4);
    // `report`: the sweep's finished runs as a table in a Markdown file (the diverged run is not
    // one of them, but listed apart as started and not finished, with its status and run id), and
    // an exit code 2 for a sweep file it cannot read.
    const QString md = tmp_.filePath("RESULTS.md");
    auto rep = cli({"--db", db, "report", file, "--out", md});
    QVERIFY2(rep.code == 0, qPrintable(rep.err));
    QVERIFY2(rep.err.contains("3 of 4 runs finished"), qPrintable(rep.err));
    QFile mdf(md);
    QVERIFY(mdf.open(QIODevice::ReadOnly));
    const QString text = QString::fromUtf8(mdf.readAll()).replace(QRegularExpression(" +"), " ");
    QVERIFY2(text.contains("## tiny") && text.contains("3 of 4 runs finished") &&
                 text.contains("Started, not finished (1): `") && text.contains("` diverged (run 3") &&
                 !text.contains("Not run yet"),
             qPrintable(text));
    for (const char* strategy : {"finetune", "replay"})  // which one lost its diverged run depends on --jobs
      QVERIFY2(
          text.contains(
              QString("| banking77 | transformer | experiment.strategy.type=%1 | %1 | softmax | class-incremental |")
                  .arg(strategy)),
          qPrintable(text));
    QVERIFY2(text.contains("| transformer | banking77 | 78.2 |"), qPrintable(text));
    auto badRep = cli({"--db", db, "report", bad.fileName()});
    QCOMPARE(badRep.code, 2);
    QVERIFY2(badRep.err.contains("bad_sweep.json"), qPrintable(badRep.err));
  }

  // Issue 11 (scale-out): --slurm writes a job-array script whose task I runs `sweep --index I` into
  // its own shard; the tasks are run here by hand as the script runs them (the `slurm` CTest runs
  // them under a real Slurm); `runs merge` copies the shards once; a stale `running` run in a
  // task's own shard is resumed with --sole-writer.
  void slurmScriptShardsAndMerge() {
    const QString dir = tmp_.filePath("slurm"), file = tmp_.filePath("slurm_sweep.json");
    {
      QFile f(file);
      QVERIFY(f.open(QIODevice::WriteOnly));
      f.write(R"({"name": "tiny slurm", "preset": "transformer",
        "set": {"model.d_model": 32, "model.vocab_size": 300, "training.epochs": 1,
                "training.limit_per_class": 3, "training.eval_limit_per_class": 3, "training.threads": 1},
        "grid": {"experiment.strategy.type": ["finetune", "replay"]}, "seeds": [0, 1]})");
    }
    auto readAll = [](const QString& path) {
      QFile f(path);
      return f.open(QIODevice::ReadOnly) ? QString::fromUtf8(f.readAll()) : QString();
    };
    const QString script = dir + "/tiny_slurm.sbatch";
    auto w = cli({"sweep",   file,
                  "--slurm", "--shard-dir",
                  dir,       "--partition",
                  "gpu",     "--gpus",
                  "1",       "--cpus-per-task",
                  "3",       "--mem",
                  "2G",      "--time",
                  "0:10:00", "--account",
                  "lab",     "--max-parallel",
                  "2",       "--sbatch=--qos=short",
                  "--tag",   "it's"});
    QVERIFY2(w.code == 0, qPrintable(w.err));
    QVERIFY2(w.out.contains("wrote " + script) && w.out.contains("sbatch '" + script + "'") &&
                 w.out.contains("runs merge '" + dir + "'/shard-*.db --into "),
             qPrintable(w.out));
    QVERIFY2(w.err.contains("no run of the sweep has experiment.device cuda"), qPrintable(w.err));
    QString text = readAll(script);
    for (const QString& line :
         {QString("#SBATCH --array=0-3%2\n"), QString("#SBATCH --cpus-per-task=3\n"), QString("#SBATCH --mem=2G\n"),
          QString("#SBATCH --time=0:10:00\n"), QString("#SBATCH --partition=gpu\n"), QString("#SBATCH --account=lab\n"),
          QString("#SBATCH --gres=gpu:1\n"), QString("#SBATCH --qos=short\n"),
          QString("#SBATCH --job-name=hopelab-tiny_slurm\n"),
          QString("export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-3}\"\n"),
          QString("--db '" + dir + "'\"/shard-${SLURM_ARRAY_TASK_ID}.db\""),
          QString("sweep '" + QFileInfo(file).canonicalFilePath() + "' --index \"$SLURM_ARRAY_TASK_ID\" --sole-writer"),
          QString("--tag 'it'\\''s'")})
      QVERIFY2(text.contains(line), qPrintable(line + " not in:\n" + text));
    QVERIFY(QFileInfo(script).isExecutable());
    QCOMPARE(cli({"sweep", file, "--slurm", "--index", "1"}).code, 2);  // a whole-sweep option only

    // Tasks 0 and 1, each into its own shard, as the script runs them.
    auto shard = [&](int i) { return dir + QString("/shard-%1.db").arg(i); };
    for (int i : {0, 1}) {
      auto t = cli({"--db", shard(i), "sweep", file, "--index", QString::number(i), "--sole-writer", "--quiet"});
      QVERIFY2(t.code == 0, qPrintable(t.err));
    }
    // Written again, the script's array has only the runs not finished in their shard.
    auto again = cli({"sweep", file, "--slurm", "--shard-dir", dir});
    QVERIFY2(again.code == 0, qPrintable(again.err));
    QVERIFY2(again.out.contains("2 array task(s) of 4 run(s) (2-3)") && again.out.contains("2 already finished"),
             qPrintable(again.out));
    QVERIFY(readAll(script).contains("#SBATCH --array=2-3%16\n"));
    QVERIFY(!readAll(script).contains("--gres"));

    // A task killed on a node that is gone leaves its run `running` under that host: a plain sweep
    // takes it for running elsewhere; the task's own --sole-writer resumes it.
    QProcess sql;
    sql.start("sqlite3", {shard(1), "UPDATE runs SET status='running', host='node-gone' WHERE id=1"});
    QVERIFY(sql.waitForFinished(30000) && sql.exitCode() == 0);
    auto plain = cli({"--db", shard(1), "sweep", file, "--index", "1", "--quiet"});
    QVERIFY2(plain.out.contains("running as run 1, skipped"), qPrintable(plain.out));
    auto sole = cli({"--db", shard(1), "sweep", file, "--index", "1", "--sole-writer", "--quiet"});
    QVERIFY2(sole.code == 0, qPrintable(sole.err));
    QVERIFY2(sole.out.contains("run 1 was left running by a process that is gone (host node-gone)") &&
                 sole.out.contains("(resuming run 1)"),
             qPrintable(sole.out));

    // Merge: the two shards' runs once, with their points; again: nothing added.
    const QString merged = tmp_.filePath("merged.db");
    auto m = cli({"runs", "merge", shard(0), shard(1), "--into", merged});
    QVERIFY2(m.code == 0, qPrintable(m.err));
    QVERIFY2(m.out.contains(shard(0) + ": 1 added, 0 updated, 0 unchanged, 0 kept") &&
                 m.out.contains(shard(1) + ": 1 added, 0 updated, 0 unchanged, 0 kept") &&
                 m.out.contains("2 added, 0 updated, 0 unchanged, 0 kept"),
             qPrintable(m.out));
    auto m2 = cli({"runs", "merge", shard(0), shard(1), "--into", merged});
    QVERIFY2(m2.code == 0 && m2.out.contains("0 added, 0 updated, 2 unchanged, 0 kept; 0 points copied"),
             qPrintable(m2.out));
    auto runsOf = [&](const QString& db) {
      return json::parse(cli({"--db", db, "runs", "--format", "json"}).out.toStdString());
    };
    const json all = runsOf(merged);
    QCOMPARE(int(all.size()), 2);
    for (int i : {0, 1}) {
      const json one = runsOf(shard(i));
      QCOMPARE(int(one.size()), 1);
      bool found = false;
      for (const auto& r : all)
        if (r["config_hash"] == one[0]["config_hash"] && r["seed"] == one[0]["seed"]) {
          found = true;
          QCOMPARE(r["status"].get<std::string>(), std::string("finished"));
          QCOMPARE(r["final_avg_acc"].dump(), one[0]["final_avg_acc"].dump());
        }
      QVERIFY(found);
    }
    // The series came along: `show --json` of a merged run has the shard's points.
    const json shown = json::parse(
        cli({"--db", merged, "show", QString::number(all[0]["id"].get<int>()), "--json"}).out.toStdString());
    QVERIFY(!shown["series"].empty() && !shown["series"][0]["points"].empty());
    // A shard that is not there: exit 5, named.
    auto missing = cli({"runs", "merge", dir + "/shard-3.db", "--into", merged});
    QCOMPARE(missing.code, 5);
    QVERIFY2(missing.err.contains(dir + "/shard-3.db: no such file"), qPrintable(missing.err));
    QVERIFY(!QFile::exists(dir + "/shard-3.db"));

    // runs delete: an unknown id among good ones deletes nothing (exit 2, named); then the run and
    // its rows go, the other stays.
    const int first = all[0]["id"].get<int>(), second = all[1]["id"].get<int>();
    auto bad = cli({"--db", merged, "runs", "delete", QString::number(first), "999"});
    QCOMPARE(bad.code, 2);
    QVERIFY2(bad.err.contains("run 999 is not in") && bad.err.contains("nothing deleted"), qPrintable(bad.err));
    QCOMPARE(int(runsOf(merged).size()), 2);
    auto del = cli({"--db", merged, "runs", "delete", QString::number(first)});
    QVERIFY2(del.code == 0 && del.out.contains(QString("deleted run %1 (").arg(first)), qPrintable(del.out + del.err));
    const json left = runsOf(merged);
    QCOMPARE(int(left.size()), 1);
    QCOMPARE(left[0]["id"].get<int>(), second);
    QCOMPARE(cli({"--db", merged, "show", QString::number(first)}).code == 0, false);
  }

  void truncatedTrainCsvExitsThreeNamingTheFile() {
    QDir d(tmp_.filePath("trunc"));
    QVERIFY(d.mkpath("banking77") && d.mkpath("cl_splits"));
    QFile::copy(data_ + "/banking77/test.csv", d.filePath("banking77/test.csv"));
    QFile::copy(data_ + "/banking77/categories.json", d.filePath("banking77/categories.json"));
    QFile::copy(data_ + "/cl_splits/vag_banking77_tasks.json", d.filePath("cl_splits/vag_banking77_tasks.json"));
    QFile src(data_ + "/banking77/train.csv");
    QVERIFY(src.open(QIODevice::ReadOnly));
    QByteArray bytes = src.read(20011);  // ends inside a row
    QFile dst(d.filePath("banking77/train.csv"));
    QVERIFY(dst.open(QIODevice::WriteOnly));
    dst.write(bytes);
    dst.close();
    auto r = cli({"--db", tmp_.filePath("t.db"), "--data-dir", d.path(), "train", "--dataset", "banking77", "--epochs",
                  "1", "--quiet"});
    QCOMPARE(r.code, 3);
    QVERIFY2(r.err.contains("train.csv"), qPrintable(r.err));
  }

  void corruptDatabaseExitsFiveAndIsNotTouched() {
    QString db = tmp_.filePath("notadb.db");
    QFile f(db);
    QVERIFY(f.open(QIODevice::WriteOnly));
    f.write("this is not a database\n");
    f.close();
    auto r = cli({"--db", db, "runs"});
    QCOMPARE(r.code, 5);
    QVERIFY(r.err.contains(db));
    QFile g(db);
    QVERIFY(g.open(QIODevice::ReadOnly));
    QCOMPARE(g.readAll(), QByteArray("this is not a database\n"));
  }

  void sigintCancelsWithExit130() {
    QString db = tmp_.filePath("int.db");
    QProcess p;
    p.setProcessEnvironment(env());
    QStringList args = tiny(db, "5000");  // far longer than the test: it must be interrupted
    args.removeLast();                    // no --quiet: progress on stderr
    p.start(HL_CLI_PATH, args);
    QVERIFY(p.waitForStarted());
    QByteArray err;
    QTRY_VERIFY_WITH_TIMEOUT((err += p.readAllStandardError()).contains("step 1/"), 60000);
    QCOMPARE(p.state(), QProcess::Running);
    QVERIFY(p.processId() > 0);  // kill(0, …) would signal this test's own process group
    ::kill(pid_t(p.processId()), SIGINT);
    QVERIFY(p.waitForFinished(60000));
    QCOMPARE(p.exitCode(), 130);
    auto s = cli({"--db", db, "show", "1", "--json"});
    QCOMPARE(QString::fromStdString(json::parse(s.out.toStdString())["status"].get<std::string>()),
             QString("cancelled"));
  }

  void sigkillMidRunLeavesInterruptedRunWithItsPoints() {
    QString db = tmp_.filePath("kill.db");
    QProcess p;
    p.setProcessEnvironment(env());
    QStringList args = tiny(db, "5000");  // far longer than the test: it must be killed
    p.start(HL_CLI_PATH, args);
    QVERIFY(p.waitForStarted());
    // Wait until some loss points are committed (visible to another process).
    int committed = 0;
    QString last;
    QElapsedTimer clock;
    clock.start();
    while (committed <= 20 && clock.elapsed() < 90000 && p.state() == QProcess::Running) {
      QTest::qWait(500);
      auto s = cli({"--db", db, "show", "1", "--json"});
      last = s.err.left(300);
      if (s.code != 0) continue;
      const json shown = json::parse(s.out.toStdString());  // a named object: ranging over a
      for (const auto& se : shown["series"])                // temporary's member would dangle
        if (se["name"] == "loss") committed = int(se["points"].size());
    }
    QVERIFY2(committed > 20, qPrintable(QString("committed %1; last show: %2").arg(committed).arg(last)));
    QCOMPARE(p.state(), QProcess::Running);
    QVERIFY(p.processId() > 0);  // kill(0, …) would signal this test's own process group
    ::kill(pid_t(p.processId()), SIGKILL);
    QVERIFY(p.waitForFinished(10000));
    auto r = cli({"--db", db, "runs", "--format", "json"});
    QCOMPARE(r.code, 0);
    json runs = json::parse(r.out.toStdString());
    QCOMPARE(QString::fromStdString(runs[0]["status"].get<std::string>()), QString("interrupted"));
    auto s = cli({"--db", db, "show", "1", "--json"});
    int after = 0;
    const json shown = json::parse(s.out.toStdString());
    for (const auto& se : shown["series"])
      if (se["name"] == "loss") {
        after = int(se["points"].size());
        for (int i = 0; i < after; ++i) QCOMPARE(se["points"][i][0].get<int>(), i);  // an exact prefix
      }
    QVERIFY2(after >= committed, qPrintable(QString("%1 < %2").arg(after).arg(committed)));
  }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
