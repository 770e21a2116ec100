// The Export tab: results tables (CSV, Markdown, LaTeX; mean ± std over seeds) and one run's
// accuracy matrix, produced by the same engine calls as `hopelab-cli export`, so the text is
// byte-identical for the same runs and options; preview, copy to clipboard, save; plots as images.
#pragma once
#include <QString>
#include <QWidget>

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QSpinBox;

namespace hl::store {
class RunStore;
}

namespace hl::ui {

struct ExportRequest {
  QString format = "md";  // csv | md | latex
  int decimals = 3;
  QString runs;           // "3,5,7-9"; empty = every finished run (as the CLI)
  qint64 matrix_run = 0;  // > 0: that run's accuracy matrix instead
};
// Returns the table text; throws hl::Error (SpecError for a bad id list or unknown run).
// `warnings` receives what the CLI prints on stderr.
std::string export_text(hl::store::RunStore& db, const ExportRequest& req, QStringList* warnings = nullptr);

class ExportView : public QWidget {
  Q_OBJECT
 public:
  explicit ExportView(QWidget* parent = nullptr);
  void setStore(hl::store::RunStore* db);
  void setRuns(const QList<qint64>& ids);  // preselect runs (from the Runs tab)
  void setRequest(const ExportRequest& r);
  QString text() const;  // the current preview
  void updatePreview();

 Q_SIGNALS:
  void exportPlotsRequested(const QString& dir);

 private:
  hl::store::RunStore* db_ = nullptr;
  QComboBox* format_ = nullptr;
  QSpinBox* decimals_ = nullptr;
  QLineEdit* runs_ = nullptr;
  QSpinBox* matrix_ = nullptr;
  QPlainTextEdit* preview_ = nullptr;
  QLabel* msg_ = nullptr;
  QString text_;
};

}  // namespace hl::ui
