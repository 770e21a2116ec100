#include "ui/runs_browser.h"
#include "ui/plural.h"

#include <QComboBox>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSet>
#include <QSplitter>
#include <QTableWidget>
#include <QTimer>
#include <QVBoxLayout>
#include <nlohmann/json.hpp>

#include "engine/store/store.h"
#include "ui/kind_text.h"

namespace hl::ui {
namespace {

enum Col { cId, cStatus, cName, cDataset, cStrategy, cHead, cSeed, cAcc, cForget, cParams, cCreated, cTags, cCount };

class NumItem : public QTableWidgetItem {  // sorts by the number in UserRole
 public:
  using QTableWidgetItem::QTableWidgetItem;
  bool operator<(const QTableWidgetItem& o) const override {
    return data(Qt::UserRole).toDouble() < o.data(Qt::UserRole).toDouble();
  }
};

QTableWidgetItem* num(double v, const QString& text) {
  auto* it = new NumItem(text);
  it->setData(Qt::UserRole, v);
  it->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
  return it;
}

QString fmt(const nlohmann::json& s, const char* key) {
  auto it = s.find(key);
  return it != s.end() && it->is_number() ? QString::number(it->get<double>(), 'f', 3) : QString("–");
}

}  // namespace

RunsBrowser::RunsBrowser(QWidget* parent) : QWidget(parent) {
  auto makeCombo = [this](const QString& tip) {
    auto* c = new QComboBox(this);
    c->setToolTip(tip);
    c->setMinimumContentsLength(10);
    connect(c, &QComboBox::currentIndexChanged, this, [this] {
      if (!filling_) refresh();
    });
    return c;
  };
  dataset_ = makeCombo(tr("dataset"));
  model_ = makeCombo(tr("model"));
  strategy_ = makeCombo(tr("strategy"));
  status_ = makeCombo(tr("status"));
  tag_ = makeCombo(tr("tag"));
  auto* filters = new QHBoxLayout;
  filters->addWidget(new QLabel(tr("Filter:"), this));
  for (auto* c : {dataset_, model_, strategy_, status_, tag_}) filters->addWidget(c);
  count_ = new QLabel(this);
  filters->addStretch(1);
  filters->addWidget(count_);

  table_ = new QTableWidget(0, cCount, this);
  table_->setObjectName("runsTable");
  table_->setHorizontalHeaderLabels({tr("id"), tr("status"), tr("model"), tr("dataset"), tr("strategy"), tr("head"),
                                     tr("seed"), tr("final acc"), tr("forgetting"), tr("params"), tr("created"),
                                     tr("tags")});
  table_->setSelectionBehavior(QAbstractItemView::SelectRows);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->setSortingEnabled(true);
  table_->sortByColumn(cId, Qt::DescendingOrder);
  table_->verticalHeader()->hide();
  table_->horizontalHeader()->setStretchLastSection(true);
  connect(table_, &QTableWidget::itemSelectionChanged, this, &RunsBrowser::showDetails);
  connect(table_, &QTableWidget::cellDoubleClicked, this, [this] {
    auto ids = selectedRuns();
    if (!ids.isEmpty()) Q_EMIT openRun(ids.first());
  });

  auto* open = new QPushButton(tr("Open in Live"), this);
  auto* compare = new QPushButton(tr("Compare selected"), this);
  auto* rerunB = new QPushButton(tr("Re-run exactly"), this);
  auto* del = new QPushButton(tr("Delete…"), this);
  auto* reload = new QPushButton(tr("Refresh"), this);
  open->setShortcut(QKeySequence(Qt::Key_Return));
  del->setShortcut(QKeySequence::Delete);
  connect(open, &QPushButton::clicked, this, [this] {
    auto ids = selectedRuns();
    if (!ids.isEmpty()) Q_EMIT openRun(ids.first());
  });
  connect(compare, &QPushButton::clicked, this, [this] { Q_EMIT compareRuns(selectedRuns()); });
  connect(rerunB, &QPushButton::clicked, this, [this] {
    for (qint64 id : selectedRuns()) Q_EMIT rerun(id);
  });
  connect(del, &QPushButton::clicked, this, &RunsBrowser::deleteSelected);
  connect(reload, &QPushButton::clicked, this, &RunsBrowser::refresh);
  auto* buttons = new QHBoxLayout;
  for (auto* b : {open, compare, rerunB, del, reload}) buttons->addWidget(b);
  buttons->addStretch(1);

  details_ = new QLabel(this);
  details_->setWordWrap(true);
  details_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  details_->setAlignment(Qt::AlignTop | Qt::AlignLeft);
  tags_edit_ = new QLineEdit(this);
  tags_edit_->setPlaceholderText(tr("comma-separated tags"));
  notes_edit_ = new QPlainTextEdit(this);
  auto* save = new QPushButton(tr("Save tags && notes"), this);
  connect(save, &QPushButton::clicked, this, &RunsBrowser::saveMeta);
  auto* side = new QWidget(this);
  auto* form = new QFormLayout(side);
  form->addRow(details_);
  form->addRow(tr("Tags"), tags_edit_);
  form->addRow(tr("Notes"), notes_edit_);
  form->addRow(save);

  auto* split = new QSplitter(this);
  split->addWidget(table_);
  split->addWidget(side);
  split->setStretchFactor(0, 3);
  split->setStretchFactor(1, 1);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(filters);
  lay->addWidget(split, 1);
  lay->addLayout(buttons);

  poll_ = new QTimer(this);
  poll_->setInterval(1500);
  connect(poll_, &QTimer::timeout, this, &RunsBrowser::pollOnce);
  poll_->start();
}

void RunsBrowser::setStore(hl::store::RunStore* db) {
  db_ = db;
  stamp_ = dbStamp();
  fillFilterChoices();
  refresh();
}

QDateTime RunsBrowser::dbStamp() const {
  if (!db_) return {};
  QString p = QString::fromStdString(db_->path());
  QDateTime a = QFileInfo(p).lastModified(), b = QFileInfo(p + "-wal").lastModified();
  return b.isValid() && b > a ? b : a;
}

bool RunsBrowser::pollOnce() {
  if (!db_) return false;
  QString p = QString::fromStdString(db_->path());
  QDateTime s = dbStamp();
  qint64 size = QFileInfo(p + "-wal").size() + QFileInfo(p).size();
  if (s == stamp_ && size == stamp_size_) return false;
  stamp_ = s;
  stamp_size_ = size;
  db_->markInterrupted();
  fillFilterChoices();
  refresh();
  return true;
}

void RunsBrowser::fillFilterChoices() {
  if (!db_) return;
  QSet<QString> sets[5];
  for (const auto& r : db_->listRuns()) {
    sets[0] << QString::fromStdString(r.dataset);
    sets[1] << QString::fromStdString(r.name);
    sets[2] << QString::fromStdString(r.strategy);
    sets[3] << kindText(r.status);
    for (const auto& t : r.tags) sets[4] << QString::fromStdString(t);
  }
  const QString any[] = {tr("any dataset"), tr("any model"), tr("any strategy"), tr("any status"), tr("any tag")};
  QComboBox* combos[] = {dataset_, model_, strategy_, status_, tag_};
  filling_ = true;
  for (int i = 0; i < 5; ++i) {
    QString cur = combos[i]->currentIndex() > 0 ? combos[i]->currentText() : QString();
    QStringList items = QStringList(sets[i].begin(), sets[i].end());
    items.sort();
    items.removeAll(QString());
    combos[i]->clear();
    combos[i]->addItem(any[i]);
    combos[i]->addItems(items);
    int k = cur.isEmpty() ? 0 : combos[i]->findText(cur);
    combos[i]->setCurrentIndex(std::max(0, k));
  }
  filling_ = false;
}

void RunsBrowser::setFilter(const QString& field, const QString& value) {
  QComboBox* c = field == "dataset"    ? dataset_
                 : field == "model"    ? model_
                 : field == "strategy" ? strategy_
                 : field == "status"   ? status_
                                       : tag_;
  int k = value.isEmpty() ? 0 : c->findText(value);
  if (k < 0) {
    filling_ = true;
    c->addItem(value);
    filling_ = false;
    k = c->count() - 1;
  }
  c->setCurrentIndex(k);
  refresh();
}

void RunsBrowser::refresh() {
  if (!db_) {
    table_->setRowCount(0);
    return;
  }
  hl::store::RunFilter f;
  auto pick = [](QComboBox* c) { return c->currentIndex() > 0 ? c->currentText().toStdString() : std::string(); };
  f.dataset = pick(dataset_);
  f.model = pick(model_);
  f.strategy = pick(strategy_);
  if (status_->currentIndex() > 0) f.status = hl::try_parse<hl::RunStatus>(status_->currentText().toStdString());
  f.tag = pick(tag_);
  auto keep = selectedRuns();
  std::vector<hl::store::RunRecord> runs;
  try {
    runs = db_->listRuns(f);
  } catch (const std::exception& e) {
    count_->setText(QString::fromUtf8(e.what()));
    return;
  }
  table_->setSortingEnabled(false);
  table_->clearContents();
  table_->setRowCount(int(runs.size()));
  int row = 0;
  for (const auto& r : runs) {
    nlohmann::json s;
    try {
      s = nlohmann::json::parse(r.summary_json.empty() ? "{}" : r.summary_json);
    } catch (...) {
      s = nlohmann::json::object();
    }
    auto str = [](const std::string& v) { return new QTableWidgetItem(QString::fromStdString(v)); };
    table_->setItem(row, cId, num(double(r.id), QString::number(r.id)));
    table_->setItem(row, cStatus, new QTableWidgetItem(kindText(r.status)));
    table_->setItem(row, cName, str(r.name));
    table_->setItem(row, cDataset, str(r.dataset));
    table_->setItem(row, cStrategy, str(r.strategy));
    table_->setItem(row, cHead, str(r.head));
    table_->setItem(row, cSeed, num(double(r.seed), QString::number(r.seed)));
    auto numOr = [&](const char* k) {
      auto it = s.find(k);
      return it != s.end() && it->is_number() ? it->get<double>() : -1e300;
    };
    table_->setItem(row, cAcc, num(numOr("final_avg_acc"), fmt(s, "final_avg_acc")));
    table_->setItem(row, cForget, num(numOr("forgetting"), fmt(s, "forgetting")));
    table_->setItem(row, cParams, num(double(r.params), QLocale().toString(qlonglong(r.params))));
    table_->setItem(
        row, cCreated,
        num(r.created_at, QDateTime::fromSecsSinceEpoch(qint64(r.created_at)).toString("yyyy-MM-dd hh:mm")));
    QStringList tags;
    for (const auto& t : r.tags) tags << QString::fromStdString(t);
    table_->setItem(row, cTags, new QTableWidgetItem(tags.join(", ")));
    table_->item(row, cId)->setData(Qt::UserRole + 1, qlonglong(r.id));
    if (hl::is_failure(r.status)) table_->item(row, cStatus)->setForeground(QColor(0xd6, 0x27, 0x28));
    if (r.status == hl::RunStatus::Running) table_->item(row, cStatus)->setForeground(QColor(0x1f, 0x77, 0xb4));
    ++row;
  }
  table_->setSortingEnabled(true);
  table_->resizeColumnsToContents();
  count_->setText(countOf(int(runs.size()), tr("run"), tr("runs")));
  for (qint64 id : keep) selectRun(id);
  Q_EMIT runsChanged();
  QString statuses;
  for (const auto& r : runs) statuses += QString("%1:%2,").arg(r.id).arg(kindText(r.status));
  if (statuses != statuses_) {
    statuses_ = statuses;
    Q_EMIT runStatusesChanged();
  }
}

int RunsBrowser::rowCount() const {
  return table_->rowCount();
}

QList<qint64> RunsBrowser::selectedRuns() const {
  QList<qint64> ids;
  for (const auto& idx : table_->selectionModel()->selectedRows(cId))
    ids << table_->item(idx.row(), cId)->data(Qt::UserRole + 1).toLongLong();
  std::sort(ids.begin(), ids.end());
  return ids;
}

void RunsBrowser::selectRun(qint64 id) {
  for (int r = 0; r < table_->rowCount(); ++r)
    if (table_->item(r, cId) && table_->item(r, cId)->data(Qt::UserRole + 1).toLongLong() == id) {
      table_->selectionModel()->select(table_->model()->index(r, 0),
                                       QItemSelectionModel::Select | QItemSelectionModel::Rows);
    }
}

QString RunsBrowser::detailsText() const {
  return details_->text();
}

void RunsBrowser::showDetails() {
  auto ids = selectedRuns();
  if (!db_ || ids.size() != 1) {
    details_->setText(ids.isEmpty() ? tr("Select a run.") : tr("%1 runs selected.").arg(ids.size()));
    tags_edit_->clear();
    notes_edit_->clear();
    return;
  }
  auto r = db_->getRun(ids.first());
  if (!r) return;
  QStringList tags;
  for (const auto& t : r->tags) tags << QString::fromStdString(t);
  tags_edit_->setText(tags.join(", "));
  notes_edit_->setPlainText(QString::fromStdString(r->notes));
  QString text =
      tr("<b>Run %1</b> · %2<br>%3 · %4 · %5 · seed %6<br>device %7 · torch %8 · app %9")
          .arg(r->id)
          .arg(kindText(r->status))
          .arg(QString::fromStdString(r->name), QString::fromStdString(r->dataset), QString::fromStdString(r->protocol))
          .arg(r->seed)
          .arg(QString::fromStdString(r->device), QString::fromStdString(r->torch_version),
               QString::fromStdString(r->app_version));
  // The machine and code path that made it, from the summary (runs finished before these keys
  // existed show what they have): what its train seconds depend on.
  const auto sum = nlohmann::json::parse(r->summary_json, nullptr, false);
  auto str = [&](const char* k) {
    return sum.is_object() && sum.contains(k) && sum[k].is_string() ? QString::fromStdString(sum[k].get<std::string>())
                                                                    : QString();
  };
  QStringList machine{tr("host %1").arg(QString::fromStdString(r->host).toHtmlEscaped())};
  if (!str("cpu").isEmpty())
    machine << (sum.contains("threads") && sum["threads"].is_number_integer()
                    ? str("cpu").toHtmlEscaped() + ", " +
                          countOf(sum["threads"].get<int>(), tr("thread"), tr("threads"))
                    : str("cpu").toHtmlEscaped());
  if (!str("kernels").isEmpty() && str("kernels") != "none")
    machine << (str("kernel_isa").isEmpty() ? tr("memory kernels %1").arg(str("kernels"))
                                            : tr("memory kernels %1 (%2)").arg(str("kernels"), str("kernel_isa")));
  if (sum.is_object() && sum.contains("train_seconds") && sum["train_seconds"].is_number())
    machine << tr("trained %1 s").arg(sum["train_seconds"].get<double>(), 0, 'f', 1);
  text += "<br>" + machine.join(" · ");
  if (!r->error.empty())
    text += "<br><font color='#d62728'>" + QString::fromStdString(r->error).toHtmlEscaped() + "</font>";
  details_->setText(text);
}

void RunsBrowser::saveMeta() {
  auto ids = selectedRuns();
  if (!db_ || ids.size() != 1) return;
  std::vector<std::string> tags;
  for (const auto& t : tags_edit_->text().split(',', Qt::SkipEmptyParts))
    if (!t.trimmed().isEmpty()) tags.push_back(t.trimmed().toStdString());
  try {
    db_->setTags(ids.first(), tags);
    db_->setNotes(ids.first(), notes_edit_->toPlainText().toStdString());
  } catch (const std::exception& e) {
    QMessageBox::warning(this, tr("Save tags and notes"), QString::fromUtf8(e.what()));
    return;
  }
  fillFilterChoices();
  refresh();
}

void RunsBrowser::deleteSelected() {
  auto ids = selectedRuns();
  if (!db_ || ids.isEmpty()) return;
  QStringList s;
  for (qint64 id : ids) s << QString::number(id);
  if (QMessageBox::question(this, tr("Delete runs"),
                            tr("Delete run(s) %1 with all their series from %2? This cannot be undone.")
                                .arg(s.join(", "), QString::fromStdString(db_->path()))) != QMessageBox::Yes)
    return;
  for (qint64 id : ids) {
    auto r = db_->getRun(id);
    if (r && r->status == hl::RunStatus::Running) {
      QMessageBox::warning(this, tr("Delete runs"), tr("Run %1 is still running; stop it first.").arg(id));
      continue;
    }
    db_->deleteRun(id);
  }
  fillFilterChoices();
  refresh();
}

}  // namespace hl::ui
