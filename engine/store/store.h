// The run store: one SQLite file (WAL) per workspace, shared by the CLI and the GUI.
// Schema and migrations: docs/STORE.md. No Qt, no torch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/kinds.h"
#include "engine/metrics/confusion.h"

namespace hl::store {

using metrics::ConfusionMatrix;

// Statuses: running, finished, failed, diverged, interrupted, cancelled (never paused). Reading a
// row whose status is none of these throws hl::StoreError naming the database and the run.
struct RunRecord {
  int64_t id = 0;    // this database's id (a copy in another database has another id)
  std::string uuid;  // the run's identity in every database: a version-4 UUID made by createRun
  RunStatus status = RunStatus::Running;
  std::string name;         // preset or spec name, e.g. "transformer"
  std::string spec_json;    // canonical spec (with seed)
  std::string config_hash;  // canonical spec without the seed
  std::string run_hash;     // canonical spec with the seed
  std::string dataset, protocol, strategy, model, head;
  std::string data_hash, split_hash;
  int64_t seed = 0;
  int64_t params = 0;
  std::string app_version, torch_version, cuda_version, device;
  int64_t pid = 0;
  std::string host;
  int64_t process_start = 0;  // process start time (clock ticks since boot, /proc/<pid>/stat field 22)
  double created_at = 0;      // unix seconds
  double finished_at = 0;     // 0 while running
  std::vector<std::string> tags;
  std::string notes;
  std::string error;  // failure / divergence message
  int64_t diverged_step = -1;
  std::string summary_json;  // final metrics (see docs/STORE.md), "{}" until finished
};

struct RunFilter {
  std::string dataset, model, strategy, tag;  // empty = any
  std::optional<RunStatus> status;            // nullopt = any
  int limit = 0;                              // 0 = no limit
};

struct Series {
  std::string name;                                // e.g. "loss", "acc/task3", "drift_task"
  std::string level;                               // "outer", "cms1", "context.memory", "" for run-level series
  int block = -1;                                  // block index, -1 = not a block series
  int clock = 1;                                   // the level's clock (steps)
  std::vector<std::pair<int64_t, double>> points;  // (step, value), step ascending
};

// Task indices a stored accuracy cell may have (0 .. kMaxTasks-1); RunStore::accuracy refuses a
// database with others as damaged, since readers size a T x T matrix from them.
constexpr int kMaxTasks = 10000;

struct AccuracyCell {
  int after_task = 0;  // 0-based i: evaluated after training task i
  int task = 0;        // 0-based j
  double acc = 0;      // class-incremental accuracy on task j
  double task_il_acc = 0;
};

struct EvalResult {  // a periodic evaluation (live curves)
  int64_t step = 0;
  int current_task = 0;
  int task = 0;
  double acc = 0;
};

struct CheckpointEntry {
  CheckpointKind kind = CheckpointKind::Last;
  std::string path;
  int64_t step = 0;
  int task = 0;
  double metric = 0;
};

// A test-time ablation of a finished run (`hopelab-cli evaluate --record`, docs/STORE.md
// "ablations"): its saved model evaluated with overrides. One per run, override set and checkpoint;
// recording the same again replaces it.
struct AblationRecord {
  std::string overrides;    // the PATH=VALUE overrides, sorted, joined by one space
  std::string checkpoint;   // "last" | "best"
  std::string result_json;  // the evaluation as `evaluate --json` prints it (per task and "mean")
  std::string app_version;  // the build that evaluated it
  double created_at = 0;    // seconds since the epoch
};

// What `RunStore::merge` did with the runs of one shard (docs/STORE.md, "Merging databases").
struct MergeReport {
  int added = 0;      // runs new to this database, copied with all their rows
  int updated = 0;    // runs whose copy here was replaced by the shard's (see the rule)
  int unchanged = 0;  // runs already here exactly as in the shard
  int kept = 0;       // runs whose copy here differs from the shard's and was kept (see the rule)
  int64_t points = 0, accuracy_cells = 0, evals = 0, checkpoints = 0;  // rows copied
  int64_t confusion_matrices = 0;                                      // task-end confusion matrices copied
  int64_t ablations = 0;              // recorded test-time ablations added or replaced (RunStore::recordAblation)
  std::vector<std::string> kept_why;  // one line per kept run: which ids, which statuses
};

class RunStore {
 public:
  // Opens or creates the DB: WAL, busy timeout, schema migrations. Refuses (hl::StoreError naming
  // the path and what to do) a file that is not SQLite, a foreign SQLite DB, or a newer schema.
  // Marks `running` runs whose process is gone (pid + start time on this host) as `interrupted`.
  static std::unique_ptr<RunStore> open(const std::string& path);
  ~RunStore();

  int schemaVersion() const;
  // Applies the interrupted rule now (open() already did): `running` runs of this host whose
  // process is gone become `interrupted`. Returns how many runs changed. For long-lived readers.
  int markInterrupted();
  const std::string& path() const;

