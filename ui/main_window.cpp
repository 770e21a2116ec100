#include "ui/main_window.h"
#include "ui/plural.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDir>
#include <QFile>
#include <QDesktopServices>
#include <QFileDialog>
#include <QFileInfo>
#include <QRegularExpression>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QProgressBar>
#include <QSettings>
#include <QStatusBar>
#include <QStyle>
#include <QStyleFactory>
#include <QTabWidget>
#include <QTimer>
#include <QUndoStack>
#include <QUrl>
#include <filesystem>
#include <fstream>

#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "ui/attribution_view.h"
#include "ui/compare_view.h"
#include "ui/confusion_view.h"
#include "ui/editor/architecture_editor.h"
#include "ui/editor/editor_model.h"
#include "ui/elided_label.h"
#include "ui/experiment_view.h"
#include "ui/export_view.h"
#include "ui/inference_view.h"
#include "ui/live_view.h"
#include "ui/plot_export.h"
#include "ui/run_worker.h"
#include "ui/runs_browser.h"
#include "ui/kind_text.h"

namespace hl::ui {

using json = nlohmann::json;

QStringList MainWindow::tabNames() {
  return {"architecture", "experiment", "live", "runs", "compare", "export", "inference"};
}

int MainWindow::tabIndex(const QString& name) {
  QString n = name.trimmed().toLower();
  if (n == "editor") return Architecture;
  return int(tabNames().indexOf(n));
}

QString MainWindow::docsDir() {
  // Installed (cmake --install, the .deb): HL_DOCS_REL, relative to the executable's folder;
  // in a build tree: the source tree's docs/.
  const QString installed = QDir::cleanPath(QCoreApplication::applicationDirPath() + QStringLiteral("/" HL_DOCS_REL));
  if (QFileInfo::exists(installed + "/APP.md")) return installed;
  return QStringLiteral(HL_DOCS_DIR);
}

QString MainWindow::defaultDbPath() {
  std::string d = hl::data::user_data_dir();
  std::error_code ec;
  std::filesystem::create_directories(d, ec);
  return QString::fromStdString(d + "/runs.db");
}

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
  setWindowTitle(tr("Hope Lab"));
  worker_ = new RunWorker(this);
  editor_ = new ArchitectureEditor(this);
  experiment_ = new ExperimentView(worker_, this);
  live_ = new LiveView(this);
  runs_ = new RunsBrowser(this);
  compare_ = new CompareView(this);
  export_ = new ExportView(this);
  inference_ = new InferenceView(this);
  live_->setFeed(worker_->feed());
  compare_->setDataDirSource([this] { return experiment_->dataDir(); });
  experiment_->setSpecSource([this] { return editor_->spec(); });
  if (!editor_->spec().is_object() || !editor_->spec().contains("model"))
    editor_->setSpec(hl::spec::preset("transformer"));  // an editor that starts empty gets the default
  experiment_->setSpec(editor_->spec());

  tabs_ = new QTabWidget(this);
  tabs_->setDocumentMode(true);
  tabs_->addTab(editor_, tr("&Architecture"));
  tabs_->addTab(experiment_, tr("E&xperiment"));
  tabs_->addTab(live_, tr("&Live"));
  tabs_->addTab(runs_, tr("&Runs"));
  tabs_->addTab(compare_, tr("&Compare"));
  tabs_->addTab(export_, tr("Ex&port"));
  tabs_->addTab(inference_, tr("&Inference"));
  setCentralWidget(tabs_);

  status_run_ = new ElidedLabel(tr("idle"), this);
  status_run_->setObjectName("runStatus");
  status_db_ = new QLabel(this);
  progress_ = new QProgressBar(this);
  progress_->setMaximumWidth(220);
  progress_->setVisible(false);
  statusBar()->addWidget(status_run_, 1);
  statusBar()->addPermanentWidget(progress_);
  statusBar()->addPermanentWidget(status_db_);

