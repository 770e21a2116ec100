// Internal to engine/train: how the trainer tells the world. Emitter stamps the run id on each
// event and hands it to every observer in order (the store's first); StoreObserver writes a run's
// points, evaluations, matrix cells and checkpoints through the batched RunWriter. Touches the
// store only through its RunWriter.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "engine/train/events.h"

namespace hl::train {

struct Emitter {
  std::vector<Observer*> obs;
  int64_t run_id = 0;
  void operator()(Event e);
  void point(const std::string& name, const std::string& level, int64_t step, double v, int block = -1, int clock = 1);
  void log(const std::string& m);
  void status(RunStatus status, int64_t step, const std::string& message = "");
};

// Once the writer failed to commit (a full disk, a read-only file), the next Progress event throws
// its error, so the step loop stops and the run ends failed instead of training on unrecorded.
class StoreObserver : public Observer {
 public:
  StoreObserver(const std::string& db, int64_t run_id) : w_(db, run_id) {}
  void onEvent(const Event& e) override;
  store::RunWriter& writer() { return w_; }
  // Stores the run's end (status, error, summary, finish time) and waits for it. When the writer
  // could not commit everything, the run ends failed with the writer's error instead (status and
  // error are updated); when even that cannot be stored, the error says so. Never throws.
  void end(RunStatus& status, std::string& error, int64_t diverged_step, const std::string& summary_json);

 private:
  store::RunWriter w_;
  bool stopped_ = false;  // the writer's error was thrown once
};

}  // namespace hl::train