  // Returns the new id (status as given). An empty uuid gets a new random one; a given one is kept
  // (a copy of a run from another database), and must not be in this database yet.
  int64_t createRun(const RunRecord& r);
  void setStatus(int64_t id, RunStatus status, const std::string& error = "", int64_t diverged_step = -1);
  void setSummary(int64_t id, const std::string& summary_json);
  // A resumed run: status back to running, error and finish time cleared, and the identity of the
  // process now writing it (so that its death is detected as an interruption again).
  void resumeRun(int64_t id, int64_t pid, const std::string& host, int64_t process_start);
  void finish(int64_t id, RunStatus status);  // sets status and finished_at
  void setTags(int64_t id, const std::vector<std::string>& tags);
  void setNotes(int64_t id, const std::string& notes);
  void deleteRun(int64_t id);  // the run and all its rows

  std::vector<RunRecord> listRuns(const RunFilter& f = {});  // newest first
  std::optional<RunRecord> getRun(int64_t id);
  std::optional<RunRecord> getRunByUuid(const std::string& uuid);
  std::vector<Series> series(int64_t id);
  std::vector<AccuracyCell> accuracy(int64_t id);
  std::vector<EvalResult> evals(int64_t id);
  std::vector<CheckpointEntry> checkpoints(int64_t id);
  // Inserts or replaces (same run, overrides and checkpoint) a test-time ablation; created_at 0
  // means now. Throws hl::StoreError when the run does not exist.
  void recordAblation(int64_t id, AblationRecord a);
  std::vector<AblationRecord> ablations(int64_t id);  // ordered by overrides, checkpoint
  // The task-end confusion matrices (docs/STORE.md "confusion"), ordered by after_task; only the
  // one after task `after_task` when it is >= 0 (empty when there is none). A matrix whose cells
  // name a class outside its class list, or with a task index outside 0 .. kMaxTasks-1, is refused
  // as damage (hl::StoreError naming the file and the run).
  std::vector<ConfusionMatrix> confusion(int64_t id, int after_task = -1);

  // Copies the runs of another run database (a Slurm array task's shard) into this one, matched
  // by uuid, each run in its own transaction; merging the same shard again changes nothing. A run
  // already here is replaced by the shard's copy when the shard's copy has finished, failed or
  // diverged and this one has not, or when neither has and the shard's holds at least as many rows;
  // otherwise this copy is kept. Tags and notes of a run already here stay as they are here.
  // Recorded ablations are united whatever happens to the run: the shard's newer record of the same
  // run, overrides and checkpoint replaces this one's.
  // Refuses (hl::StoreError naming the file) a missing file, this database itself, a file that is
  // not a Hope Lab run database (an empty one included) and a newer schema. A shard of an older
  // schema is migrated in place first (which gives its runs their UUIDs).
  MergeReport merge(const std::string& shard_path);

 private:
  RunStore();
  struct Impl;
  std::unique_ptr<Impl> d_;
  friend class RunWriter;
};

// One point a RunWriter committed (RunWriter::setCommitHook).
struct CommittedPoint {
  std::string name, level;
  int block = -1, clock = 1;
  int64_t step = 0;
};

// Batched writer with its own thread and connection: calls only enqueue (never block on I/O);
// the thread commits one transaction per batch (every ~200 ms or 5,000 rows). flush() waits until
// everything enqueued so far is committed. The destructor flushes and joins.
class RunWriter {
 public:
  RunWriter(const std::string& db_path, int64_t run_id);
  ~RunWriter();
  RunWriter(const RunWriter&) = delete;
  RunWriter& operator=(const RunWriter&) = delete;

  void point(const std::string& name, const std::string& level, int block, int clock, int64_t step, double value);
  void accuracy(const AccuracyCell& c);
  void eval(const EvalResult& e);
  void checkpoint(const CheckpointEntry& c);
  // Replaces the matrix after task m.after_task (a resumed run evaluates a task end again).
  void confusion(const ConfusionMatrix& m);
  void status(RunStatus status, const std::string& error = "", int64_t diverged_step = -1);
  void summary(const std::string& summary_json);
  void finish(RunStatus status);
  void flush();
  int64_t runId() const;
  // The first error of the writer's thread ("" while everything was committed), without waiting:
  // the trainer stops a run whose records can no longer be written (a full disk, a read-only file).
  std::string error() const;
  // Whether a finish() was committed: true after finish() returned, and also after finish() threw
  // an earlier batch's error when the end (status, finish time) itself could still be stored.
  bool endStored() const;
  // Called on the writer's thread after each committed transaction, with the points it held, in
  // the order they were given (an exception it throws is ignored). The points are in the database
  // when it is called: `hopelab-cli`'s HOPELAB_COMMIT_LOG and the stress test count them.
  using CommitHook = std::function<void(int64_t run_id, const std::vector<CommittedPoint>& points)>;
  void setCommitHook(CommitHook hook);

 private:
  struct Impl;
  std::unique_ptr<Impl> d_;
};

// This process's identity as recorded with a run.
int64_t current_pid();
std::string current_host();
std::string current_cpu();  // "AMD EPYC (AuthenticAMD family 25, model 17)"; "unknown" without /proc/cpuinfo
int64_t process_start_time(int64_t pid);  // 0 if the process does not exist

}  // namespace hl::store