  connect(live_, &LiveView::progress, this, &MainWindow::onProgress);
  connect(live_, &LiveView::liveRunStarted, this, [this](qint64 id) {
    status_text_ = tr("run %1 started").arg(id);
    showRunStatus();
    runs_->refresh();
  });
  // Model construction (the editor's estimates, inference loading) draws from the random generator
  // a run trains with: paused while the worker trains, so GUI runs stay reproducible.
  connect(worker_, &RunWorker::requestStarted, this, [this] {
    editor_->setEstimatesEnabled(false);
    inference_->setTrainingActive(true);
  });
  connect(worker_, &RunWorker::idle, this, [this] {
    editor_->setEstimatesEnabled(true);
    inference_->setTrainingActive(false);
  });
  connect(worker_, &RunWorker::requestFinished, this, [this](const RunOutcome& o) {
    progress_->setVisible(false);
    status_text_ = o.run_id
                       ? tr("run %1 %2").arg(o.run_id).arg(kindText(o.status))
                       : tr("launch %1: %2").arg(kindText(o.status), o.error.section('\n', 0, 0));  // elided to fit
    showRunStatus();
    runs_->refresh();
    export_->updatePreview();
  });
  connect(experiment_, &ExperimentView::launched, this, [this] { showTab(Live); });
  // A preset (Edit menu or the editor's list) brings its head and optimizer into the form; the
  // dataset, strategy, seeds and protocol chosen there stay (as with the CLI's options).
  connect(editor_, &ArchitectureEditor::presetLoaded, this,
          [this] { experiment_->setPresetFieldsFrom(editor_->spec()); });
  // The browser polls the file (runs of other processes, of this window): Export's table and
  // Inference's run list follow when a run appears, goes or changes status (not on every poll
  // while a run writes points), instead of showing a run as running after it finished.
  connect(runs_, &RunsBrowser::runStatusesChanged, this, [this] {
    export_->updatePreview();
    inference_->refreshRuns();
  });
  connect(runs_, &RunsBrowser::openRun, this, [this](qint64 id) {
    QString err = openRun(id);
    if (!err.isEmpty())
      QMessageBox::warning(this, tr("Open run"), err);
    else
      showTab(Live);
  });
  connect(runs_, &RunsBrowser::compareRuns, this, [this](const QList<qint64>& ids) {
    QString err = compareRuns(ids);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Compare"), err);
    showTab(Compare);
  });
  connect(runs_, &RunsBrowser::rerun, this, [this](qint64 id) {
    auto r = db_ ? db_->getRun(id) : std::nullopt;
    if (!r) return;
    QString err;
    json spec = json::parse(r->spec_json);  // the stored spec, seed included
    if (experiment_->launchSpec(spec, &err).isEmpty()) QMessageBox::warning(this, tr("Re-run"), err);
  });
  connect(export_, &ExportView::exportPlotsRequested, this, [this](const QString& dir) {
    QStringList failed;
    const char* names[] = {"loss_lanes", "drift", "forgetting", "accuracy_matrix"};
    int i = 0;
    for (auto* p : live_->plots()) {
      for (const char* ext : {"png", "svg", "pdf"}) {
        QString err = savePlot(p, QDir(dir).filePath(QString("%1.%2").arg(names[i], ext)), 900, 600);
        if (!err.isEmpty()) failed << err;
      }
      ++i;
    }
    // The confusion matrix shown in Live (its selected task-end), when the run has one; its CSV too.
    if (auto* cv = live_->confusionView(); cv && cv->current()) {
      for (const char* ext : {"png", "svg", "pdf"}) {
        QString err = savePlot(cv->plot(), QDir(dir).filePath(QString("confusion_matrix.%1").arg(ext)), 900, 800);
        if (!err.isEmpty()) failed << err;
      }
      QString err = cv->exportCsv(QDir(dir).filePath("confusion_matrix.csv"));
      if (!err.isEmpty()) failed << err;
    }
    if (!failed.isEmpty()) QMessageBox::warning(this, tr("Save plots"), failed.join("\n"));
  });
  connect(editor_, &ArchitectureEditor::validationChanged, this, [this](int e, int w) {
    tabs_->setTabText(Architecture,
                      e ? tr("&Architecture (%1)").arg(countOf(e, tr("error"), tr("errors"))) : tr("&Architecture"));
    (void)w;
  });

  buildMenus();
  QSettings s;
  restoreGeometry(s.value("window/geometry").toByteArray());
  restoreState(s.value("window/state").toByteArray());
  tabs_->setCurrentIndex(s.value("window/tab", 0).toInt());
  setDark(s.value("view/dark", false).toBool());
  if (geometry().width() < 400) resize(1280, 820);
}

MainWindow::~MainWindow() = default;

