#include "ui/attribution_view.h"

#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QHBoxLayout>
#include <QHelpEvent>
#include <QLabel>
#include <QMessageBox>
#include <QPointer>
#include <QPushButton>
#include <QToolTip>
#include <QVBoxLayout>
#include <QtConcurrent>
#include <cmath>
#include <qcustomplot.h>
#include <tuple>

#include "engine/data/dataset.h"
#include "ui/plot_export.h"
#include "ui/plot_zoom.h"

namespace hl::ui {

namespace {
QString pointsText(double v) {
  return std::isnan(v) ? QStringLiteral("–") : QString::asprintf("%+.1f", 100 * v);
}
}  // namespace

AttributionView::AttributionView(QWidget* parent) : QWidget(parent) {
  run_ = new RunPicker(this);
  run_->setObjectName("attributionRun");
  compute_ = new QPushButton(tr("Compute"), this);
  compute_->setObjectName("attributionCompute");
  compute_->setToolTip(
      tr("For each level and each task j: put the level back to its state at the end of task j (the rest final) "
         "and measure task j's accuracy; runs on a worker thread"));
  cancel_ = new QPushButton(tr("Cancel"), this);
  cancel_->setEnabled(false);
  export_ = new QPushButton(tr("Export CSV…"), this);
  export_->setObjectName("attributionExport");
  export_->setEnabled(false);
  status_ = new QLabel(tr("Pick a finished run and press Compute."), this);
  status_->setObjectName("attributionStatus");
  status_->setWordWrap(true);
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("Run"), this));
  bar->addWidget(run_, 1);
  bar->addWidget(compute_);
  bar->addWidget(cancel_);
  bar->addWidget(export_);

  plot_ = new QCustomPlot(this);
  plot_->setObjectName("attributionPlot");
  plot_->setMinimumSize(260, 180);
  help_ =
      (tr("Forgetting attribution: gain in accuracy points on task j when the level is put back to its "
          "state at the end of task j (red: the level's drift cost task j that much). Gains of "
          "different levels do not add up.\nWheel: zoom; drag: pan; double-click: reset; right-click: "
          "save as PNG, SVG or PDF."));
  plot_->installEventFilter(this);
  addPlotExportMenu(plot_);
  std::tie(map_, scale_) = addHeatmap(plot_);
  // Diverging, white at 0: red where putting the level back recovers task j, blue where it hurts.
  QCPColorGradient g;
  g.clearColorStops();
  g.setColorStopAt(0, QColor(59, 76, 192));
  g.setColorStopAt(0.5, QColor(242, 242, 242));
  g.setColorStopAt(1, QColor(180, 4, 38));
  g.setNanHandling(QCPColorGradient::nhTransparent);
  map_->setGradient(g);
  scale_->setGradient(g);
  scale_->axis()->setLabel(tr("gain, accuracy points"));
  plot_->xAxis->setLabel(tr("task j (level restored to its end)"));
  plot_->yAxis->setRangeReversed(true);
  plot_->setMouseTracking(true);
  zoom_ = new PlotZoom(plot_, [this] { draw(); });
  followHeatmapCells(plot_, this, [this](const QPointF& p) { return tipAt(p); });

  auto* lay = new QVBoxLayout(this);
  lay->setContentsMargins(0, 0, 0, 0);
  lay->addLayout(bar);
  lay->addWidget(status_);
  lay->addWidget(plot_, 1);
  connect(compute_, &QPushButton::clicked, this, [this] { compute(); });
  connect(cancel_, &QPushButton::clicked, this, &AttributionView::cancel);
  connect(export_, &QPushButton::clicked, this, [this] {
    if (!result_) return;
    const QString path = QFileDialog::getSaveFileName(
        this, tr("Export attribution"), QString("attribution_run%1.csv").arg(result_->run_id), tr("CSV (*.csv)"));
    if (path.isEmpty()) return;
    const QString err = exportCsv(path);
    if (!err.isEmpty()) QMessageBox::warning(this, tr("Export attribution"), err);
  });
  setDark(darkPalette());
}

AttributionView::~AttributionView() {
  if (watcher_) {
    cancel();
    watcher_->waitForFinished();
  }
}

