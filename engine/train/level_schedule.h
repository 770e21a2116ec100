// Internal to engine/train: the level schedule. When each level of the nested system updates and
// what it reports: CMS levels tick on step clocks (every `clock` outer steps) or task clocks
// (every `clock` task ends), with gradient or consolidate transfer and nested resets; the memory
// head writes its window at its clock; the in-context memories' per-step loss, drift and write
// counts (the cadence audit); drift of every level since the task and run started; the test-only
// level probe. Touches the TrainerState's levels and counters and the model's level parameters;
// emits Point events. Owns no state of its own.
#pragma once
#include <cstdint>

#include "engine/train/experiment.h"
#include "engine/train/trainer_state.h"

namespace hl::train {

// Snapshots for drift since the task started (outer, every level, the head).
void start_task(TrainerState& st, RunSetup& s);
// drift_task / drift_run of every level at the current step.
void emit_drift(TrainerState& st, RunSetup& s, Emitter& emit);
// The in-context memories of the forward just run on tokens x: loss and drift points, audit.
void record_context(TrainerState& st, RunSetup& s, const torch::Tensor& x, Emitter& emit);
// After an outer step with loss lv: level windows accumulate, step-clocked levels tick.
void after_outer_step(TrainerState& st, double lv, Emitter& emit);
// The memory head's window takes this batch; at its clock the window is written.
void head_after_step(TrainerState& st, RunSetup& s, const torch::Tensor& pooled, const torch::Tensor& y, Emitter& emit);
// A task end: task-clocked levels tick every `clock` boundaries. True when one ticked.
bool task_boundary(TrainerState& st, Emitter& emit);
// RunOptions::level_probe, when set: every level's state at step `at`.
void probe_levels(const TrainerState& st, RunSetup& s, const RunOptions& opt, int64_t at, bool task_end);
// Expected vs actual updates per level (a partial window at the end does not tick).
nlohmann::json cadence_audit(const TrainerState& st, const RunSetup& s);

}  // namespace hl::train
