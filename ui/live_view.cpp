#include "ui/live_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QPushButton>
#include <QScrollArea>
#include <QSlider>
#include <QTabWidget>
#include <QTimer>
#include <QToolTip>
#include <cmath>
#include <qcustomplot.h>

#include "engine/common/error.h"
#include "engine/store/store.h"
#include "ui/confusion_view.h"
#include "ui/elided_label.h"
#include "ui/plot_export.h"
#include "ui/plot_util.h"
#include "ui/plot_zoom.h"
#include "ui/run_worker.h"
#include "ui/kind_text.h"

namespace hl::ui {
namespace {
// A loss lane's least height in pixels (curve, name, two tick labels).
constexpr int kMinLanePx = 36;
QColor laneLabelColor(bool dark) {
  return dark ? QColor(230, 230, 230) : QColor(40, 40, 40);
}
QColor taskLabelColor(bool dark) {
  return dark ? QColor(200, 200, 200) : QColor(90, 90, 90);
}

constexpr size_t kMaxDirect = 4000;  // beyond this a series is shown decimated
constexpr int kBuckets = 1500;       // min/max buckets (≤ 3000 drawn points)

QColor levelColor(int i) {
  static const QColor c[] = {QColor(0x1f, 0x77, 0xb4), QColor(0xff, 0x7f, 0x0e), QColor(0x2c, 0xa0, 0x2c),
                             QColor(0xd6, 0x27, 0x28), QColor(0x94, 0x67, 0xbd), QColor(0x8c, 0x56, 0x4b),
                             QColor(0xe3, 0x77, 0xc2), QColor(0x7f, 0x7f, 0x7f), QColor(0xbc, 0xbd, 0x22),
                             QColor(0x17, 0xbe, 0xcf)};
  return c[((i % 10) + 10) % 10];
}

std::string keyOf(const SeriesData& s) {
  return s.name + '|' + s.level + '|' + std::to_string(s.block);
}

// Puts a plot's legend where it hides the fewest plotted points (legend_spot): a fixed top-right
// legend covered the newest task's forgetting curve, which is where a task just trained sits, while
// a class-incremental run leaves the middle or the bottom right free. Approximate: the legend's size
// comes from its size hint and the axis rect's current size (the widget's, before the first layout).
void placeLegend(QCustomPlot* p) {
  if (!p->legend || !p->legend->visible() || p->legend->itemCount() == 0) return;
  QSize area = p->axisRect()->rect().size();
  if (area.width() < 40 || area.height() < 40) area = p->size() - QSize(60, 60);
  if (area.width() < 40 || area.height() < 40) return;
  const QSize ls = p->legend->minimumOuterSizeHint();
  const QCPRange xr = p->xAxis->range(), yr = p->yAxis->range();
  const bool logY = p->yAxis->scaleType() == QCPAxis::stLogarithmic;
  if (xr.size() <= 0 || yr.size() <= 0 || (logY && yr.lower <= 0)) return;
  const double ly0 = logY ? std::log(yr.lower) : 0, lys = logY ? std::log(yr.upper) - ly0 : 0;
  std::vector<XY> curves;
  for (int g = 0; g < p->graphCount(); ++g) {
    if (!p->graph(g)->visible()) continue;
    XY c;
    for (auto it = p->graph(g)->data()->constBegin(); it != p->graph(g)->data()->constEnd(); ++it) {
      c.x.push_back((it->key - xr.lower) / xr.size());
      c.y.push_back(logY ? (it->value > 0 ? (std::log(it->value) - ly0) / lys : NAN)
                         : (it->value - yr.lower) / yr.size());
    }
    curves.push_back(std::move(c));
  }
  static const Qt::Alignment align[] = {Qt::AlignTop | Qt::AlignRight,    Qt::AlignVCenter | Qt::AlignRight,
                                        Qt::AlignBottom | Qt::AlignRight, Qt::AlignTop | Qt::AlignLeft,
                                        Qt::AlignVCenter | Qt::AlignLeft, Qt::AlignBottom | Qt::AlignLeft};
  const LegendSpot spot = legend_spot(curves, (ls.width() + 10.0) / area.width(), (ls.height() + 10.0) / area.height());
  p->axisRect()->insetLayout()->setInsetAlignment(0, align[static_cast<int>(spot)]);
}

// A plot with a short title (it must fit 1024 px windows) and the long reading in its tooltip.
QCustomPlot* newPlot(QWidget* parent, const QString& title, const QString& reading) {
  auto* p = new QCustomPlot(parent);
  p->setObjectName(title);
  p->setToolTip(reading + QObject::tr("\nWheel: zoom (over an axis: that axis); drag: pan; double-click: reset; "
                                      "right-click: save as PNG, SVG or PDF."));
  p->setMinimumSize(260, 180);
  p->setNoAntialiasingOnDrag(true);
  p->plotLayout()->insertRow(0);
  auto* t = new QCPTextElement(p, title, QFont(p->font().family(), 10, QFont::Bold));
  p->plotLayout()->addElement(0, 0, t);
  addPlotExportMenu(p);
  return p;
}

}  // namespace

LiveView::LiveView(QWidget* parent) : QWidget(parent) {
  title_ = new ElidedLabel(tr("No run yet: launch one in the Experiment tab or open one from the Runs tab."), this);
  title_->setObjectName("liveTitle");
  smooth_ = new QSlider(Qt::Horizontal, this);
  smooth_->setRange(0, 99);
  smooth_->setFixedWidth(140);
  smooth_->setToolTip(tr("EMA smoothing factor (0 = raw)"));
  log_ = new QCheckBox(tr("Log y"), this);
  xaxis_ = new QComboBox(this);
  xaxis_->addItems({tr("x: step"), tr("x: task"), tr("x: samples seen")});
  panel_box_ = new QComboBox(this);
  panel_box_->setObjectName("livePanel");
  panel_box_->addItems({tr("Drift"), tr("Memory diagnostics"), tr("Gradient norms")});
  panel_box_->setToolTip(
      tr("What the upper-right plot shows: memory drift per level; the self-modifying Titans "
         "memories' diagnostics at each evaluation (docs/MEMORY.md); or the gradient norm of "
         "each parameter group before clipping"));
  auto* follow = new QPushButton(tr("Follow live run"), this);
  auto* bar = new QHBoxLayout;
  bar->addWidget(title_, 1);
  bar->addWidget(new QLabel(tr("Smoothing"), this));
  bar->addWidget(smooth_);
  bar->addWidget(log_);
  bar->addWidget(xaxis_);
  bar->addWidget(panel_box_);
  bar->addWidget(follow);

  loss_ = newPlot(this, tr("Loss per level"), tr("Loss per level: lanes ordered by clock; dots = level updates"));
  drift_ = newPlot(this, tr("Memory drift per level"),
                   tr("Memory drift per level: solid since the task started, dashed since the run started"));
  forget_ = newPlot(this, tr("Forgetting curves"),
                    tr("Forgetting curves: class-IL accuracy per task; the task being trained is shaded"));
  matrix_ = newPlot(this, tr("Accuracy matrix R[i][j]"),
                    tr("Accuracy matrix R[i][j]: accuracy on task j after training task i (hover a cell for the "
                       "metrics)"));
  for (auto* p : {drift_, forget_}) {
    p->legend->setVisible(true);
    p->legend->setFont(QFont(p->font().family(), 7));
    p->legend->setRowSpacing(-3);
    // Many tasks or levels: columns of 4 entries, so the legend stays small; placeLegend (at each
    // redraw) moves it to the corner or side where it hides the fewest points.
    p->legend->setFillOrder(QCPLayoutGrid::foRowsFirst);
    p->legend->setWrap(4);
    p->legend->setColumnSpacing(4);
    p->axisRect()->insetLayout()->setInsetAlignment(0, Qt::AlignTop | Qt::AlignRight);
  }
  forget_->yAxis->setRange(0, 1);
  forget_->yAxis->setLabel(tr("class-IL accuracy"));
  drift_->yAxis->setLabel(tr("‖θ − θ₀‖ / ‖θ₀‖"));

  zoom_loss_ = new PlotZoom(loss_, [this] { redraw(true); });
  zoom_drift_ = new PlotZoom(drift_, [this] { redraw(true); });
  zoom_forget_ = new PlotZoom(forget_, [this] { redraw(true); });
  zoom_matrix_ = new PlotZoom(matrix_, [this] {
    const int T = std::max(1, shown().numTasks());
    matrix_->xAxis->setRange(0.5, T + 0.5);
    matrix_->yAxis->setRange(0.5, T + 0.5);
  });

  cmap_ = new QCPColorMap(matrix_->xAxis, matrix_->yAxis);
  cmap_->setInterpolate(false);
  QCPColorGradient g(QCPColorGradient::gpThermal);
  g.setNanHandling(QCPColorGradient::nhTransparent);
  cmap_->setGradient(g);
  cmap_->setDataRange(QCPRange(0, 1));
  auto* scale = new QCPColorScale(matrix_);
  matrix_->plotLayout()->addElement(1, 1, scale);
  scale->setDataRange(QCPRange(0, 1));
  scale->setGradient(g);
  cmap_->setColorScale(scale);
  matrix_->xAxis->setLabel(tr("evaluated task j"));
  matrix_->yAxis->setLabel(tr("after training task i"));
  matrix_->yAxis->setRangeReversed(true);
  matrix_->setMouseTracking(true);
  connect(matrix_, &QCustomPlot::mouseMove, this, [this](QMouseEvent* ev) {
    int i = -1, j = -1;
    double x = matrix_->xAxis->pixelToCoord(ev->position().x()), y = matrix_->yAxis->pixelToCoord(ev->position().y());
    int T = shown().numTasks();
    j = int(std::lround(x)) - 1;
    i = int(std::lround(y)) - 1;
    if (T > 0 && i >= 0 && j >= 0 && i < T && j < T)
      QToolTip::showText(ev->globalPosition().toPoint(), cellToolTip(i, j), matrix_);
    else
      QToolTip::hideText();
  });

  plots_ = new QWidget(this);
  auto* grid = new QGridLayout(plots_);
  grid->setContentsMargins(0, 0, 0, 0);
  // The loss lanes scroll when the window is too small for them: QCustomPlot gives each lane a
  // minimum height and otherwise lets the lowest lanes overflow the plot (and clips its title).
  loss_scroll_ = new QScrollArea(this);
  loss_scroll_->setObjectName("liveLossScroll");
  loss_scroll_->setWidget(loss_);
  loss_scroll_->setWidgetResizable(true);
  loss_scroll_->setFrameShape(QFrame::NoFrame);
  loss_scroll_->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
  grid->addWidget(loss_scroll_, 0, 0);
  grid->addWidget(drift_, 0, 1);
  grid->addWidget(forget_, 1, 0);
  confusion_ = new ConfusionView(this);
  confusion_->setFollowLatest(true);
  matrix_tabs_ = new QTabWidget(this);
  matrix_tabs_->setObjectName("liveMatrixTabs");
  matrix_tabs_->setDocumentMode(true);
  matrix_tabs_->addTab(matrix_, tr("Accuracy matrix"));
  matrix_tabs_->addTab(confusion_, tr("Confusion"));
  matrix_tabs_->setTabToolTip(1, tr("After each task: the class-IL predictions on the evaluation split over the "
                                    "classes seen so far (true × predicted)"));
  grid->addWidget(matrix_tabs_, 1, 1);
  grid->setRowStretch(0, 3);
  grid->setRowStretch(1, 2);
  // Equal columns: left to their size hints, the loss lanes got a quarter of the width and a
  // many-level run's lanes (11 for a 2-block Hope) were squashed, their labels on the axis.
  grid->setColumnStretch(0, 1);
  grid->setColumnStretch(1, 1);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(bar);
  lay->addWidget(plots_, 1);
  // Until a run is shown: what to do, instead of four empty plots and a dark matrix.
  empty_ = new QLabel(tr("<h3>No run to show yet</h3>"
                         "<p>Launch one in the <b>Experiment</b> tab (Ctrl+R): its losses per level, memory "
                         "drift, forgetting curves and accuracy matrix fill in here as it trains.</p>"
                         "<p>Or open a stored run from the <b>Runs</b> tab (double-click, or Enter).</p>"),
                      this);
  empty_->setObjectName("liveEmpty");
  empty_->setAlignment(Qt::AlignCenter);
  empty_->setWordWrap(true);
  lay->addWidget(empty_, 1);
  plots_->setVisible(false);

  connect(smooth_, &QSlider::valueChanged, this, [this](int v) { setSmoothing(v / 100.0); });
  connect(log_, &QCheckBox::toggled, this, &LiveView::setLogY);
  connect(xaxis_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) { setXAxis(XAxis(i)); });
  connect(panel_box_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) { setPanel(Panel(i)); });
  connect(follow, &QPushButton::clicked, this, &LiveView::followLive);

  timer_ = new QTimer(this);
  timer_->setInterval(40);  // ≤ 25 fps
  connect(timer_, &QTimer::timeout, this, &LiveView::flush);
  timer_->start();
  follow_stored_ = new QTimer(this);
  follow_stored_->setInterval(2000);
  connect(follow_stored_, &QTimer::timeout, this, [this] {
    if (showing_live_ || !stored_db_ || replay_.status() != hl::RunStatus::Running) return follow_stored_->stop();
    RunData fresh;  // read aside: a failed read (busy database) keeps what is shown and tries again
    try {
      fresh.load(*stored_db_, replay_.runId());
    } catch (const std::exception&) {
      return;
    }
    if (fresh.runId() != replay_.runId()) return;  // the run is gone for a moment: the next tick
    replay_ = std::move(fresh);
    // Same lanes and graphs (a zoomed range stays); every series, band and matrix cell again.
    bands_tasks_ = -1;
    cells_seen_ = ~0ull;
    confusion_seen_ = ~0ull;
    redraw(true);
    if (replay_.status() != hl::RunStatus::Running) follow_stored_->stop();
  });
  setDark(darkPalette());
  rebuildAll();
}

