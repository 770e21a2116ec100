#include "ui/plot_zoom.h"

#include <qcustomplot.h>

namespace hl::ui {

PlotZoom::PlotZoom(QCustomPlot* plot, std::function<void()> on_reset)
    : QObject(plot), plot_(plot), reset_(std::move(on_reset)) {
  plot_->setInteractions(plot_->interactions() | QCP::iRangeDrag | QCP::iRangeZoom);
  // Only the user's own gestures mark the ranges as theirs (the owner's setRange calls do not).
  // The wheel over an axis zooms that axis only; anywhere else in a rect, both.
  connect(plot_, &QCustomPlot::mouseWheel, this, [this](QWheelEvent* e) {
    user_ = true;
    const QPointF p = e->position();
    for (auto* rect : plot_->axisRects()) {
      const QRect r = rect->rect();
      Qt::Orientations o = Qt::Horizontal | Qt::Vertical;
      if (p.x() < r.left() && p.y() >= r.top() && p.y() <= r.bottom())
        o = Qt::Vertical;
      else if (p.y() > r.bottom() && p.x() >= r.left() && p.x() <= r.right())
        o = Qt::Horizontal;
      rect->setRangeZoom(o);
    }
  });
  connect(plot_, &QCustomPlot::mouseMove, this, [this](QMouseEvent* e) {
    if (e->buttons() & Qt::LeftButton) user_ = true;
  });
  connect(plot_, &QCustomPlot::mouseDoubleClick, this, [this] { reset(); });
  attach();
}

void PlotZoom::attach() {
  for (auto* rect : plot_->axisRects()) {
    rect->setRangeDrag(Qt::Horizontal | Qt::Vertical);
    rect->setRangeZoom(Qt::Horizontal | Qt::Vertical);
    QCPAxis* x = rect->axis(QCPAxis::atBottom);
    disconnect(x, nullptr, this, nullptr);
    connect(x, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this, [this, x](const QCPRange& r) { linkX(x, r); });
  }
}

void PlotZoom::linkX(QCPAxis* from, const QCPRange& r) {
  if (linking_ || plot_->axisRects().size() < 2) return;
  linking_ = true;
  for (auto* rect : plot_->axisRects())
    if (QCPAxis* x = rect->axis(QCPAxis::atBottom); x != from) x->setRange(r);
  linking_ = false;
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

void PlotZoom::reset() {
  user_ = false;
  if (reset_) reset_();
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace hl::ui

namespace hl::ui {
void PlotZoom::release() {
  user_ = false;
}
}  // namespace hl::ui