QString AttributionView::tipAt(const QPointF& pos) const {
  int r = 0, j = 0;
  return result_ && heatmapCellAt(plot_, pos, &r, &j) ? cellToolTip(r, j) : QString();
}

bool AttributionView::eventFilter(QObject* watched, QEvent* event) {
  // Qt's delayed tooltip over the plot: the cell under the pointer, else what the plot shows.
  if (watched == plot_ && showHeatmapToolTip(
                              plot_, event, [this](const QPointF& p) { return tipAt(p); }, help_))
    return true;
  return QWidget::eventFilter(watched, event);
}

bool AttributionView::compute() {
  if (busy()) return false;
  const qint64 id = selectedRun();
  if (id <= 0 || db_path_.isEmpty()) {
    status_->setText(tr("No run to attribute: open a run database and compare a finished run."));
    return false;
  }
  if (!watcher_) {
    watcher_ = new QFutureWatcher<Outcome>(this);
    connect(watcher_, &QFutureWatcher<Outcome>::finished, this, &AttributionView::onFinished);
  }
  cancel_flag_ = std::make_shared<std::atomic<bool>>(false);
  const std::string db = db_path_.toStdString();
  const std::string data_dir = hl::data::resolve_data_dir(data_dir_ ? data_dir_().toStdString() : std::string());
  auto flag = cancel_flag_;
  QPointer<AttributionView> self(this);
  auto say = [self](const QString& text) {
    QMetaObject::invokeMethod(
        self.data(),
        [self, text] {
          if (self) self->status_->setText(text);
        },
        Qt::QueuedConnection);
  };
  status_->setText(tr("run %1: loading its data and snapshots…").arg(id));
  compute_->setEnabled(false);
  cancel_->setEnabled(true);
  watcher_->setFuture(QtConcurrent::run([db, data_dir, id, flag, say]() {
    Outcome out;
    hl::train::AttributionOptions opt;
    opt.data_dir = data_dir;
    opt.cancel = flag.get();
    opt.progress = [say, id](int done, int total, const std::string& what) {
      say(QObject::tr("run %1: %2 of %3 evaluations (%4)")
              .arg(id)
              .arg(done)
              .arg(total)
              .arg(QString::fromStdString(what)));
    };
    opt.waiting = [say, id] {
      say(QObject::tr("run %1: waiting for the training run in this window to end (building a model would change "
                      "its random numbers)")
              .arg(id));
    };
    try {
      out.result = hl::train::attribute_forgetting(db, id, opt);
    } catch (const std::exception& e) {
      out.error = QString::fromUtf8(e.what());
    }
    return out;
  }));
  return true;
}

void AttributionView::cancel() {
  if (cancel_flag_) cancel_flag_->store(true);
}

void AttributionView::onFinished() {
  Outcome out = watcher_->result();
  compute_->setEnabled(true);
  cancel_->setEnabled(false);
  if (out.result) {
    result_ = std::move(out.result);
    zoom_->release();
    status_->setText(
        tr("run %1: gain in accuracy points on task j with one level back at its state after task j, the rest "
           "final; the last row restores every level at once. Levels interact: the gains do not add up. %2")
            .arg(result_->run_id)
            .arg(result_->exact ? tr("Snapshots check: R[j][j] and the final accuracies reproduced bit for bit.")
                                : tr("Snapshots check: NOT reproduced bit for bit (another machine or LibTorch?).")));
  } else {
    status_->setText(out.error);
  }
  export_->setEnabled(result_.has_value());
  draw();
  Q_EMIT finished(out.result.has_value());
}

QString AttributionView::statusText() const {
  return status_->text();
}

QString AttributionView::exportCsv(const QString& path) const {
  if (!result_) return tr("no attribution to export");
  const auto& a = *result_;
  QString csv = "level,block";
  for (int j = 0; j + 1 < a.num_tasks; ++j) csv += QString(",task%1").arg(j + 1);
  csv += "\n";
  auto row = [&](const QString& name, int block, const std::vector<double>& v) {
    csv += "\"" + QString(name).replace("\"", "\"\"") + "\"," + QString::number(block);
    for (int j = 0; j + 1 < a.num_tasks; ++j)
      csv += "," + (std::isnan(v[j]) ? QString() : QString::asprintf("%+.3f", 100 * v[j]));
    csv += "\n";
  };
  for (size_t l = 0; l < a.levels.size(); ++l)
    row(QString::fromStdString(a.levels[l].label), a.levels[l].block, a.gain[l]);
  row(tr("every level at once"), -1, a.gain_all);
  row(tr("forgetting"), -1, a.forgetting);
  QFile f(path);
  if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(csv.toUtf8()) < 0)
    return tr("cannot write %1: %2").arg(path, f.errorString());
  return {};
}