LiveView::~LiveView() = default;

void LiveView::setFeed(EventFeed* feed) {
  feed_ = feed;
}

const RunData& LiveView::shown() const {
  return showing_live_ ? live_ : replay_;
}

QString LiveView::showStoredRun(hl::store::RunStore& db, qint64 run_id) {
  if (!db.getRun(run_id)) return tr("run %1 is not in %2").arg(run_id).arg(QString::fromStdString(db.path()));
  try {
    replay_.load(db, run_id);
  } catch (const std::exception& e) {
    return QString::fromUtf8(e.what());
  }
  showing_live_ = false;
  stored_db_ = &db;
  if (replay_.status() == hl::RunStatus::Running)
    follow_stored_->start();
  else
    follow_stored_->stop();
  rebuildAll();
  redraw(true);
  return {};
}

void LiveView::forgetStore() {
  follow_stored_->stop();
  stored_db_ = nullptr;
}

void LiveView::followLive() {
  showing_live_ = true;
  rebuildAll();
  redraw(true);
}

void LiveView::setSmoothing(double a) {
  alpha_ = std::clamp(a, 0.0, 0.99);
  if (smooth_->value() != int(std::lround(alpha_ * 100))) smooth_->setValue(int(std::lround(alpha_ * 100)));
  redraw(true);
}

