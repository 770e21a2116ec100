// The Experiment tab: dataset, protocol, strategy, task order, seeds (several seeds = several runs
// in the queue), epochs, optimizer, device; Launch / Pause / Resume / Stop and the run queue.
// The architecture comes from the Architecture tab (specSource); runs go to a RunWorker.
#pragma once
#include <QMap>
#include <QWidget>
#include <functional>
#include <nlohmann/json.hpp>

class QCheckBox;
class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;
class QSpinBox;

namespace hl::ui {

class RunWorker;
struct RunOutcome;

class ExperimentView : public QWidget {
  Q_OBJECT
 public:
  explicit ExperimentView(RunWorker* worker, QWidget* parent = nullptr);
  void setSpecSource(std::function<nlohmann::json()> f) { source_ = std::move(f); }
  void setDbPath(const QString& p) { db_path_ = p; }
  void setDataDir(const QString& d) { data_dir_ = d; }
  QString dataDir() const { return data_dir_; }
  // Fill the form from a spec's experiment/training/optimizer sections, and write them back.
  void setSpec(const nlohmann::json& spec);
  // Only the fields of the form a preset owns (head, optimizer, learning rate), after a preset
  // was loaded; the protocol (epochs, batch, limits) stays as the user set it.
  void setPresetFieldsFrom(const nlohmann::json& spec);
  nlohmann::json applyTo(nlohmann::json spec) const;
  // Validates and enqueues one run per seed. Returns the request ids, or empty with `error` set.
  QList<int> launch(QString* error = nullptr);
  QList<int> launchSpec(const nlohmann::json& spec, QString* error = nullptr);  // exactly this spec
  QList<qint64> seeds(QString* error = nullptr) const;
  void refreshSummary();  // the architecture's name, blocks, parameters and FLOPs (engine describe())

 protected:
  void showEvent(QShowEvent* e) override;

 Q_SIGNALS:
  void launched(int n);

 private:
  void onStarted(int id);
  void onFinished(const RunOutcome& o);
  void onPausedChanged(bool paused);
  void setQueueText(int id, const QString& state);
  void updateButtons();

  RunWorker* worker_;
  std::function<nlohmann::json()> source_;
  QString db_path_, data_dir_;
  QComboBox *dataset_, *split_, *protocol_, *strategy_, *head_, *optimizer_, *device_;
  QSpinBox *task_order_, *epochs_, *limit_, *eval_limit_, *batch_, *replay_;
  QDoubleSpinBox *lr_, *ewc_;
  QLineEdit *seeds_, *tags_, *notes_;
  QPushButton *launch_, *pause_, *stop_, *stop_all_;
  QListWidget* queue_;
  QLabel* msg_;
  QLabel* arch_;
  QMap<int, QString> labels_;
  int current_ = 0;  // the request the worker is running, 0 when idle
};

}  // namespace hl::ui