QString AttributionView::cellToolTip(int row, int j) const {
  if (!result_) return {};
  const auto& a = *result_;
  const int L = int(a.levels.size());
  if (row < 0 || row > L || j < 0 || j + 1 >= a.num_tasks) return {};
  const double g = row < L ? a.gain[row][j] : a.gain_all[j];
  const QString who = row < L ? QString::fromStdString(a.levels[row].label) : tr("every level at once");
  QString size = row < L ? tr(" (%1 entries)").arg(a.levels[row].numel) : QString();
  return tr("<b>%1</b>%2 back at the end of task %3: task %3 accuracy %4 points over the final model<br>"
            "task %3: R[%3][%3] = %5 at its end, %6 final; forgetting %7 points<br>"
            "every level at once: %8 points")
      .arg(who.toHtmlEscaped(), size)
      .arg(j + 1)
      .arg(pointsText(g))
      .arg(a.acc_at_end[j], 0, 'f', 4)
      .arg(a.final_acc[j], 0, 'f', 4)
      .arg(100 * a.forgetting[j], 0, 'f', 1)
      .arg(pointsText(a.gain_all[j]));
}

void AttributionView::setDark(bool dark) {
  dark_ = dark;
  stylePlot(plot_, dark_);
  draw();
}

void AttributionView::draw() {
  plot_->clearItems();
  if (!result_ || result_->num_tasks < 2) {
    map_->data()->clear();
    scale_->setVisible(false);  // no colour scale beside an empty plot
    plot_->replot(QCustomPlot::rpQueuedReplot);
    return;
  }
  const auto& a = *result_;
  const int L = int(a.levels.size()), cols = a.num_tasks - 1, rows = L + 1;
  map_->data()->setSize(cols, rows);
  map_->data()->setRange(QCPRange(0, std::max(1, cols - 1)), QCPRange(0, std::max(1, rows - 1)));
  double top = 0.01;
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      const double v = r < L ? a.gain[r][j] : a.gain_all[j];
      map_->data()->setCell(j, r, 100 * v);
      if (!std::isnan(v)) top = std::max(top, std::abs(v));
    }
  const QCPRange range(-100 * top, 100 * top);  // symmetric: white is "no effect"
  map_->setDataRange(range);
  scale_->setVisible(true);
  scale_->setDataRange(range);
  QSharedPointer<QCPAxisTickerText> yt(new QCPAxisTickerText), xt(new QCPAxisTickerText);
  for (int r = 0; r < L; ++r) yt->addTick(r, QString::fromStdString(a.levels[r].label));
  yt->addTick(L, tr("every level at once"));
  for (int j = 0; j < cols; ++j) xt->addTick(j, tr("T%1").arg(j + 1));
  plot_->yAxis->setTicker(yt);
  plot_->xAxis->setTicker(xt);
  auto* sep = new QCPItemLine(plot_);  // the sum-free last row apart from the levels
  sep->setPen(QPen(dark_ ? QColor(220, 220, 220) : QColor(60, 60, 60), 1.2));
  sep->start->setCoords(-0.5, L - 0.5);
  sep->end->setCoords(cols - 0.5, L - 0.5);
  if (rows * cols <= 160) {
    for (int r = 0; r < rows; ++r)
      for (int j = 0; j < cols; ++j) {
        const double v = r < L ? a.gain[r][j] : a.gain_all[j];
        auto* t = new QCPItemText(plot_);
        t->position->setCoords(j, r);
        t->setText(pointsText(v));
        t->setFont(QFont(font().family(), cols <= 8 ? 8 : 6));
        t->setColor(std::abs(v) > 0.6 * top ? Qt::white : Qt::black);
      }
  }
  if (!zoom_->userRange()) {
    plot_->xAxis->setRange(-0.5, cols - 0.5);
    plot_->yAxis->setRange(-0.5, rows - 0.5);
  }
  plot_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace hl::ui
