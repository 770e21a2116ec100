// The desktop app, offscreen: the worker trains a tiny run and the live plots receive its points;
// the runs browser lists runs another process writes while they run; the Export tab's text is
// byte-identical to `hopelab-cli export`; Compare groups seeds into a band; Inference loads a
// checkpoint; `hopelab --screenshot` writes a PNG and refuses bad input.
#include <QApplication>
#include <QDir>
#include <QFile>
#include <QImage>
#include <QLineEdit>
#include <QProcess>
#include <QRegularExpression>
#include <QSignalSpy>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>
#include <fstream>
#include <qcustomplot.h>

#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/store/store.h"
#include "engine/train/inference.h"
#include "tiny_spec.h"
#include "ui/compare_view.h"
#include "ui/confusion_view.h"
#include "ui/experiment_view.h"
#include "ui/export_view.h"
#include "ui/editor/architecture_editor.h"
#include "ui/inference_view.h"
#include "ui/live_view.h"
#include "ui/main_window.h"
#include "ui/run_worker.h"
#include "ui/runs_browser.h"

using hl::ui::RunOutcome;

class TestApp : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString db_, spec_file_, data_dir_;

  // Runs 1-3 (seeds 0-2) share this configuration, so Compare puts them in one band. 40 rows per class
  // (not the tiny spec's 5): a run then lasts longer than the runs browser's 1.5 s poll, so the browser
  // test's "seen while the CLI still runs" does not depend on how fast this machine is.
  static nlohmann::json storedSpec(int seed) {
    nlohmann::json s = tiny_spec(seed);
    s["training"]["limit_per_class"] = 40;
    return s;
  }

  int cli(const QStringList& args, QByteArray* out = nullptr, QByteArray* err = nullptr, int timeout_ms = 600000) {
    QProcess p;
    p.start(HL_CLI_PATH, args);
    if (!p.waitForFinished(timeout_ms)) {
      p.kill();
      p.waitForFinished();
      return -1;
    }
    if (out) *out = p.readAllStandardOutput();
    if (err) *err = p.readAllStandardError();
    return p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -2;
  }

 private slots:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    qputenv("XDG_DATA_HOME", tmp_.filePath("xdg").toUtf8());       // no test writes the user's data dir
    qputenv("XDG_CONFIG_HOME", tmp_.filePath("config").toUtf8());  // nor the user's QSettings
    data_dir_ = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT);
    db_ = tmp_.filePath("runs.db");
    spec_file_ = tmp_.filePath("tiny.json");
    std::ofstream(spec_file_.toStdString()) << storedSpec(0).dump(2);
  }

  // Runs 1 and 2 (seeds 0 and 1) are written by a hopelab-cli child process while the browser,
  // polling the file, is open; they must appear while the process is still running.
  void runsBrowserListsRunsAnotherProcessWrites() {
    auto db = hl::store::RunStore::open(db_.toStdString());
    hl::ui::RunsBrowser browser;
    browser.setStore(db.get());
    QCOMPARE(browser.rowCount(), 0);
    QProcess p;
    p.start(HL_CLI_PATH, {"--db", db_, "--data-dir", data_dir_, "train", "--spec", spec_file_, "--seed", "0", "1",
                          "--quiet", "--tag", "cli"});
    QVERIFY(p.waitForStarted());
    QTRY_VERIFY_WITH_TIMEOUT(browser.rowCount() >= 1, 300000);
    const bool still_running = p.state() != QProcess::NotRunning;
    const QString status_seen = browser.table()->item(0, 1)->text();
    // waitForFinished() returns false for a child that has already ended (the event loop inside QTRY may
    // have reaped it), so only wait for one that is still running.
    if (p.state() != QProcess::NotRunning) QVERIFY2(p.waitForFinished(600000), "hopelab-cli did not finish");
    QVERIFY2(p.exitStatus() == QProcess::NormalExit && p.exitCode() == 0, p.readAllStandardError().constData());
    QVERIFY2(still_running, "the first run showed up only after the CLI process had ended");
    QVERIFY2(status_seen == "running" || status_seen == "finished", qPrintable(status_seen));
    QTRY_COMPARE_WITH_TIMEOUT(browser.rowCount(), 2, 5000);
    // Filters: by tag and by status.
    browser.setFilter("tag", "cli");
    QCOMPARE(browser.rowCount(), 2);
    browser.setFilter("tag", "no-such-tag");
    QCOMPARE(browser.rowCount(), 0);
    browser.setFilter("tag", "");
    browser.setFilter("status", "finished");
    QCOMPARE(browser.rowCount(), 2);
    // The details of a finished run name the machine that made it (from its summary).
    browser.table()->selectRow(0);
    const QString details = browser.detailsText();
    QVERIFY2(details.contains("host " + QString::fromStdString(hl::store::current_host())), qPrintable(details));
    QVERIFY2(details.contains(QString::fromStdString(hl::store::current_cpu()).toHtmlEscaped()), qPrintable(details));
    QVERIFY2(details.contains(QRegularExpression(", \\d+ threads? · ")), qPrintable(details));
    QVERIFY2(details.contains(QRegularExpression("trained \\d+\\.\\d s")), qPrintable(details));
  }

  // The worker thread trains a run; the Live view drains the feed and its plots get points.
  void workerFinishesTinyRunAndPlotsReceivePoints() {
    hl::ui::RunWorker worker;
    hl::ui::LiveView live;
    live.resize(1200, 800);
    live.setFeed(worker.feed());
    QSignalSpy finished(&worker, &hl::ui::RunWorker::requestFinished);
    QSignalSpy points(&live, &hl::ui::LiveView::pointsAdded);
    QSignalSpy started(&live, &hl::ui::LiveView::liveRunStarted);
    hl::ui::RunRequest r;
    r.spec = storedSpec(2);
    r.options.data_dir = data_dir_.toStdString();
    r.options.db_path = db_.toStdString();
    worker.enqueue(r);
    QVERIFY(worker.busy());
    QVERIFY(finished.wait(600000));
    live.flush();
    const auto o = finished.at(0).at(0).value<RunOutcome>();
    QCOMPARE(QString::fromStdString(hl::name(o.status)), QString("finished"));
    QVERIFY(o.run_id > 0);
    QCOMPARE(started.count(), 1);
    QVERIFY(points.count() > 0);
    // Lanes: outer, 3 CMS levels, Titans memory (context.memory); drift has every level.
    QCOMPARE(live.laneCount(), 5);
    QVERIFY(live.lossPlot()->graphCount() >= 5);
    QVERIFY(live.driftPlot()->graphCount() >= 8);
    QVERIFY(live.forgettingPlot()->graphCount() >= 7);  // 7 tasks + the average
    QCOMPARE(live.shown().cells().size(), size_t(7 * 8 / 2));
    // The plotted points are what the store holds for these series.
    auto db = hl::store::RunStore::open(db_.toStdString());
    size_t stored = 0;
    for (const auto& s : db->series(o.run_id))
      if (s.name == "loss" || s.name.rfind("drift", 0) == 0 || s.level == "eval") stored += s.points.size();
    QCOMPARE(size_t(live.plottedPoints()), stored);
    // Replay of the same run from the store draws the same number of points.
    hl::ui::LiveView replay;
    QCOMPARE(replay.showStoredRun(*db, o.run_id), QString());
    QCOMPARE(replay.plottedPoints(), live.plottedPoints());
    QCOMPARE(replay.laneCount(), 5);
    QVERIFY(!replay.showStoredRun(*db, 9999).isEmpty());
  }

  // Stop cancels the running request; the run is stored as cancelled, the queue continues.
  void stopCancelsTheRunAndTheQueueGoesOn() {
    hl::ui::RunWorker worker;
    QSignalSpy finished(&worker, &hl::ui::RunWorker::requestFinished);
    hl::ui::RunRequest r;
    r.spec = tiny_spec(3);
    r.options.data_dir = data_dir_.toStdString();
    r.options.db_path = "";  // not stored
    worker.enqueue(r);
    hl::ui::RunRequest bad = r;
    bad.spec["experiment"]["dataset"] = "/no/such/dataset";
    worker.enqueue(bad);
    QCOMPARE(worker.queued() + (worker.busy() ? 1 : 0) >= 1, true);
    QTRY_VERIFY_WITH_TIMEOUT(worker.feed()->pending() > 0, 120000);
    worker.stopCurrent();
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 300000);
    QCOMPARE(QString::fromStdString(hl::name(finished.at(0).at(0).value<RunOutcome>().status)), QString("cancelled"));
    const auto b = finished.at(1).at(0).value<RunOutcome>();
    QCOMPARE(QString::fromStdString(hl::name(b.status)), QString("failed"));
    QVERIFY2(b.error.contains("/no/such/dataset"), qPrintable(b.error));
    QVERIFY(!worker.busy());
  }

  // Launch validates the seeds and the spec, then queues one run per seed.
  void experimentLaunchQueuesOneRunPerSeed() {
    hl::ui::RunWorker worker;
    hl::ui::ExperimentView view(&worker);
    view.setProperty("noDialogs", true);
    nlohmann::json spec = tiny_spec();
    view.setSpecSource([&] { return spec; });
    view.setSpec(spec);
    view.setDataDir(data_dir_);
    view.setDbPath("");
    auto* seeds = view.findChild<QLineEdit*>("seeds");
    QVERIFY(seeds);
    QString err;
    seeds->setText("1 x");
    QVERIFY(view.launch(&err).isEmpty());
    QVERIFY2(err.contains("'x'"), qPrintable(err));
    seeds->setText("4 5");
    spec["model"]["d_model"] = -3;
    err.clear();
    QVERIFY(view.launch(&err).isEmpty());
    QVERIFY2(err.contains("model.d_model"), qPrintable(err));
    QVERIFY(!worker.busy());
    spec["model"]["d_model"] = 32;
    QSignalSpy finished(&worker, &hl::ui::RunWorker::requestFinished);
    QCOMPARE(view.launch(&err).size(), 2);
    QVERIFY(worker.busy());
    worker.stopAll();  // cancels the running request, drops the queued one
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 2, 300000);
    QTRY_VERIFY_WITH_TIMEOUT(!worker.busy(), 10000);
    QTest::qWait(200);
    QCOMPARE(finished.count(), 2);  // one outcome per request, none twice
    for (const auto& args : finished) {
      const auto o = args.at(0).value<RunOutcome>();
      QCOMPARE(QString::fromStdString(hl::name(o.status)), QString("cancelled"));
      QCOMPARE(o.run_id, qint64(0));  // db_path "" (not stored)
    }
    QCOMPARE(QString::fromStdString(hl::name(finished.at(0).at(0).value<RunOutcome>().status)), QString("cancelled"));
  }

  // The Export tab's text equals `hopelab-cli export` byte for byte.
  void exportEqualsCli_data() {
    QTest::addColumn<QString>("format");
    QTest::addColumn<int>("decimals");
    QTest::addColumn<QString>("runs");
    QTest::addColumn<qint64>("matrix");
    QTest::newRow("latex all finished") << "latex" << 3 << "" << qint64(0);
    QTest::newRow("md ids") << "md" << 2 << "1,2" << qint64(0);
    QTest::newRow("csv range") << "csv" << 4 << "1-3" << qint64(0);
    QTest::newRow("matrix md") << "md" << 3 << "" << qint64(1);
  }
  void exportEqualsCli() {
    QFETCH(QString, format);
    QFETCH(int, decimals);
    QFETCH(QString, runs);
    QFETCH(qint64, matrix);
    QString out = tmp_.filePath("cli_export.txt");
    QFile::remove(out);
    QStringList args{"--db", db_, "export", "--format", format, "--decimals", QString::number(decimals), "--out", out};
    if (!runs.isEmpty()) args << "--runs" << runs;
    if (matrix > 0) args << "--matrix" << QString::number(matrix);
    QCOMPARE(cli(args), 0);
    QFile f(out);
    QVERIFY(f.open(QIODevice::ReadOnly));
    const QByteArray expected = f.readAll();
    QVERIFY(expected.size() > 20);
    auto db = hl::store::RunStore::open(db_.toStdString());
    hl::ui::ExportView view;
    view.setStore(db.get());
    hl::ui::ExportRequest req{format, decimals, runs, matrix};
    view.setRequest(req);
    QCOMPARE(view.text().toUtf8(), expected);
    QCOMPARE(QByteArray::fromStdString(hl::ui::export_text(*db, req)), expected);
  }

  void exportRefusesUnknownRun() {
    auto db = hl::store::RunStore::open(db_.toStdString());
    QVERIFY_THROWS_EXCEPTION(hl::Error, hl::ui::export_text(*db, {"md", 3, "1,77", 0}));
    QVERIFY_THROWS_EXCEPTION(hl::Error, hl::ui::export_text(*db, {"md", 3, "1,x", 0}));
    hl::ui::ExportView view;
    view.setStore(db.get());
    view.setRequest({"md", 3, "77", 0});
    QVERIFY(view.text().isEmpty());
  }

  // Seeds 0 and 1 share a config_hash: one group = 2 faint seeds + CI band (2) + mean.
  void compareGroupsSeedsIntoOneBand() {
    auto db = hl::store::RunStore::open(db_.toStdString());
    hl::ui::CompareView view;
    view.setStore(db.get());
    QCOMPARE(view.setRuns({1, 2}), QString());
    view.setMetric("avg_acc|eval");
    QCOMPARE(view.groupCount(), 1);
    QCOMPARE(view.graphCount(), 5);
    // The diff-only table: the seed differs, nothing else.
    QCOMPARE(view.diffTable()->rowCount(), 1);
    QCOMPARE(view.diffTable()->item(0, 0)->text(), QString("experiment.seed"));
    // Run 3 (GUI worker, seed 2) is the same configuration too: 3 seeds in one band.
    QCOMPARE(view.setRuns({1, 2, 3}), QString());
    QCOMPARE(view.groupCount(), 1);
    QCOMPARE(view.graphCount(), 6);
    QVERIFY(!view.setRuns({1, 4242}).isEmpty());
  }

  // Seeds with one evaluation each (a joint run evaluated once) have no line to draw: each seed
  // and the mean are dots, not an empty plot.
  void compareDrawsOnePointRunsAsDots() {
    const std::string path = tmp_.filePath("dots.db").toStdString();
    auto db = hl::store::RunStore::open(path);
    QList<qint64> ids;
    for (int seed : {0, 1}) {
      hl::store::RunRecord r;
      r.status = hl::RunStatus::Finished;
      r.name = "hope";
      r.config_hash = "same";
      r.seed = seed;
      r.spec_json = tiny_spec(seed).dump();
      const int64_t id = db->createRun(r);
      hl::store::RunWriter w(path, id);
      w.point("avg_acc", "eval", -1, 1, 40, 0.5 + 0.1 * seed);
      ids.push_back(id);
    }
    hl::ui::CompareView view;
    view.setStore(db.get());
    QCOMPARE(view.setRuns(ids), QString());
    view.setMetric("avg_acc|eval");
    QCOMPARE(view.groupCount(), 1);
    int dots = 0;
    for (int i = 0; i < view.curves()->graphCount(); ++i) {
      auto* g = view.curves()->graph(i);
      if (g->data()->size() == 1 && g->pen() != Qt::NoPen)
        dots += g->scatterStyle().shape() == QCPScatterStyle::ssDisc ? 1 : 0;
    }
    QCOMPARE(dots, 3);  // two seeds and the mean
  }

  void specDiffNamesBlockAndField() {
    auto a = tiny_spec(), b = tiny_spec();
    b["model"]["blocks"][1]["levels"][2]["clock"] = 32;
    auto rows = hl::ui::spec_diff({a, b});
    QCOMPARE(rows.size(), size_t(1));
    QCOMPARE(QString::fromStdString(rows[0].first), QString("model.blocks[1].levels[2].clock"));
    QCOMPARE(rows[0].second[0], std::string("16"));
    QCOMPARE(rows[0].second[1], std::string("32"));
  }

  void inferenceTopKFromCheckpoint() {
    auto db = hl::store::RunStore::open(db_.toStdString());
    std::string path;
    for (const auto& c : db->checkpoints(1))
      if (c.kind == hl::CheckpointKind::Last) path = c.path;
    QVERIFY(!path.empty());
    auto p = hl::train::Predictor::load(path);
    QCOMPARE(p->labels().size(), size_t(70));  // banking77 VAG: 7 tasks × 10 classes
    auto top = p->predict("my card has not arrived yet", 5);
    QCOMPARE(top.size(), size_t(5));
    double sum = 0;
    for (size_t i = 0; i < top.size(); ++i) {
      QVERIFY(top[i].prob >= 0 && top[i].prob <= 1);
      if (i) QVERIFY(top[i].prob <= top[i - 1].prob);
      QVERIFY(!top[i].label.empty());
      sum += top[i].prob;
    }
    QVERIFY(sum <= 1 + 1e-9);
    auto all = p->predict("", 1000);  // k clamped to the class count; probabilities sum to 1
    QCOMPARE(all.size(), size_t(70));
    double total = 0;
    for (const auto& x : all) total += x.prob;
    QVERIFY(std::abs(total - 1) < 1e-6);
    QVERIFY_THROWS_EXCEPTION(hl::Error, hl::train::Predictor::load(tmp_.filePath("missing.pt").toStdString()));
    QFile junk(tmp_.filePath("junk.pt"));
    QVERIFY(junk.open(QIODevice::WriteOnly));
    junk.write("not a checkpoint");
    junk.close();
    QVERIFY_THROWS_EXCEPTION(hl::Error, hl::train::Predictor::load(junk.fileName().toStdString()));
    // The Inference tab loads run 1's checkpoint, and refuses it for a run whose checkpoint rows
    // point at run 1's files (a merged database whose shard folder was reused): another seed.
    hl::store::RunRecord other = *db->getRun(1);
    nlohmann::json spec = nlohmann::json::parse(other.spec_json);
    spec["experiment"]["seed"] = 77;
    other.spec_json = spec.dump();
    other.uuid.clear();
    const int64_t id = db->createRun(other);
    {
      hl::store::RunWriter w(db_.toStdString(), id);
      for (const auto& c : db->checkpoints(1)) w.checkpoint(c);
    }
    hl::ui::InferenceView view;
    view.setStore(db.get());  // lists the runs with checkpoints, the new one included
    view.setRun(1);
    QCOMPARE(view.predict("my card has not arrived yet"), QString());
    view.setRun(id);
    const QString refused = view.predict("my card has not arrived yet");
    QVERIFY2(refused.contains("written by another run") && refused.contains(QString::fromStdString(path)),
             qPrintable(refused));
    db->deleteRun(id);
  }

  // The main window: tab names, database and run opening, spec save/open round trip, errors.
  void mainWindowOpensRunsAndRoundTripsSpecs() {
    QCOMPARE(hl::ui::MainWindow::tabIndex("editor"), int(hl::ui::MainWindow::Architecture));
    QCOMPARE(hl::ui::MainWindow::tabIndex("Live"), int(hl::ui::MainWindow::Live));
    QCOMPARE(hl::ui::MainWindow::tabIndex("nope"), -1);
    hl::ui::MainWindow w;
    QCOMPARE(w.openDatabase(db_), QString());
    QVERIFY(w.runs()->rowCount() >= 3);
    QCOMPARE(w.openRun(1), QString());
    QCOMPARE(w.live()->shown().runId(), qint64(1));
    // Opening a run replaces the editor's spec as one undoable step (unsaved edits come back).
    QVERIFY(w.editor()->undoStack()->canUndo());
    QVERIFY2(w.editor()->undoStack()->undoText().contains("run 1"), qPrintable(w.editor()->undoStack()->undoText()));
    QVERIFY(w.live()->plottedPoints() > 0);
    // Export › Save Live plots: the four Live plots and the run's confusion matrix (image + CSV).
    const QString plots = tmp_.filePath("plots");
    QVERIFY(QDir().mkpath(plots));
    QVERIFY(w.live()->confusionView()->current() != nullptr);
    Q_EMIT w.exporter()->exportPlotsRequested(plots);
    for (const char* f : {"loss_lanes.png", "drift.svg", "forgetting.pdf", "accuracy_matrix.png",
                          "confusion_matrix.png", "confusion_matrix.pdf", "confusion_matrix.csv"})
      QVERIFY2(QFileInfo(QDir(plots).filePath(f)).size() > 0, f);
    QVERIFY(w.openRun(777).contains("run 777"));
    // The spec of run 1 is now in the editor; saving and reopening gives the same spec.
    const QString f = tmp_.filePath("saved.json");
    QVERIFY(w.saveSpec(tmp_.filePath("*")).contains("wildcard"));  // a pattern typed into the dialog
    QVERIFY(!QFileInfo::exists(tmp_.filePath("*")));
    QCOMPARE(w.saveSpec(f), QString());
    auto saved = hl::spec::load_file(f.toStdString());
    QCOMPARE(w.openSpec(f), QString());
    QCOMPARE(hl::spec::canonical(w.editor()->spec()), hl::spec::canonical(hl::spec::complete(saved)));
    QCOMPARE(QString::fromStdString(saved["experiment"]["dataset"].get<std::string>()), QString("banking77"));
    QFile bad(tmp_.filePath("bad.json"));
    QVERIFY(bad.open(QIODevice::WriteOnly));
    bad.write("{\"model\": ");
    bad.close();
    QVERIFY2(w.openSpec(bad.fileName()).contains("bad.json"), "the error names the file");
    QFile junk(tmp_.filePath("notadb.db"));
    QVERIFY(junk.open(QIODevice::WriteOnly));
    junk.write(QByteArray(4096, 'x'));
    junk.close();
    QVERIFY(w.openDatabase(junk.fileName()).contains("notadb.db"));
    QCOMPARE(w.dbPath(), QFileInfo(db_).absoluteFilePath());  // the open database stays
    QCOMPARE(w.compareRuns({1, 2}), QString());
    QCOMPARE(w.compare()->groupCount(), 1);
    w.setDark(true);
    QVERIFY(qApp->palette().color(QPalette::Window).lightness() < 128);
    w.setDark(false);
  }

  void screenshotWritesPngAndRefusesBadInput() {
    auto gui = [&](const QStringList& args, QByteArray* err) {
      QProcess p;
      p.start(HL_GUI_PATH, args);
      if (!p.waitForFinished(120000)) {
        p.kill();
        return -1;
      }
      *err = p.readAllStandardError();
      return p.exitCode();
    };
    QByteArray err;
    for (const QString& tab : {"live", "editor", "compare"}) {
      QString png = tmp_.filePath(tab + ".png");
      QCOMPARE(gui({"--db", db_, "--run", "1", "--tab", tab, "--screenshot", png}, &err), 0);
      QImage img(png);
      QVERIFY2(!img.isNull() && img.width() >= 1000 && QFileInfo(png).size() > 10000, qPrintable(png));
    }
    QVERIFY(gui({"--db", db_, "--run", "999", "--screenshot", tmp_.filePath("x.png")}, &err) != 0);
    QVERIFY2(err.contains("run 999"), err.constData());
    QVERIFY(gui({"--db", db_, "--tab", "nope", "--screenshot", tmp_.filePath("x.png")}, &err) != 0);
    QVERIFY2(err.contains("--tab nope"), err.constData());
    QFile junk(tmp_.filePath("junk.db"));
    QVERIFY(junk.open(QIODevice::WriteOnly));
    junk.write(QByteArray(4096, 'x'));
    junk.close();
    QVERIFY(gui({"--db", junk.fileName(), "--screenshot", tmp_.filePath("x.png")}, &err) != 0);
    QVERIFY2(err.contains("junk.db"), err.constData());
    QVERIFY(!QFile::exists(tmp_.filePath("x.png")));
    // --figures (docs/RESULTS.md): run 1's heatmap and forgetting curves, named by its UUID.
    const QString figs = tmp_.filePath("figures");
    QCOMPARE(gui({"--db", db_, "--figures", figs, "--runs", "1"}, &err), 0);
    const QStringList drawn = QDir(figs).entryList({"*.png"}, QDir::Files, QDir::Name);
    QCOMPARE(drawn.size(), 2);
    QVERIFY2(drawn[0].endsWith("-forgetting.png") && drawn[1].endsWith("-matrix.png"), qPrintable(drawn.join(",")));
    QCOMPARE(drawn[0].chopped(15), drawn[1].chopped(11));  // one UUID
    for (const auto& f : drawn) {
      QImage img(QDir(figs).filePath(f));
      QVERIFY2(img.width() == 640 && img.height() >= 400, qPrintable(f));
    }
    QVERIFY(gui({"--db", db_, "--figures", figs, "--runs", "999"}, &err) != 0);
    QVERIFY2(err.contains("run 999"), err.constData());
    QVERIFY(gui({"--db", db_, "--figures", figs}, &err) != 0);
    QVERIFY2(err.contains("--runs"), err.constData());
  }
};

QTEST_MAIN(TestApp)
#include "test_app.moc"
