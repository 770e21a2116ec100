// The Runs tab: a sortable, filterable table over the run store with tags and notes, delete,
// re-run, open in Live, compare. Polls the DB file (and its WAL) every 1.5 s so runs another
// process (hopelab-cli) writes show up while they run.
#pragma once
#include <QDateTime>
#include <QWidget>
#include <memory>

class QComboBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QTableWidget;
class QTimer;

namespace hl::store {
class RunStore;
}

namespace hl::ui {

class RunsBrowser : public QWidget {
  Q_OBJECT
 public:
  explicit RunsBrowser(QWidget* parent = nullptr);
  void setStore(hl::store::RunStore* db);  // not owned; nullptr = none
  void refresh();                          // re-reads the runs (keeps the selection)
  bool pollOnce();                         // refresh if the DB changed on disk; true when it did
  QList<qint64> selectedRuns() const;
  void selectRun(qint64 id);
  int rowCount() const;
  QTableWidget* table() const { return table_; }
  QString detailsText() const;                                 // the details pane of the selected run (tests)
  void setFilter(const QString& field, const QString& value);  // dataset|model|strategy|status|tag

 Q_SIGNALS:
  void openRun(qint64 run_id);
  void compareRuns(const QList<qint64>& ids);
  void rerun(qint64 run_id);
  void runsChanged();
  // Only when a run appeared, went or changed status (not on every poll while points arrive).
  void runStatusesChanged();

 private:
  void showDetails();
  QString statuses_;  // "id:status,..." of the last refresh
  void saveMeta();
  void deleteSelected();
  void fillFilterChoices();
  QDateTime dbStamp() const;

  hl::store::RunStore* db_ = nullptr;
  QTableWidget* table_ = nullptr;
  QComboBox *dataset_, *model_, *strategy_, *status_, *tag_;
  QLineEdit* tags_edit_ = nullptr;
  QPlainTextEdit* notes_edit_ = nullptr;
  QLabel* details_ = nullptr;
  QLabel* count_ = nullptr;
  QTimer* poll_ = nullptr;
  QDateTime stamp_;
  qint64 stamp_size_ = -1;
  bool filling_ = false;
};

}  // namespace hl::ui