void MainWindow::closeEvent(QCloseEvent* e) {
  if (worker_->busy() &&
      QMessageBox::question(this, tr("Quit"),
                            tr("A run is training. Stop it and quit? (It is stored as cancelled.)")) !=
          QMessageBox::Yes) {
    e->ignore();
    return;
  }
  worker_->stopAll();
  QSettings s;
  s.setValue("window/geometry", saveGeometry());
  s.setValue("window/state", saveState());
  s.setValue("window/tab", tabs_->currentIndex());
  s.setValue("view/dark", dark_);
  e->accept();
}

void MainWindow::buildMenus() {
  auto* file = menuBar()->addMenu(tr("&File"));
  file->addAction(tr("&Open spec…"), QKeySequence::Open, this, [this] {
    QString f = QFileDialog::getOpenFileName(this, tr("Open spec"), QString(), tr("Spec JSON (*.json)"));
    if (f.isEmpty()) return;
    QString err = openSpec(f);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Open spec"), err);
  });
  file->addAction(tr("&Save spec"), QKeySequence::Save, this, [this] {
    QString f = spec_path_;
    if (f.isEmpty()) f = QFileDialog::getSaveFileName(this, tr("Save spec"), "spec.json", tr("Spec JSON (*.json)"));
    if (f.isEmpty()) return;
    QString err = saveSpec(f);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Save spec"), err);
  });
  file->addAction(tr("Save spec &as…"), QKeySequence::SaveAs, this, [this] {
    QString f = QFileDialog::getSaveFileName(this, tr("Save spec"), "spec.json", tr("Spec JSON (*.json)"));
    if (f.isEmpty()) return;
    QString err = saveSpec(f);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Save spec"), err);
  });
  recent_specs_ = file->addMenu(tr("Recent specs"));
  file->addSeparator();
  file->addAction(tr("Open &database…"), QKeySequence("Ctrl+D"), this, [this] {
    QString f = QFileDialog::getSaveFileName(this, tr("Open or create a run database"), db_path_,
                                             tr("Run database (*.db);;All files (*)"), nullptr,
                                             QFileDialog::DontConfirmOverwrite);
    if (f.isEmpty()) return;
    QString err = openDatabase(f);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Open database"), err);
  });
  recent_dbs_ = file->addMenu(tr("Recent databases"));
  file->addSeparator();
  file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
  fillRecent(recent_specs_, "recent/specs", true);
  fillRecent(recent_dbs_, "recent/dbs", false);

  auto* edit = menuBar()->addMenu(tr("&Edit"));
  auto* undo = editor_->undoStack()->createUndoAction(this, tr("&Undo"));
  undo->setShortcut(QKeySequence::Undo);
  auto* redo = editor_->undoStack()->createRedoAction(this, tr("&Redo"));
  redo->setShortcut(QKeySequence::Redo);
  // Their text follows the undo stack ("Redo Set model.blocks[0].heads = 5"); the shortcut list
  // names them plainly.
  undo->setProperty("hlShortcutName", tr("Undo (Architecture editor)"));
  redo->setProperty("hlShortcutName", tr("Redo (Architecture editor)"));
  edit->addAction(undo);
  edit->addAction(redo);
  auto* presets = edit->addMenu(tr("Load &preset"));
  for (const auto& p : hl::spec::preset_names()) {
    QString name = QString::fromStdString(p);
    presets->addAction(name, this, [this, name] { editor_->loadPreset(name); })
        ->setToolTip(QString::fromStdString(hl::spec::preset_description(p)));
  }

  auto* view = menuBar()->addMenu(tr("&View"));
  const auto names = tabNames();
  for (int i = 0; i < names.size(); ++i)
    view->addAction(tr("Go to %1").arg(names[i]), QKeySequence(QString("Alt+%1").arg(i + 1)), this,
                    [this, i] { showTab(i); });
  view->addSeparator();
  auto* dark = view->addAction(tr("&Dark palette"));
  dark->setCheckable(true);
  dark->setShortcut(QKeySequence("Ctrl+Shift+D"));
  connect(dark, &QAction::toggled, this, &MainWindow::setDark);
  connect(this, &QObject::objectNameChanged, dark, [] {});
  dark->setObjectName("darkAction");

  auto* run = menuBar()->addMenu(tr("&Run"));
  run->addAction(tr("&Launch"), QKeySequence("Ctrl+R"), this, [this] {
    QString err;
    if (experiment_->launch(&err).isEmpty() && !err.isEmpty()) QMessageBox::warning(this, tr("Launch"), err);
  });
  pause_act_ = run->addAction(tr("&Pause"), QKeySequence("Ctrl+P"), worker_, &RunWorker::pause);
  resume_act_ = run->addAction(tr("Res&ume"), QKeySequence("Ctrl+Shift+P"), worker_, &RunWorker::resume);
  stop_act_ = run->addAction(tr("&Stop"), QKeySequence("Ctrl+."), worker_, &RunWorker::stopCurrent);
  stop_all_act_ = run->addAction(tr("Stop &all (and empty the queue)"), worker_, &RunWorker::stopAll);
  pause_act_->setObjectName("pauseAction");
  resume_act_->setObjectName("resumeAction");
  stop_act_->setObjectName("stopAction");
  stop_all_act_->setObjectName("stopAllAction");
  for (auto sig : {&RunWorker::requestStarted, &RunWorker::queueChanged})
    connect(worker_, sig, this, &MainWindow::updateRunActions);
  connect(worker_, &RunWorker::requestFinished, this, &MainWindow::updateRunActions);
  connect(worker_, &RunWorker::idle, this, &MainWindow::updateRunActions);
  connect(worker_, &RunWorker::pausedChanged, this, [this] {
    updateRunActions();
    showRunStatus();  // at once, not at the next progress event
  });
  updateRunActions();
  auto* help = menuBar()->addMenu(tr("&Help"));
  help->addAction(tr("&Keyboard shortcuts"), QKeySequence::HelpContents, this,
                  [this] { QMessageBox::information(this, tr("Keyboard shortcuts"), shortcutsText()); });
  help->addAction(tr("&Documentation"), this, [this] {
    const QString dir = docsDir(), app = dir + "/APP.md";
    if (!QFileInfo::exists(app) || !QDesktopServices::openUrl(QUrl::fromLocalFile(app)))
      QMessageBox::information(this, tr("Documentation"),
                               tr("The app's documentation is APP.md in %1, "
                                  "with the spec fields in SPEC.md and the models in MODELS.md.")
                                   .arg(dir));
  });
  help->addAction(tr("&About Hope Lab"), this, [this] {
    QMessageBox::about(this, tr("About Hope Lab"),
                       tr("<b>Hope Lab</b> — a workbench for Nested Learning research.<br>GPL-3.0-or-later."));
  });
}

