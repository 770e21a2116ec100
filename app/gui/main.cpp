// hopelab: the Hope Lab desktop app.
//   hopelab [--db PATH] [--run ID] [--tab NAME] [--spec FILE] [--screenshot FILE]
// With --screenshot it renders that tab (with that run loaded; a finished run replays its stored
// series) into FILE and exits 0, or non-zero with a message on a bad db, run, tab or file.
//   hopelab --db PATH --figures DIR --runs 3,7
// draws each run's accuracy-matrix heatmap and forgetting curves with the Live view's own plots
// into DIR/<run uuid>-matrix.png and DIR/<run uuid>-forgetting.png and exits (docs/RESULTS.md's
// figures; run it with QT_QPA_PLATFORM=offscreen where there is no display).
#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QFileInfo>
#include <QIcon>
#include <QPixmap>
#include <QTimer>
#include <cstdio>

#include "engine/common/version.h"
#include "ui/inference_view.h"
#include "ui/live_view.h"
#include "ui/main_window.h"
#include "ui/plot_export.h"
#include "engine/store/store.h"

int main(int argc, char** argv) {
  Q_INIT_RESOURCE(hopelab);
  // Offscreen/Xvfb without fontconfig fonts: point Qt at DejaVu when it is there.
  if (qEnvironmentVariableIsEmpty("QT_QPA_FONTDIR") && QFileInfo::exists("/usr/share/fonts/truetype/dejavu"))
    qputenv("QT_QPA_FONTDIR", "/usr/share/fonts/truetype/dejavu");
  QApplication app(argc, argv);
  QApplication::setOrganizationName("HopeLab");
  QApplication::setApplicationName("hopelab");
  QApplication::setApplicationVersion(hl::app_version());
  QApplication::setWindowIcon(QIcon(":/hopelab/icons/hopelab.svg"));

  QCommandLineParser p;
  p.setApplicationDescription(
      "Hope Lab: design, train, watch, compare and export Nested Learning experiments.\n"
      "Documentation: " +
      hl::ui::MainWindow::docsDir() + "/APP.md");
  p.addHelpOption();
  p.addVersionOption();
  QCommandLineOption db("db", "Run database (default: the one used last, else the CLI's, <user data dir>/runs.db).",
                        "PATH");
  QCommandLineOption run(
      "run", "Open this stored run (Live replays it; Compare shows it with its seed siblings; Inference selects it).",
      "ID");
  QCommandLineOption tab(
      "tab", "Start on this tab: " + hl::ui::MainWindow::tabNames().join("|") + " (editor = architecture).", "NAME");
  QCommandLineOption spec("spec", "Open this spec JSON in the Architecture and Experiment tabs.", "FILE");
  QCommandLineOption shot("screenshot", "Render the window (the --tab, --run) into this PNG and exit.", "FILE");
  QCommandLineOption size("size", "Window size for --screenshot (default 1400x900).", "WxH", "1400x900");
  QCommandLineOption dark("dark", "Dark palette.");
  QCommandLineOption compare("compare", "Open these runs in the Compare tab, e.g. 1,2,5.", "IDS");
  QCommandLineOption sentence("sentence", "Classify this sentence in the Inference tab (with --run's checkpoint).",
                              "TEXT");
  QCommandLineOption figures("figures",
                             "Draw the --runs' accuracy-matrix heatmaps and forgetting curves into DIR "
                             "(<run uuid>-matrix.png, <run uuid>-forgetting.png) and exit.",
                             "DIR");
  QCommandLineOption runs("runs", "The runs --figures draws, e.g. 3,7.", "IDS");
  for (const auto& o : {db, run, tab, spec, shot, size, dark, compare, sentence, figures, runs}) p.addOption(o);
  p.process(app);

  auto fail = [](const QString& m, int code) {
    std::fprintf(stderr, "hopelab: %s\n", qPrintable(m));
    return code;
  };
  int tab_index = -1;
  if (p.isSet(tab)) {
    tab_index = hl::ui::MainWindow::tabIndex(p.value(tab));
    if (tab_index < 0)
      return fail(QString("--tab %1: unknown tab (use %2 or editor)")
                      .arg(p.value(tab), hl::ui::MainWindow::tabNames().join(", ")),
                  2);
  }
  qint64 run_id = 0;
  if (p.isSet(run)) {
    bool ok = false;
    run_id = p.value(run).toLongLong(&ok);
    if (!ok || run_id <= 0) return fail(QString("--run %1: not a run id (a positive integer)").arg(p.value(run)), 2);
  }

  hl::ui::MainWindow w;
  if (p.isSet(dark)) w.setDark(true);
  // Without --db: the database used last (File › Recent databases), else the CLI's default.
  const QString db_path = p.isSet(db) ? p.value(db) : hl::ui::MainWindow::lastDatabase();
  if (p.isSet(db) && !QFileInfo::exists(db_path)) return fail(QString("--db %1: no such file").arg(db_path), 5);
  QString err = w.openDatabase(db_path);
  if (!err.isEmpty()) return fail(err, 5);
  if (p.isSet(spec)) {
    err = w.openSpec(p.value(spec));
    if (!err.isEmpty()) return fail(err, 2);
  }
  if (run_id > 0) {
    err = w.openRun(run_id);
    if (!err.isEmpty()) return fail(err, 4);
  }
  if (p.isSet(compare)) {
    QList<qint64> ids;
    for (const auto& part : p.value(compare).split(',', Qt::SkipEmptyParts)) {
      bool ok = false;
      ids << part.trimmed().toLongLong(&ok);
      if (!ok) return fail(QString("--compare %1: '%2' is not a run id").arg(p.value(compare), part), 2);
    }
    err = w.compareRuns(ids);
    if (!err.isEmpty()) return fail(err, 4);
  }
  if (p.isSet(sentence)) {
    w.inference()->setText(p.value(sentence));
    err = w.inference()->predict(p.value(sentence));
    if (!err.isEmpty()) return fail("--sentence: " + err, 4);
  }
  if (tab_index >= 0) w.showTab(tab_index);

  if (p.isSet(figures)) {
    if (!p.isSet(runs)) return fail("--figures needs --runs IDS (e.g. --runs 3,7)", 2);
    QList<qint64> ids;
    for (const auto& part : p.value(runs).split(',', Qt::SkipEmptyParts)) {
      bool ok = false;
      ids << part.trimmed().toLongLong(&ok);
      if (!ok || ids.back() <= 0) return fail(QString("--runs %1: '%2' is not a run id").arg(p.value(runs), part), 2);
    }
    const QString dir = p.value(figures);
    if (!QDir().mkpath(dir)) return fail(QString("--figures %1: cannot create this folder").arg(dir), 1);
    w.resize(1400, 900);
    for (qint64 id : ids) {
      err = w.openRun(id);
      if (!err.isEmpty()) return fail(err, 4);
      w.showTab(hl::ui::MainWindow::tabIndex("live"));
      w.live()->flush();
      QApplication::processEvents();
      const QString base = QDir(dir).filePath(QString::fromStdString(w.store()->getRun(id)->uuid));
      for (const auto& [plot, suffix, height] :
           {std::tuple{w.live()->matrixPlot(), QString("-matrix.png"), 560},
            std::tuple{w.live()->forgettingPlot(), QString("-forgetting.png"), 420}}) {
        const QString e = hl::ui::savePlot(plot, base + suffix, 640, height);
        if (!e.isEmpty()) return fail("--figures: " + e, 1);
        std::fprintf(stderr, "wrote %s\n", qPrintable(base + suffix));
      }
    }
    return 0;
  }

  if (p.isSet(shot)) {
    const QString out = p.value(shot);
    const QStringList wh = p.value(size).split('x');
    int W = wh.value(0).toInt(), H = wh.value(1).toInt();
    if (W < 200 || H < 150) return fail(QString("--size %1: expected WxH, e.g. 1400x900").arg(p.value(size)), 2);
    w.resize(W, H);
    w.show();
    int rc = 0;
    QTimer::singleShot(400, &app, [&] {
      w.live()->flush();
      QApplication::processEvents();
      QPixmap pm = w.grab();
      if (pm.isNull() || !pm.save(out, "PNG"))
        rc = fail(QString("--screenshot %1: cannot write this file").arg(out), 1);
      else
        std::fprintf(stderr, "wrote %s (%dx%d)\n", qPrintable(out), pm.width(), pm.height());
      app.exit(rc);
    });
    app.exec();
    return rc;
  }
  w.show();
  return app.exec();
}
