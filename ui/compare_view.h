// The Compare tab: selected runs' curves overlaid; runs that differ only by seed (same
// config_hash) drawn as mean ± 95% CI (Student t) with the seeds faint underneath; a diff-only
// table of their specs (by block and field); their accuracy matrices side by side.
#pragma once
#include <QWidget>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "ui/plot_util.h"

class QComboBox;
class QCustomPlot;
class QLabel;
class QTableWidget;

namespace hl::ui {

struct CompareRun {
  qint64 id = 0;
  QString label;            // "run 3 · titans · seed 1"
  std::string config_hash;  // runs with the same hash are seeds of one configuration
  nlohmann::json spec;
  std::vector<hl::store::Series> series;
  std::vector<hl::store::AccuracyCell> cells;
};

// The spec fields whose values differ between the specs: rows of (path, value per spec), paths
// like "model.blocks[1].heads"; a field missing from a spec shows as "—".
std::vector<std::pair<std::string, std::vector<std::string>>> spec_diff(const std::vector<nlohmann::json>& specs);

class CompareView : public QWidget {
  Q_OBJECT
 public:
  explicit CompareView(QWidget* parent = nullptr);
  void setStore(hl::store::RunStore* db) { db_ = db; }
  QString setRuns(const QList<qint64>& ids);  // loads them from the store; "" or an error
  void setData(std::vector<CompareRun> runs);
  void setMetric(const QString& key);  // "name|level", e.g. "loss|outer", "avg_acc|eval"
  QStringList metrics() const;
  double rebuild();  // recompute curves, seed bands and decimation, then replot; returns ms
  double render();   // replot (rebuilding first when the data or curve changed); returns ms
  int groupCount() const { return groups_; }
  int graphCount() const;
  QCustomPlot* curves() const { return curves_; }
  QTableWidget* diffTable() const { return diff_; }

 private:
  void prepare();
  void rebuildDiff();
  void rebuildMatrices();

  hl::store::RunStore* db_ = nullptr;
  std::vector<CompareRun> runs_;
  QComboBox* metric_ = nullptr;
  QCustomPlot* curves_ = nullptr;
  QCustomPlot* matrices_ = nullptr;
  class PlotZoom* zoom_curves_ = nullptr;  // zoom and pan (plot_zoom.h)
  class PlotZoom* zoom_matrices_ = nullptr;
  std::string shown_key_;  // the metric drawn last
  QTableWidget* diff_ = nullptr;
  QLabel* info_ = nullptr;
  int groups_ = 0;
  bool dirty_ = true;
};

}  // namespace hl::ui