QString MainWindow::shortcutsText() const {
  // Read from the menus themselves, so the list cannot drift from what the keys do.
  QString out = QStringLiteral("<table>");
  for (QAction* top : menuBar()->actions()) {
    QMenu* m = top->menu();
    if (!m) continue;
    for (QAction* a : m->actions())
      if (!a->shortcut().isEmpty()) {
        const QString name = a->property("hlShortcutName").toString();
        out += QStringLiteral("<tr><td><b>%1</b>&nbsp;&nbsp;</td><td>%2 › %3</td></tr>")
                   .arg(a->shortcut().toString(QKeySequence::NativeText).toHtmlEscaped(), top->text().remove('&'),
                        QString(name.isEmpty() ? a->text() : name).remove('&').toHtmlEscaped());
      }
  }
  out +=
      tr("<tr><td><b>Del</b>, <b>Ctrl+D</b>, <b>Ctrl+C/V</b>, <b>Up/Down</b></td><td>Architecture canvas: delete, "
         "duplicate, copy/paste, move the selection (Ctrl+Up/Down moves the card)</td></tr>");
  out +=
      tr("<tr><td><b>wheel, drag, double-click</b></td><td>any plot: zoom, pan, back to the automatic "
         "range</td></tr>");
  return out + QStringLiteral("</table>");
}

QString MainWindow::lastDatabase() {
  for (const auto& p : QSettings().value("recent/dbs").toStringList())
    if (QFileInfo(p).isFile()) return p;
  return defaultDbPath();
}

void MainWindow::addRecent(const QString& key, const QString& path) {
  QSettings s;
  QStringList l = s.value(key).toStringList();
  l.removeAll(path);
  l.prepend(path);
  while (l.size() > 8) l.removeLast();
  s.setValue(key, l);
  fillRecent(key == "recent/specs" ? recent_specs_ : recent_dbs_, key, key == "recent/specs");
}

