// The Inference tab: pick a stored run and its checkpoint (best, last, or the model after task j
// from the run's task-end snapshots), type a sentence, see the top-k classes with probabilities.
#pragma once
#include <QWidget>
#include <memory>

class QComboBox;
class QLabel;
class QLineEdit;
class QSpinBox;
class QTableWidget;

namespace hl::store {
class RunStore;
}
namespace hl::train {
class Predictor;
}

namespace hl::ui {

class InferenceView : public QWidget {
  Q_OBJECT
 public:
  explicit InferenceView(QWidget* parent = nullptr);
  ~InferenceView() override;
  void setStore(hl::store::RunStore* db);
  void setRun(qint64 run_id);            // selects the run (loads lazily on predict)
  QString load();                        // loads the selected run's checkpoint; "" or the error
  QString predict(const QString& text);  // fills the table; "" or the error
  QTableWidget* results() const { return table_; }
  void setText(const QString& t);
  // While a run trains in this process, building a model would draw from the random generator the
  // run uses (its init and dropout), so loading is refused until it finishes.
  void setTrainingActive(bool on) { training_ = on; }
  // The run list again (statuses, new runs with checkpoints); keeps the selection.
  void refreshRuns();
  // "best", "last" or "after task j" (a task-end snapshot, j from 1), as chosen for the selected run.
  QString checkpointKind() const;
  QStringList checkpointChoices() const;  // what the Checkpoint box offers for the selected run

 private:
  void applyDefaultKind();  // "last" for class-incremental runs, "best" for joint ones
  void fillKinds();         // best, last and the selected run's snapshots; keeps the choice if offered
  bool training_ = false;
  bool filling_ = false;  // refreshRuns is refilling the run list
  qint64 kind_for_ = -1;  // the run whose default checkpoint kind was last applied
  hl::store::RunStore* db_ = nullptr;
  std::unique_ptr<hl::train::Predictor> pred_;
  QString loaded_;
  QComboBox* run_ = nullptr;
  QComboBox* kind_ = nullptr;
  QSpinBox* k_ = nullptr;
  QLineEdit* text_ = nullptr;
  QTableWidget* table_ = nullptr;
  QLabel* msg_ = nullptr;
};

}  // namespace hl::ui
