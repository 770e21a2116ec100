#include "ui/compare_view.h"

#include <QComboBox>
#include <QElapsedTimer>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QSplitter>
#include <QTabWidget>
#include <QTableWidget>
#include <QVBoxLayout>
#include <map>
#include <qcustomplot.h>
#include <set>

#include "ui/ablation_view.h"
#include "ui/attribution_view.h"
#include "ui/confusion_view.h"
#include "ui/plot_export.h"
#include "ui/plural.h"
#include "ui/plot_util.h"
#include "ui/plot_zoom.h"

namespace hl::ui {
namespace {

QColor groupColor(int i) {
  static const QColor c[] = {QColor(0x1f, 0x77, 0xb4), QColor(0xd6, 0x27, 0x28), QColor(0x2c, 0xa0, 0x2c),
                             QColor(0xff, 0x7f, 0x0e), QColor(0x94, 0x67, 0xbd), QColor(0x8c, 0x56, 0x4b),
                             QColor(0xe3, 0x77, 0xc2), QColor(0x17, 0xbe, 0xcf)};
  return c[i % 8];
}

std::string pretty_path(const std::string& pointer) {  // "/model/blocks/1/heads" -> model.blocks[1].heads
  std::string out;
  size_t i = 1;
  while (i <= pointer.size()) {
    size_t j = pointer.find('/', i);
    if (j == std::string::npos) j = pointer.size();
    std::string part = pointer.substr(i, j - i);
    bool index = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    out += index ? "[" + part + "]" : (out.empty() ? "" : ".") + part;
    i = j + 1;
  }
  return out;
}

QVector<double> qv(const std::vector<double>& v) {
  return QVector<double>(v.begin(), v.end());
}

}  // namespace

std::vector<std::pair<std::string, std::vector<std::string>>> spec_diff(const std::vector<nlohmann::json>& specs) {
  std::vector<nlohmann::json> flat;
  std::set<std::string> keys;
  for (const auto& s : specs) {
    flat.push_back(s.flatten());
    for (auto it = flat.back().begin(); it != flat.back().end(); ++it) keys.insert(it.key());
  }
  std::vector<std::pair<std::string, std::vector<std::string>>> rows;
  for (const auto& k : keys) {
    std::vector<std::string> vals;
    for (const auto& f : flat) {
      auto it = f.find(k);
      vals.push_back(it == f.end() ? "—" : it->is_string() ? it->get<std::string>() : it->dump());
    }
    if (std::adjacent_find(vals.begin(), vals.end(), std::not_equal_to<>()) != vals.end())
      rows.emplace_back(pretty_path(k), vals);
  }
  return rows;
}

CompareView::CompareView(QWidget* parent) : QWidget(parent) {
  metric_ = new QComboBox(this);
  metric_->setMinimumContentsLength(18);
  info_ = new QLabel(this);
  curves_ = new QCustomPlot(this);
  zoom_curves_ = new PlotZoom(curves_, [this] {
    curves_->rescaleAxes(true);
    padValueRange(curves_->yAxis);  // as the automatic range of rebuild()
    curves_->replot();
  });
  curves_->setObjectName("compareCurves");
  curves_->legend->setVisible(true);
  curves_->legend->setFont(QFont(font().family(), 7));
  curves_->setMinimumHeight(240);
  curves_->setPlottingHint(QCP::phFastPolylines, true);
  curves_->xAxis->setLabel(tr("step"));
  addPlotExportMenu(curves_);
  matrices_ = new QCustomPlot(this);
  zoom_matrices_ = new PlotZoom(matrices_, [this] { rebuildMatrices(); });
  matrices_->setObjectName("compareMatrices");
  matrices_->setMinimumHeight(160);
  addPlotExportMenu(matrices_);
  diff_ = new QTableWidget(this);
  diff_->setObjectName("specDiff");
  diff_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  diff_->verticalHeader()->hide();
  diff_->setWordWrap(false);
  diff_->setTextElideMode(Qt::ElideMiddle);  // "model.bl…inner_lr": both ends of a field path stay
  diff_->viewport()->installEventFilter(this);
  auto* bar = new QHBoxLayout;
  bar->addWidget(new QLabel(tr("Curve:"), this));
  bar->addWidget(metric_);
  bar->addWidget(info_, 1);
  confusion_run_ = new QComboBox(this);
  confusion_run_->setObjectName("compareConfusionRun");
  confusion_ = new ConfusionView(this);
  auto* conf_page = new QWidget(this);
  auto* conf_lay = new QVBoxLayout(conf_page);
  conf_lay->setContentsMargins(0, 0, 0, 0);
  auto* conf_bar = new QHBoxLayout;
  conf_bar->addWidget(new QLabel(tr("Run"), conf_page));
  conf_bar->addWidget(confusion_run_, 1);
  conf_lay->addLayout(conf_bar);
  conf_lay->addWidget(confusion_, 1);
  attribution_ = new AttributionView(this);
  ablation_ = new AblationView(this);
  side_ = new QTabWidget(this);
  side_->setObjectName("compareSideTabs");
  side_->setDocumentMode(true);
  side_->addTab(matrices_, tr("Accuracy matrices"));
  side_->addTab(conf_page, tr("Confusion"));
  side_->addTab(attribution_, tr("Forgetting attribution"));
  side_->addTab(ablation_, tr("Test-time ablation"));
  connect(confusion_run_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this] { rebuildConfusion(); });
  auto* bottom = new QSplitter(this);
  bottom->addWidget(diff_);
  bottom->addWidget(side_);
  bottom->setStretchFactor(0, 1);
  bottom->setStretchFactor(1, 1);
  bottom->setSizes({450, 550});  // the diff table ≈ 45 %: room for three runs' columns at 1024 px
  auto* split = new QSplitter(Qt::Vertical, this);
  split->addWidget(curves_);
  split->addWidget(bottom);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 2);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(bar);
  lay->addWidget(split, 1);
  connect(metric_, &QComboBox::currentIndexChanged, this, [this] { rebuild(); });
  stylePlot(curves_, darkPalette());
  stylePlot(matrices_, darkPalette());
}

