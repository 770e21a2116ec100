// Running an experiment from a spec: data -> tokenizer -> model -> trainer -> store.
// Torch-free header (pimpl inside), so the GUI's worker can include it.
#pragma once
#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "engine/store/store.h"
#include "engine/train/events.h"

namespace hl::train {

// What RunOptions::level_probe sees of one level (a CMS level or the memory head `head`).
struct LevelProbe {
  std::string level;  // "cms1", ..., "head"
  int block = -1;
  int64_t step = -1;      // the step just trained; -1 = before training
  bool task_end = false;  // after the task-end ticks of task-clocked levels
  int64_t ticks = 0;
  std::vector<float> params;    // the level's parameters, flattened (head: W)
  std::string optimizer_state;  // the level optimizer's serialised state (head: momentum S)
};

struct RunOptions {
  std::string data_dir;        // resolved data directory
  std::string db_path;         // "" = do not store the run
  std::string checkpoint_dir;  // "" = <user data dir>/checkpoints
  std::string cache_dir;       // tokenizer cache; "" = <user data dir>/cache
  std::vector<std::string> tags;
  std::string notes;
  // Resume a stored run that did not finish (interrupted, cancelled, failed, diverged): its spec,
  // tokenizer, model, optimizer, strategy state and random generators come from its last
  // checkpoint (saved at each task end), training restarts at the next task, and the same run
  // record is continued. The spec argument of run_experiment is then ignored.
  int64_t resume_run = 0;
  // Test-only observation point: when set, called with every level's state once before training,
  // after every training step, and after each task end. Costly (copies every level); off = empty.
  std::function<void(const LevelProbe&)> level_probe;
  // Test-only fault injection: the loss of every step for which it returns true is NaN (the
  // divergence tests). Shipped binaries never set it; nothing reads the environment for it.
  std::function<bool(int64_t step)> poison_loss;
  // Called on the run writer's thread after each transaction it committed, with the points it held
  // (they are in the database when it is called). hopelab-cli's HOPELAB_COMMIT_LOG writes them to a
  // file; the stress test counts them. Empty = off.
  store::RunWriter::CommitHook on_commit;
  // Test-only fault injection: called after the run record is created, just before its writer opens
  // its own connection; what it throws stands for a writer that cannot open (no file descriptors
  // left, a database locked for minutes). Shipped binaries never set it.
  std::function<void()> writer_open_fault;
};

// Thread-safe controls for a running experiment (GUI buttons, Ctrl-C).
class Control {
 public:
  void requestPause() { pause_ = true; }
  void requestResume() { pause_ = false; }
  void requestCancel() { cancel_ = true; }
  bool pauseRequested() const { return pause_; }
  bool cancelRequested() const { return cancel_; }

 private:
  std::atomic<bool> pause_{false};
  std::atomic<bool> cancel_{false};
};

struct RunResult {
  int64_t run_id = 0;                      // 0 when not stored
  RunStatus status = RunStatus::Finished;  // finished, diverged, cancelled or failed
  std::string error;
  int64_t diverged_step = -1;
  nlohmann::json summary;  // final_avg_acc, forgetting, bwt, macro_f1, task_il_acc, avg_acc, accuracy_matrix
};

// Completes and validates the spec (SpecError listing every error), loads the data (DataError),
// then trains. Failures after the run was created mark it failed/diverged and are returned in
// RunResult, not thrown; so are records that could not be written (a full or read-only disk: the
// run stops at its next step and ends failed naming the file). One exception: a run whose writer
// cannot open is marked failed with the reason and that StoreError is thrown.
RunResult run_experiment(const nlohmann::json& spec, const RunOptions& opt, const std::vector<Observer*>& observers,
                         Control* control = nullptr);

// LibTorch has one global random generator per process, and a training run draws from it from
// start to end (initialisation, dropout). run_experiment holds this mutex for its whole run, and
// code that builds a model in a process that may be training (attribute_forgetting in the app)
// holds it while it builds, so that it never changes a run's random numbers.
std::mutex& global_generator_mutex();

// Parameter count and FLOP estimate for a spec without loading data: vocabulary and length
// default to the dataset's defaults, classes to the dataset's class count (or `num_classes`).
// {"params": N, "flops_per_sample": F, "seq_len": L, "vocab_size": V, "num_classes": C,
//  "blocks": [{"type":..., "params": n}, ...]}
nlohmann::json describe(const nlohmann::json& spec, int num_classes = 0);

// LibTorch and CUDA versions this build runs with, e.g. "2.14.1", "13.0" or "none".
std::string torch_version();
std::string cuda_version();
bool cuda_available();

}  // namespace hl::train
