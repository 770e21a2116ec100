#include "ui/inference_view.h"

#include <QApplication>
#include <QComboBox>
#include <algorithm>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QVBoxLayout>

#include "engine/store/store.h"
#include "engine/train/inference.h"
#include "ui/kind_text.h"

namespace hl::ui {

InferenceView::InferenceView(QWidget* parent) : QWidget(parent) {
  run_ = new QComboBox(this);
  run_->setMinimumContentsLength(30);
  kind_ = new QComboBox(this);
  kind_->setObjectName("checkpointKind");
  kind_->addItems({"best", "last"});
  k_ = new QSpinBox(this);
  k_->setRange(1, 50);
  k_->setValue(5);
  text_ = new QLineEdit(this);
  text_->setObjectName("sentence");
  text_->setPlaceholderText(tr("Type a sentence, e.g. “my card has not arrived yet”, and press Enter"));
  auto* go = new QPushButton(tr("Predict"), this);
  table_ = new QTableWidget(0, 3, this);
  table_->setObjectName("predictions");
  table_->setHorizontalHeaderLabels({tr("class"), tr("probability"), tr("")});
  table_->horizontalHeader()->setSectionResizeMode(2, QHeaderView::Stretch);
  table_->verticalHeader()->hide();
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  msg_ = new QLabel(this);
  msg_->setWordWrap(true);
  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel(tr("Run"), this));
  top->addWidget(run_, 1);
  top->addWidget(new QLabel(tr("Checkpoint"), this));
  top->addWidget(kind_);
  top->addWidget(new QLabel(tr("Top k"), this));
  top->addWidget(k_);
  auto* mid = new QHBoxLayout;
  mid->addWidget(text_, 1);
  mid->addWidget(go);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(top);
  lay->addLayout(mid);
  lay->addWidget(table_, 1);
  lay->addWidget(msg_);
  kind_->setToolTip(
      tr("last: the model after the final task (the default for class-incremental runs, where "
         "'best' is usually the model after an early task, which knows only its classes); "
         "best: the checkpoint with the best mean dev accuracy (the default for joint runs); "
         "after task j: the model as it was at the end of task j (the run's task-end snapshots, "
         "training.snapshots), trained on the classes of tasks 1 to j only"));
  // A new run selection picks its default checkpoint; a choice the user made stays until then.
  connect(run_, &QComboBox::currentIndexChanged, this, [this] {
    if (!filling_) applyDefaultKind();
  });
  // Another run or checkpoint: the predictions shown were another model's; they go.
  auto clearResults = [this] {
    if (filling_) return;
    table_->setRowCount(0);
    msg_->clear();
  };
  connect(run_, &QComboBox::currentIndexChanged, this, clearResults);
  connect(kind_, &QComboBox::currentIndexChanged, this, clearResults);
  auto run = [this] {
    // The first prediction loads the checkpoint (seconds for a Hope run): say so while it works.
    if (!pred_) {
      msg_->setText(tr("loading the checkpoint…"));
      msg_->repaint();
    }
    QApplication::setOverrideCursor(Qt::WaitCursor);
    QString err = predict(text_->text());
    QApplication::restoreOverrideCursor();
    if (!err.isEmpty()) msg_->setText(err);
  };
  connect(go, &QPushButton::clicked, this, run);
  connect(text_, &QLineEdit::returnPressed, this, run);
}

InferenceView::~InferenceView() = default;

void InferenceView::setStore(hl::store::RunStore* db) {
  db_ = db;
  pred_.reset();
  kind_for_ = -1;
  loaded_.clear();
  refreshRuns();
}

QString InferenceView::checkpointKind() const {
  return kind_->currentText();
}

QStringList InferenceView::checkpointChoices() const {
  QStringList out;
  for (int i = 0; i < kind_->count(); ++i) out << kind_->itemText(i);
  return out;
}

// Item data: -1 for best and last, else the snapshot's task index (0-based, as stored).
void InferenceView::fillKinds() {
  const QString cur = kind_->currentText();
  const qint64 id = run_->currentData().toLongLong();
  std::vector<int> tasks;
  if (db_ && id > 0) {
    try {
      for (const auto& c : db_->checkpoints(id))
        if (c.kind == hl::CheckpointKind::Snapshot) tasks.push_back(c.task);
    } catch (const std::exception&) {  // the store's error shows when the user loads
    }
  }
  std::sort(tasks.begin(), tasks.end());
  const bool filling = filling_;
  filling_ = true;
  kind_->clear();
  kind_->addItem(kindText(hl::CheckpointKind::Best), -1);
  kind_->addItem(kindText(hl::CheckpointKind::Last), -1);
  for (int t : tasks) kind_->addItem(tr("after task %1").arg(t + 1), t);
  const int i = kind_->findText(cur);
  kind_->setCurrentIndex(i >= 0 ? i : 1);
  filling_ = filling;
}

