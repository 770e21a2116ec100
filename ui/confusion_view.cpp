#include "ui/confusion_view.h"
#include "ui/plural.h"

#include <QCheckBox>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QMessageBox>
#include <QPushButton>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <qcustomplot.h>
#include <tuple>

#include "ui/plot_export.h"
#include "ui/plot_zoom.h"

namespace hl::ui {

namespace {
QString className(const hl::metrics::ConfusionMatrix& m, int k) {
  return m.names[k].empty() ? QObject::tr("class %1").arg(m.classes[k]) : QString::fromStdString(m.names[k]);
}
}  // namespace

ConfusionView::ConfusionView(QWidget* parent) : QWidget(parent) {
  task_ = new QComboBox(this);
  task_->setObjectName("confusionTask");
  task_->setToolTip(tr("The evaluation after this task: class-IL predictions over the classes seen so far"));
  normalise_ = new QCheckBox(tr("Normalise rows"), this);
  normalise_->setObjectName("confusionNormalise");
  normalise_->setChecked(true);
  normalise_->setToolTip(tr("Each row divided by its sum: the share of the true class's rows predicted as each class"));
  export_ = new QPushButton(tr("Export CSV…"), this);
  export_->setObjectName("confusionExport");
  info_ = new QLabel(this);
  info_->setObjectName("confusionInfo");
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("After task"), this));
  bar->addWidget(task_);
  bar->addWidget(normalise_);
  bar->addWidget(info_, 1);
  bar->addWidget(export_);

  plot_ = new QCustomPlot(this);
  plot_->setObjectName("confusionPlot");
  plot_->setMinimumSize(260, 200);
  help_ =
      (tr("Confusion matrix: rows = true class, columns = predicted class, classes grouped by task "
          "(T1, T2, …). Hover a cell for the class names.\nWheel: zoom; drag: pan; double-click: "
          "reset; right-click: save as PNG, SVG or PDF."));
  plot_->installEventFilter(this);
  addPlotExportMenu(plot_);
  std::tie(map_, scale_) = addHeatmap(plot_);
  QCPColorGradient g(QCPColorGradient::gpThermal);
  g.setNanHandling(QCPColorGradient::nhTransparent);
  map_->setGradient(g);
  scale_->setGradient(g);
  plot_->xAxis->setLabel(tr("predicted class"));
  plot_->yAxis->setLabel(tr("true class"));
  plot_->yAxis->setRangeReversed(true);
  plot_->setMouseTracking(true);
  zoom_ = new PlotZoom(plot_, [this] {
    const double n = current() ? double(current()->size()) : 1.0;
    plot_->xAxis->setRange(-0.5, n - 0.5);
    plot_->yAxis->setRange(-0.5, n - 0.5);
  });
  followHeatmapCells(plot_, this, [this](const QPointF& p) { return tipAt(p); });

  auto* lay = new QVBoxLayout(this);
  lay->setContentsMargins(0, 0, 0, 0);
  lay->addLayout(bar);
  lay->addWidget(plot_, 1);
  connect(task_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] {
    zoom_->release();
    draw();
  });
  connect(normalise_, &QCheckBox::toggled, this, [this] { draw(); });
  connect(export_, &QPushButton::clicked, this, [this] {
    const auto* m = current();
    if (!m) return;
    const QString path = QFileDialog::getSaveFileName(this, tr("Export confusion matrix"),
                                                      QString("confusion_%1_task%2.csv")
                                                          .arg(run_label_.isEmpty() ? QString("run") : run_label_)
                                                          .arg(m->after_task + 1),
                                                      tr("CSV (*.csv)"));
    if (path.isEmpty()) return;
    const QString err = exportCsv(path);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Export confusion matrix"), err);
  });
  setDark(darkPalette());
  draw();
}

QString ConfusionView::tipAt(const QPointF& pos) const {
  int r = 0, c = 0;
  return current() && heatmapCellAt(plot_, pos, &r, &c) ? cellToolTip(r, c) : QString();
}

bool ConfusionView::eventFilter(QObject* watched, QEvent* event) {
  // Qt's delayed tooltip over the plot: the cell under the pointer, else what the plot is.
  if (watched == plot_ && showHeatmapToolTip(
                              plot_, event, [this](const QPointF& p) { return tipAt(p); }, help_))
    return true;
  return QWidget::eventFilter(watched, event);
}

void ConfusionView::setMatrices(std::vector<hl::metrics::ConfusionMatrix> matrices, const QString& run_label) {
  std::sort(matrices.begin(), matrices.end(), [](const auto& a, const auto& b) { return a.after_task < b.after_task; });
  const int was = current() ? current()->after_task : -1;
  const bool was_latest = task_->currentIndex() < 0 || task_->currentIndex() == task_->count() - 1;
  const bool same_run = run_label == run_label_;
  matrices_ = std::move(matrices);
  run_label_ = run_label;
  task_->blockSignals(true);
  task_->clear();
  for (const auto& m : matrices_) task_->addItem(tr("%1").arg(m.after_task + 1), m.after_task);
  int idx = task_->findData(was);
  if (idx < 0 || !same_run || (follow_latest_ && was_latest)) idx = task_->count() - 1;
  task_->setCurrentIndex(idx);
  task_->blockSignals(false);
  if (!same_run || idx != task_->findData(was)) zoom_->release();
  draw();
}

