// The Compare tab: selected runs' curves overlaid; runs that differ only by seed (same
// config_hash) drawn as mean ± 95% CI (Student t) with the seeds faint underneath; a diff-only
// table of their specs (by block and field); beside it, tabs: their accuracy matrices side by side,
// one run's task-end confusion matrix, and one run's per-level forgetting attribution.
#pragma once
#include <QWidget>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "ui/plot_util.h"

class QComboBox;
class QCustomPlot;
class QLabel;
class QTabWidget;
class QTableWidget;

namespace hl::ui {

struct CompareRun {
  qint64 id = 0;
  QString label;            // "run 3 · titans · seed 1"
  std::string config_hash;  // runs with the same hash are seeds of one configuration
  nlohmann::json spec;
  std::vector<hl::store::Series> series;
  std::vector<hl::store::AccuracyCell> cells;
  std::vector<hl::metrics::ConfusionMatrix> confusion;
};

class AblationView;
class AttributionView;
class ConfusionView;

// The spec fields whose values differ between the specs: rows of (path, value per spec), paths
// like "model.blocks[1].heads"; a field missing from a spec shows as "—".
std::vector<std::pair<std::string, std::vector<std::string>>> spec_diff(const std::vector<nlohmann::json>& specs);

class CompareView : public QWidget {
  Q_OBJECT
 public:
  explicit CompareView(QWidget* parent = nullptr);
  void setStore(hl::store::RunStore* db);
  // Where the attribution's worker finds the datasets (the Experiment tab's data folder).
  void setDataDirSource(std::function<QString()> f);
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
  QTabWidget* sideTabs() const { return side_; }
  ConfusionView* confusionView() const { return confusion_; }
  QComboBox* confusionRun() const { return confusion_run_; }
  AttributionView* attributionView() const { return attribution_; }
  AblationView* ablationView() const { return ablation_; }
  void showConfusionOf(qint64 run_id);  // the Confusion tab, on that run

 private:
  void prepare();
  void rebuildDiff();
  void fitDiffColumns();  // the field column and every run's column inside the table's width
  bool eventFilter(QObject* o, QEvent* e) override;
  void rebuildMatrices();
  void rebuildConfusion();

  hl::store::RunStore* db_ = nullptr;
  std::vector<CompareRun> runs_;
  QComboBox* metric_ = nullptr;
  QCustomPlot* curves_ = nullptr;
  QCustomPlot* matrices_ = nullptr;
  class PlotZoom* zoom_curves_ = nullptr;  // zoom and pan (plot_zoom.h)
  class PlotZoom* zoom_matrices_ = nullptr;
  std::string shown_key_;  // the metric drawn last
  QTableWidget* diff_ = nullptr;
  QTabWidget* side_ = nullptr;  // accuracy matrices | confusion | attribution | ablation
  QComboBox* confusion_run_ = nullptr;
  ConfusionView* confusion_ = nullptr;
  AttributionView* attribution_ = nullptr;
  AblationView* ablation_ = nullptr;
  QLabel* info_ = nullptr;
  int groups_ = 0;
  bool dirty_ = true;
};

}  // namespace hl::ui
