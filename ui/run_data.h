// One run's plot data, fed either live (trainer events, on the GUI thread after the feed hands
// them over) or from the store (a finished or running run replayed). No widgets.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "engine/train/events.h"
#include "ui/plot_util.h"

namespace hl::ui {

struct SeriesData {
  std::string name, level;  // e.g. "loss"/"cms2", "drift_task"/"outer", "acc.task3"/"eval"
  int block = -1;
  int clock = 1;
  XY raw;                // x = step
  uint64_t version = 0;  // bumped on every change (plots redraw dirty series only)
};

class RunData {
 public:
  void clear();
  void apply(const hl::train::Event& e);               // live
  void load(hl::store::RunStore& db, int64_t run_id);  // replay (throws hl::StoreError)

  int64_t runId() const { return run_id_; }
  int numTasks() const { return num_tasks_; }
  int64_t totalSteps() const { return total_steps_; }
  int64_t step() const { return step_; }
  int64_t samplesSeen() const { return samples_; }
  int task() const { return task_; }
  hl::RunStatus status() const { return status_; }
  const std::string& name() const { return name_; }

  const std::vector<SeriesData>& series() const { return series_; }
  const SeriesData* find(const std::string& name, const std::string& level, int block = -2) const;
  // Levels that have a loss series, ordered by clock (outer first), then name.
  std::vector<const SeriesData*> lossLanes() const;
  const std::vector<hl::store::AccuracyCell>& cells() const { return cells_; }
  uint64_t cellsVersion() const { return cells_version_; }
  // The task-end confusion matrices so far, by after_task.
  const std::vector<hl::metrics::ConfusionMatrix>& confusion() const { return confusion_; }
  uint64_t confusionVersion() const { return confusion_version_; }
  // Steps at which each task started (index = task).
  const std::vector<int64_t>& taskStarts() const { return task_starts_; }
  // x-axis maps from step.
  double taskPosition(double step) const;
  double samplesAt(double step) const { return samples_map_.empty() ? step : samples_map_(step); }

 private:
  SeriesData& get(const std::string& name, const std::string& level, int block, int clock);
  int64_t run_id_ = 0;
  int num_tasks_ = 0;
  int64_t total_steps_ = 0, step_ = 0, samples_ = 0;
  int task_ = -1;
  hl::RunStatus status_ = hl::RunStatus::Running;
  std::string name_;
  std::vector<SeriesData> series_;
  std::map<std::string, size_t> index_;
  std::vector<hl::store::AccuracyCell> cells_;
  uint64_t cells_version_ = 0;
  std::vector<hl::metrics::ConfusionMatrix> confusion_;
  uint64_t confusion_version_ = 0;
  std::vector<int64_t> task_starts_;
  AxisMap samples_map_;
};

}  // namespace hl::ui