void ConfusionView::clear() {
  setMatrices({}, {});
}

bool ConfusionView::selectTask(int after_task) {
  const int i = task_->findData(after_task);
  if (i < 0) return false;
  task_->setCurrentIndex(i);
  return true;
}

void ConfusionView::setNormalised(bool on) {
  normalise_->setChecked(on);
}

bool ConfusionView::normalised() const {
  return normalise_->isChecked();
}

const hl::metrics::ConfusionMatrix* ConfusionView::current() const {
  const int i = task_->currentIndex();
  return i >= 0 && i < int(matrices_.size()) ? &matrices_[i] : nullptr;
}

QString ConfusionView::exportCsv(const QString& path) const {
  const auto* m = current();
  if (!m) return tr("no confusion matrix to export");
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate)) return tr("cannot write %1: %2").arg(path, f.errorString());
  const std::string csv = hl::metrics::confusion_csv(*m, normalised());
  if (f.write(csv.data(), qint64(csv.size())) != qint64(csv.size()))
    return tr("cannot write %1: %2").arg(path, f.errorString());
  return {};
}

QString ConfusionView::cellToolTip(int r, int c) const {
  const auto* m = current();
  if (!m || r < 0 || c < 0 || r >= int(m->size()) || c >= int(m->size())) return {};
  const int64_t n = m->rowSum(size_t(r)), k = m->at(size_t(r), size_t(c));
  return tr("<b>true</b> %1 <i>(class %2, task %3)</i><br><b>predicted</b> %4 <i>(class %5, task %6)</i><br>"
            "%7 of %8 rows (%9 %)%10")
      .arg(className(*m, r).toHtmlEscaped())
      .arg(m->classes[r])
      .arg(m->tasks[r] + 1)
      .arg(className(*m, c).toHtmlEscaped())
      .arg(m->classes[c])
      .arg(m->tasks[c] + 1)
      .arg(k)
      .arg(n)
      .arg(n ? 100.0 * double(k) / double(n) : 0.0, 0, 'f', 1)
      .arg(r == c ? tr("<br>diagonal: this class's recall") : QString());
}

void ConfusionView::setDark(bool dark) {
  dark_ = dark;
  stylePlot(plot_, dark_);
  draw();
}

void ConfusionView::draw() {
  plot_->clearItems();
  const auto* m = current();
  export_->setEnabled(m != nullptr);
  if (!m || m->size() == 0) {
    map_->data()->clear();
    scale_->setVisible(false);  // no colour scale beside an empty plot
    info_->setText(matrices_.empty() ? tr("no confusion matrix yet (one per task end)") : QString());
    plot_->replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  const int n = int(m->size());
  const bool norm = normalised();
  map_->data()->setSize(n, n);
  map_->data()->setRange(QCPRange(0, std::max(1, n - 1)), QCPRange(0, std::max(1, n - 1)));
  int64_t top = 1;
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      top = std::max(top, m->at(size_t(r), size_t(c)));
      map_->data()->setCell(c, r, norm ? m->rowShare(size_t(r), size_t(c)) : double(m->at(size_t(r), size_t(c))));
    }
  const QCPRange range(0, norm ? 1.0 : double(top));
  map_->setDataRange(range);
  scale_->setVisible(true);
  scale_->setDataRange(range);
  scale_->axis()->setLabel(norm ? tr("share of the true class's rows") : tr("rows"));
  // Task blocks: a line at each boundary, the task's name at the middle of its block.
  QSharedPointer<QCPAxisTickerText> ticks(new QCPAxisTickerText);
  int start = 0;
  const QColor sep = dark_ ? QColor(220, 220, 220, 150) : QColor(90, 90, 90, 150);
  for (int k = 1; k <= n; ++k) {
    if (k < n && m->tasks[k] == m->tasks[start]) continue;
    ticks->addTick((start + k - 1) / 2.0, tr("T%1").arg(m->tasks[start] + 1));
    if (k < n)
      for (bool vertical : {true, false}) {
        auto* line = new QCPItemLine(plot_);
        line->setPen(QPen(sep, 1, Qt::DashLine));
        const double b = k - 0.5;
        line->start->setCoords(vertical ? b : -0.5, vertical ? -0.5 : b);
        line->end->setCoords(vertical ? b : n - 0.5, vertical ? n - 0.5 : b);
      }
    start = k;
  }
  plot_->xAxis->setTicker(ticks);
  plot_->yAxis->setTicker(ticks);
  if (!zoom_->userRange()) {
    plot_->xAxis->setRange(-0.5, n - 0.5);
    plot_->yAxis->setRange(-0.5, n - 0.5);
  }
  int tasks = 0;
  for (int t : m->tasks) tasks = std::max(tasks, t + 1);
  int64_t correct = 0;
  for (int r = 0; r < n; ++r) correct += m->at(size_t(r), size_t(r));
  info_->setText(tr("%1 of %2 · %3 rows · diagonal %4")
                     .arg(countOf(n, tr("class"), tr("classes")), countOf(tasks, tr("task"), tr("tasks")))
                     .arg(m->total())
                     .arg(m->total() ? double(correct) / double(m->total()) : 0.0, 0, 'f', 3));
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace hl::ui