void CompareView::setStore(hl::store::RunStore* db) {
  db_ = db;
  attribution_->setDbPath(db ? QString::fromStdString(db->path()) : QString());
  ablation_->setDbPath(db ? QString::fromStdString(db->path()) : QString());
}

void CompareView::setDataDirSource(std::function<QString()> f) {
  ablation_->setDataDirSource(f);
  attribution_->setDataDirSource(std::move(f));
}

void CompareView::showConfusionOf(qint64 run_id) {
  const int i = confusion_run_->findData(run_id);
  if (i >= 0) confusion_run_->setCurrentIndex(i);
  side_->setCurrentIndex(1);
}

void CompareView::rebuildConfusion() {
  const qint64 id = confusion_run_->currentData().toLongLong();
  for (const auto& r : runs_)
    if (r.id == id) return confusion_->setMatrices(r.confusion, QString("run%1").arg(r.id));
  confusion_->clear();
}

QString CompareView::setRuns(const QList<qint64>& ids) {
  if (!db_) return tr("no run database open");
  std::vector<CompareRun> runs;
  for (qint64 id : ids) {
    auto r = db_->getRun(id);
    if (!r) return tr("run %1 is not in %2").arg(id).arg(QString::fromStdString(db_->path()));
    CompareRun c;
    c.id = id;
    c.label = tr("run %1 · %2 · seed %3").arg(id).arg(QString::fromStdString(r->name)).arg(r->seed);
    c.config_hash = r->config_hash;
    try {
      c.spec = nlohmann::json::parse(r->spec_json);
    } catch (...) {
      c.spec = nlohmann::json::object();
    }
    c.series = db_->series(id);
    c.cells = db_->accuracy(id);
    c.confusion = db_->confusion(id);
    runs.push_back(std::move(c));
  }
  setData(std::move(runs));
  return {};
}

QStringList CompareView::metrics() const {
  QStringList out;
  for (int i = 0; i < metric_->count(); ++i) out << metric_->itemData(i).toString();
  return out;
}

void CompareView::setData(std::vector<CompareRun> runs) {
  runs_ = std::move(runs);
  QString cur = metric_->currentData().toString();
  std::set<QString> keys;
  for (const auto& r : runs_)
    for (const auto& s : r.series)
      if (s.block < 0 || s.name.rfind("acc.task", 0) == 0) keys.insert(QString::fromStdString(s.name + "|" + s.level));
  metric_->blockSignals(true);
  metric_->clear();
  for (const auto& k : keys) metric_->addItem(QString(k).replace('|', " · "), k);
  int idx = metric_->findData(cur);
  if (idx < 0) idx = metric_->findData("avg_acc|eval");
  if (idx < 0) idx = metric_->findData("loss|outer");
  metric_->setCurrentIndex(std::max(0, idx));
  metric_->blockSignals(false);
  rebuildDiff();
  rebuildMatrices();
  const qint64 shown = confusion_run_->currentData().toLongLong();
  QList<QPair<qint64, QString>> offered;
  confusion_run_->blockSignals(true);
  confusion_run_->clear();
  for (const auto& r : runs_) {
    confusion_run_->addItem(r.label, r.id);
    offered.append({r.id, r.label});
  }
  const int i = confusion_run_->findData(shown);
  confusion_run_->setCurrentIndex(i >= 0 ? i : 0);
  confusion_run_->blockSignals(false);
  rebuildConfusion();
  attribution_->setRuns(offered);
  ablation_->setRuns(offered);
  rebuild();
}

