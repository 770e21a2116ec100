// Internal to engine/train: the run's summary (docs/STORE.md "summary_json") from the final
// trainer state: final average accuracy, forgetting, BWT, task-IL accuracy over the completed
// rows of the accuracy matrix (one row for joint runs), macro-F1 of the last evaluation, the
// matrices, the cadence audit of every level, and the run's counts. Pure: touches nothing.
#pragma once
#include "engine/train/evaluator.h"

namespace hl::train {

nlohmann::json run_summary(const TrainerState& st, const RunSetup& s, const EvalRow& last_eval, double train_seconds);

}  // namespace hl::train