void LiveView::setLogY(bool on) {
  logy_ = on;
  if (log_->isChecked() != on) log_->setChecked(on);
  rebuildAll();
  redraw(true);
}

void LiveView::setXAxis(XAxis x) {
  x_ = x;
  if (xaxis_->currentIndex() != int(x)) xaxis_->setCurrentIndex(int(x));
  bands_tasks_ = -1;
  redraw(true);
}

void LiveView::setPanel(Panel p) {
  if (panel_box_->currentIndex() != int(p)) panel_box_->setCurrentIndex(int(p));  // re-enters once
  if (panel_ == p) return;
  panel_ = p;
  updatePanelTitle();
  rebuildAll();
  redraw(true);
}

void LiveView::updatePanelTitle() {
  auto* t = qobject_cast<QCPTextElement*>(drift_->plotLayout()->element(0, 0));
  if (panel_ == Panel::Memory) {
    if (t) t->setText(tr("Memory diagnostics per block"));
    drift_->yAxis->setLabel(tr("value (fixed batch of 32 test rows)"));
  } else if (panel_ == Panel::Gradients) {
    if (t) t->setText(tr("Gradient norm per group (before clipping)"));
    drift_->yAxis->setLabel(tr("‖g‖"));
  } else {
    if (t) t->setText(tr("Memory drift per level"));
    drift_->yAxis->setLabel(tr("‖θ − θ₀‖ / ‖θ₀‖"));
  }
}

