// Saving a QCustomPlot as PNG, SVG or PDF (by the file's extension) and the right-click menu that
// offers it on every plot.
#pragma once
#include <QString>

class QCustomPlot;

namespace hl::ui {

// Returns "" on success, else a message naming the file. Size 0 = the widget's current size.
QString savePlot(QCustomPlot* plot, const QString& path, int width = 0, int height = 0);
// Adds "Save plot as PNG/SVG/PDF…" to the plot's context menu.
void addPlotExportMenu(QCustomPlot* plot);
// Light or dark colours for a plot (axes, grid, text, background).
void stylePlot(QCustomPlot* plot, bool dark);
bool darkPalette();

}  // namespace hl::ui
