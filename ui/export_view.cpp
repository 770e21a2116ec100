#include "ui/export_view.h"

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QFile>
#include <QFileDialog>
#include <QFontDatabase>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QVBoxLayout>
#include <sstream>

#include "engine/common/error.h"
#include "engine/export/export.h"
#include "engine/store/store.h"
#include "ui/kind_text.h"

namespace hl::ui {
namespace {}  // namespace

std::string export_text(hl::store::RunStore& db, const ExportRequest& req, QStringList* warnings) {
  hl::exporter::TableOptions t;
  t.format = req.format == "csv"     ? hl::exporter::Format::Csv
             : req.format == "latex" ? hl::exporter::Format::Latex
                                     : hl::exporter::Format::Markdown;
  t.decimals = req.decimals;
  if (req.matrix_run > 0) {
    auto r = db.getRun(req.matrix_run);
    if (!r) throw hl::SpecError("run " + std::to_string(req.matrix_run) + " is not in " + db.path());
    return hl::exporter::accuracy_matrix_table(*r, db.accuracy(req.matrix_run), t);
  }
  std::vector<hl::store::RunRecord> runs;
  if (req.runs.trimmed().isEmpty()) {
    hl::store::RunFilter f;
    f.status = hl::RunStatus::Finished;
    runs = db.listRuns(f);
  } else {
    for (int64_t id : hl::exporter::parse_run_ids(req.runs.toStdString(), "runs")) {
      auto r = db.getRun(id);
      if (!r) throw hl::SpecError("run " + std::to_string(id) + " is not in " + db.path());
      if (r->status != hl::RunStatus::Finished && warnings)
        *warnings << QObject::tr("run %1 is %2; its metrics may be partial").arg(id).arg(kindText(r->status));
      runs.push_back(*r);
    }
  }
  if (runs.empty() && warnings) *warnings << QObject::tr("no finished runs to export");
  return hl::exporter::results_table(runs, t);
}

ExportView::ExportView(QWidget* parent) : QWidget(parent) {
  format_ = new QComboBox(this);
  format_->addItem("LaTeX (booktabs)", "latex");
  format_->addItem("Markdown", "md");
  format_->addItem("CSV", "csv");
  format_->setCurrentIndex(1);
  decimals_ = new QSpinBox(this);
  decimals_->setRange(0, 10);
  decimals_->setValue(3);
  runs_ = new QLineEdit(this);
  runs_->setPlaceholderText(tr("all finished runs (or ids: 3,5,7-9)"));
  matrix_ = new QSpinBox(this);
  matrix_->setRange(0, 1 << 30);
  matrix_->setSpecialValueText(tr("results table"));
  matrix_->setToolTip(tr("A run id: export that run's accuracy matrix instead"));
  auto* form = new QFormLayout;
  form->addRow(tr("Format"), format_);
  form->addRow(tr("Decimals"), decimals_);
  form->addRow(tr("Runs"), runs_);
  form->addRow(tr("Accuracy matrix of run"), matrix_);
  preview_ = new QPlainTextEdit(this);
  preview_->setObjectName("exportPreview");
  preview_->setReadOnly(true);
  preview_->setLineWrapMode(QPlainTextEdit::NoWrap);
  preview_->setFont(QFontDatabase::systemFont(QFontDatabase::FixedFont));
  msg_ = new QLabel(this);
  msg_->setWordWrap(true);
  auto* copy = new QPushButton(tr("Copy to clipboard"), this);
  copy->setShortcut(QKeySequence("Ctrl+Shift+C"));
  auto* save = new QPushButton(tr("Save table…"), this);
  auto* plots = new QPushButton(tr("Save Live plots as images…"), this);
  connect(copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(text_); });
  connect(save, &QPushButton::clicked, this, [this] {
    QString ext = format_->currentData().toString() == "latex" ? "tex" : format_->currentData().toString();
    QString f = QFileDialog::getSaveFileName(this, tr("Save table"), "results." + ext);
    if (f.isEmpty()) return;
    QFile out(f);
    if (!out.open(QIODevice::WriteOnly) || out.write(text_.toUtf8()) < 0)
      QMessageBox::warning(this, tr("Save table"), tr("%1: cannot write this file").arg(f));
  });
  connect(plots, &QPushButton::clicked, this, [this] {
    QString d = QFileDialog::getExistingDirectory(this, tr("Folder for the plot images"));
    if (!d.isEmpty()) Q_EMIT exportPlotsRequested(d);
  });
  auto* buttons = new QHBoxLayout;
  buttons->addWidget(copy);
  buttons->addWidget(save);
  buttons->addStretch(1);
  buttons->addWidget(plots);
  auto* lay = new QVBoxLayout(this);
  lay->addLayout(form);
  lay->addWidget(preview_, 1);
  lay->addWidget(msg_);
  lay->addLayout(buttons);
  connect(format_, &QComboBox::currentIndexChanged, this, &ExportView::updatePreview);
  connect(decimals_, &QSpinBox::valueChanged, this, &ExportView::updatePreview);
  connect(runs_, &QLineEdit::textChanged, this, &ExportView::updatePreview);
  connect(matrix_, &QSpinBox::valueChanged, this, &ExportView::updatePreview);
}

void ExportView::setStore(hl::store::RunStore* db) {
  db_ = db;
  updatePreview();
}

void ExportView::setRuns(const QList<qint64>& ids) {
  QStringList s;
  for (qint64 id : ids) s << QString::number(id);
  runs_->setText(s.join(","));
}

void ExportView::setRequest(const ExportRequest& r) {
  format_->setCurrentIndex(std::max(0, format_->findData(r.format)));
  decimals_->setValue(r.decimals);
  matrix_->setValue(int(r.matrix_run));
  runs_->setText(r.runs);
  updatePreview();
}

QString ExportView::text() const {
  return text_;
}

void ExportView::updatePreview() {
  text_.clear();
  if (!db_) {
    preview_->setPlainText(QString());
    msg_->setText(tr("No run database open."));
    return;
  }
  ExportRequest r;
  r.format = format_->currentData().toString();
  r.decimals = decimals_->value();
  r.runs = runs_->text();
  r.matrix_run = matrix_->value();
  QStringList warnings;
  try {
    text_ = QString::fromStdString(export_text(*db_, r, &warnings));
    msg_->setText(warnings.join("\n"));
  } catch (const std::exception& e) {
    msg_->setText(QString::fromUtf8(e.what()));
  }
  preview_->setPlainText(text_);
}

}  // namespace hl::ui