void LiveView::setDark(bool dark) {
  dark_ = dark;
  for (auto* p : plots()) stylePlot(p, dark_);
  // Labels made before the switch keep their colour otherwise (black lane names on dark).
  for (auto* p : {loss_, forget_})
    for (int i = 0; i < p->itemCount(); ++i)
      if (auto* t = qobject_cast<QCPItemText*>(p->item(i))) {
        if (t->property("hlLaneLabel").toBool()) t->setColor(laneLabelColor(dark_));
        if (t->property("hlTaskLabel").toBool()) t->setColor(taskLabelColor(dark_));
      }
  for (auto* p : plots()) p->replot(QCustomPlot::rpQueuedReplot);
  confusion_->setDark(dark_);
}

QList<QCustomPlot*> LiveView::plots() const {
  return {loss_, drift_, forget_, matrix_};
}

int LiveView::laneCount() const {
  return int(lanes_.size());
}

QString LiveView::titleText() const {
  return title_->text();
}

int LiveView::plottedPoints() const {
  int n = 0;
  for (auto* p : {loss_, drift_, forget_})
    for (int i = 0; i < p->graphCount(); ++i) n += p->graph(i)->dataCount();
  return n;
}

double LiveView::mapX(double step) const {
  switch (x_) {
    case XAxis::Task:
      return shown().taskPosition(step);
    case XAxis::Samples:
      return shown().samplesAt(step);
    default:
      return step;
  }
}

void LiveView::flush() {
  bool started = false;
  if (feed_) {
    auto events = feed_->take();
    for (const auto& e : events) {
      if (e.kind == hl::train::EventKind::RunStarted) {
        live_.clear();
        showing_live_ = true;
        started = true;
        rebuildAll();
      }
      live_.apply(e);
      if (e.kind == hl::train::EventKind::RunStarted) Q_EMIT liveRunStarted(e.run_id);
      if (e.kind == hl::train::EventKind::Progress)
        Q_EMIT progress(live_.runId(), e.step, e.total_steps, e.task, e.num_tasks);
      if (e.kind == hl::train::EventKind::Status && hl::is_terminal(e.status))
        Q_EMIT liveRunEnded(live_.runId(), kindText(e.status));
    }
    if (events.empty() && !started) return;
    if (!showing_live_) return;
  }
  redraw(false);
}

void LiveView::rebuildAll() {
  // Another run (or another way of showing one): the automatic ranges again.
  for (auto* z : {zoom_loss_, zoom_drift_, zoom_forget_, zoom_matrix_})
    if (z) z->release();
  for (auto* p : {drift_, forget_}) {
    p->clearGraphs();
    p->clearItems();
  }
  bind_.clear();
  lane_order_.clear();
  lanes_.clear();
  bands_tasks_ = -1;
  cells_seen_ = ~0ull;
  confusion_seen_ = ~0ull;
  rebuildLanes();
}

