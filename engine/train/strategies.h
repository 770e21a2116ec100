// Internal to engine/train: the continual-learning strategies behind one small interface, as
// DECISIONS.md defines them. Fine-tune does nothing; replay adds rows from its buffer to each batch
// and fills the buffer at each task end; EWC adds its penalty to the loss and computes the Fisher
// at each task end. Their state (buffer, Fisher, anchor, the replay generator) lives in the
// TrainerState so that checkpoints hold it; a strategy touches only that and the model.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/train/trainer_state.h"

namespace hl::train {

class Strategy {
 public:
  virtual ~Strategy() = default;
  // Rows appended to a training batch (the batch's own rows are idx[0, n)).
  virtual void extend_batch(TrainerState&, std::vector<int64_t>& /*idx*/) {}
  // A term added to the batch loss; an undefined tensor when there is none.
  virtual torch::Tensor penalty(TrainerState&, const torch::Tensor& /*loss*/) { return {}; }
  // After the task's training (and its level ticks), before its evaluation. `seen` masks the
  // classes not seen yet.
  virtual void task_end(TrainerState&, RunSetup&, int /*phase*/, const torch::Tensor& /*seen*/) {}
};

// experiment.strategy.type of the setup: finetune, replay or ewc.
std::unique_ptr<Strategy> make_strategy(const RunSetup& s);

}  // namespace hl::train
