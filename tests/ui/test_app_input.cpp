// The main window driven by keyboard shortcuts as a user presses them (QTest key events go through
// Qt's shortcut map, where an ambiguous binding silently does nothing): Ctrl+R launches from the
// Experiment tab; Ctrl+P / Ctrl+Shift+P pause and resume with every view agreeing (button, queue,
// Run menu, status bar, Live header) and the trainer really holding; a preset loaded in the app
// trains exactly as the CLI's (same config hash); labels follow the dark palette; a spec value
// the form cannot show is said, not clamped. Offscreen; the real-mouse palette drag is in
// test_editor_drag (Xvfb + xdotool).
#include <QAction>
#include <QCheckBox>
#include <QComboBox>
#include <QApplication>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMenu>
#include <QMenuBar>
#include <QPushButton>
#include <QRegularExpression>
#include <QScrollArea>
#include <QScrollBar>
#include <QSettings>
#include <QSignalSpy>
#include <QSpinBox>
#include <QTabBar>
#include <QTabWidget>
#include <QToolTip>
#include <QWheelEvent>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <fstream>
#include <memory>
#include <qcustomplot.h>

#include "engine/metrics/confusion.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/experiment.h"
#include "tiny_spec.h"
#include "ui/ablation_view.h"
#include "ui/attribution_view.h"
#include "ui/compare_view.h"
#include "ui/confusion_view.h"
#include "ui/editor/architecture_editor.h"
#include "ui/editor/editor_model.h"
#include "ui/experiment_view.h"
#include "ui/export_view.h"
#include "ui/inference_view.h"
#include "ui/live_view.h"
#include "ui/plot_zoom.h"
#include "ui/main_window.h"
#include "ui/run_worker.h"

using hl::ui::MainWindow;
using json = nlohmann::json;

namespace {

QAction* menuAction(QWidget* w, const QString& menuTitle, const QString& text) {
  for (auto* m : w->findChildren<QMenu*>())
    if (m->title().remove('&') == menuTitle)
      for (auto* a : m->actions())
        if (a->text().remove('&') == text) return a;
  return nullptr;
}

// A run record in its own database, with a writer for its points ("running" until finished).
struct StoredRun {
  std::unique_ptr<hl::store::RunStore> db;
  int64_t id = 0;
  std::unique_ptr<hl::store::RunWriter> writer;
  // loss points 0..n-1 of `outer` (1/(k+1)) and, with a CMS lane, `cms1` (2/(k+1)).
  void losses(int from, int to, bool cms) {
    for (int k = from; k < to; ++k) {
      writer->point("loss", "outer", -1, 1, k, 1.0 / (k + 1));
      if (cms) writer->point("loss", "cms1", 0, 4, k, 2.0 / (k + 1));
    }
    writer->flush();
  }
};

StoredRun storedRun(const std::string& path, const std::string& name, const std::string& status = "running") {
  StoredRun s;
  s.db = hl::store::RunStore::open(path);
  hl::store::RunRecord r;
  r.status = hl::parse<hl::RunStatus>(status, "test");
  r.name = name;
  s.id = s.db->createRun(r);
  s.writer = std::make_unique<hl::store::RunWriter>(path, s.id);
  return s;
}

QString queueText(MainWindow& w) {
  auto* q = w.experiment()->findChild<QListWidget*>("queue");
  return q && q->count() ? q->item(q->count() - 1)->text() : QString();
}

}  // namespace

class TestAppInput : public QObject {
  Q_OBJECT
  QTemporaryDir tmp_;
  QString db_, spec_file_;

 private slots:
  void initTestCase() {
    QVERIFY(tmp_.isValid());
    qputenv("XDG_DATA_HOME", tmp_.filePath("xdg").toUtf8());
    qputenv("XDG_CONFIG_HOME", tmp_.filePath("config").toUtf8());
    db_ = tmp_.filePath("runs.db");
    spec_file_ = tmp_.filePath("tiny.json");
    std::ofstream(spec_file_.toStdString()) << tiny_spec().dump(2);
  }

