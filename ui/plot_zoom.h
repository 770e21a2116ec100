// Zoom and pan on a QCustomPlot: the wheel zooms (over an axis: that axis only), a left drag pans,
// a double-click gives the plot back its automatic ranges. Every axis rect of the plot shares its
// x range (the Live view's loss lanes move together). While the user has zoomed or panned, the
// owner keeps its hands off the ranges (userRange()); the reset callback redraws them.
#pragma once
#include <QObject>
#include <functional>

class QCustomPlot;
class QCPRange;
class QCPAxis;

namespace hl::ui {

class PlotZoom : public QObject {
  Q_OBJECT
 public:
  PlotZoom(QCustomPlot* plot, std::function<void()> on_reset);
  // Again after axis rects were added or removed (the loss lanes are rebuilt).
  void attach();
  bool userRange() const { return user_; }
  void reset();    // what a double-click does
  void release();  // the ranges are the owner's again, without redrawing

 private:
  void linkX(QCPAxis* from, const QCPRange& r);
  QCustomPlot* plot_;
  std::function<void()> reset_;
  bool user_ = false;
  bool linking_ = false;
};

}  // namespace hl::ui
