// The Live view: per-level loss lanes (ordered by clock, with each level's update ticks), memory
// drift per level, forgetting curves with task bands, and the accuracy-matrix heatmap beside the
// task-end confusion matrix (a tab each). Trainer
// events are drained from an EventFeed by a 40 ms timer (≤ 25 fps), appended with addData (or
// rebuilt, decimated, when long or when the view settings change) and drawn with a queued replot.
// A stored run is replayed from the run store through the same path.
#pragma once
#include <QPointer>
#include <QWidget>
#include <map>
#include <memory>
#include <vector>

#include "ui/run_data.h"

class QCustomPlot;
class QScrollArea;
class QCPGraph;
class QCPColorMap;
class QCPAxisRect;
class QCheckBox;
class QComboBox;
class QLabel;
class QSlider;
class QTabWidget;
class QTimer;
namespace hl::ui {
class ConfusionView;
class PlotZoom;
}  // namespace hl::ui

namespace hl::store {
class RunStore;
}

namespace hl::ui {

class EventFeed;

class LiveView : public QWidget {
  Q_OBJECT
 public:
  enum class XAxis { Step, Task, Samples };
  // What the upper-right plot shows: memory drift per level, the self-modifying Titans memory
  // diagnostics (mem.* series, docs/MEMORY.md "Diagnostics") or the pre-clip gradient norms per group.
  enum class Panel { Drift, Memory, Gradients };
  explicit LiveView(QWidget* parent = nullptr);
  ~LiveView() override;

  void setFeed(EventFeed* feed);  // live events (drained on the GUI thread)
  // Replays a stored run. One still being written (by a CLI process, say) is read again every
  // couple of seconds until it ends; `db` must outlive that (forgetStore() before closing it).
  // Returns "" or an error message.
  QString showStoredRun(hl::store::RunStore& db, qint64 run_id);
  void forgetStore();  // stops following a stored run (its database is about to close)
  void followLive();   // show the live run again

  void setSmoothing(double a);  // EMA factor 0 … 0.99
  void setLogY(bool on);
  void setXAxis(XAxis x);
  void setDark(bool dark);
  void setPanel(Panel p);
  Panel panel() const { return panel_; }

  // Drain the feed and redraw what changed (the timer calls this).
  void flush();
  const RunData& shown() const;
  int plottedPoints() const;  // data points now held by the graphs (tests, benchmark)
  int laneCount() const;
  QString titleText() const;  // the header line: run, status, step, task
  QList<QCustomPlot*> plots() const;
  QCustomPlot* lossPlot() const { return loss_; }
  PlotZoom* lossZoom() const { return zoom_loss_; }
  QCustomPlot* driftPlot() const { return drift_; }
  QCustomPlot* forgettingPlot() const { return forget_; }
  QCustomPlot* matrixPlot() const { return matrix_; }
  ConfusionView* confusionView() const { return confusion_; }
  QTabWidget* matrixTabs() const { return matrix_tabs_; }
  // Tooltip text for the heatmap cell (after_task, task), with the metric formulas.
  QString cellToolTip(int after_task, int task) const;

 Q_SIGNALS:
  void pointsAdded(int n);  // after a flush that appended points
  void progress(qint64 run_id, qint64 step, qint64 total_steps, int task, int num_tasks);
  void liveRunStarted(qint64 run_id);
  void liveRunEnded(qint64 run_id, const QString& status);

 private:
  struct Binding {
    QCPGraph* graph = nullptr;
    size_t done = 0;  // raw points already in the graph
    double ema = 0;   // smoothing state at `done`
    uint64_t version = 0;
    bool decimated = false;
  };
  void rebuildAll();
  void rebuildLanes();
  void redraw(bool force);
  void syncSeries(const SeriesData& s, Binding& b, bool force);
  bool drawBands();  // true when redrawn
  void drawMatrix();
  double mapX(double step) const;
  QCPGraph* graphFor(const SeriesData& s);

  RunData live_, replay_;
  bool showing_live_ = true;
  EventFeed* feed_ = nullptr;
  QTimer* timer_ = nullptr;
  QTimer* follow_stored_ = nullptr;  // re-reads a stored run that is still running
  hl::store::RunStore* stored_db_ = nullptr;
  QCustomPlot *loss_ = nullptr, *drift_ = nullptr, *forget_ = nullptr, *matrix_ = nullptr;
  // Zoom and pan (plot_zoom.h); while the user holds a range, redraw leaves that plot's ranges.
  PlotZoom *zoom_loss_ = nullptr, *zoom_drift_ = nullptr, *zoom_forget_ = nullptr, *zoom_matrix_ = nullptr;
  QCPColorMap* cmap_ = nullptr;
  ConfusionView* confusion_ = nullptr;
  QTabWidget* matrix_tabs_ = nullptr;  // the accuracy matrix | the confusion matrix
  uint64_t confusion_seen_ = ~0ull;
  int64_t confusion_run_ = -1;
  QLabel* title_ = nullptr;
  QWidget* plots_ = nullptr;  // the four plots
  QScrollArea* loss_scroll_ = nullptr;
  QCPAxisRect* x_row_ = nullptr;  // the lanes' shared x axis, a row of its own below them
  QLabel* empty_ = nullptr;       // shown instead while there is no run
  QSlider* smooth_ = nullptr;
  QCheckBox* log_ = nullptr;
  QComboBox* xaxis_ = nullptr;
  QComboBox* panel_box_ = nullptr;
  Panel panel_ = Panel::Drift;
  void updatePanelTitle();
  std::map<std::string, Binding> bind_;  // key: name|level|block
  std::map<std::string, QCPAxisRect*> lanes_;
  std::vector<std::string> lane_order_;
  double alpha_ = 0;
  bool logy_ = false;
  XAxis x_ = XAxis::Step;
  bool dark_ = false;
  int bands_tasks_ = -1;
  double bands_end_ = -1;
  uint64_t cells_seen_ = ~0ull;
  int points_ = 0;
};

}  // namespace hl::ui