void CompareView::setMetric(const QString& key) {
  int i = metric_->findData(key);
  if (i >= 0) metric_->setCurrentIndex(i);
  rebuild();
}

int CompareView::graphCount() const {
  return curves_->graphCount();
}

double CompareView::rebuild() {
  dirty_ = true;
  return render();
}

double CompareView::render() {
  QElapsedTimer t;
  t.start();
  if (dirty_) prepare();
  curves_->replot(QCustomPlot::rpImmediateRefresh);
  return t.nsecsElapsed() / 1e6;
}

void CompareView::prepare() {
  dirty_ = false;
  curves_->clearGraphs();
  // About one min/max pair per horizontal pixel: more points cannot be seen.
  const int buckets = std::max(200, curves_->axisRect()->width() / 2);
  const std::string key = metric_->currentData().toString().toStdString();
  if (key != shown_key_) zoom_curves_->release();  // another curve: its own automatic ranges
  shown_key_ = key;
  const auto bar = key.find('|');
  const std::string name = key.substr(0, bar), level = bar == std::string::npos ? "" : key.substr(bar + 1);
  std::map<std::string, std::vector<size_t>> groups;
  std::vector<std::string> order;
  for (size_t i = 0; i < runs_.size(); ++i) {
    std::string g = runs_[i].config_hash.empty() ? "#" + std::to_string(runs_[i].id) : runs_[i].config_hash;
    if (!groups.count(g)) order.push_back(g);
    groups[g].push_back(i);
  }
  groups_ = int(order.size());
  int gi = 0;
  for (const auto& g : order) {
    QColor col = groupColor(gi++);
    std::vector<XY> curves;
    QString label;
    for (size_t i : groups[g]) {
      XY xy;
      for (const auto& s : runs_[i].series)
        if (s.name == name && s.level == level) {
          xy.x.reserve(s.points.size());
          xy.y.reserve(s.points.size());
          for (const auto& [st, v] : s.points) {
            xy.x.push_back(double(st));
            xy.y.push_back(v);
          }
        }
      if (xy.size() == 0) continue;
      curves.push_back(std::move(xy));
      label = runs_[i].label;
    }
    if (curves.empty()) continue;
    const bool band = curves.size() > 1;
    for (const auto& c : curves) {  // each seed (faint when grouped)
      XY d = decimate_minmax(c, buckets);
      auto* gr = curves_->addGraph();
      QColor fc = col;
      if (band) fc.setAlpha(70);
      gr->setPen(QPen(fc, band ? 1 : 1.6));
      gr->setData(qv(d.x), qv(d.y), true);
      // A run with one point (stopped after its first evaluation, or a joint run evaluated once)
      // has no line to draw: a dot (faint in a band, whose mean is then a dot too).
      if (d.size() == 1) gr->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, fc, band ? 5 : 6));
      if (band)
        gr->removeFromLegend();
      else
        gr->setName(label);
    }
    if (band) {
      Band b = mean_ci(curves, size_t(2 * buckets));
      clip_band(b, metric_range(name));
      XY m{b.x, b.mean}, lo{b.x, b.lo}, hi{b.x, b.hi};
      m = decimate_minmax(m, buckets);
      lo = decimate_minmax(lo, buckets);
      hi = decimate_minmax(hi, buckets);
      auto* glo = curves_->addGraph();
      glo->setPen(Qt::NoPen);
      glo->setData(qv(lo.x), qv(lo.y), true);
      glo->removeFromLegend();
      auto* ghi = curves_->addGraph();
      ghi->setPen(Qt::NoPen);
      QColor bc = col;
      bc.setAlpha(50);
      ghi->setBrush(bc);
      ghi->setChannelFillGraph(glo);
      ghi->setData(qv(hi.x), qv(hi.y), true);
      ghi->removeFromLegend();
      auto* gm = curves_->addGraph();
      gm->setPen(QPen(col, 2.2));
      gm->setData(qv(m.x), qv(m.y), true);
      if (m.size() == 1) gm->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, col, 8));
      QString base = label.section(" · ", 1, 1);
      gm->setName(tr("%1 · mean ± 95% CI over %2 seeds").arg(base).arg(curves.size()));
    }
  }
  curves_->yAxis->setLabel(QString::fromStdString(name + (level.empty() ? "" : " (" + level + ")")));
  if (!zoom_curves_->userRange()) {
    curves_->rescaleAxes(true);
    padValueRange(curves_->yAxis);
  }
  info_->setText(tr("%1 in %2; same config_hash = seeds of one configuration")
                     .arg(countOf(int(runs_.size()), tr("run"), tr("runs")),
                          countOf(groups_, tr("configuration"), tr("configurations"))));
}