void MainWindow::fillRecent(QMenu* m, const QString& key, bool spec) {
  if (!m) return;
  m->clear();
  for (const auto& p : QSettings().value(key).toStringList())
    m->addAction(p, this, [this, p, spec] {
      QString err = spec ? openSpec(p) : openDatabase(p);
      if (!err.isEmpty()) QMessageBox::warning(this, spec ? tr("Open spec") : tr("Open database"), err);
    });
  m->setEnabled(!m->isEmpty());
}

QString MainWindow::openDatabase(const QString& path) {
  std::unique_ptr<hl::store::RunStore> db;
  try {
    db = hl::store::RunStore::open(path.toStdString());
  } catch (const std::exception& e) {
    return QString::fromUtf8(e.what());
  }
  live_->forgetStore();
  runs_->setStore(nullptr);
  export_->setStore(nullptr);
  compare_->setStore(nullptr);
  inference_->setStore(nullptr);
  db_ = std::move(db);
  db_path_ = QFileInfo(path).absoluteFilePath();
  experiment_->setDbPath(db_path_);
  runs_->setStore(db_.get());
  export_->setStore(db_.get());
  compare_->setStore(db_.get());
  inference_->setStore(db_.get());
  status_db_->setText(tr("DB: %1").arg(db_path_));
  addRecent("recent/dbs", db_path_);
  return {};
}

QString MainWindow::openSpec(const QString& path) {
  json spec;
  try {
    spec = hl::spec::load_file(path.toStdString());
    spec = hl::spec::complete(spec);
  } catch (const std::exception& e) {
    return QString::fromUtf8(e.what());
  }
  editor_->setSpec(spec);
  experiment_->setSpec(spec);
  spec_path_ = path;
  setWindowTitle(tr("Hope Lab — %1").arg(QFileInfo(path).fileName()));
  addRecent("recent/specs", QFileInfo(path).absoluteFilePath());
  return {};
}

QString MainWindow::saveSpec(const QString& path) {
  // A pattern typed into the file dialog (Qt's dialog takes "*" as a name) is not a file name.
  if (QFileInfo(path).fileName().contains(QRegularExpression("[*?]")))
    return tr("%1: the name holds a wildcard (* or ?); type a file name, e.g. spec.json").arg(path);
  json spec = experiment_->applyTo(editor_->spec());
  std::ofstream out(path.toStdString(), std::ios::binary);
  if (!out) return tr("%1: cannot write this file").arg(path);
  out << spec.dump(2) << "\n";
  if (!out) return tr("%1: write failed").arg(path);
  spec_path_ = path;
  addRecent("recent/specs", QFileInfo(path).absoluteFilePath());
  flashStatus(tr("saved %1").arg(path), 3000);
  return {};
}

QString MainWindow::openRun(qint64 run_id) {
  if (!db_) return tr("no run database open");
  auto r = db_->getRun(run_id);
  if (!r) return tr("run %1 is not in %2 (see the Runs tab or `hopelab-cli runs`)").arg(run_id).arg(db_path_);
  QString err = live_->showStoredRun(*db_, run_id);
  if (!err.isEmpty()) return err;
  runs_->selectRun(run_id);
  // Compare: this run with its seed siblings (same config_hash).
  QList<qint64> ids{run_id};
  if (!r->config_hash.empty())
    for (const auto& o : db_->listRuns())
      if (o.id != run_id && o.config_hash == r->config_hash) ids << o.id;
  compare_->setRuns(ids);
  ExportRequest req;
  req.format = "latex";
  req.runs.clear();
  export_->setRequest(req);
  inference_->setRun(run_id);
  try {
    // One undoable step: Edit › Undo brings the architecture back (the Experiment form takes the
    // run's settings).
    json spec = json::parse(r->spec_json);
    editor_->model()->replaceSpec(spec, tr("Open run %1's spec").arg(run_id));
    experiment_->setSpec(spec);
    // Said, not silent: the spec being edited was replaced (a new user missed it).
    flashStatus(
        tr("Architecture and Experiment now hold run %1's spec (Edit › Undo brings the previous one back)").arg(run_id),
        8000);
  } catch (...) {
  }
  return {};
}

QString MainWindow::compareRuns(const QList<qint64>& ids) {
  QString err = compare_->setRuns(ids);
  if (err.isEmpty()) export_->setRuns(ids);
  return err;
}

