// hopelab-cli sweep: a grid of runs from a sweep file (engine/spec/sweep.h, docs/SWEEPS.md).
// Finished runs (same config hash and seed in the database) are skipped, interrupted ones resumed
// from their last checkpoint; --jobs N splits the list over N processes of this program on this
// machine, --index I runs one run of the list (a scheduler's array task).
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "engine/common/error.h"
#include "engine/spec/spec.h"
#include "engine/spec/sweep.h"
#include "engine/store/store.h"
#include "progress.h"

extern char** environ;

using json = nlohmann::json;

namespace hl::cli {
namespace {

// What the database holds for one run of the sweep.
// Todo: no run yet; Resume: an interrupted or cancelled run whose last checkpoint is on disk;
// otherwise the stored run's status (finished, running, failed, diverged).
enum class SweepState { Todo, Resume, Finished, Running, Failed, Diverged };
const char* state_name(SweepState s) {
  static const char* const n[] = {"todo", "resume", "finished", "running", "failed", "diverged"};
  return n[static_cast<int>(s)];
}
struct Stored {
  SweepState state = SweepState::Todo;
  int64_t run_id = 0;
};

// `runs`: the database's runs, newest first (listed once by the caller, not once per sweep run).
Stored stored_state(store::RunStore& db, const std::vector<store::RunRecord>& runs, const spec::SweepRun& r) {
  const std::string hash = spec::config_hash(r.spec);
  const int64_t seed = r.spec["experiment"]["seed"].get<int64_t>();
  Stored out;
  for (const auto& rec : runs) {
    if (rec.config_hash != hash || rec.seed != seed) continue;
    if (rec.status == RunStatus::Finished) return {SweepState::Finished, rec.id};
    if (out.state != SweepState::Todo) continue;
    if (rec.status == RunStatus::Running) {
      out = {SweepState::Running, rec.id};
    } else if (is_failure(rec.status)) {
      // Same spec, same seed: it would fail the same way again. Deleting the run retries it.
      out = {rec.status == RunStatus::Failed ? SweepState::Failed : SweepState::Diverged, rec.id};
    } else {  // interrupted or cancelled: resumable when its last checkpoint is still on disk
      for (const auto& c : db.checkpoints(rec.id))
        if (c.kind == CheckpointKind::Last && std::filesystem::is_regular_file(c.path))
          out = {SweepState::Resume, rec.id};
    }
  }
  return out;
}

}  // namespace

int Commands::sweep() {
  const spec::Sweep sw = spec::load_sweep(sweep_file_);
  const int n = int(sw.runs.size());
  if (sweep_index_ >= n)
    throw SpecError("--index " + std::to_string(sweep_index_) + ": the sweep has " + std::to_string(n) +
                    " runs (0 to " + std::to_string(n - 1) + ")");
  auto db = store::RunStore::open(dbPath());
  if (sweep_list_) {
    const auto all = db->listRuns();
    std::printf("%-6s %-9s %-7s %s\n", "index", "state", "run", "run of the sweep");
    for (const auto& r : sw.runs) {
      Stored st = stored_state(*db, all, r);
      std::printf("%-6d %-9s %-7s %s\n", r.index, state_name(st.state),
                  st.run_id ? std::to_string(st.run_id).c_str() : "-", r.label.c_str());
    }
    return 0;
  }
  // Ctrl-C in a terminal reaches every worker of the process group: each cancels its run.
  if (jobs_ > 1 && sweep_index_ < 0) return sweepInProcesses(n);

  std::vector<int> mine;
  for (int i = 0; i < n; ++i)
    if (sweep_index_ >= 0 ? i == sweep_index_ : (shard_count_ <= 1 || i % shard_count_ == shard_)) mine.push_back(i);
  int rc = 0, ran = 0, skipped = 0;
  train::Control control;
  CancelOnSignal guard(&control);
  ProgressBar bar(quiet_);
  for (int i : mine) {
    const auto& r = sw.runs[i];
    Stored st = stored_state(*db, db->listRuns(), r);  // again per run: other processes finish runs too
    if (st.state != SweepState::Todo && st.state != SweepState::Resume) {
      const bool failed = st.state == SweepState::Failed || st.state == SweepState::Diverged;
      std::printf("[%d/%d] %s: %s as run %lld, skipped%s\n", i, n, r.label.c_str(), state_name(st.state),
                  (long long)st.run_id, failed ? " (delete that run to try again)" : "");
      ++skipped;
      continue;
    }
    std::printf("[%d/%d] %s%s\n", i, n, r.label.c_str(),
                st.state == SweepState::Resume ? (" (resuming run " + std::to_string(st.run_id) + ")").c_str() : "");
    std::fflush(stdout);
    train::RunOptions opt;
    opt.data_dir = dataDir();
    opt.db_path = dbPath();
    opt.tags = tags_;
    opt.tags.push_back("sweep:" + sw.name);
    if (st.state == SweepState::Resume) opt.resume_run = st.run_id;
    train::RunResult res;
    try {
      res = train::run_experiment(st.state == SweepState::Resume ? json::object() : r.spec, opt, {&bar}, &control);
    } catch (const hl::Error& e) {  // a data or resume error of this run: report it, go on
      std::fprintf(stderr, "[%d/%d] %s: %s\n", i, n, r.label.c_str(), e.what());
      rc = std::max(rc, e.exitCode());
      continue;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "[%d/%d] %s: %s\n", i, n, r.label.c_str(), e.what());
      rc = std::max(rc, 4);
      continue;
    }
    ++ran;
    const int code = report(res);
    if (code == 130) return 130;
    rc = std::max(rc, code);
  }
  std::printf("sweep %s: %d run(s) here, %d already done or running elsewhere, of %d\n", sw.name.c_str(), ran, skipped,
              n);
  return rc;
}

// --jobs N: N processes of this program, process k running the runs i with i % N == k, each with
// its share of the CPU threads (OMP_NUM_THREADS; the spec's training.threads, when set, wins).
int Commands::sweepInProcesses(int n) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::string threads = std::to_string(std::max(1u, cores / unsigned(jobs_)));
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env_strings.push_back(*e);
  env_strings.push_back("OMP_NUM_THREADS=" + threads);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<pid_t> children;
  // With --shard K/M as well (several machines, each with --jobs N): worker k takes K + M·k of M·N.
  const int outer = std::max(1, shard_count_), base = shard_count_ > 1 ? shard_ : 0;
  for (int k = 0; k < jobs_ && k < n; ++k) {
    const std::string shard = std::to_string(base + outer * k) + "/" + std::to_string(outer * jobs_);
    std::vector<std::string> args{"/proc/self/exe", "--db",      dbPath(),  "--data-dir", dataDir(),
                                  "sweep",          sweep_file_, "--shard", shard};
    if (quiet_) args.push_back("--quiet");
    for (const auto& t : tags_) args.insert(args.end(), {"--tag", t});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), envp.data()) != 0) {
      for (pid_t started : children) waitpid(started, nullptr, 0);  // they finish their runs first
      throw RunError("sweep --jobs: cannot start a worker process");
    }
    children.push_back(pid);
  }
  int rc = 0;
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 4;
    rc = std::max(rc, code == 130 ? 130 : code);
  }
  std::printf("sweep: %d worker process(es) done (%s thread(s) each)\n", int(children.size()), threads.c_str());
  return rc;
}

}  // namespace hl::cli
