#include "ui/experiment_view.h"

#include <QComboBox>
#include <QDir>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QPushButton>
#include <QRegularExpression>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>
#include <algorithm>
#include <filesystem>

#include "engine/data/dataset.h"
#include "engine/spec/spec.h"
#include "engine/train/experiment.h"
#include "ui/run_worker.h"
#include "ui/kind_text.h"

namespace hl::ui {

using json = nlohmann::json;

ExperimentView::ExperimentView(RunWorker* worker, QWidget* parent) : QWidget(parent), worker_(worker) {
  auto combo = [this](const QStringList& items, bool editable = false) {
    auto* c = new QComboBox(this);
    c->addItems(items);
    c->setEditable(editable);
    return c;
  };
  auto spin = [this](int lo, int hi, int v, const QString& special = QString()) {
    auto* s = new QSpinBox(this);
    s->setRange(lo, hi);
    s->setValue(v);
    if (!special.isEmpty()) s->setSpecialValueText(special);
    return s;
  };
  QStringList datasets;
  for (const auto& d : hl::data::known_datasets()) datasets << QString::fromStdString(d);
  dataset_ = combo(datasets, true);
  dataset_->setToolTip(tr("A known dataset or a folder with train/test .csv|.jsonl"));
  split_ = combo({"", "vag", "all77"}, true);
  split_->setToolTip(tr("Dataset split (empty = the dataset's default; banking77: vag | all77)"));
  auto choices = [](const std::vector<std::string>& names) {
    QStringList out;
    for (const auto& n : names) out << QString::fromStdString(n);
    return out;
  };
  protocol_ = combo(choices(hl::names<hl::Protocol>()));
  strategy_ = combo(choices(hl::names<hl::StrategyType>()));
  head_ = combo(choices(hl::names<hl::HeadType>()));
  optimizer_ = combo({"adamw", "sgd", "sgd_momentum", "delta_momentum", "deep_momentum", "m3"});
  device_ = combo({"cpu"});
  if (hl::train::cuda_available()) device_->addItem("cuda");
  device_->setToolTip(hl::train::cuda_available() ? tr("CUDA %1").arg(QString::fromStdString(hl::train::cuda_version()))
                                                  : tr("No CUDA device in this build/machine"));
  task_order_ = spin(0, 1000, 0);
  epochs_ = spin(0, 10000, 5);  // the field table's range (0: an NCM head needs no training)
  limit_ = spin(0, 100000, 0, tr("all"));
  eval_limit_ = spin(0, 100000, 0, tr("all"));
  batch_ = spin(1, 4096, 32);
  replay_ = spin(0, 10000, 10);
  lr_ = new QDoubleSpinBox(this);
  lr_->setDecimals(6);
  lr_->setRange(1e-6, 10);
  lr_->setSingleStep(1e-4);
  lr_->setValue(1e-3);
  ewc_ = new QDoubleSpinBox(this);
  ewc_->setRange(0, 1e7);
  ewc_->setValue(100);
  seeds_ = new QLineEdit("0", this);
  seeds_->setObjectName("seeds");
  seeds_->setToolTip(tr("One run per seed, e.g. 0 1 2"));
  tags_ = new QLineEdit(this);
  tags_->setPlaceholderText(tr("comma-separated"));
  notes_ = new QLineEdit(this);

  auto* data = new QGroupBox(tr("Data and protocol"), this);
  auto* f1 = new QFormLayout(data);
  // A folder of one's own data: the browse button fills the (editable) dataset field with it.
  auto* browse = new QToolButton(this);
  browse->setObjectName("browseDataset");
  browse->setText(tr("Folder…"));
  browse->setToolTip(tr("Choose a folder with train and test files (.csv or .jsonl; docs/DATA.md)"));
  connect(browse, &QToolButton::clicked, this, [this] {
    const QString start = QFileInfo(dataset_->currentText()).isDir() ? dataset_->currentText() : QDir::homePath();
    const QString dir = QFileDialog::getExistingDirectory(this, tr("Dataset folder"), start);
    if (!dir.isEmpty()) dataset_->setCurrentText(dir);
  });
  auto* datasetRow = new QHBoxLayout;
  datasetRow->setContentsMargins(0, 0, 0, 0);
  datasetRow->addWidget(dataset_, 1);
  datasetRow->addWidget(browse);
  f1->addRow(tr("Dataset"), datasetRow);
  f1->addRow(tr("Split"), split_);
  f1->addRow(tr("Protocol"), protocol_);
  f1->addRow(tr("Task order"), task_order_);
  f1->addRow(tr("Train rows per class"), limit_);
  f1->addRow(tr("Test rows per class"), eval_limit_);
  auto* train = new QGroupBox(tr("Training"), this);
  auto* f2 = new QFormLayout(train);
  f2->addRow(tr("Strategy"), strategy_);
  f2->addRow(tr("EWC λ"), ewc_);
  f2->addRow(tr("Replay per class"), replay_);
  f2->addRow(tr("Head"), head_);
  f2->addRow(tr("Epochs per task"), epochs_);
  f2->addRow(tr("Batch size"), batch_);
  f2->addRow(tr("Optimizer"), optimizer_);
  f2->addRow(tr("Learning rate"), lr_);
  f2->addRow(tr("Device"), device_);
  auto* runs = new QGroupBox(tr("Runs"), this);
  auto* f3 = new QFormLayout(runs);
  arch_ = new QLabel(this);
  arch_->setObjectName("architectureSummary");
  arch_->setWordWrap(true);
  f3->addRow(tr("Architecture"), arch_);
  f3->addRow(tr("Seeds"), seeds_);
  f3->addRow(tr("Tags"), tags_);
  f3->addRow(tr("Notes"), notes_);

  launch_ = new QPushButton(tr("Launch"), this);
  launch_->setObjectName("launch");
  // No shortcut on the button: Run › Launch owns Ctrl+R (two bindings made it an ambiguous
  // shortcut that did nothing).
  launch_->setToolTip(tr("Launch one run per seed (Ctrl+R)"));
  pause_ = new QPushButton(tr("Pause"), this);
  pause_->setCheckable(true);
  stop_ = new QPushButton(tr("Stop"), this);
  stop_all_ = new QPushButton(tr("Stop all"), this);
  connect(launch_, &QPushButton::clicked, this, [this] {
    QString err;
    if (launch(&err).isEmpty() && !err.isEmpty()) QMessageBox::warning(this, tr("Launch"), err);
  });
  pause_->setObjectName("pause");
  pause_->setToolTip(tr("Pause the training run between two steps (Ctrl+P); resume with Ctrl+Shift+P"));
  // The button follows the worker (Run › Pause, Ctrl+P), not only its own clicks.
  connect(pause_, &QPushButton::clicked, this, [this](bool on) { on ? worker_->pause() : worker_->resume(); });
  connect(worker_, &RunWorker::pausedChanged, this, &ExperimentView::onPausedChanged);
  connect(stop_, &QPushButton::clicked, worker_, &RunWorker::stopCurrent);
  connect(stop_all_, &QPushButton::clicked, worker_, &RunWorker::stopAll);
  auto* buttons = new QHBoxLayout;
  for (auto* b : {launch_, pause_, stop_, stop_all_}) buttons->addWidget(b);
  buttons->addStretch(1);

  queue_ = new QListWidget(this);
  queue_->setObjectName("queue");
  msg_ = new QLabel(this);
  msg_->setWordWrap(true);

  auto* forms = new QHBoxLayout;
  forms->addWidget(data);
  forms->addWidget(train);
  forms->addWidget(runs);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(forms);
  lay->addLayout(buttons);
  lay->addWidget(new QLabel(tr("Queue (runs one after another in a worker thread):"), this));
  lay->addWidget(queue_, 1);
  lay->addWidget(msg_);

  connect(worker_, &RunWorker::requestStarted, this, &ExperimentView::onStarted);
  connect(worker_, &RunWorker::requestFinished, this, &ExperimentView::onFinished);
  connect(worker_, &RunWorker::idle, this, [this] {
    updateButtons();
    refreshSummary();  // parameters and FLOPs are computed again once nothing trains
  });
  setSpec(hl::spec::defaults());
  updateButtons();
  // Tab moves through the form as it is laid out (top to bottom, group by group), not in the
  // order the widgets were made.
  const QList<QWidget*> order{dataset_, browse,  split_, protocol_, task_order_, limit_,     eval_limit_, strategy_,
                              ewc_,     replay_, head_,  epochs_,   batch_,      optimizer_, lr_,         device_,
                              seeds_,   tags_,   notes_, launch_,   pause_,      stop_,      stop_all_};
  for (int i = 0; i + 1 < order.size(); ++i) setTabOrder(order[i], order[i + 1]);
}

void ExperimentView::showEvent(QShowEvent* e) {
  QWidget::showEvent(e);
  refreshSummary();
}

void ExperimentView::refreshSummary() {
  try {
    json spec = applyTo(source_ ? source_() : hl::spec::defaults());
    // describe() builds the model, drawing from the random generator a training run uses: not
    // while one trains in this process.
    json d = worker_->busy() ? json::object() : hl::train::describe(spec);
    QStringList blocks;
    for (const auto& b : spec["model"]["blocks"]) {
      QString t = QString::fromStdString(b.value("type", "?"));
      if (b.contains("levels")) t += QString("(%1 levels)").arg(b["levels"].size());
      blocks << t;
    }
    const QString head = tr("%1: %2 · d_model %3")
                             .arg(QString::fromStdString(spec.value("name", "")), blocks.join(" → "))
                             .arg(spec["model"].value("d_model", 0));
    if (d.contains("params"))
      arch_->setText(tr("%1 · %2 parameters · %3 FLOPs/sample (from the Architecture tab)")
                         .arg(head, QLocale().toString(qlonglong(d.value("params", 0LL))))
                         .arg(d.value("flops_per_sample", 0.0), 0, 'g', 3));
    else
      arch_->setText(
          tr("%1 (from the Architecture tab; parameters and FLOPs are counted when no run trains)").arg(head));
  } catch (const std::exception& e) {
    arch_->setText(tr("the architecture has errors: %1").arg(QString::fromUtf8(e.what()).left(300)));
  }
}

void ExperimentView::setSpec(const json& s) {
  json spec = hl::spec::complete(s);
  const auto& ex = spec["experiment"];
  dataset_->setCurrentText(QString::fromStdString(ex.value("dataset", "banking77")));
  split_->setCurrentText(QString::fromStdString(ex.value("split", "")));
  protocol_->setCurrentText(QString::fromStdString(ex.value("protocol", "class-incremental")));
  strategy_->setCurrentText(QString::fromStdString(ex["strategy"].value("type", "finetune")));
  ewc_->setValue(ex["strategy"].value("ewc_lambda", 100.0));
  replay_->setValue(ex["strategy"].value("replay_per_class", 10));
  task_order_->setValue(ex.value("task_order", 0));
  // A value the form cannot show (epochs: -1) is said, not silently clamped.
  QStringList clamped;
  auto setSpin = [&](QSpinBox* box, const json& v, const QString& path) {
    const double x = v.is_number() ? v.get<double>() : double(box->value());
    const int shown = int(std::clamp<double>(x, box->minimum(), box->maximum()));
    if (x != shown)
      clamped << tr("%1 = %2 is outside the form's range %3…%4 (the spec is invalid; the form shows %5)")
                     .arg(path)
                     .arg(x)
                     .arg(box->minimum())
                     .arg(box->maximum())
                     .arg(shown);
    box->setValue(shown);
  };
  const auto& tr_ = spec["training"];
  setSpin(epochs_, tr_.value("epochs", json(5)), "training.epochs");
  setSpin(batch_, tr_.value("batch_size", json(32)), "training.batch_size");
  setSpin(limit_, tr_.value("limit_per_class", json(0)), "training.limit_per_class");
  setSpin(eval_limit_, tr_.value("eval_limit_per_class", json(0)), "training.eval_limit_per_class");
  msg_->setText(clamped.join('\n'));
  setPresetFieldsFrom(spec);
  QString dev = QString::fromStdString(ex.value("device", "cpu"));
  device_->setCurrentIndex(std::max(0, device_->findText(dev)));
  seeds_->setText(QString::number(ex.value("seed", 0)));
}

void ExperimentView::setPresetFieldsFrom(const json& s) {
  json spec = hl::spec::complete(s);
  head_->setCurrentText(QString::fromStdString(spec["model"]["head"].value("type", hl::name(hl::HeadType::Softmax))));
  optimizer_->setCurrentText(QString::fromStdString(spec["optimizer"].value("type", "adamw")));
  lr_->setValue(spec["optimizer"].value("lr", 1e-3));
}

json ExperimentView::applyTo(json spec) const {
  spec = hl::spec::complete(spec);
  auto& ex = spec["experiment"];
  QString ds = dataset_->currentText().trimmed();
  std::error_code ec;
  if (std::filesystem::is_directory(ds.toStdString(), ec))
    ds = QString::fromStdString(std::filesystem::absolute(ds.toStdString()).lexically_normal().string());
  ex["dataset"] = ds.toStdString();
  ex["split"] = split_->currentText().trimmed().toStdString();
  ex["protocol"] = protocol_->currentText().toStdString();
  ex["strategy"]["type"] = strategy_->currentText().toStdString();
  ex["strategy"]["ewc_lambda"] = ewc_->value();
  ex["strategy"]["replay_per_class"] = replay_->value();
  ex["task_order"] = task_order_->value();
  ex["device"] = device_->currentText().toStdString();
  spec["model"]["head"]["type"] = head_->currentText().toStdString();
  spec["training"]["epochs"] = epochs_->value();
  spec["training"]["batch_size"] = batch_->value();
  spec["training"]["limit_per_class"] = limit_->value();
  spec["training"]["eval_limit_per_class"] = eval_limit_->value();
  spec["optimizer"]["type"] = optimizer_->currentText().toStdString();
  spec["optimizer"]["lr"] = lr_->value();
  return spec;
}

QList<qint64> ExperimentView::seeds(QString* error) const {
  QList<qint64> out;
  for (const auto& p : seeds_->text().split(QRegularExpression("[ ,;]+"), Qt::SkipEmptyParts)) {
    bool ok = false;
    qint64 v = p.toLongLong(&ok);
    if (!ok || v < 0) {
      if (error) *error = tr("Seeds: '%1' is not a non-negative integer (e.g. 0 1 2)").arg(p);
      return {};
    }
    out << v;
  }
  if (out.isEmpty() && error) *error = tr("Seeds: give at least one seed (e.g. 0 1 2)");
  return out;
}

QList<int> ExperimentView::launch(QString* error) {
  json spec = applyTo(source_ ? source_() : hl::spec::defaults());
  QList<qint64> ss = seeds(error);
  if (ss.isEmpty()) return {};
  QList<int> ids;
  for (qint64 s : ss) {
    spec["experiment"]["seed"] = s;
    auto more = launchSpec(spec, error);
    if (more.isEmpty()) return ids;
    ids += more;
  }
  return ids;
}

QList<int> ExperimentView::launchSpec(const json& s, QString* error) {
  json spec;
  try {
    spec = hl::spec::complete(s);
    auto v = hl::spec::validate(spec);
    if (!v.ok()) {
      if (error) *error = tr("The spec has errors:\n%1").arg(QString::fromStdString(v.format()));
      return {};
    }
  } catch (const std::exception& e) {
    if (error) *error = QString::fromUtf8(e.what());
    return {};
  }
  RunRequest r;
  r.spec = spec;
  r.options.data_dir = hl::data::resolve_data_dir(data_dir_.toStdString());
  r.options.db_path = db_path_.toStdString();
  for (const auto& t : tags_->text().split(',', Qt::SkipEmptyParts))
    if (!t.trimmed().isEmpty()) r.options.tags.push_back(t.trimmed().toStdString());
  r.options.notes = notes_->text().toStdString();
  r.label = QString("%1 · %2 · %3 · seed %4")
                .arg(QString::fromStdString(spec.value("name", "")),
                     QString::fromStdString(spec["experiment"].value("dataset", "")),
                     QString::fromStdString(spec["experiment"]["strategy"].value("type", "")))
                .arg(spec["experiment"].value("seed", 0));
  QString label = r.label;
  int id = worker_->enqueue(std::move(r));
  labels_[id] = label;
  auto* item = new QListWidgetItem(tr("#%1 queued  %2").arg(id).arg(label), queue_);
  item->setData(Qt::UserRole, id);
  msg_->clear();
  updateButtons();
  Q_EMIT launched(1);
  return {id};
}

void ExperimentView::setQueueText(int id, const QString& state) {
  for (int i = 0; i < queue_->count(); ++i)
    if (queue_->item(i)->data(Qt::UserRole).toInt() == id)
      queue_->item(i)->setText(tr("#%1 %2  %3").arg(id).arg(state, labels_.value(id)));
}

void ExperimentView::onStarted(int id) {
  current_ = id;
  setQueueText(id, worker_->paused() ? tr("paused") : tr("running"));
  updateButtons();
}

void ExperimentView::onPausedChanged(bool paused) {
  if (current_) setQueueText(current_, paused ? tr("paused") : tr("running"));
  updateButtons();
}

void ExperimentView::onFinished(const RunOutcome& o) {
  if (o.request_id == current_) current_ = 0;
  for (int i = 0; i < queue_->count(); ++i)
    if (queue_->item(i)->data(Qt::UserRole).toInt() == o.request_id)
      queue_->item(i)->setText(tr("#%1 %2  %3%4")
                                   .arg(o.request_id)
                                   .arg(kindText(o.status), labels_.value(o.request_id))
                                   .arg(o.run_id ? tr("  → run %1").arg(o.run_id) : QString()));
  if (hl::is_failure(o.status)) {
    msg_->setText(o.error);
    if (!property("noDialogs").toBool())
      QMessageBox::critical(this, tr("Run %1").arg(kindText(o.status)),
                            tr("%1 %2:\n%3").arg(labels_.value(o.request_id), kindText(o.status), o.error));
  }
  updateButtons();
}

void ExperimentView::updateButtons() {
  const bool busy = worker_->busy(), paused = worker_->paused();
  pause_->setEnabled(busy || paused);
  pause_->setChecked(paused);  // setChecked emits toggled, not clicked: no feedback loop
  pause_->setText(paused ? tr("Resume") : tr("Pause"));
  stop_->setEnabled(busy);
  stop_all_->setEnabled(busy);
}

}  // namespace hl::ui