namespace {
// A lane per (level, block): two blocks both have cms1, context.memory, ...
std::string laneKey(const SeriesData& s) {
  return s.level + "#" + std::to_string(s.block);
}
QString levelLabel(const SeriesData& s) {
  return QString::fromStdString(s.level) + (s.block >= 0 ? QString(" · b%1").arg(s.block) : QString());
}
}  // namespace

void LiveView::rebuildLanes() {
  loss_->clearGraphs();
  loss_->clearItems();
  for (auto it = bind_.begin(); it != bind_.end();)
    it = it->first.rfind("loss|", 0) == 0 ? bind_.erase(it) : std::next(it);
  auto* layout = loss_->plotLayout();
  while (layout->rowCount() > 1) {
    if (auto* el = layout->element(layout->rowCount() - 1, 0)) layout->remove(el);
    layout->simplify();
    if (layout->rowCount() > 1 && !layout->element(layout->rowCount() - 1, 0)) layout->removeAt(layout->rowCount() - 1);
  }
  lanes_.clear();
  lane_order_.clear();
  auto lanes = shown().lossLanes();
  if (lanes.empty()) {  // an empty lane so the plot shows axes while waiting
    auto* r = new QCPAxisRect(loss_);
    layout->addElement(1, 0, r);
    r->axis(QCPAxis::atLeft)->setLabel(tr("loss"));
    r->axis(QCPAxis::atBottom)->setLabel(tr("step"));
    lanes_[""] = r;
  }
  layout->setRowSpacing(0);  // lanes have their own 3 px margins; 5 px more per lane was wasted
  auto* group = new QCPMarginGroup(loss_);
  int row = 1;
  for (const auto* s : lanes) {
    auto* r = new QCPAxisRect(loss_);
    layout->addElement(row++, 0, r);
    r->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    // The lane's name inside it (rotated axis labels collide when a run has many levels).
    auto* name = new QCPItemText(loss_);
    name->setClipAxisRect(r);
    name->position->setAxisRect(r);
    name->position->setType(QCPItemPosition::ptAxisRectRatio);
    name->position->setCoords(0.005, 0.02);
    name->setPositionAlignment(Qt::AlignLeft | Qt::AlignTop);
    name->setText(QString("%1 · clock %2").arg(levelLabel(*s)).arg(s->clock));
    name->setColor(laneLabelColor(dark_));
    name->setProperty("hlLaneLabel", true);
    QFont f = name->font();
    f.setPointSizeF(f.pointSizeF() * 0.85);
    name->setFont(f);
    setLogScale(r->axis(QCPAxis::atLeft), logy_);
    r->axis(QCPAxis::atLeft)->ticker()->setTickCount(lanes.size() > 6 ? 2 : 3);
    QFont tf = r->axis(QCPAxis::atLeft)->tickLabelFont();
    if (lanes.size() > 6) tf.setPointSizeF(tf.pointSizeF() * 0.8);
    r->axis(QCPAxis::atLeft)->setTickLabelFont(tf);
    r->setRangeZoom(Qt::Horizontal);
    lanes_[laneKey(*s)] = r;
    lane_order_.push_back(laneKey(*s));
  }
  // Room for each lane's curve, its name and two tick labels; below that the lanes scroll.
  const QFontMetrics fm(loss_->font());
  loss_->setMinimumHeight(lanes.empty() ? 0 : int(lanes.size()) * kMinLanePx + 3 * fm.height() + 30);
  x_row_ = nullptr;
  if (!lanes.empty()) {
    // Lanes share the x axis, drawn once in a row of its own below them (no curve area): every
    // lane keeps the same thin margins and so the same height for its curve. (With the tick labels
    // on the lowest lane, that lane's curve area was half the others'.)
    for (auto& [lv, r] : lanes_) {
      r->setMinimumSize(0, 0);  // QCPAxisRect's default 50 × 50 overfilled the rows (loss_'s height bounds them)
      r->axis(QCPAxis::atBottom)->setTickLabels(false);
      r->setAutoMargins(QCP::msLeft | QCP::msRight);
      r->setMargins(QMargins(0, 3, 0, 3));
    }
    x_row_ = new QCPAxisRect(loss_);
    layout->addElement(row, 0, x_row_);
    x_row_->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    x_row_->setAutoMargins(QCP::msLeft | QCP::msRight | QCP::msBottom);
    x_row_->setMargins(QMargins(0, 0, 0, 0));
    x_row_->setSizeConstraintRect(QCPLayoutElement::scrInnerRect);
    x_row_->setMinimumSize(0, 0);
    x_row_->setMaximumSize(QWIDGETSIZE_MAX, 1);
    layout->setRowStretchFactor(row, 0.001);
    x_row_->axis(QCPAxis::atLeft)->setTickLabels(false);
    x_row_->axis(QCPAxis::atLeft)->setTicks(false);
    x_row_->axis(QCPAxis::atLeft)->setBasePen(Qt::NoPen);
    x_row_->axis(QCPAxis::atLeft)->grid()->setVisible(false);
    x_row_->axis(QCPAxis::atBottom)->grid()->setVisible(false);
    x_row_->setRangeZoom(Qt::Horizontal);
    x_row_->setRangeDrag(Qt::Horizontal);
  }
  stylePlot(loss_, dark_);
  if (zoom_loss_) zoom_loss_->attach();
}

