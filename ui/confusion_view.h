// A confusion-matrix heatmap (engine/metrics/confusion.h): one run's matrices, one per task end,
// with a task selector, rows normalised by their sum or raw counts, a colour scale, task blocks
// marked on both axes (T1, T2, …), the class names and counts on hover, zoom and pan, and CSV
// export. Sized for 70–150 classes: classes are named on hover, tasks on the axes. No engine
// calls: the owner hands it the matrices (Live: from the trainer's events; Compare: from the store).
#pragma once
#include <QWidget>
#include <vector>

#include "engine/metrics/confusion.h"

class QCheckBox;
class QComboBox;
class QCustomPlot;
class QCPColorMap;
class QCPColorScale;
class QLabel;
class QPushButton;

namespace hl::ui {

class PlotZoom;

class ConfusionView : public QWidget {
  Q_OBJECT
 public:
  explicit ConfusionView(QWidget* parent = nullptr);

  // The run's matrices, any order. The task shown stays when it is still there; else (and while
  // `followLatest` holds, as in the Live view) the latest.
  void setMatrices(std::vector<hl::metrics::ConfusionMatrix> matrices, const QString& run_label = {});
  void clear();
  void setFollowLatest(bool on) { follow_latest_ = on; }
  // Shows the matrix after task `after_task` (0-based); false when the run has none.
  bool selectTask(int after_task);
  void setNormalised(bool on);
  bool normalised() const;
  // The matrix shown, nullptr when none.
  const hl::metrics::ConfusionMatrix* current() const;
  int matrixCount() const { return int(matrices_.size()); }
  // Writes the matrix shown as CSV (as `hopelab-cli runs confusion --csv`, --normalise when the
  // view is normalised); "" or the error.
  QString exportCsv(const QString& path) const;
  // The hover text of cell (row r, column c) of the matrix shown.
  QString cellToolTip(int r, int c) const;
  QCustomPlot* plot() const { return plot_; }
  QComboBox* taskSelector() const { return task_; }
  void setDark(bool dark);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override;

 private:
  void draw();
  QString tipAt(const QPointF& pos) const;  // the cell's tooltip at a plot position, "" outside
  std::vector<hl::metrics::ConfusionMatrix> matrices_;
  QString help_;  // what the plot is (its tooltip away from the cells)
  QString run_label_;
  bool follow_latest_ = false;
  bool dark_ = false;
  QComboBox* task_ = nullptr;
  QCheckBox* normalise_ = nullptr;
  QPushButton* export_ = nullptr;
  QLabel* info_ = nullptr;
  QCustomPlot* plot_ = nullptr;
  QCPColorMap* map_ = nullptr;
  QCPColorScale* scale_ = nullptr;
  PlotZoom* zoom_ = nullptr;
};

}  // namespace hl::ui
