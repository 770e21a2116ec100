// Saving a QCustomPlot as PNG, SVG or PDF (by the file's extension) and the right-click menu that
// offers it on every plot.
#pragma once
#include <QPointF>
#include <QString>
#include <functional>
#include <utility>

class QCustomPlot;
class QCPColorMap;
class QCPColorScale;
class QCPAxis;
class QEvent;
class QObject;

namespace hl::ui {

// Returns "" on success, else a message naming the file. Size 0 = the widget's current size.
QString savePlot(QCustomPlot* plot, const QString& path, int width = 0, int height = 0);
// Adds "Save plot as PNG/SVG/PDF…" to the plot's context menu.
void addPlotExportMenu(QCustomPlot* plot);
// Light or dark colours for a plot (axes, grid, text, background).
void stylePlot(QCustomPlot* plot, bool dark);
// Widens an axis's range by padded_range (ui/plot_util.h) after an automatic rescale.
void padValueRange(QCPAxis* axis);
// A logarithmic axis with decade ticks (QCPAxisTickerLog), or a linear one with the default ticker:
// the scale type alone left a linear ticker's labels crowded into the top decade.
void setLogScale(QCPAxis* axis, bool log);
bool darkPalette();

// A heatmap on the plot: a colour map on its axes (no interpolation) and a colour scale to its right,
// their top and bottom margins aligned. The caller sets the gradient.
std::pair<QCPColorMap*, QCPColorScale*> addHeatmap(QCustomPlot* plot);
// Heatmaps (cells centred on integer coordinates, x = column, y = row): the cell under a position
// in the plot widget; false outside the axis rect.
bool heatmapCellAt(const QCustomPlot* plot, const QPointF& pos, int* row, int* col);
// While the pointer moves over a heatmap (no button held), shows the text `tipAt` gives for its
// position at once, and hides it where that is empty; `context` owns the connection.
void followHeatmapCells(QCustomPlot* plot, QObject* context, const std::function<QString(const QPointF&)>& tipAt);
// Qt's delayed tooltip over a heatmap: the text `tipAt` gives for the pointer's position, or
// `fallback` (what the plot shows) when that is empty. True when `event` was a tooltip event.
bool showHeatmapToolTip(QCustomPlot* plot, QEvent* event, const std::function<QString(const QPointF&)>& tipAt,
                        const QString& fallback);

}  // namespace hl::ui