QCPGraph* LiveView::graphFor(const SeriesData& s) {
  if (s.name == "loss") {
    auto it = lanes_.find(laneKey(s));
    if (it == lanes_.end()) return nullptr;
    int idx = int(std::find(lane_order_.begin(), lane_order_.end(), laneKey(s)) - lane_order_.begin());
    auto* g = loss_->addGraph(it->second->axis(QCPAxis::atBottom), it->second->axis(QCPAxis::atLeft));
    g->setPen(QPen(levelColor(idx), 1.2));
    if (s.clock > 1) g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, levelColor(idx), 3.5));
    g->setName(levelLabel(s));
    return g;
  }
  if (panel_ == Panel::Memory && s.name.rfind("mem.", 0) == 0) {
    // One colour per quantity, one dash style per block; erase ÷ association and the clamp rate
    // stay in the store (other scales; `hopelab-cli diagnose` prints them).
    static const std::vector<std::pair<std::string, QString>> shown = {{"mem.cos_kv", tr("cos(k, v)")},
                                                                       {"mem.inner_loss", tr("inner loss")},
                                                                       {"mem.share", tr("memory share")},
                                                                       {"mem.context_t8", tr("context effect t8")},
                                                                       {"mem.eta", tr("mean η")}};
    auto it = std::find_if(shown.begin(), shown.end(), [&](const auto& q) { return q.first == s.name; });
    if (it == shown.end()) return nullptr;
    auto* g = drift_->addGraph();
    QPen pen(levelColor(int(it - shown.begin())), 1.4);
    pen.setStyle(s.block <= 0 ? Qt::SolidLine : s.block == 1 ? Qt::DashLine : Qt::DotLine);
    g->setPen(pen);
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, pen.color(), 3.5));
    g->setName(it->second + (s.block >= 0 ? QString(" · b%1").arg(s.block) : QString()));
    setLogScale(drift_->yAxis, false);
    return g;
  }
  if (panel_ == Panel::Gradients && s.name == "grad_norm") {
    int idx = 0;
    for (const auto& o : shown().series())
      if (o.name == "grad_norm") {
        if (o.level == s.level && o.block == s.block) break;
        ++idx;
      }
    auto* g = drift_->addGraph();
    g->setPen(QPen(levelColor(idx), 1.2));
    if (s.level.rfind("cms", 0) == 0) g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, levelColor(idx), 3));
    g->setName(levelLabel(s));
    setLogScale(drift_->yAxis, true);  // norms span decades
    return g;
  }
  if (panel_ == Panel::Drift && s.name.rfind("drift", 0) == 0) {
    int idx = 0;
    for (const auto& o : shown().series())
      if (o.name == "drift_task" || o.name == "drift") {
        if (o.level == s.level && o.block == s.block) break;
        ++idx;
      }
    auto* g = drift_->addGraph();
    QPen pen(levelColor(idx), 1.4);
    if (s.name == "drift_run") pen.setStyle(Qt::DashLine);
    g->setPen(pen);
    g->setName(levelLabel(s) + (s.name == "drift_run"    ? tr(" (run)")
                                : s.name == "drift_task" ? tr(" (task)")
                                                         : QString()));
    if (s.name == "drift_run") g->removeFromLegend();
    setLogScale(drift_->yAxis, logy_);
    return g;
  }
  if (s.level == "eval" && s.name.rfind("acc.task", 0) == 0) {
    auto* g = forget_->addGraph();
    g->setPen(QPen(levelColor(s.block), 1.4));
    g->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 4));
    g->setName(tr("task %1").arg(s.block + 1));
    return g;
  }
  if (s.level == "eval" && s.name == "avg_acc") {
    auto* g = forget_->addGraph();
    g->setPen(QPen(dark_ ? Qt::white : Qt::black, 2.2, Qt::DotLine));
    g->setName(tr("average"));
    return g;
  }
  return nullptr;
}

void LiveView::syncSeries(const SeriesData& s, Binding& b, bool force) {
  const size_t n = s.raw.size();
  if (n == 0) return;
  if (!force && !b.decimated && n <= kMaxDirect && b.done <= n) {
    QVector<double> xs, ys;
    xs.reserve(int(n - b.done));
    ys.reserve(int(n - b.done));
    for (size_t i = b.done; i < n; ++i) {
      double y = s.raw.y[i];
      b.ema = (i == 0 || alpha_ <= 0) ? y : alpha_ * b.ema + (1 - alpha_) * y;
      xs.push_back(mapX(s.raw.x[i]));
      ys.push_back(b.ema);
    }
    b.graph->addData(xs, ys, true);
    points_ += int(n - b.done);
  } else {
    XY m;
    m.x.resize(n);
    for (size_t i = 0; i < n; ++i) m.x[i] = mapX(s.raw.x[i]);
    m.y = ema(s.raw.y, alpha_);
    b.ema = m.y.back();
    XY d = decimate_minmax(m, kBuckets);
    b.graph->setData(QVector<double>(d.x.begin(), d.x.end()), QVector<double>(d.y.begin(), d.y.end()), true);
    b.decimated = n > kMaxDirect;
    points_ += int(n - std::min(n, b.done));
  }
  b.done = n;
  b.version = s.version;
}