void InferenceView::refreshRuns() {
  qint64 cur = run_->currentData().toLongLong();
  filling_ = true;
  run_->clear();
  filling_ = false;
  if (!db_) return;
  filling_ = true;
  for (const auto& r : db_->listRuns()) {
    if (db_->checkpoints(r.id).empty()) continue;
    run_->addItem(tr("run %1 · %2 · %3 · seed %4 · %5")
                      .arg(r.id)
                      .arg(QString::fromStdString(r.name), QString::fromStdString(r.dataset))
                      .arg(r.seed)
                      .arg(kindText(r.status)),
                  qlonglong(r.id));
  }
  filling_ = false;
  int i = run_->findData(qlonglong(cur));
  if (i >= 0) run_->setCurrentIndex(i);
  fillKinds();         // a running run's new snapshots; the user's choice stays
  applyDefaultKind();  // a no-op for the run that was selected before
}

void InferenceView::applyDefaultKind() {
  const qint64 id = run_->currentData().toLongLong();
  if (!db_ || id <= 0 || id == kind_for_) return;
  kind_for_ = id;
  fillKinds();
  std::optional<hl::Protocol> protocol;
  try {
    if (auto r = db_->getRun(id)) protocol = hl::try_parse<hl::Protocol>(r->protocol);
  } catch (const std::exception&) {  // the store's error shows when the user loads
  }
  kind_->setCurrentText(
      kindText(protocol == hl::Protocol::Joint ? hl::CheckpointKind::Best : hl::CheckpointKind::Last));
}

void InferenceView::setRun(qint64 id) {
  refreshRuns();
  int i = run_->findData(qlonglong(id));
  if (i >= 0)
    run_->setCurrentIndex(i);
  else
    msg_->setText(tr("run %1 has no checkpoint").arg(id));
}

void InferenceView::setText(const QString& t) {
  text_->setText(t);
}

QString InferenceView::load() {
  if (!db_) return tr("no run database open");
  qint64 id = run_->currentData().toLongLong();
  if (id <= 0) return tr("no run with a checkpoint in this database");
  std::string path;
  const int snapshot_task = kind_->currentData().isValid() ? kind_->currentData().toInt() : -1;
  for (const auto& c : db_->checkpoints(id))
    if (snapshot_task >= 0 ? c.kind == hl::CheckpointKind::Snapshot && c.task == snapshot_task
                           : kindText(c.kind) == kind_->currentText())
      path = c.path;
  if (path.empty()) return tr("run %1 has no '%2' checkpoint").arg(id).arg(kind_->currentText());
  const QString file = QString::fromStdString(path);
  const QString key = QString::number(id) + ":" + file;  // two runs may name one file (the check below)
  if (pred_ && loaded_ == key) return {};
  if (training_)
    return tr(
        "a run is training in this window: loading a checkpoint now would change that run's random "
        "numbers (model construction draws from the generator it uses). Try again when it has finished, "
        "or open the database in a second Hope Lab window.");
  try {
    pred_ = hl::train::Predictor::load(path);
  } catch (const std::exception& e) {
    pred_.reset();
    loaded_.clear();
    return QString::fromUtf8(e.what());
  }
  // The file must be this run's: checkpoint rows hold absolute paths, and a merged database can
  // point at a folder that another database of the same path reuses (docs/STORE.md "Merging").
  const auto rec = db_->getRun(id);
  const nlohmann::json mine = rec ? nlohmann::json::parse(rec->spec_json, nullptr, false) : nlohmann::json();
  if (rec && !mine.is_discarded() && mine != pred_->spec()) {
    pred_.reset();
    loaded_.clear();
    return tr("run %1: the checkpoint %2 was written by another run (its saved spec differs from the run's). The "
              "database's checkpoint rows point at files of another database: open the database that trained "
              "the run, or put its own checkpoint back at that path.")
        .arg(id)
        .arg(file);
  }
  loaded_ = key;
  msg_->setText(tr("checkpoint '%1' (%2) · saved after task %3, step %4 · %5 classes")
                    .arg(kind_->currentText(), file)
                    .arg(pred_->task() + 1)
                    .arg(pred_->step())
                    .arg(pred_->labels().size()));
  return {};
}

QString InferenceView::predict(const QString& text) {
  if (text.trimmed().isEmpty()) return tr("type a sentence to classify first");
  QString err = load();
  if (!err.isEmpty()) return err;
  std::vector<hl::train::Prediction> ps;
  try {
    ps = pred_->predict(text.toStdString(), k_->value());
  } catch (const std::exception& e) {
    return QString::fromUtf8(e.what());
  }
  table_->setRowCount(int(ps.size()));
  for (int i = 0; i < int(ps.size()); ++i) {
    table_->setItem(i, 0, new QTableWidgetItem(QString::fromStdString(ps[i].label)));
    auto* p = new QTableWidgetItem(QString::number(ps[i].prob, 'f', 4));
    p->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
    table_->setItem(i, 1, p);
    auto* bar = new QProgressBar(table_);
    bar->setRange(0, 1000);
    bar->setValue(int(ps[i].prob * 1000));
    bar->setTextVisible(false);
    table_->setCellWidget(i, 2, bar);
  }
  table_->resizeColumnToContents(0);
  return {};
}

}  // namespace hl::ui