void CompareView::rebuildDiff() {
  std::vector<nlohmann::json> specs;
  for (const auto& r : runs_) specs.push_back(r.spec);
  auto rows = spec_diff(specs);
  diff_->clear();
  diff_->setColumnCount(int(runs_.size()) + 1);
  QStringList head{tr("field (differs)")};
  for (const auto& r : runs_) head << tr("run %1").arg(r.id);
  diff_->setHorizontalHeaderLabels(head);
  diff_->setRowCount(int(rows.size()));
  for (int i = 0; i < int(rows.size()); ++i) {
    auto* field = new QTableWidgetItem(QString::fromStdString(rows[i].first));
    field->setToolTip(field->text());
    diff_->setItem(i, 0, field);
    for (int j = 0; j < int(rows[i].second.size()); ++j) {
      QString v = QString::fromStdString(rows[i].second[j]);
      auto* it = new QTableWidgetItem(v.size() > 40 ? v.left(39) + "…" : v);
      it->setToolTip(v);
      diff_->setItem(i, j + 1, it);
    }
  }
  fitDiffColumns();
}

// Every run's column in view at once where the width allows it (the values are what the table is
// for; with the field column at its full 260 px only the first run showed at the default size): the
// field column takes at most 45 % of the width, the runs share the rest, each between 56 and 150 px
// and no wider than its content. Below 56 px a run's column the table scrolls sideways.
void CompareView::fitDiffColumns() {
  const int n = diff_->columnCount();
  if (n == 0) return;
  const int avail = diff_->viewport()->width();
  diff_->resizeColumnsToContents();  // each column at its content's width: the most it gets
  std::vector<int> content;
  for (int c = 0; c < n; ++c) content.push_back(diff_->columnWidth(c));
  const int field = std::min({content[0], 260, std::max(120, int(0.45 * avail))});
  diff_->setColumnWidth(0, field);
  const int share = n > 1 ? (avail - field) / (n - 1) : 0;
  for (int c = 1; c < n; ++c) diff_->setColumnWidth(c, std::clamp(std::min(content[size_t(c)], share), 56, 150));
}

bool CompareView::eventFilter(QObject* o, QEvent* e) {
  if (o == diff_->viewport() && e->type() == QEvent::Resize) fitDiffColumns();
  return QWidget::eventFilter(o, e);
}

void CompareView::rebuildMatrices() {
  matrices_->clearPlottables();
  matrices_->plotLayout()->clear();
  QCPColorGradient g(QCPColorGradient::gpThermal);
  g.setNanHandling(QCPColorGradient::nhTransparent);
  int col = 0;
  for (const auto& r : runs_) {
    if (col >= 8) break;  // at most 8 side by side
    int T = 0;
    for (const auto& c : r.cells) T = std::max({T, c.after_task + 1, c.task + 1});
    if (T == 0) continue;
    auto* rect = new QCPAxisRect(matrices_);
    matrices_->plotLayout()->addElement(1, col, rect);
    auto* title = new QCPTextElement(matrices_, tr("run %1").arg(r.id), QFont(font().family(), 8));
    matrices_->plotLayout()->addElement(0, col, title);
    auto* cm = new QCPColorMap(rect->axis(QCPAxis::atBottom), rect->axis(QCPAxis::atLeft));
    cm->setGradient(g);
    cm->setInterpolate(false);
    cm->data()->setSize(T, T);
    cm->data()->setRange(QCPRange(1, T), QCPRange(1, T));
    for (int i = 0; i < T; ++i)
      for (int j = 0; j < T; ++j) cm->data()->setCell(j, i, std::nan(""));
    for (const auto& c : r.cells) cm->data()->setCell(c.task, c.after_task, c.acc);
    cm->setDataRange(QCPRange(0, 1));
    rect->axis(QCPAxis::atLeft)->setRangeReversed(true);
    rect->axis(QCPAxis::atBottom)->setRange(0.5, T + 0.5);
    rect->axis(QCPAxis::atLeft)->setRange(0.5, T + 0.5);
    ++col;
  }
  if (col == 0) matrices_->plotLayout()->addElement(0, 0, new QCPTextElement(matrices_, tr("no accuracy matrices")));
  stylePlot(matrices_, darkPalette());
  matrices_->replot(QCustomPlot::rpQueuedReplot);
}

}  // namespace hl::ui