void LiveView::redraw(bool force) {
  const RunData& d = shown();
  std::vector<std::string> order;
  for (const auto* s : d.lossLanes()) order.push_back(laneKey(*s));
  if (order != lane_order_) {
    rebuildLanes();
    force = true;
  }
  if (x_ == XAxis::Task && int(d.taskStarts().size()) != bands_tasks_) force = true;
  const int before = points_;
  const bool forced = force;
  for (const auto& s : d.series()) {
    Binding& b = bind_[keyOf(s)];
    if (!b.graph) {
      if (b.version == s.version && b.version != 0) continue;  // not plotted here
      b.graph = graphFor(s);
      if (!b.graph) {
        b.version = s.version;
        continue;
      }
      b.done = 0;
    }
    if (force || b.version != s.version) syncSeries(s, b, force);
  }
  bool changed = forced || points_ != before;
  changed |= drawBands();
  if (d.cellsVersion() != cells_seen_) {
    drawMatrix();
    changed = true;
  }
  if (d.confusionVersion() != confusion_seen_ || d.runId() != confusion_run_) {
    confusion_seen_ = d.confusionVersion();
    confusion_run_ = d.runId();
    confusion_->setMatrices(d.confusion(), QString("run%1").arg(d.runId()));
  }

  const QString xl = x_ == XAxis::Step ? tr("step") : x_ == XAxis::Task ? tr("task") : tr("samples seen");
  for (auto& [lv, r] : lanes_) {
    for (auto* g : r->graphs()) (void)g;
    r->axis(QCPAxis::atBottom)->setLabel(QString());
  }
  if (x_row_) x_row_->axis(QCPAxis::atBottom)->setLabel(xl);
  drift_->xAxis->setLabel(xl);
  forget_->xAxis->setLabel(xl);
  // Shared x range over the lanes, each lane's own y range.
  QCPRange xr;
  bool have = false;
  for (auto* p : {loss_, drift_, forget_})
    for (int i = 0; i < p->graphCount(); ++i) {
      bool ok = false;
      auto r = p->graph(i)->getKeyRange(ok);
      if (ok) xr = have ? QCPRange(std::min(xr.lower, r.lower), std::max(xr.upper, r.upper)) : r, have = true;
    }
  if (have) {  // a plot the user zoomed or panned keeps its ranges until a double-click
    if (xr.size() <= 0) xr.upper = xr.lower + 1;
    if (!zoom_loss_->userRange()) {
      if (x_row_) x_row_->axis(QCPAxis::atBottom)->setRange(xr);
      for (auto& [lv, r] : lanes_) {
        r->axis(QCPAxis::atBottom)->setRange(xr);
        bool any = false;
        for (auto* g : r->graphs()) {
          g->rescaleValueAxis(any, true);
          any = true;
        }
        if (any) padValueRange(r->axis(QCPAxis::atLeft));
      }
    }
    if (!zoom_drift_->userRange()) {
      drift_->xAxis->setRange(xr);
      // Nothing drawn yet (a new run, another panel): the default range, not the last run's.
      bool drawn = false;
      for (int i = 0; i < drift_->graphCount() && !drawn; ++i) drawn = !drift_->graph(i)->data()->isEmpty();
      if (drawn) {
        drift_->yAxis->rescale(true);
        padValueRange(drift_->yAxis);
      } else {
        drift_->yAxis->setRange(0, 1);
      }
    }
    if (!zoom_forget_->userRange()) forget_->xAxis->setRange(xr);
  }
  // A little below 0: a task at accuracy 0 is a visible line, not hidden in the x axis.
  if (!zoom_forget_->userRange()) forget_->yAxis->setRange(-0.03, 1.03);

  const bool has_run = d.runId() || !d.series().empty();
  if (plots_->isHidden() == has_run) {
    plots_->setVisible(has_run);
    empty_->setVisible(!has_run);
  }
  const QString status = d.runId() || !d.series().empty() ? kindText(d.status()) : QString();
  // A stored run still being written has no known end: no "/total" (it would say 8/8 at step 8).
  const bool ends_known = d.totalSteps() > 0;
  if (d.runId() || !d.series().empty())
    title_->setText(tr("%1 run %2 · %3 · %4 · step %5%6 · task %7%8%9")
                        .arg(showing_live_ ? tr("Live") : tr("Stored"))
                        .arg(d.runId())
                        .arg(QString::fromStdString(d.name()), status)
                        .arg(d.step())
                        .arg(ends_known ? QString("/%1").arg(d.totalSteps()) : QString())
                        .arg(std::max(0, d.task() + 1))
                        .arg(ends_known ? QString("/%1").arg(d.numTasks()) : QString())
                        .arg(!showing_live_ && d.status() == hl::RunStatus::Running
                                 ? tr(" · still running, read every 2 s")
                                 : QString()));
  if (changed) {  // progress-only batches update the title, not the plots
    placeLegend(drift_);
    placeLegend(forget_);
    for (auto* p : plots()) p->replot(QCustomPlot::rpQueuedReplot);
  }
  if (points_ > before) Q_EMIT pointsAdded(points_ - before);
}

