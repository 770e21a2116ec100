// Test-time ablation of a finished run (engine/train/attribution.h, hl::train::ablate_run): its
// saved model evaluated as saved and with overrides (the in-context writes off, and/or PATH=VALUE
// lines), per task and mean, class-IL and task-IL, with the change in accuracy points. Computed on a
// worker thread (two evaluations of the test rows), never on the GUI thread; cancellable while it
// waits for a training run of this window.
#pragma once
#include <QFutureWatcher>
#include <QWidget>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "engine/train/attribution.h"
#include "ui/run_picker.h"

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QTableWidget;

namespace hl::ui {

class AblationView : public QWidget {
  Q_OBJECT
 public:
  explicit AblationView(QWidget* parent = nullptr);
  ~AblationView() override;  // cancels a computation and waits for its thread

  void setDbPath(const QString& path) { db_path_ = path; }
  void setDataDirSource(std::function<QString()> f) { data_dir_ = std::move(f); }
  // The runs offered (id, label); the one shown stays when it is still offered.
  void setRuns(const QList<QPair<qint64, QString>>& runs) { run_->setRuns(runs); }
  qint64 selectedRun() const { return run_->selectedRun(); }
  void selectRun(qint64 id) { run_->selectRun(id); }
  // The overrides as typed: PATH=VALUE items separated by spaces, commas, semicolons or new lines.
  static std::vector<std::string> parseOverrides(const QString& text);
  // Starts evaluating the selected run on a worker thread; false when one runs or nothing to do.
  bool compute();
  void cancel();
  bool busy() const { return watcher_ != nullptr && watcher_->isRunning(); }
  const hl::train::Ablation* result() const { return result_ ? &*result_ : nullptr; }
  QString statusText() const;
  QTableWidget* table() const { return table_; }
  QCheckBox* writesOffBox() const { return writes_off_; }
  QCheckBox* recordBox() const { return record_; }
  QLineEdit* overridesEdit() const { return sets_; }
  QPushButton* computeButton() const { return compute_; }

 Q_SIGNALS:
  void finished(bool ok);  // after a computation ended (ok: a result is shown)

 private:
  struct Outcome {
    std::optional<hl::train::Ablation> result;
    QString error;          // no result: why; a result: why it was not recorded
    bool recorded = false;  // the Record box was ticked and the result is stored
  };
  void fill();
  void onFinished();

  QString db_path_;
  std::function<QString()> data_dir_;
  RunPicker* run_ = nullptr;
  QComboBox* which_ = nullptr;
  QCheckBox* writes_off_ = nullptr;
  QCheckBox* record_ = nullptr;
  QLineEdit* sets_ = nullptr;
  QPushButton *compute_ = nullptr, *cancel_ = nullptr;
  QLabel* status_ = nullptr;
  QTableWidget* table_ = nullptr;
  QFutureWatcher<Outcome>* watcher_ = nullptr;
  std::shared_ptr<std::atomic<bool>> cancel_flag_;
  std::optional<hl::train::Ablation> result_;
};

}  // namespace hl::ui
