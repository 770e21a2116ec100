// Internal to engine/train: the trainer state, everything a checkpoint holds, as one struct with
// one save and one load: the outer optimizer, each CMS level (optimizer, half-filled window,
// counters, run-start snapshot), the memory head's window, the in-context cadence audit, the
// random generators (data order, replay sampling, the global one), the replay buffer, the EWC
// statistics, the accuracy matrices, counters and the best score so far. The checkpoint keys
// ("hopelab.*") are written and read only here (and by the format check, checkpoint_format.h).
// Touches the model's parameters (loading) and the checkpoint folder (saving); owns no schedule
// (level_schedule.h) and no strategy logic (strategies.h).
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/metrics/metrics.h"
#include "engine/models/classifier.h"
#include "engine/torch_wrap.h"
#include "engine/train/emitter.h"
#include "engine/train/run_setup.h"

namespace hl::train {

// A CMS level during training: its own optimizer, stepped every `clock` outer steps on the
// gradient averaged over its window; between ticks nothing touches its parameters.
struct Level {
  models::LevelGroup g;
  nlohmann::json ocfg;  // its optimizer's spec (lr replaced by the level's lr), for a nested reset
  std::unique_ptr<torch::optim::Optimizer> opt;
  // transfer: consolidate makes every level but the fastest a consolidating one: no gradient step,
  // at its tick it moves toward the next faster level.
  bool consolidates() const { return g.transfer == Transfer::Consolidate && g.index > 0; }
  int64_t ticks = 0;
  double loss_sum = 0;
  int64_t loss_n = 0;
  torch::Tensor theta_task, theta_run;
  // training.grad_clip_cms: the window-mean gradient's norm clip at a tick (0 = off); gradient
  // ticks and clipped ticks since the last clip_rate point.
  double clip = 0;
  int64_t clip_ticks = 0, clipped = 0;
};

// A group of outer parameters with its own gradient-norm clip (training.grad_clip_memory /
// grad_clip_rest; docs/TRAINING.md "Gradient clipping"): steps and clipped steps since the last
// clip_rate point.
struct ClipGroup {
  std::string name;  // memory | rest
  std::vector<torch::Tensor> params;
  double clip = 0;  // 0 = off
  int64_t steps = 0, clipped = 0;
};

// The gradient norm of params (0 when none has a gradient); scaled to max_norm when above it and
// max_norm > 0 (as torch::nn::utils::clip_grad_norm_). Returns the norm before clipping.
double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm, bool* clipped = nullptr);

// The memory head as its own level `head`: the (key, label) rows of its window wait until its
// tick, then are DGD-written in order (docs/MODELS.md "Memory head").
struct HeadLevel {
  bool on = false;
  int clock = 1;
  int64_t ticks = 0, clamped = 0;
  std::vector<torch::Tensor> keys, labels;  // the window in progress
  torch::Tensor theta_task, theta_run;
};

// In-context writes of training forwards, per (block, level): the cadence audit.
struct ContextAudit {
  int chunk = 1;
  int64_t expected = 0, actual = 0, clamped = 0;
};

struct TrainerState {
  std::vector<torch::Tensor> params;        // every trainable parameter (EWC's)
  std::vector<torch::Tensor> outer_params;  // the outer level: everything not in a CMS level
  std::vector<ClipGroup> clip_groups;       // outer_params split: in-context memories, the rest
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<Level> levels;
  HeadLevel head;
  std::map<std::pair<int, std::string>, ContextAudit> context_audit;
  at::Generator data_gen, replay_gen;
  std::vector<int64_t> replay_buffer;
  std::vector<torch::Tensor> ewc_fisher, ewc_anchor;
  metrics::Matrix R, RT;  // class-IL and task-IL accuracy after each task, T x T
  int64_t step = 0, samples = 0, outer_steps = 0;
  int64_t boundaries = 0;  // task ends so far: the clock of task-clocked levels
  double best_avg = -1;
  torch::Tensor theta_run, theta_task;  // the outer level's snapshots (drift)
  // Train seconds: those of the processes before this one (a resumed run: up to the checkpoint
  // it resumed from) and this process's start, so the summary's train_seconds is the whole run's.
  double seconds_before = 0;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  // Of those, the seconds spent evaluating (periodic and task-end evaluations, the best-checkpoint
  // score, the live memory diagnostics and clip rates), the same way across resumes: the summary's
  // eval_seconds, so that train_seconds - eval_seconds is the time of the training steps and the
  // rest (docs/KERNELS.md "Where a short run's time goes").
  double eval_seconds = 0;
  double train_seconds() const {
    return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  }
};

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const nlohmann::json& o, std::vector<torch::Tensor> params);

// The state at the start of a run: parameter groups, optimizers (outer first, then each level),
// generators from the seed, empty matrices. Throws what the optimizer factory throws.
TrainerState initial_state(RunSetup& s);

// Writes <ckpt_dir>/<kind>.pt (via a temporary file) and emits the Checkpoint event. `phase` is
// the task just finished.
void save_checkpoint(const TrainerState& st, RunSetup& s, CheckpointKind kind, int phase, double metric, Emitter& emit);
// training.snapshots: writes <ckpt_dir>/snapshot-task<phase>.pt, the model alone (every parameter
// and buffer, float as trained) with the spec, tokenizer, labels, phase and step (readable like a
// checkpoint by inference), and emits its Checkpoint event (kind snapshot). Nothing is drawn from
// a random generator.
void save_snapshot(RunSetup& s, int phase, int64_t step, Emitter& emit);
// Restores the state (and the model) from s.resume_ar; returns the first phase still to train.
// Throws RunError when the checkpoint does not belong to this run.
int load_checkpoint(TrainerState& st, RunSetup& s);

// The accuracy matrix as JSON (NaN = null), as summaries and checkpoints store it.
nlohmann::json matrix_to_json(const metrics::Matrix& R);

// A string field of a checkpoint; RunError naming the key when absent.
std::string checkpoint_string(torch::serialize::InputArchive& ar, const std::string& key);

}  // namespace hl::train