bool LiveView::drawBands() {
  const RunData& d = shown();
  const auto& starts = d.taskStarts();
  double end = double(std::max(d.step(), d.totalSteps()));
  if (int(starts.size()) == bands_tasks_ && end == bands_end_) return false;
  bands_tasks_ = int(starts.size());
  bands_end_ = end;
  forget_->clearItems();
  for (auto& [lv, r] : lanes_) (void)r;
  QColor shade = dark_ ? QColor(255, 255, 255, 22) : QColor(0, 0, 0, 14);
  for (size_t t = 0; t < starts.size(); ++t) {
    double a = mapX(double(starts[t]));
    double b = t + 1 < starts.size() ? mapX(double(starts[t + 1])) : mapX(std::max(end, double(starts[t]) + 1));
    auto* rect = new QCPItemRect(forget_);
    rect->topLeft->setTypeX(QCPItemPosition::ptPlotCoords);
    rect->topLeft->setTypeY(QCPItemPosition::ptAxisRectRatio);
    rect->bottomRight->setTypeX(QCPItemPosition::ptPlotCoords);
    rect->bottomRight->setTypeY(QCPItemPosition::ptAxisRectRatio);
    rect->topLeft->setCoords(a, 0);
    rect->bottomRight->setCoords(b, 1);
    rect->setPen(Qt::NoPen);
    rect->setBrush(t % 2 == 0 ? shade : QColor(0, 0, 0, 0));
    rect->setLayer("background");
    auto* label = new QCPItemText(forget_);
    label->position->setTypeX(QCPItemPosition::ptPlotCoords);
    label->position->setTypeY(QCPItemPosition::ptAxisRectRatio);
    label->position->setCoords((a + b) / 2, 0.02);
    label->setPositionAlignment(Qt::AlignTop | Qt::AlignHCenter);
    label->setText(QString("T%1").arg(t + 1));
    label->setColor(taskLabelColor(dark_));
    label->setProperty("hlTaskLabel", true);
    label->setFont(QFont(font().family(), 7));
  }
  return true;
}

void LiveView::drawMatrix() {
  const RunData& d = shown();
  cells_seen_ = d.cellsVersion();
  matrix_->clearItems();
  int T = d.numTasks();
  for (const auto& c : d.cells()) T = std::max({T, c.after_task + 1, c.task + 1});
  if (T <= 0) {
    cmap_->data()->clear();
    return;
  }
  cmap_->data()->setSize(T, T);
  cmap_->data()->setRange(QCPRange(1, T), QCPRange(1, T));
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < T; ++j) cmap_->data()->setCell(j, i, std::nan(""));
  for (const auto& c : d.cells()) {
    cmap_->data()->setCell(c.task, c.after_task, c.acc);
    if (T <= 12) {
      auto* t = new QCPItemText(matrix_);
      t->position->setCoords(c.task + 1, c.after_task + 1);
      t->setText(QString::number(c.acc, 'f', 2));
      t->setFont(QFont(font().family(), T <= 7 ? 8 : 6));
      t->setColor(c.acc > 0.6 ? Qt::black : Qt::white);
    }
  }
  if (!zoom_matrix_->userRange()) {
    matrix_->xAxis->setRange(0.5, T + 0.5);
    matrix_->yAxis->setRange(0.5, T + 0.5);
  }
  QSharedPointer<QCPAxisTicker> ticker(new QCPAxisTicker);
  ticker->setTickCount(std::min(T, 10));
  matrix_->xAxis->setTicker(ticker);
  matrix_->yAxis->setTicker(ticker);
}

QString LiveView::cellToolTip(int i, int j) const {
  const RunData& d = shown();
  QString v = tr("not evaluated");
  for (const auto& c : d.cells())
    if (c.after_task == i && c.task == j)
      v = tr("class-IL %1, task-IL %2").arg(c.acc, 0, 'f', 4).arg(c.task_il_acc, 0, 'f', 4);
  return tr("<b>R[%1][%2]</b>: accuracy on task %2 after training task %1: %3<br><br>"
            "A<sub>i</sub> = mean<sub>j≤i</sub> R[i][j]; final average accuracy A<sub>T</sub><br>"
            "Forgetting F = mean<sub>j&lt;T</sub> (max<sub>j≤l&lt;T</sub> R[l][j] − R[T][j])<br>"
            "BWT = mean<sub>j&lt;T</sub> (R[T][j] − R[j][j])")
      .arg(i + 1)
      .arg(j + 1)
      .arg(v);
}

}  // namespace hl::ui
