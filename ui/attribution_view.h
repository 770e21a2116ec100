// Per-level forgetting attribution of a finished run (engine/train/attribution.h) as a level ×
// task heatmap: the gain in accuracy points on task j when a level is put back to its state at the
// end of task j, over the final model; a last row with every level at once; hover for the
// reference numbers (R[j][j], the final accuracy, the forgetting). Computed on a worker thread (it
// evaluates the model (levels + 2) × (T − 1) + T times), never on the GUI thread; cancellable.
#pragma once
#include <QFutureWatcher>
#include <QWidget>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>

#include "engine/train/attribution.h"
#include "ui/run_picker.h"

class QComboBox;
class QCustomPlot;
class QCPColorMap;
class QCPColorScale;
class QLabel;
class QPushButton;

namespace hl::ui {

class PlotZoom;

class AttributionView : public QWidget {
  Q_OBJECT
 public:
  explicit AttributionView(QWidget* parent = nullptr);
  ~AttributionView() override;  // cancels a computation and waits for its thread

  void setDbPath(const QString& path) { db_path_ = path; }
  void setDataDirSource(std::function<QString()> f) { data_dir_ = std::move(f); }
  // The runs offered (id, label); the one shown stays when it is still offered.
  void setRuns(const QList<QPair<qint64, QString>>& runs) { run_->setRuns(runs); }
  qint64 selectedRun() const { return run_->selectedRun(); }
  void selectRun(qint64 id) { run_->selectRun(id); }
  // Starts computing the selected run's attribution on a worker thread; false when one runs.
  bool compute();
  void cancel();
  bool busy() const { return watcher_ != nullptr && watcher_->isRunning(); }
  // The last result (for the run it names), nullptr when none.
  const hl::train::Attribution* result() const { return result_ ? &*result_ : nullptr; }
  QString statusText() const;
  // The shown table as CSV: level, block, then the gain (accuracy points) per task; "" or the error.
  QString exportCsv(const QString& path) const;
  // Hover text of the heatmap cell (row: a level, or levels().size() for every level; task j).
  QString cellToolTip(int row, int task) const;
  QCustomPlot* plot() const { return plot_; }
  QPushButton* computeButton() const { return compute_; }
  void setDark(bool dark);

 Q_SIGNALS:
  void finished(bool ok);  // after a computation ended (ok: a result is shown)

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  struct Outcome {
    std::optional<hl::train::Attribution> result;
    QString error;
  };
  void draw();
  void onFinished();
  QString tipAt(const QPointF& pos) const;  // the cell's tooltip at a plot position, "" outside

  QString help_;  // what the plot shows (its tooltip away from the cells)
  QString db_path_;
  std::function<QString()> data_dir_;
  RunPicker* run_ = nullptr;
  QPushButton *compute_ = nullptr, *cancel_ = nullptr, *export_ = nullptr;
  QLabel* status_ = nullptr;
  QCustomPlot* plot_ = nullptr;
  QCPColorMap* map_ = nullptr;
  QCPColorScale* scale_ = nullptr;
  PlotZoom* zoom_ = nullptr;
  QFutureWatcher<Outcome>* watcher_ = nullptr;
  std::shared_ptr<std::atomic<bool>> cancel_flag_;
  std::optional<hl::train::Attribution> result_;
  bool dark_ = false;
};

}  // namespace hl::ui
