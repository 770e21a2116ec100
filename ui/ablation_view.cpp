#include "ui/ablation_view.h"

#include <QCheckBox>
#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPointer>
#include <QPushButton>
#include <QRegularExpression>
#include <QTableWidget>
#include <QVBoxLayout>
#include <QtConcurrent>
#include <cmath>

#include "engine/data/dataset.h"

namespace hl::ui {

namespace {
QString acc(double v) {
  return std::isnan(v) ? QStringLiteral("–") : QString::number(v, 'f', 3);
}
QString points(double v) {
  return std::isnan(v) ? QStringLiteral("–") : QString::asprintf("%+.1f", 100 * v);
}
}  // namespace

AblationView::AblationView(QWidget* parent) : QWidget(parent) {
  run_ = new RunPicker(this);
  run_->setObjectName("ablationRun");
  which_ = new QComboBox(this);
  which_->setObjectName("ablationCheckpoint");
  which_->addItem(tr("last.pt"), "last");
  which_->addItem(tr("best.pt"), "best");
  which_->setToolTip(tr("last.pt: the model whose accuracies the run stored; best.pt: the dev score's pick"));
  writes_off_ = new QCheckBox(tr("In-context writes off"), this);
  writes_off_->setObjectName("ablationWritesOff");
  writes_off_->setChecked(true);
  writes_off_->setToolTip(
      tr("memory_writes false in every self-modifying Titans block: each token reads the output memory at its "
         "learned initial state (docs/MEMORY.md \"Writes off\")"));
  record_ = new QCheckBox(tr("Record"), this);
  record_->setObjectName("ablationRecord");
  record_->setToolTip(
      tr("Store the result in the run database (as hopelab-cli evaluate --record): the run's details list it "
         "and hopelab-cli report tabulates it; the same overrides again replace it"));
  sets_ = new QLineEdit(this);
  sets_->setObjectName("ablationOverrides");
  sets_->setPlaceholderText(tr("more overrides: model.blocks.0.inner_lr=0.01 model.blocks.1.eta_max=0.5"));
  sets_->setToolTip(
      tr("PATH=VALUE items of the saved spec, separated by spaces or semicolons; only fields that keep every "
         "parameter's shape (writes, inner learning rates, η bounds, the write clamp, dropout)"));
  compute_ = new QPushButton(tr("Evaluate"), this);
  compute_->setObjectName("ablationCompute");
  compute_->setToolTip(tr("Evaluate the saved model as saved and with the overrides (worker thread; no training)"));
  cancel_ = new QPushButton(tr("Cancel"), this);
  cancel_->setEnabled(false);
  status_ = new QLabel(tr("Pick a finished run, choose what to turn off or change, and press Evaluate."), this);
  status_->setObjectName("ablationStatus");
  status_->setWordWrap(true);
  status_->setTextInteractionFlags(Qt::TextSelectableByMouse);
  table_ = new QTableWidget(0, 7, this);
  table_->setObjectName("ablationTable");
  table_->setHorizontalHeaderLabels({tr("Task"), tr("Stored"), tr("As saved"), tr("Ablated"), tr("Change (points)"),
                                     tr("Task-IL as saved"), tr("Task-IL ablated")});
  table_->verticalHeader()->setVisible(false);
  table_->setEditTriggers(QAbstractItemView::NoEditTriggers);
  table_->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
  table_->horizontalHeader()->setStretchLastSection(false);

  auto* top = new QHBoxLayout;
  top->addWidget(new QLabel(tr("Run"), this));
  top->addWidget(run_, 1);
  top->addWidget(which_);
  top->addWidget(compute_);
  top->addWidget(cancel_);
  auto* second = new QHBoxLayout;
  second->addWidget(writes_off_);
  second->addWidget(sets_, 1);
  second->addWidget(record_);
  auto* lay = new QVBoxLayout(this);
  lay->setContentsMargins(0, 0, 0, 0);
  lay->addLayout(top);
  lay->addLayout(second);
  lay->addWidget(status_);
  lay->addWidget(table_, 1);
  connect(compute_, &QPushButton::clicked, this, [this] { compute(); });
  connect(sets_, &QLineEdit::returnPressed, this, [this] { compute(); });
  connect(cancel_, &QPushButton::clicked, this, &AblationView::cancel);
}

AblationView::~AblationView() {
  if (watcher_) {
    cancel();
    watcher_->waitForFinished();
  }
}

std::vector<std::string> AblationView::parseOverrides(const QString& text) {
  std::vector<std::string> out;
  for (const QString& item : text.split(QRegularExpression("[\\s,;]+"), Qt::SkipEmptyParts))
    out.push_back(item.toStdString());
  return out;
}

bool AblationView::compute() {
  if (busy()) return false;
  const qint64 id = selectedRun();
  if (id <= 0 || db_path_.isEmpty()) {
    status_->setText(tr("No run to evaluate: open a run database and compare a finished run."));
    return false;
  }
  hl::train::AblationOptions opt;
  opt.sets = parseOverrides(sets_->text());
  opt.writes_off = writes_off_->isChecked();
  opt.which = which_->currentData().toString().toStdString();
  if (opt.sets.empty() && !opt.writes_off) {
    status_->setText(tr("Nothing to change: tick \"In-context writes off\" or type an override (PATH=VALUE)."));
    return false;
  }
  for (const auto& s : opt.sets)
    if (s.find('=') == std::string::npos) {
      status_->setText(tr("\"%1\" is not an override: write PATH=VALUE, e.g. model.blocks.0.inner_lr=0.01")
                           .arg(QString::fromStdString(s)));
      return false;
    }
  if (!watcher_) {
    watcher_ = new QFutureWatcher<Outcome>(this);
    connect(watcher_, &QFutureWatcher<Outcome>::finished, this, &AblationView::onFinished);
  }
  cancel_flag_ = std::make_shared<std::atomic<bool>>(false);
  opt.cancel = cancel_flag_.get();
  opt.data_dir = hl::data::resolve_data_dir(data_dir_ ? data_dir_().toStdString() : std::string());
  const std::string db = db_path_.toStdString();
  auto flag = cancel_flag_;  // keeps opt.cancel alive for the worker
  QPointer<AblationView> self(this);
  opt.waiting = [self, id] {
    QMetaObject::invokeMethod(
        self.data(),
        [self, id] {
          if (self)
            self->status_->setText(tr("run %1: waiting for the training run in this window to end (building a model "
                                      "would change its random numbers)")
                                       .arg(id));
        },
        Qt::QueuedConnection);
  };
  status_->setText(tr("run %1: evaluating its saved model as saved and with the overrides…").arg(id));
  compute_->setEnabled(false);
  cancel_->setEnabled(true);
  const bool record = record_->isChecked();
  watcher_->setFuture(QtConcurrent::run([db, id, opt, flag, record]() {
    Outcome out;
    try {
      out.result = hl::train::ablate_run(db, id, opt);
    } catch (const std::exception& e) {
      out.error = QString::fromUtf8(e.what());
      return out;
    }
    if (record) try {
        hl::train::record_ablation(db, *out.result);
        out.recorded = true;
      } catch (const std::exception& e) {
        out.error = QString::fromUtf8(e.what());  // shown beside the result, which stays
      }
    return out;
  }));
  return true;
}

void AblationView::cancel() {
  if (cancel_flag_) cancel_flag_->store(true);
}

void AblationView::onFinished() {
  Outcome out = watcher_->result();
  compute_->setEnabled(true);
  cancel_->setEnabled(false);
  if (out.result) {
    result_ = std::move(out.result);
    QStringList sets;
    for (const auto& s : result_->sets) sets << QString::fromStdString(s);
    status_->setText(tr("run %1, %2.pt (step %3), overrides: %4. Change = ablated − as saved, in accuracy points. %5")
                         .arg(result_->run_id)
                         .arg(QString::fromStdString(result_->which))
                         .arg(result_->step)
                         .arg(sets.join(", "))
                         .arg(result_->which != "last" ? tr("best.pt is not the model of the stored accuracies.")
                              : result_->exact         ? tr("As saved reproduces the stored accuracies bit for bit.")
                                               : tr("As saved differs from the stored accuracies (another build, "
                                                    "CPU or kernel path): compare with the as-saved column.")) +
                     (out.recorded          ? tr(" Recorded in the run database.")
                      : out.error.isEmpty() ? QString()
                                            : tr(" Not recorded: %1").arg(out.error)));
  } else {
    result_.reset();  // no table of an earlier evaluation under this one's error
    status_->setText(out.error);
  }
  fill();
  Q_EMIT finished(out.result.has_value());
}

QString AblationView::statusText() const {
  return status_->text();
}

void AblationView::fill() {
  table_->setRowCount(0);
  if (!result_) return;
  const auto& a = *result_;
  const int n = int(a.tasks.size());
  table_->setRowCount(n + (n > 1 ? 1 : 0));
  auto put = [&](int r, int c, const QString& text, const QString& tip = {}) {
    auto* item = new QTableWidgetItem(text);
    item->setTextAlignment(c == 0 ? int(Qt::AlignLeft | Qt::AlignVCenter) : int(Qt::AlignRight | Qt::AlignVCenter));
    if (!tip.isEmpty()) item->setToolTip(tip);
    table_->setItem(r, c, item);
  };
  auto row = [&](int r, const QString& name, double stored, double saved, double abl, double til_s, double til_a) {
    put(r, 0, name);
    put(r, 1, acc(stored));
    put(r, 2, acc(saved));
    put(r, 3, acc(abl));
    put(r, 4, points(abl - saved));
    put(r, 5, acc(til_s));
    put(r, 6, acc(til_a));
    if (!std::isnan(abl - saved) && std::abs(abl - saved) >= 0.005) {
      const QColor c = abl < saved ? QColor(180, 4, 38) : QColor(30, 120, 50);
      table_->item(r, 4)->setForeground(c);
    }
  };
  for (int i = 0; i < n; ++i)
    row(i, tr("task %1").arg(a.tasks[i] + 1), a.stored[i], a.as_saved[i], a.ablated[i], a.as_saved_til[i],
        a.ablated_til[i]);
  if (n > 1) {
    row(n, tr("mean"), a.mean(a.stored), a.mean(a.as_saved), a.mean(a.ablated), a.mean(a.as_saved_til),
        a.mean(a.ablated_til));
    QFont f = table_->font();
    f.setBold(true);
    for (int c = 0; c < table_->columnCount(); ++c) table_->item(n, c)->setFont(f);
  }
}

}  // namespace hl::ui
