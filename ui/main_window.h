// The Hope Lab main window: tabs Architecture, Experiment, Live, Runs, Compare, Export, Inference;
// File/Edit/View menus, recent specs and databases, window state (QSettings), light/dark palette,
// a status bar with the running run's progress and ETA.
#pragma once
#include <QElapsedTimer>
#include <QMainWindow>
#include <memory>
#include <nlohmann/json.hpp>

class QLabel;
class QMenu;
class QProgressBar;
class QTabWidget;

namespace hl::store {
class RunStore;
}

namespace hl::ui {

class ArchitectureEditor;
class CompareView;
class ExperimentView;
class ExportView;
class InferenceView;
class LiveView;
class RunWorker;
class RunsBrowser;

class MainWindow : public QMainWindow {
  Q_OBJECT
 public:
  enum Tab { Architecture, Experiment, Live, Runs, Compare, Export, Inference };
  explicit MainWindow(QWidget* parent = nullptr);
  ~MainWindow() override;

  static int tabIndex(const QString& name);  // -1 if unknown; "editor" = architecture
  static QStringList tabNames();
  static QString docsDir();        // the docs/ folder: the installed one, else the source tree's
  static QString defaultDbPath();  // the CLI's default (<user data dir>/runs.db)
  static QString lastDatabase();   // the most recent database that still exists, else the default
  QString shortcutsText() const;   // Help › Keyboard shortcuts (from the menus)

  QString openDatabase(const QString& path);  // "" or the error
  QString openSpec(const QString& path);
  QString saveSpec(const QString& path);
  QString openRun(qint64 run_id);                 // Live view replays it; Compare/Export/Inference preselect it
  QString compareRuns(const QList<qint64>& ids);  // Compare and Export select these runs
  void showTab(int index);
  void setDark(bool dark);
  QString dbPath() const { return db_path_; }
  hl::store::RunStore* store() const { return db_.get(); }

  ArchitectureEditor* editor() const { return editor_; }
  ExperimentView* experiment() const { return experiment_; }
  LiveView* live() const { return live_; }
  RunsBrowser* runs() const { return runs_; }
  CompareView* compare() const { return compare_; }
  ExportView* exporter() const { return export_; }
  InferenceView* inference() const { return inference_; }
  RunWorker* worker() const { return worker_; }

 protected:
  void closeEvent(QCloseEvent* e) override;

 private:
  void buildMenus();
  void addRecent(const QString& key, const QString& path);
  void fillRecent(QMenu* m, const QString& key, bool spec);
  void onProgress(qint64 run_id, qint64 step, qint64 total, int task, int num_tasks);
  void updateRunActions();  // Pause/Resume/Stop enabled by the worker's state
  void showRunStatus();
  // A message in the status label for a few seconds, then the run status again (QStatusBar's own
  // temporary messages were drawn over the label, not instead of it).
  void flashStatus(const QString& text, int ms = 6000);  // status_text_ plus " · paused" while paused

  std::unique_ptr<hl::store::RunStore> db_;
  QString db_path_, spec_path_;
  QTabWidget* tabs_ = nullptr;
  RunWorker* worker_ = nullptr;
  ArchitectureEditor* editor_ = nullptr;
  ExperimentView* experiment_ = nullptr;
  LiveView* live_ = nullptr;
  RunsBrowser* runs_ = nullptr;
  CompareView* compare_ = nullptr;
  ExportView* export_ = nullptr;
  InferenceView* inference_ = nullptr;
  QLabel* status_run_ = nullptr;
  int flash_serial_ = 0;  // flashStatus
  QString status_text_;   // the run part of the status bar, without the paused mark
  QAction *pause_act_ = nullptr, *resume_act_ = nullptr, *stop_act_ = nullptr, *stop_all_act_ = nullptr;
  QLabel* status_db_ = nullptr;
  QProgressBar* progress_ = nullptr;
  QElapsedTimer run_clock_;
  qint64 clock_run_ = -1;
  qint64 clock_step0_ = 0;
  QMenu* recent_specs_ = nullptr;
  QMenu* recent_dbs_ = nullptr;
  bool dark_ = false;
};

}  // namespace hl::ui
