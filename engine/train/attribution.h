// Per-level forgetting attribution of a finished class-incremental run (docs/MODELS.md "Levels and
// forgetting attribution"): for each level ℓ of the model and each task j < T−1, level ℓ's
// parameters are put back to their state at the end of task j (from the run's task-end snapshots,
// training.snapshots), every other parameter stays final, and task j's class-IL accuracy is
// measured over the final class set. The gain over the final model's accuracy R[T−1][j] is level
// ℓ's share of task j's forgetting. Gains of different levels do not add up: levels interact.
// Torch-free header (the app's worker thread includes it).
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace hl::train {

// One level as attribution restores it.
struct AttributionLevel {
  std::string level;  // "outer", "context.memory", "context.other", "cms1", ..., "head"
  int block = -1;     // the block it belongs to; -1 for outer and head
  int clock = 1;      // CMS levels: their clock; others 1
  std::string label;  // "outer (the rest)", "b0 · context.memory", "b1 · cms2 (clock 16)", "head"
  int64_t numel = 0;  // parameter and buffer entries it holds
};

struct Attribution {
  int64_t run_id = 0;
  int num_tasks = 0;  // T
  std::vector<AttributionLevel> levels;
  // gain[ℓ][j] = acc_j(θ_final with level ℓ from the end of task j) − R[T−1][j], accuracy as a
  // fraction; j = 0..T−1, NaN for j = T−1 (the last task has nothing to forget yet).
  std::vector<std::vector<double>> gain;
  std::vector<double> gain_all;    // every level at once (the whole model after task j), final class set
  std::vector<double> final_acc;   // R[T−1][j], recomputed from the final snapshot
  std::vector<double> acc_at_end;  // R[j][j] as stored
  std::vector<double> forgetting;  // max_{j≤l<T−1} R[l][j] − R[T−1][j] (the summary's per-task terms)
  // The model after task j evaluated over the classes seen then: R[j][j] again, to the bit, when
  // the snapshots, the data and the arithmetic are the run's.
  std::vector<double> reproduced;
  bool exact = false;  // reproduced == R[j][j] and final_acc == R[T−1][j] for every j, bit for bit

  // {"run", "num_tasks", "levels": [{level, block, clock, label, numel}], "gain": [[...]], "gain_all",
  //  "final_acc", "acc_at_end", "forgetting", "reproduced", "exact"}; NaN as null.
  nlohmann::json toJson() const;
};

struct AttributionOptions {
  std::string data_dir;   // the dataset folder (as for training)
  std::string cache_dir;  // "" = <user data dir>/cache
  // Called after each evaluation: done of total, and what was just evaluated.
  std::function<void(int done, int total, const std::string& what)> progress;
  // Checked between evaluations: when set, attribution stops with hl::RunError("cancelled").
  const std::atomic<bool>* cancel = nullptr;
  // Called once when the computation waits for a training run of this process to end
  // (global_generator_mutex).
  std::function<void()> waiting;
};

// Throws hl::SpecError (no such run), hl::RunError (not finished, joint, no snapshots or a missing
// snapshot file: the message names what is missing and what to do), hl::DataError (the dataset
// differs from the one the run trained on), hl::StoreError.
Attribution attribute_forgetting(const std::string& db_path, int64_t run_id, const AttributionOptions& opt);

// Test-time ablation of a finished run (docs/MODELS.md "Test-time ablation"): the run's saved
// model (last.pt, the model whose accuracies the run stored, or best.pt) evaluated on every task of
// the final evaluation over the final class set, once as saved and once with spec overrides that
// keep every parameter's shape (memory_writes false, another inner_lr, eta_max, ...). Answers "does
// the trained model use its in-context writes?" without training again.
struct Ablation {
  int64_t run_id = 0;
  std::string checkpoint;                      // the file evaluated
  std::string which;                           // "last" | "best"
  int64_t step = 0;                            // training step it was saved at
  std::vector<std::string> sets;               // the overrides, PATH=VALUE
  std::vector<int> tasks;                      // 0-based tasks of the final evaluation (all of them in a joint run)
  std::vector<double> stored;                  // the run's stored final accuracies (class-IL) of those tasks
  std::vector<double> as_saved, as_saved_til;  // the checkpoint evaluated as saved
  std::vector<double> ablated, ablated_til;    // with the overrides
  // as_saved == stored, bit for bit (for last.pt; best.pt may be an earlier model: false)
  bool exact = false;
  double mean(const std::vector<double>& v) const;

  // {"run", "checkpoint", "which", "step", "sets", "tasks" (1-based), "stored", "as_saved",
  //  "as_saved_til", "ablated", "ablated_til", "mean": {stored, as_saved, ablated, change}, "exact"}
  nlohmann::json toJson() const;
};

struct AblationOptions {
  std::string data_dir, cache_dir;  // as for training ("" cache = <user data dir>/cache)
  std::string which = "last";       // "last" | "best"
  std::vector<std::string> sets;    // PATH=VALUE overrides of the saved spec
  // Adds model.blocks.i.memory_writes=false for every self-modifying Titans block of the run.
  bool writes_off = false;
  // Checked while waiting for a training run of this process (global_generator_mutex): when set,
  // hl::RunError("... cancelled"). `waiting` is called once when the wait begins.
  const std::atomic<bool>* cancel = nullptr;
  std::function<void()> waiting;
};

// The overrides writes_off adds for a completed spec (empty when no block writes an in-context memory).
std::vector<std::string> writes_off_overrides(const nlohmann::json& spec);

// At least one override (sets or writes_off). Throws hl::SpecError (no such run, no override, an
// unknown path, an invalid spec, writes_off on a run with no self-modifying block), hl::RunError
// (not finished, no such checkpoint or file, weights that do not fit the overridden model: the
// message says what to do), hl::DataError (the data changed since the run), hl::StoreError.
Ablation ablate_run(const std::string& db_path, int64_t run_id, const AblationOptions& opt);

// Stores `a` in the run database (table ablations, docs/STORE.md): its overrides sorted and joined
// by one space, its checkpoint, its JSON, this build's version; replaces a record of the same run,
// overrides and checkpoint. Used by `evaluate --record` and the Compare tab's "Record" box.
// Throws hl::StoreError (the run is gone, the file cannot be written).
void record_ablation(const std::string& db_path, const Ablation& a);
// The record key of `sets`: sorted, joined by one space.
std::string ablation_key(std::vector<std::string> sets);

}  // namespace hl::train
