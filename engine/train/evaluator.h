// Internal to engine/train: evaluation. Class-IL accuracy (logits restricted to the classes seen so
// far) and task-IL accuracy (argmax inside the task's own classes) on the test rows of each task;
// the periodic evaluations during a task (live curves) and the task-end row of the accuracy matrix
// (R, RT in the TrainerState), with the dev score that picks best.pt. Emits Eval, Accuracy and
// Point events; touches the model only through no-grad forwards.
#pragma once
#include <vector>

#include "engine/train/trainer_state.h"

namespace hl::train {

struct EvalRow {
  std::vector<double> acc, til;     // per evaluated task
  std::vector<int> y_true, y_pred;  // class-IL predictions over all evaluated rows
};

// The batches an evaluation runs `rows` of `e` in: rows of similar length together (pads sit at
// the tail and no model lets them reach a real token: the recurrent and convolutional mixers are
// causal, attention masks pad keys, pooling skips pads, nothing uses batch statistics; so a row's
// logits do not depend on the rows beside it, up to the libraries' summation order; docs/KERNELS.md
// "Evaluation batches"), at most kEvalBatch rows each. Every row once; the order within and across
// batches is not the input's.
constexpr int64_t kEvalBatch = 256, kEvalMinBatch = 16;
std::vector<std::vector<int64_t>> eval_batches(const Encoded& e, std::vector<int64_t> rows);

EvalRow evaluate(models::Classifier& model, const Encoded& test, const std::vector<std::vector<int>>& tasks,
                 const std::vector<int>& eval_tasks, const torch::Tensor& seen_mask, int64_t pad);
// 0 for the classes of phases 0..phase, kMaskedLogit for the rest.
torch::Tensor seen_mask_for(const RunSetup& s, int phase);
// The tasks evaluated after `phase`: those seen (all of them in a joint run).
std::vector<int> eval_tasks_for(const RunSetup& s, int phase);

// During a task: Eval events and acc.task points for every seen task, then the drift points.
void periodic_eval(TrainerState& st, RunSetup& s, int phase, Emitter& emit);
// At a task end: the matrix row, its events and points, avg_acc; returns the row.
EvalRow task_end_eval(TrainerState& st, RunSetup& s, int phase, const torch::Tensor& seen, Emitter& emit);
// The Confusion event of a task-end row: its class-IL predictions counted over the classes of
// `eval_tasks` (task by task), as the matrix after task `after_task`.
void emit_confusion(const RunSetup& s, int after_task, const std::vector<int>& eval_tasks, const EvalRow& row,
                    Emitter& emit);
// The mean of the row's class-IL accuracies (the avg_acc point).
double mean_acc(const EvalRow& row);
// The score that picks best.pt: the dev rows' mean accuracy (dev_avg_acc point) when there are
// dev rows, else `avg`.
double best_score(TrainerState& st, RunSetup& s, int phase, const torch::Tensor& seen, double avg, Emitter& emit);

}  // namespace hl::train
