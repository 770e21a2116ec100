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

class StoreObserver : public Observer {
 public:
  StoreObserver(const std::string& db, int64_t run_id) : w_(db, run_id) {}
  void onEvent(const Event& e) override;
  store::RunWriter& writer() { return w_; }

 private:
  store::RunWriter w_;
};

}  // namespace hl::train