  // Issue 12 items 3 and 4: Ctrl+R was bound twice (Launch button and Run › Launch), so Qt
  // reported an ambiguous shortcut and launched nothing; after Ctrl+P the button still said Pause,
  // the queue and the Live header said running, the status bar learnt it late.
  void ctrlRLaunchesAndPauseResumeAgreeEverywhere() {
    MainWindow w;
    w.experiment()->setProperty("noDialogs", true);
    QCOMPARE(w.openDatabase(db_), QString());
    QCOMPARE(w.openSpec(spec_file_), QString());
    w.showTab(MainWindow::Experiment);
    w.show();
    w.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&w));
    auto* pauseAct = w.findChild<QAction*>("pauseAction");
    auto* resumeAct = w.findChild<QAction*>("resumeAction");
    auto* stopAllAct = w.findChild<QAction*>("stopAllAction");
    auto* pauseButton = w.experiment()->findChild<QPushButton*>("pause");
    auto* status = w.findChild<QLabel*>("runStatus");
    QVERIFY(pauseAct && resumeAct && stopAllAct && pauseButton && status);
    QVERIFY2(!pauseAct->isEnabled() && !resumeAct->isEnabled() && !stopAllAct->isEnabled(),
             "nothing to pause or stop while idle");

    QSignalSpy launched(w.experiment(), &hl::ui::ExperimentView::launched);
    QTest::keyClick(&w, Qt::Key_R, Qt::ControlModifier);
    QCOMPARE(launched.count(), 1);
    QVERIFY(w.worker()->busy());
    // Paused before its first step: the trainer must hold there.
    QTest::keyClick(&w, Qt::Key_P, Qt::ControlModifier);
    QVERIFY(w.worker()->paused());
    QCOMPARE(pauseButton->text(), QString("Resume"));
    QVERIFY(pauseButton->isChecked());
    QVERIFY(!pauseAct->isEnabled());
    QVERIFY(resumeAct->isEnabled());
    QVERIFY2(status->text().contains("paused"), qPrintable(status->text()));
    QTRY_VERIFY2_WITH_TIMEOUT(queueText(w).contains("paused"), qPrintable(queueText(w)), 60000);
    QTRY_VERIFY2_WITH_TIMEOUT(w.live()->titleText().contains("paused"), qPrintable(w.live()->titleText()), 300000);
    const qint64 heldAt = w.live()->shown().step();
    QTest::qWait(1500);
    w.live()->flush();
    QCOMPARE(w.live()->shown().step(), heldAt);
    QVERIFY2(status->text().contains("paused"), qPrintable(status->text()));

    QTest::keyClick(&w, Qt::Key_P, Qt::ControlModifier | Qt::ShiftModifier);
    QVERIFY(!w.worker()->paused());
    QCOMPARE(pauseButton->text(), QString("Pause"));
    QVERIFY(!pauseButton->isChecked());
    QVERIFY(pauseAct->isEnabled());
    QVERIFY(!resumeAct->isEnabled());
    QVERIFY2(!status->text().contains("paused"), qPrintable(status->text()));
    QVERIFY2(queueText(w).contains("running"), qPrintable(queueText(w)));
    QTRY_VERIFY2_WITH_TIMEOUT(!w.live()->titleText().contains("paused"), qPrintable(w.live()->titleText()), 60000);

    // Run › Stop all ends it; everything goes back to idle.
    QVERIFY(stopAllAct->isEnabled());
    stopAllAct->trigger();
    QTRY_VERIFY_WITH_TIMEOUT(!w.worker()->busy(), 120000);
    QTRY_VERIFY_WITH_TIMEOUT(!stopAllAct->isEnabled() && !pauseAct->isEnabled(), 10000);
    QVERIFY(!pauseButton->isEnabled());
    QVERIFY2(!status->text().contains("run 0"), qPrintable(status->text()));
    // Issue 12 item 8: the architecture summary said "(paused while a run trains)" after runs ended.
    auto* summary = w.experiment()->findChild<QLabel*>("architectureSummary");
    QVERIFY(summary);
    QTRY_VERIFY2_WITH_TIMEOUT(summary->text().contains("parameters") && !summary->text().contains("no run trains"),
                              qPrintable(summary->text()), 30000);
  }

  // Issue 12 item 6: Edit › Load preset took only the model section, so training.grad_clip stayed
  // 0 where the hope presets clip at 1, and one preset name had two config hashes.
  void presetLoadedInTheAppTrainsAsTheCliPreset_data() {
    QTest::addColumn<QString>("preset");
    QTest::newRow("hope") << "hope";
    QTest::newRow("transformer after hope") << "transformer";
  }
  void presetLoadedInTheAppTrainsAsTheCliPreset() {
    QFETCH(QString, preset);
    MainWindow w;
    auto form = hl::spec::defaults();  // the user's protocol in the Experiment tab: kept
    form["training"]["epochs"] = 1;
    form["training"]["limit_per_class"] = 10;
    w.experiment()->setSpec(form);
    // First another preset with other training settings, then the one under test.
    for (const QString& p : {QString(preset == "hope" ? "transformer" : "hope"), preset}) {
      QAction* a = menuAction(&w, "Load preset", p);
      QVERIFY2(a, qPrintable(p));
      a->trigger();
    }
    const auto app = hl::spec::complete(w.experiment()->applyTo(w.editor()->spec()));
    auto cli = hl::spec::preset(preset.toStdString());  // `train --preset P --epochs 1 --limit-per-class 10`
    cli["training"]["epochs"] = 1;
    cli["training"]["limit_per_class"] = 10;
    QCOMPARE(app["training"].dump(), cli["training"].dump());
    QCOMPARE(app["optimizer"].dump(), cli["optimizer"].dump());
    QCOMPARE(hl::spec::config_hash(app), hl::spec::config_hash(cli));
  }

  // Issue 12 item 7: lane names were drawn in the colour of the palette at their creation, so
  // switching to dark left them black on a dark plot.
  void laneLabelsFollowTheDarkPalette() {
    auto run = storedRun(tmp_.filePath("lanes.db").toStdString(), "lanes");
    run.losses(0, 20, true);
    run.writer->finish(hl::RunStatus::Finished);
    hl::ui::LiveView live;
    live.setDark(false);
    QCOMPARE(live.showStoredRun(*run.db, run.id), QString());
    auto labels = [&] {
      QList<QCPItemText*> out;
      for (int i = 0; i < live.lossPlot()->itemCount(); ++i)
        if (auto* t = qobject_cast<QCPItemText*>(live.lossPlot()->item(i))) out << t;
      return out;
    };
    QVERIFY(labels().size() >= 2);
    for (auto* t : labels()) QVERIFY(t->color().lightness() < 100);
    live.setDark(true);
    for (auto* t : labels()) QVERIFY2(t->color().lightness() > 150, qPrintable(t->text()));
    live.setDark(false);
    for (auto* t : labels()) QVERIFY(t->color().lightness() < 100);
    // Issue 12 item 7: in the dark palette disabled buttons looked enabled.
    MainWindow w;
    w.setDark(true);
    const QPalette p = qApp->palette();
    for (auto role : {QPalette::ButtonText, QPalette::WindowText, QPalette::Text})
      QVERIFY2(
          std::abs(p.color(QPalette::Disabled, role).lightness() - p.color(QPalette::Active, role).lightness()) > 60,
          "disabled text must look dimmer than enabled text");
    w.setDark(false);
  }

  // Issue 12 item 8 (remnant after the first fix): a 2-block Hope run has 11 loss lanes; in a
  // 1130×640 window QCustomPlot squeezed them below their minimum, the title was clipped and the
  // lowest lanes were drawn outside the plot. Now every lane keeps its height and the lanes scroll.
  void manyLossLanesScrollInsteadOfOverflowing() {
    auto run = storedRun(tmp_.filePath("many-lanes.db").toStdString(), "many-lanes");
    for (int k = 0; k < 12; ++k) {
      run.writer->point("loss", "outer", -1, 1, k, 3.0 - 0.1 * k);
      for (int b = 0; b < 2; ++b)
        for (const char* lv : {"cms1", "cms2", "cms3", "context.memory", "context.other"})
          run.writer->point("loss", lv, b, 4, k, 2.0 + 0.05 * k + b);
    }
    run.writer->flush();
    run.writer->finish(hl::RunStatus::Finished);
    MainWindow w;
    QCOMPARE(w.openDatabase(tmp_.filePath("many-lanes.db")), QString());
    QCOMPARE(w.live()->showStoredRun(*run.db, run.id), QString());
    QCOMPARE(w.live()->laneCount(), 11);
    auto* tabs = w.findChild<QTabWidget*>();
    tabs->setCurrentIndex(MainWindow::Live);
    auto* scroll = w.live()->findChild<QScrollArea*>("liveLossScroll");
    QVERIFY(scroll);
    auto check = [&](QSize size, bool scrolls) {
      w.resize(size);
      w.show();
      QVERIFY(QTest::qWaitForWindowExposed(&w));
      QCoreApplication::processEvents();
      QCustomPlot* loss = w.live()->lossPlot();
      loss->replot();
      QCOMPARE(scroll->verticalScrollBar()->isVisible(), scrolls);
      const auto rects = loss->axisRects();
      QCOMPARE(int(rects.size()), 12);  // 11 lanes and the shared x axis's row
      QVERIFY(rects.back()->axis(QCPAxis::atBottom)->tickLabels());
      QVERIFY2(rects.back()->outerRect().bottom() <= loss->height(), "the x axis drawn below the plot");
      for (int i = 0; i + 1 < int(rects.size()); ++i) {
        auto* r = rects[i];
        QCOMPARE(r->rect().height(), rects[0]->rect().height());  // every lane's curve area alike
        QVERIFY2(r->rect().height() >= 20, qPrintable(QString("lane %1 px").arg(r->rect().height())));
        QVERIFY2(r->outerRect().bottom() <= loss->height(), "a lane drawn below the plot");
      }
      for (int i = 1; i < int(rects.size()); ++i)
        QVERIFY(rects[i]->outerRect().top() >= rects[i - 1]->outerRect().bottom() - 1);
    };
    check(QSize(1130, 640), true);
    check(QSize(1400, 1000), false);
  }

  // Issue 12 item 8: "1 errors" in the tab title and the editor's footer.
  void countsSayOneErrorNotOneErrors() {
    MainWindow w;
    json s = hl::spec::preset("transformer");
    s["model"]["d_model"] = 130;  // 4 heads do not divide 130: one error per block
    s["model"]["blocks"] = json::array({hl::spec::block_defaults("transformer")});
    w.editor()->setSpec(s);
    QTRY_VERIFY(w.findChild<QTabWidget*>()->tabText(MainWindow::Architecture).contains("(1 error)"));
    const QString footer = w.editor()->footer()->text();
    QVERIFY2(footer.contains(QRegularExpression("\\b1 error\\b(?!s)")) && !footer.contains("error(s)"),
             qPrintable(footer));
  }

  // Issue 12 item 5: Export still said "run N is running" and Inference listed the run as
  // running after it had finished in another process; Inference defaulted to the 'best'
  // checkpoint, which in class-incremental runs is the model after an early task.
  void exportAndInferenceFollowARunFinishingElsewhere() {
    const std::string path = tmp_.filePath("elsewhere.db").toStdString();
    auto other = hl::store::RunStore::open(path);  // "another process": its own connection
    auto makeRun = [&](const std::string& protocol) {
      hl::store::RunRecord r;
      r.status = hl::RunStatus::Running;
      r.name = "elsewhere";
      r.dataset = "banking77";
      r.protocol = protocol;
      r.config_hash = "cfg-" + protocol;
      const int64_t id = other->createRun(r);
      hl::store::RunWriter wr(path, id);
      wr.checkpoint({hl::CheckpointKind::Best, "/nonexistent/best.pt", 10, 0, 0.5});
      wr.checkpoint({hl::CheckpointKind::Last, "/nonexistent/last.pt", 70, 6, 0.2});
      wr.flush();
      return id;
    };
    const int64_t ci = makeRun("class-incremental"), joint = makeRun("joint");
    MainWindow w;
    QCOMPARE(w.openDatabase(QString::fromStdString(path)), QString());
    w.exporter()->setRuns({ci});
    auto exportSays = [&](const QString& what) {
      for (auto* l : w.exporter()->findChildren<QLabel*>())
        if (l->text().contains(what)) return true;
      return false;
    };
    auto listed = [&](qint64 id) {
      auto* box = w.inference()->findChild<QComboBox*>();
      for (int i = 0; box && i < box->count(); ++i)
        if (box->itemData(i).toLongLong() == id) return box->itemText(i);
      return QString();
    };
    QVERIFY(exportSays(QString("run %1 is running").arg(ci)));
    QVERIFY2(listed(ci).endsWith("running"), qPrintable(listed(ci)));
    w.inference()->setRun(ci);
    QCOMPARE(w.inference()->checkpointKind(), QString("last"));
    w.inference()->setRun(joint);
    QCOMPARE(w.inference()->checkpointKind(), QString("best"));

    other->setSummary(ci, R"({"final_avg_acc": 0.5})");
    other->finish(ci, hl::RunStatus::Finished);
    QTRY_VERIFY_WITH_TIMEOUT(listed(ci).endsWith("finished"), 10000);
    QTRY_VERIFY_WITH_TIMEOUT(!exportSays(QString("run %1 is running").arg(ci)), 10000);
    QVERIFY2(w.exporter()->text().contains("elsewhere"), qPrintable(w.exporter()->text()));
    QCOMPARE(w.inference()->checkpointKind(), QString("best"));  // a refresh keeps the user's run and kind

    // Task-end snapshots are offered as "after task j" (the new-user retry found only best and
    // last); one written while the tab is open appears on the next refresh, the choice stays,
    // and choosing it loads that snapshot's file (here a missing one: the error names it).
    {
      hl::store::RunWriter wr(path, joint);
      wr.checkpoint({hl::CheckpointKind::Snapshot, "/nonexistent/snapshot-task0.pt", 10, 0, 0});
      wr.flush();
    }
    w.inference()->refreshRuns();
    QCOMPARE(w.inference()->checkpointChoices(), QStringList({"best", "last", "after task 1"}));
    QCOMPARE(w.inference()->checkpointKind(), QString("best"));
    auto* kind = w.inference()->findChild<QComboBox*>("checkpointKind");
    QVERIFY(kind);
    kind->setCurrentText("after task 1");
    {
      hl::store::RunWriter wr(path, joint);
      wr.checkpoint({hl::CheckpointKind::Snapshot, "/nonexistent/snapshot-task1.pt", 20, 1, 0});
      wr.flush();
    }
    w.inference()->refreshRuns();
    QCOMPARE(w.inference()->checkpointChoices(), QStringList({"best", "last", "after task 1", "after task 2"}));
    QCOMPARE(w.inference()->checkpointKind(), QString("after task 1"));
    QString err = w.inference()->load();
    QVERIFY2(err.contains("/nonexistent/snapshot-task0.pt"), qPrintable(err));
    kind->setCurrentText("after task 2");
    err = w.inference()->load();
    QVERIFY2(err.contains("/nonexistent/snapshot-task1.pt"), qPrintable(err));
    w.inference()->setRun(ci);  // a run without snapshots: only best and last
    QCOMPARE(w.inference()->checkpointChoices(), QStringList({"best", "last"}));
    QCOMPARE(w.inference()->checkpointKind(), QString("last"));
  }

  // Issue 12 item 8: Live on a run a CLI process was writing showed a frozen snapshot labelled
  // "step 8/8" as if it had ended there.
  void liveFollowsAStoredRunStillBeingWritten() {
    auto run = storedRun(tmp_.filePath("following.db").toStdString(), "writer");
    auto& wr = *run.writer;
    run.losses(0, 9, false);
    hl::ui::LiveView live;
    QCOMPARE(live.showStoredRun(*run.db, run.id), QString());
    QVERIFY2(live.titleText().contains("step 8 ") && !live.titleText().contains("8/8"), qPrintable(live.titleText()));
    QVERIFY2(live.titleText().contains("still running"), qPrintable(live.titleText()));
    for (int k = 9; k <= 14; ++k) wr.point("loss", "outer", -1, 1, k, 0.5);
    wr.flush();
    QTRY_VERIFY2_WITH_TIMEOUT(live.titleText().contains("step 14"), qPrintable(live.titleText()), 10000);
    wr.finish(hl::RunStatus::Finished);
    QTRY_VERIFY2_WITH_TIMEOUT(live.titleText().contains("finished") && live.titleText().contains("14/14"),
                              qPrintable(live.titleText()), 10000);
  }

  // Issue 12, zoom and pan: the wheel zooms the loss lanes together (their x axes are linked), a
  // redraw with new points keeps the user's range, a double-click gives the automatic one back.
  void lossLanesZoomTogetherAndDoubleClickResets() {
    auto run = storedRun(tmp_.filePath("zoom.db").toStdString(), "zoom");
    auto& wr = *run.writer;
    run.losses(0, 100, true);
    hl::ui::LiveView live;
    live.resize(1200, 800);
    live.show();
    QVERIFY(QTest::qWaitForWindowExposed(&live));
    QCOMPARE(live.showStoredRun(*run.db, run.id), QString());
    QCustomPlot* plot = live.lossPlot();
    plot->replot();
    const auto rects = plot->axisRects();
    QVERIFY(rects.size() >= 2);
    const QCPRange before = rects[0]->axis(QCPAxis::atBottom)->range();
    const QPoint at = rects[0]->rect().center();
    QWheelEvent wheel(at, plot->mapToGlobal(at), QPoint(), QPoint(0, 240), Qt::NoButton, Qt::NoModifier,
                      Qt::NoScrollPhase, false);
    QApplication::sendEvent(plot, &wheel);
    const QCPRange zoomed = rects[0]->axis(QCPAxis::atBottom)->range();
    QVERIFY2(zoomed.size() < 0.9 * before.size(),
             qPrintable(QString("%1 -> %2").arg(before.size()).arg(zoomed.size())));
    for (auto* rect : rects) QCOMPARE(rect->axis(QCPAxis::atBottom)->range(), zoomed);  // lanes linked
    QVERIFY(live.lossZoom()->userRange());
    for (int k = 100; k < 150; ++k) wr.point("loss", "outer", -1, 1, k, 0.01);  // more points arrive
    wr.flush();
    QTRY_VERIFY_WITH_TIMEOUT(live.titleText().contains("step 149"), 10000);
    QCOMPARE(rects[0]->axis(QCPAxis::atBottom)->range(), zoomed);  // the user's range stays
    const QPoint dc = rects[1]->rect().center();
    QMouseEvent dbl(QEvent::MouseButtonDblClick, dc, plot->mapToGlobal(dc), Qt::LeftButton, Qt::LeftButton,
                    Qt::NoModifier);
    QApplication::sendEvent(plot, &dbl);
    QVERIFY(!live.lossZoom()->userRange());
    const QCPRange reset = live.lossPlot()->axisRects()[0]->axis(QCPAxis::atBottom)->range();
    QVERIFY2(reset.upper >= 149 && reset.lower <= 0, qPrintable(QString("%1..%2").arg(reset.lower).arg(reset.upper)));
    wr.finish(hl::RunStatus::Finished);
  }

  // Issue 12, "what to add": Help lists the shortcuts (read from the menus), the Live tab says
  // what to do until a run is shown, and the app reopens the database used last.
  void helpShortcutsEmptyLiveAndLastDatabase() {
    MainWindow w;
    const QString t = w.shortcutsText();
    for (const char* k : {"Ctrl+R", "Launch", "Ctrl+P", "Pause", "Ctrl+Shift+P", "Resume", "F1"})
      QVERIFY2(t.contains(k), k);
    // A fresh editor holds the CLI's transformer preset (same config hash as `train --preset
    // transformer`), and the shortcut list names Undo/Redo, not the undo stack's last command.
    QCOMPARE(hl::spec::config_hash(w.editor()->spec()),
             hl::spec::config_hash(hl::spec::complete(hl::spec::preset("transformer"))));
    QVERIFY(w.editor()->model()->setValue("/model/d_model", 96));
    QVERIFY(w.editor()->undoStack()->canUndo());
    QVERIFY(w.shortcutsText().contains("Undo (Architecture editor)"));
    QVERIFY(!w.shortcutsText().contains("d_model"));
    w.editor()->undoStack()->undo();
    auto* empty = w.live()->findChild<QLabel*>("liveEmpty");
    QVERIFY(empty && !empty->isHidden());
    QVERIFY(empty->text().contains("Experiment"));
    const std::string path = tmp_.filePath("shown.db").toStdString();
    {
      auto run = storedRun(path, "shown");
      run.losses(0, 5, false);
      run.writer->finish(hl::RunStatus::Finished);
    }
    QCOMPARE(w.openDatabase(QString::fromStdString(path)), QString());
    QCOMPARE(w.openRun(1), QString());
    QVERIFY(empty->isHidden());
    // File › Recent databases: the newest that still exists
    QSettings().setValue("recent/dbs", QStringList{tmp_.filePath("gone.db"), QString::fromStdString(path)});
    QCOMPARE(MainWindow::lastDatabase(), QString::fromStdString(path));
    QSettings().setValue("recent/dbs", QStringList{tmp_.filePath("gone.db")});
    QCOMPARE(MainWindow::lastDatabase(), MainWindow::defaultDbPath());
  }

  // Issue 12 item 8: Tab jumped around the Experiment form in the order the widgets were made.
  void experimentFormTabsInLayoutOrder() {
    MainWindow w;
    w.showTab(MainWindow::Experiment);
    w.show();
    w.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&w));
    auto* seeds = w.experiment()->findChild<QLineEdit*>("seeds");
    const auto combos = w.experiment()->findChildren<QComboBox*>();
    QVERIFY(seeds && !combos.isEmpty());
    QComboBox* dataset = combos.first();  // made first
    dataset->setFocus();
    QTRY_VERIFY(dataset->hasFocus() || dataset->isAncestorOf(QApplication::focusWidget()));
    auto tab = [&](bool back = false) {
      QTest::keyClick(QApplication::focusWidget(), Qt::Key_Tab, back ? Qt::ShiftModifier : Qt::NoModifier);
      return QApplication::focusWidget();
    };
    QCOMPARE(tab()->objectName(), QString("browseDataset"));
    QVERIFY(qobject_cast<QComboBox*>(tab()) || qobject_cast<QComboBox*>(QApplication::focusWidget()->parentWidget()));
    tab();                                                                    // protocol
    QVERIFY2(qobject_cast<QSpinBox*>(tab()), "task order follows protocol");  // as laid out
    seeds->setFocus();
    QTRY_VERIFY(seeds->hasFocus());
    tab();  // tags
    tab();  // notes
    QCOMPARE(tab()->objectName(), QString("launch"));
  }

  // Issue 12 item 8: `epochs: -1` showed as 1 without a word.
  // The form's head list is the engine's: a spec with the memory head launches with it (the form
  // once listed softmax and ncm only and turned memory into softmax).
  void formKeepsEveryHeadTypeOfTheSpec() {
    MainWindow w;
    for (const auto& head : hl::names<hl::HeadType>()) {
      auto spec = tiny_spec();
      spec["model"]["head"]["type"] = head;
      w.experiment()->setSpec(spec);
      QCOMPARE(QString::fromStdString(w.experiment()->applyTo(spec)["model"]["head"]["type"].get<std::string>()),
               QString::fromStdString(head));
    }
  }

  // Issue 12, "What to add": a real run's task-end confusion matrices in the Live view (tab, task
  // selector, row normalisation, class names on hover, CSV) and its forgetting attribution in
  // Compare (Compute clicked, computed off the GUI thread, the heatmap and its hover), with
  // synthesized mouse input.
  void confusionAndAttributionViewsWithTheMouse() {
    const QString db = tmp_.filePath("insight.db");
    hl::train::RunOptions o;
    o.data_dir = qEnvironmentVariable("HOPELAB_DATA_DIR", HL_TEST_DATA_DEFAULT).toStdString();
    o.db_path = db.toStdString();  // the default tokenizer cache, as the app's own runs here
    const auto run = hl::train::run_experiment(tiny_spec(), o, {});
    QVERIFY2(run.status == hl::RunStatus::Finished, run.error.c_str());
    MainWindow w;
    QCOMPARE(w.openDatabase(db), QString());
    QCOMPARE(w.openRun(run.run_id), QString());
    w.showTab(MainWindow::Live);
    w.resize(1280, 900);
    w.show();
    QVERIFY(QTest::qWaitForWindowExposed(&w));
    auto* tabs = w.live()->matrixTabs();
    QTest::mouseClick(tabs->tabBar(), Qt::LeftButton, {}, tabs->tabBar()->tabRect(1).center());
    QCOMPARE(tabs->currentIndex(), 1);
    auto* cv = w.live()->confusionView();
    QCOMPARE(cv->matrixCount(), 7);
    QCOMPARE(cv->current()->after_task, 6);  // the latest
    QVERIFY(cv->selectTask(1));
    const auto& m = *cv->current();
    QCOMPARE(int(m.size()), 20);
    QVERIFY(cv->normalised());
    auto* cmap = qobject_cast<QCPColorMap*>(cv->plot()->plottable(0));
    QVERIFY(cmap);
    QCOMPARE(cmap->data()->cell(0, 0), m.rowShare(0, 0));
    auto* box = cv->findChild<QCheckBox*>("confusionNormalise");
    QTest::mouseClick(box, Qt::LeftButton, {}, QPoint(5, box->height() / 2));
    QVERIFY(!cv->normalised());
    QCOMPARE(cmap->data()->cell(3, 2), double(m.at(2, 3)));
    QApplication::processEvents();
    cv->plot()->replot();
    // Hover the cell (row 2, column 3): the true and predicted class names.
    const QPoint cell(int(cv->plot()->xAxis->coordToPixel(3)), int(cv->plot()->yAxis->coordToPixel(2)));
    QTest::mouseMove(cv->plot(), cell);
    QTRY_VERIFY(QToolTip::isVisible());
    QVERIFY2(QToolTip::text().contains(QString::fromStdString(m.names[2]).toHtmlEscaped()) &&
                 QToolTip::text().contains(QString::fromStdString(m.names[3]).toHtmlEscaped()),
             qPrintable(QToolTip::text()));
    QCOMPARE(QToolTip::text(), cv->cellToolTip(2, 3));
    const QString csv = tmp_.filePath("confusion.csv");
    QCOMPARE(cv->exportCsv(csv), QString());
    QFile f(csv);
    QVERIFY(f.open(QIODevice::ReadOnly));
    QCOMPARE(f.readAll().toStdString(), hl::metrics::confusion_csv(m, false));

    // Compare › Forgetting attribution: Compute with the mouse; the GUI thread stays free.
    QCOMPARE(w.compareRuns({run.run_id}), QString());
    w.showTab(MainWindow::Compare);
    auto* side = w.compare()->sideTabs();
    QTest::mouseClick(side->tabBar(), Qt::LeftButton, {}, side->tabBar()->tabRect(2).center());
    QCOMPARE(side->currentIndex(), 2);
    auto* av = w.compare()->attributionView();
    QCOMPARE(av->selectedRun(), run.run_id);
    QSignalSpy done(av, &hl::ui::AttributionView::finished);
    QTest::mouseClick(av->computeButton(), Qt::LeftButton);
    QVERIFY(av->busy());
    QVERIFY(!av->computeButton()->isEnabled());
    QVERIFY(done.wait(120000));
    QVERIFY2(done.at(0).at(0).toBool(), qPrintable(av->statusText()));
    const auto* a = av->result();
    QVERIFY(a && a->exact);
    QCOMPARE(a->levels.size(), size_t(5));  // outer, b0 · context.memory, b1 · cms1..3
    auto* amap = qobject_cast<QCPColorMap*>(av->plot()->plottable(0));
    QCOMPARE(amap->data()->cell(0, 1), 100 * a->gain[1][0]);
    QCOMPARE(amap->data()->cell(2, int(a->levels.size())), 100 * a->gain_all[2]);
    QApplication::processEvents();
    av->plot()->replot();
    const QPoint acell(int(av->plot()->xAxis->coordToPixel(0)), int(av->plot()->yAxis->coordToPixel(1)));
    QTest::mouseMove(av->plot(), acell);
    QTRY_VERIFY(QToolTip::text().contains("back at the end of task 1"));
    QVERIFY2(QToolTip::text().contains("context.memory"), qPrintable(QToolTip::text()));
    const QString acsv = tmp_.filePath("attribution.csv");
    QCOMPARE(av->exportCsv(acsv), QString());
    QFile af(acsv);
    QVERIFY(af.open(QIODevice::ReadOnly));
    const QStringList lines = QString::fromUtf8(af.readAll()).split('\n', Qt::SkipEmptyParts);
    QCOMPARE(lines.size(), int(a->levels.size()) + 3);  // header, levels, every level, forgetting

    // Compare › Test-time ablation, with the mouse and the keyboard. This run's memory is a Titans
    // LMM, so "writes off" (self-modifying Titans) is refused by name; typed overrides work.
    QTest::mouseClick(side->tabBar(), Qt::LeftButton, {}, side->tabBar()->tabRect(3).center());
    QCOMPARE(side->currentIndex(), 3);
    auto* ab = w.compare()->ablationView();
    QCOMPARE(ab->selectedRun(), run.run_id);
    QVERIFY(ab->writesOffBox()->isChecked());
    QSignalSpy evaluated(ab, &hl::ui::AblationView::finished);
    QTest::mouseClick(ab->computeButton(), Qt::LeftButton);
    QVERIFY(evaluated.wait(120000));
    QVERIFY(!evaluated.at(0).at(0).toBool());
    QVERIFY2(ab->statusText().contains("no self-modifying Titans block"), qPrintable(ab->statusText()));
    QCOMPARE(ab->table()->rowCount(), 0);
    QTest::mouseClick(ab->writesOffBox(), Qt::LeftButton, {}, QPoint(5, ab->writesOffBox()->height() / 2));
    QVERIFY(!ab->writesOffBox()->isChecked());
    QVERIFY(!ab->recordBox()->isChecked());  // nothing is written unless asked
    QTest::mouseClick(ab->recordBox(), Qt::LeftButton, {}, QPoint(5, ab->recordBox()->height() / 2));
    QVERIFY(ab->recordBox()->isChecked());
    ab->overridesEdit()->setFocus();
    QTest::keyClicks(ab->overridesEdit(), "model.blocks.0.inner_lr=0.001; model.blocks.0.dropout=0.5");
    QTest::keyClick(ab->overridesEdit(), Qt::Key_Return);
    QVERIFY2(ab->busy(), qPrintable(ab->statusText()));
    QVERIFY(!ab->computeButton()->isEnabled());
    QVERIFY(evaluated.wait(120000));
    QVERIFY2(evaluated.at(1).at(0).toBool(), qPrintable(ab->statusText()));
    const auto* r = ab->result();
    QVERIFY(r && r->exact);
    QCOMPARE(r->sets, std::vector<std::string>({"model.blocks.0.inner_lr=0.001", "model.blocks.0.dropout=0.5"}));
    QCOMPARE(ab->table()->rowCount(), 8);  // 7 tasks and the mean
    QCOMPARE(ab->table()->item(7, 0)->text(), QString("mean"));
    QCOMPARE(ab->table()->item(2, 2)->text(), QString::number(r->as_saved[2], 'f', 3));
    QCOMPARE(ab->table()->item(2, 3)->text(), QString::number(r->ablated[2], 'f', 3));
    QCOMPARE(ab->table()->item(7, 4)->text(),
             QString::asprintf("%+.1f", 100 * (r->mean(r->ablated) - r->mean(r->as_saved))));
    QVERIFY2(ab->statusText().contains("bit for bit") && ab->statusText().contains("Recorded in the run database"),
             qPrintable(ab->statusText()));
    {  // the Record box stored it, under the sorted overrides, as `evaluate --record` would
      const auto rec = hl::store::RunStore::open(w.dbPath().toStdString())->ablations(run.run_id);
      QCOMPARE(int(rec.size()), 1);
      QCOMPARE(QString::fromStdString(rec[0].overrides),
               QString("model.blocks.0.dropout=0.5 model.blocks.0.inner_lr=0.001"));
      QCOMPARE(QString::fromStdString(rec[0].checkpoint), QString("last"));
    }
    // A typed item that is not PATH=VALUE: said, nothing computed.
    ab->overridesEdit()->clear();
    QTest::keyClicks(ab->overridesEdit(), "inner_lr");
    QTest::keyClick(ab->overridesEdit(), Qt::Key_Return);
    QVERIFY(!ab->busy());
    QVERIFY2(ab->statusText().contains("\"inner_lr\" is not an override"), qPrintable(ab->statusText()));
    QCOMPARE(hl::ui::AblationView::parseOverrides(" a=1; b=2,c=3\n"), std::vector<std::string>({"a=1", "b=2", "c=3"}));
    // Nothing ticked, nothing typed.
    ab->overridesEdit()->clear();
    QTest::mouseClick(ab->computeButton(), Qt::LeftButton);
    QVERIFY(!ab->busy());
    QVERIFY2(ab->statusText().startsWith("Nothing to change"), qPrintable(ab->statusText()));
  }

  void formSaysWhatItCannotShow() {
    MainWindow w;
    auto spec = tiny_spec();
    spec["training"]["epochs"] = -1;
    w.experiment()->setSpec(spec);
    bool said = false;
    for (auto* l : w.experiment()->findChildren<QLabel*>()) said |= l->text().contains("training.epochs = -1");
    QVERIFY(said);
  }
};

QTEST_MAIN(TestAppInput)
#include "test_app_input.moc"