void MainWindow::showTab(int index) {
  if (index >= 0 && index < tabs_->count()) tabs_->setCurrentIndex(index);
}

void MainWindow::setDark(bool dark) {
  dark_ = dark;
  qApp->setStyle(QStyleFactory::create("Fusion"));
  QPalette p;
  if (dark) {
    p.setColor(QPalette::Window, QColor(0x2b, 0x2e, 0x37));
    p.setColor(QPalette::WindowText, QColor(0xe0, 0xe3, 0xea));
    p.setColor(QPalette::Base, QColor(0x23, 0x26, 0x2e));
    p.setColor(QPalette::AlternateBase, QColor(0x30, 0x34, 0x3e));
    p.setColor(QPalette::Text, QColor(0xe0, 0xe3, 0xea));
    p.setColor(QPalette::Button, QColor(0x35, 0x39, 0x44));
    p.setColor(QPalette::ButtonText, QColor(0xe0, 0xe3, 0xea));
    p.setColor(QPalette::Highlight, QColor(0x3d, 0x7e, 0xd6));
    p.setColor(QPalette::HighlightedText, Qt::white);
    p.setColor(QPalette::ToolTipBase, QColor(0x23, 0x26, 0x2e));
    p.setColor(QPalette::ToolTipText, QColor(0xe0, 0xe3, 0xea));
    p.setColor(QPalette::PlaceholderText, QColor(0x90, 0x94, 0x9c));
    // Disabled widgets must look disabled: dimmed text and a flatter button.
    const QColor dim(0x70, 0x74, 0x7c);
    for (auto role : {QPalette::WindowText, QPalette::Text, QPalette::ButtonText, QPalette::HighlightedText})
      p.setColor(QPalette::Disabled, role, dim);
    p.setColor(QPalette::Disabled, QPalette::Button, QColor(0x2e, 0x31, 0x3a));
    p.setColor(QPalette::Disabled, QPalette::Base, QColor(0x2b, 0x2e, 0x37));
  } else {
    p = qApp->style()->standardPalette();
  }
  qApp->setPalette(p);
  live_->setDark(dark);
  compare_->confusionView()->setDark(dark);
  compare_->attributionView()->setDark(dark);
  for (auto* a : findChildren<QAction*>("darkAction"))
    if (a->isChecked() != dark) a->setChecked(dark);
}

void MainWindow::onProgress(qint64 run_id, qint64 step, qint64 total, int task, int num_tasks) {
  if (run_id != clock_run_) {
    clock_run_ = run_id;
    clock_step0_ = step;
    run_clock_.start();
  }
  progress_->setVisible(true);
  progress_->setRange(0, int(std::max<qint64>(1, total)));
  progress_->setValue(int(step));
  QString eta = tr("ETA –");
  qint64 done = step - clock_step0_;
  if (done > 0 && run_clock_.isValid()) {
    double per = run_clock_.elapsed() / 1000.0 / double(done);
    qint64 left = qint64(per * double(total - step));
    eta = tr("ETA %1:%2").arg(left / 60).arg(left % 60, 2, 10, QChar('0'));
  }
  status_text_ = tr("run %1 · step %2/%3 · task %4/%5 · %6")  // the Live header's order
                     .arg(run_id)
                     .arg(step)
                     .arg(total)
                     .arg(task + 1)
                     .arg(num_tasks)
                     .arg(eta);
  showRunStatus();
}

void MainWindow::flashStatus(const QString& text, int ms) {
  status_run_->setText(text);
  const int serial = ++flash_serial_;
  QTimer::singleShot(ms, this, [this, serial] {
    if (serial == flash_serial_) showRunStatus();  // a later message keeps its own time
  });
}

void MainWindow::showRunStatus() {
  status_run_->setText(worker_->paused() && !status_text_.isEmpty() ? status_text_ + tr(" · paused")
                       : worker_->paused()                          ? tr("paused")
                                                                    : status_text_);
}

void MainWindow::updateRunActions() {
  if (!pause_act_) return;
  const bool busy = worker_->busy(), paused = worker_->paused();
  pause_act_->setEnabled(busy && !paused);
  resume_act_->setEnabled(paused);
  stop_act_->setEnabled(busy);
  stop_all_act_->setEnabled(busy);
}

}  // namespace hl::ui
