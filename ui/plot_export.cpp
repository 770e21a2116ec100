#include "ui/plot_export.h"
#include "ui/plot_util.h"

#include <QApplication>
#include <QFileDialog>
#include <QFileInfo>
#include <QHelpEvent>
#include <QMenu>
#include <QMessageBox>
#include <QPainter>
#include <QPalette>
#include <QSvgGenerator>
#include <QToolTip>
#include <cmath>
#include <qcustomplot.h>

namespace hl::ui {

QString savePlot(QCustomPlot* plot, const QString& path, int width, int height) {
  const QString ext = QFileInfo(path).suffix().toLower();
  const int w = width > 0 ? width : std::max(plot->width(), 400);
  const int h = height > 0 ? height : std::max(plot->height(), 300);
  bool ok = false;
  if (ext == "png") {
    ok = plot->savePng(path, w, h);
  } else if (ext == "pdf") {
    ok = plot->savePdf(path, w, h);
  } else if (ext == "svg") {
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(QSize(w, h));
    gen.setViewBox(QRect(0, 0, w, h));
    gen.setTitle(QFileInfo(path).completeBaseName());
    QCPPainter painter;
    if (painter.begin(&gen)) {
      plot->toPainter(&painter, w, h);
      painter.end();
      ok = QFileInfo(path).size() > 0;
    }
  } else {
    return QObject::tr("%1: unknown image type '%2' (use .png, .svg or .pdf)").arg(path, ext);
  }
  return ok ? QString() : QObject::tr("%1: could not write this file").arg(path);
}

void addPlotExportMenu(QCustomPlot* plot) {
  plot->setContextMenuPolicy(Qt::CustomContextMenu);
  QObject::connect(plot, &QWidget::customContextMenuRequested, plot, [plot](const QPoint& pos) {
    QMenu menu(plot);
    for (const char* ext : {"png", "svg", "pdf"}) {
      menu.addAction(QObject::tr("Save plot as %1…").arg(QString(ext).toUpper()), plot, [plot, ext] {
        QString f = QFileDialog::getSaveFileName(plot, QObject::tr("Save plot"), QString("plot.%1").arg(ext),
                                                 QString("*.%1").arg(ext));
        if (f.isEmpty()) return;
        QString err = savePlot(plot, f);
        if (!err.isEmpty()) QMessageBox::warning(plot, QObject::tr("Save plot"), err);
      });
    }
    menu.exec(plot->mapToGlobal(pos));
  });
}

bool darkPalette() {
  return qApp->palette().color(QPalette::Window).lightness() < 128;
}

void stylePlot(QCustomPlot* plot, bool dark) {
  QColor bg = dark ? QColor(0x23, 0x26, 0x2e) : QColor(Qt::white);
  QColor fg = dark ? QColor(0xd8, 0xdc, 0xe4) : QColor(0x20, 0x20, 0x20);
  QColor grid = dark ? QColor(0x3a, 0x3f, 0x4b) : QColor(0xe2, 0xe2, 0xe2);
  plot->setBackground(bg);
  for (auto* rect : plot->axisRects()) {
    rect->setBackground(bg);
    for (auto* ax : rect->axes()) {
      ax->setBasePen(QPen(fg));
      ax->setTickPen(QPen(fg));
      ax->setSubTickPen(QPen(fg));
      ax->setTickLabelColor(fg);
      ax->setLabelColor(fg);
      ax->grid()->setPen(QPen(grid, 1, Qt::DotLine));
    }
  }
  if (plot->legend) {
    plot->legend->setBrush(QBrush(bg));
    plot->legend->setTextColor(fg);
    plot->legend->setBorderPen(QPen(grid));
  }
  for (int i = 0; i < plot->plotLayout()->elementCount(); ++i)
    if (auto* t = qobject_cast<QCPTextElement*>(plot->plotLayout()->elementAt(i))) t->setTextColor(fg);
}

bool heatmapCellAt(const QCustomPlot* plot, const QPointF& pos, int* row, int* col) {
  if (!plot->axisRect()->rect().contains(pos.toPoint())) return false;
  *col = int(std::lround(plot->xAxis->pixelToCoord(pos.x())));
  *row = int(std::lround(plot->yAxis->pixelToCoord(pos.y())));
  return true;
}

bool showHeatmapToolTip(QCustomPlot* plot, QEvent* event, const std::function<QString(const QPointF&)>& tipAt,
                        const QString& fallback) {
  if (event->type() != QEvent::ToolTip) return false;
  auto* help = static_cast<QHelpEvent*>(event);
  const QString tip = tipAt(help->pos());
  QToolTip::showText(help->globalPos(), tip.isEmpty() ? fallback : tip, plot);
  return true;
}

void followHeatmapCells(QCustomPlot* plot, QObject* context, const std::function<QString(const QPointF&)>& tipAt) {
  plot->setMouseTracking(true);
  QObject::connect(plot, &QCustomPlot::mouseMove, context, [plot, tipAt](QMouseEvent* ev) {
    if (ev->buttons() & Qt::LeftButton) return;
    const QString tip = tipAt(ev->position());
    if (tip.isEmpty())
      QToolTip::hideText();
    else
      QToolTip::showText(ev->globalPosition().toPoint(), tip, plot);
  });
}

void padValueRange(QCPAxis* axis) {
  const QCPRange r = axis->range();
  const auto [lo, hi] = padded_range(r.lower, r.upper, axis->scaleType() == QCPAxis::stLogarithmic);
  axis->setRange(lo, hi);
}

void setLogScale(QCPAxis* axis, bool log) {
  const bool is_log = axis->scaleType() == QCPAxis::stLogarithmic;
  const bool log_ticker = !axis->ticker().dynamicCast<QCPAxisTickerLog>().isNull();
  if (is_log == log && log_ticker == log) return;
  axis->setScaleType(log ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
  if (log) {
    QSharedPointer<QCPAxisTickerLog> t(new QCPAxisTickerLog);
    t->setSubTickCount(8);
    axis->setTicker(t);
  } else {
    axis->setTicker(QSharedPointer<QCPAxisTicker>(new QCPAxisTicker));
  }
}

std::pair<QCPColorMap*, QCPColorScale*> addHeatmap(QCustomPlot* plot) {
  auto* map = new QCPColorMap(plot->xAxis, plot->yAxis);
  map->setInterpolate(false);
  auto* scale = new QCPColorScale(plot);
  plot->plotLayout()->addElement(0, 1, scale);
  map->setColorScale(scale);
  auto* group = new QCPMarginGroup(plot);
  plot->axisRect()->setMarginGroup(QCP::msTop | QCP::msBottom, group);
  scale->setMarginGroup(QCP::msTop | QCP::msBottom, group);
  return {map, scale};
}

}  // namespace hl::ui
