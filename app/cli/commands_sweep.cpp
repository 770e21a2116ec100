// hopelab-cli sweep: a grid of runs from a sweep file (engine/spec/sweep.h, docs/SWEEPS.md).
// Finished runs (same config hash and seed in the database) are skipped, interrupted ones resumed
// from their last checkpoint; --jobs N splits the list over N processes of this program on this
// machine, --index I runs one run of the list (a scheduler's array task), --slurm writes (and with
// --submit submits) an sbatch job-array script whose task I runs `--index I` into shard-I.db.
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "commands.h"
#include "commit_log.h"
#include "engine/common/error.h"
#include "engine/common/version.h"
#include "engine/spec/spec.h"
#include "engine/spec/sweep.h"
#include "engine/store/store.h"
#include "progress.h"

extern char** environ;

using json = nlohmann::json;

namespace hl::cli {
namespace {

volatile std::sig_atomic_t g_stop_requested = 0;  // SIGTERM or SIGINT reached the sweep --jobs parent
extern "C" void on_stop_signal(int) {
  g_stop_requested = 1;
}

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

// A word for the POSIX shell, in single quotes.
std::string sh(const std::string& s) {
  std::string o = "'";
  for (char c : s) o += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return o + "'";
}

// 0,1,2,3,5,7,8 -> "0-3,5,7-8" (sbatch --array's list syntax).
std::string index_ranges(const std::vector<int>& v) {
  std::string out;
  for (size_t i = 0; i < v.size();) {
    size_t j = i;
    while (j + 1 < v.size() && v[j + 1] == v[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(v[i]) + (j > i ? "-" + std::to_string(v[j]) : "");
    i = j + 1;
  }
  return out;
}

// The sweep's name as a file-name and job-name word: letters, digits, '-', '_', '.'.
std::string word(const std::string& s) {
  std::string o;
  for (char c : s) o += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return o.empty() ? "sweep" : o;
}

}  // namespace

int Commands::sweep() {
  const spec::Sweep sw = spec::load_sweep(sweep_file_);
  const int n = int(sw.runs.size());
  if (sweep_index_ >= n)
    throw SpecError("--index " + std::to_string(sweep_index_) + ": the sweep has " + std::to_string(n) +
                    " runs (0 to " + std::to_string(n - 1) + ")");
  if (slurm_) {
    if (jobs_ > 1 || sweep_index_ >= 0 || shard_count_ > 1 || sweep_list_ || sole_writer_)
      throw SpecError(
          "--slurm writes a job-array script for the whole sweep: it does not go with --jobs, --index, "
          "--shard, --list or --sole-writer");
    return sweepSlurm(sw);
  }
  if (slurm_submit_) throw SpecError("--submit goes with --slurm");
  auto db = store::RunStore::open(dbPath());
  if (sole_writer_) {
    // Nobody else writes this database (a Slurm task's own shard): a `running` run is a leftover of
    // a task that died (a node lost, a hard kill), on whatever host; make it resumable.
    for (const auto& rec : db->listRuns())
      if (rec.status == RunStatus::Running) {
        db->finish(rec.id, RunStatus::Interrupted);
        std::printf("run %lld was left running by a process that is gone (host %s): marked interrupted\n",
                    (long long)rec.id, rec.host.c_str());
      }
  }
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
  // Ctrl-C in a terminal reaches every worker of the process group: each cancels its run; a SIGTERM
  // to the parent alone is passed on (sweepInProcesses).
  if (jobs_ > 1 && sweep_index_ < 0) return sweepInProcesses(n);

  std::vector<int> mine;
  for (int i = 0; i < n; ++i)
    if (sweep_index_ >= 0 ? i == sweep_index_ : (shard_count_ <= 1 || i % shard_count_ == shard_)) mine.push_back(i);
  int rc = 0, ran = 0, skipped = 0;
  train::Control control;
  CancelOnSignal guard(&control);
  ProgressBar bar(quiet_);
  const auto commit_log = commit_log_from_env();
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
    opt.on_commit = commit_log;
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

// --slurm: a job-array script, task I running `sweep FILE --index I` into SHARD_DIR/shard-I.db. Runs
// already finished (or failed, or diverged) in their shard get no task, so resubmitting the written
// script after a partial array runs only what is left.
int Commands::sweepSlurm(const spec::Sweep& sw) {
  namespace fs = std::filesystem;
  const int n = int(sw.runs.size());
  const fs::path dir = fs::absolute(slurm_dir_.empty() ? "slurm-" + word(sw.name) : slurm_dir_).lexically_normal();
  fs::create_directories(dir / "logs");
  const auto shard = [&](const std::string& i) { return (dir / ("shard-" + i + ".db")).string(); };
  std::vector<int> todo;
  int done = 0, failed = 0;
  for (int i = 0; i < n; ++i) {
    const std::string path = shard(std::to_string(i));
    if (fs::exists(path)) {
      auto db = store::RunStore::open(path);
      const Stored st = stored_state(*db, db->listRuns(), sw.runs[i]);
      if (st.state == SweepState::Finished) {
        ++done;
        continue;
      }
      if (st.state == SweepState::Failed || st.state == SweepState::Diverged) {
        std::printf("run %d (%s): %s in %s, no task (delete that run to try again)\n", i, sw.runs[i].label.c_str(),
                    state_name(st.state), path.c_str());
        ++failed;
        continue;
      }
    }
    todo.push_back(i);
  }
  bool any_cuda = false;
  for (const auto& r : sw.runs) any_cuda = any_cuda || r.spec["experiment"].value("device", "cpu") == "cuda";
  if (slurm_gpus_ > 0 && !any_cuda)
    std::fprintf(stderr,
                 "warning: --gpus %d, but no run of the sweep has experiment.device cuda: they would run on "
                 "the CPU (add \"experiment.device\": \"cuda\" to the sweep's \"set\")\n",
                 slurm_gpus_);
  if (slurm_gpus_ == 0 && any_cuda)
    std::fprintf(stderr, "warning: runs of the sweep use experiment.device cuda, but --gpus is 0: they get no GPU\n");
  if (n > 1001)
    std::fprintf(stderr, "warning: %d array tasks; Slurm's default MaxArraySize is 1001 (task ids up to 1000)\n", n);

  const std::string exe = fs::canonical("/proc/self/exe").string();
  const std::string sweep_file = fs::canonical(sweep_file_).string();
  const std::string data = fs::absolute(dataDir()).lexically_normal().string();
  const std::string job = slurm_job_name_.empty() ? "hopelab-" + word(sw.name) : slurm_job_name_;
  const fs::path script = dir / (word(sw.name) + ".sbatch");
  const std::string merge_cmd =
      sh(exe) + " runs merge " + sh(dir.string()) + "/shard-*.db --into " + sh(fs::absolute(dbPath()).string());

  if (todo.empty()) {
    std::printf("sweep %s: all %d run(s) already finished%s in %s; nothing to submit.\nmerge: %s\n", sw.name.c_str(), n,
                failed ? " or failed" : "", dir.c_str(), merge_cmd.c_str());
    return 0;
  }
  std::string cmd = "exec " + sh(exe) + " --db " + sh(dir.string()) +
                    "\"/shard-${SLURM_ARRAY_TASK_ID}.db\" --data-dir " + sh(data) + " sweep " + sh(sweep_file) +
                    " --index \"$SLURM_ARRAY_TASK_ID\" --sole-writer --quiet";
  for (const auto& t : tags_) cmd += " --tag " + sh(t);
  {
    std::ofstream f(script);
    if (!f) throw RunError("cannot write " + script.string());
    char when[32];
    const std::time_t now = std::time(nullptr);
    std::strftime(when, sizeof when, "%Y-%m-%d %H:%M", std::localtime(&now));
    f << "#!/bin/bash\n"
      << "# Sweep " << sw.name << " (" << sweep_file << ") as a Slurm job array: task I runs run I of the sweep\n"
      << "# into its own database " << dir.string() << "/shard-I.db. Written " << when << " by Hope Lab "
      << app_version() << " (hopelab-cli sweep --slurm; docs/SCALING.md).\n"
      << "# " << todo.size() << " of " << n << " run(s) get a task; " << done << " finished"
      << (failed ? ", " + std::to_string(failed) + " failed or diverged" : std::string()) << " in their shard.\n"
      << "# When the array is done: " << merge_cmd << "\n"
      << "#SBATCH --job-name=" << job << "\n"
      << "#SBATCH --array=" << index_ranges(todo) << "%" << slurm_max_parallel_ << "\n"
      << "#SBATCH --ntasks=1\n"
      << "#SBATCH --cpus-per-task=" << slurm_cpus_ << "\n"
      << "#SBATCH --mem=" << slurm_mem_ << "\n"
      << "#SBATCH --time=" << slurm_time_ << "\n";
    if (!slurm_partition_.empty()) f << "#SBATCH --partition=" << slurm_partition_ << "\n";
    if (!slurm_account_.empty()) f << "#SBATCH --account=" << slurm_account_ << "\n";
    if (slurm_gpus_ > 0) f << "#SBATCH --gres=gpu:" << slurm_gpus_ << "\n";
    for (const auto& o : slurm_extra_) f << "#SBATCH " << o << "\n";
    f << "#SBATCH --output=" << dir.string() << "/logs/%x-%A_%a.out\n"
      << "set -euo pipefail\n"
      << "# One thread per allocated CPU (a spec's training.threads, when set, wins).\n"
      << "export OMP_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-" << slurm_cpus_ << "}\"\n"
      << "export HOPELAB_DATA_DIR=" << sh(data) << "\n"
      << cmd << "\n";
    if (!f) throw RunError("cannot write " + script.string());
  }
  fs::permissions(script, fs::perms::owner_exec | fs::perms::group_exec, fs::perm_options::add);
  std::printf("sweep %s: wrote %s\n  %zu array task(s) of %d run(s) (%s), at most %d at once; %d already finished\n",
              sw.name.c_str(), script.c_str(), todo.size(), n, index_ranges(todo).c_str(), slurm_max_parallel_, done);
  std::printf("  shards: %s/shard-I.db, logs: %s/logs\n", dir.c_str(), dir.c_str());
  const std::string submit = "sbatch " + sh(script.string());
  if (!slurm_submit_) {
    std::printf("submit:  %s\nmonitor: squeue --name %s\nmerge:   %s\n", submit.c_str(), job.c_str(),
                merge_cmd.c_str());
    return 0;
  }
  std::fflush(stdout);
  FILE* p = popen((submit + " 2>&1").c_str(), "r");
  if (!p) throw RunError("cannot run sbatch");
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  const int status = pclose(p);
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code != 0)
    throw RunError(submit + " failed (exit " + std::to_string(code) + ")" +
                   (code == 127 ? ": sbatch not found; is this a Slurm login node?" : ": " + out));
  std::printf("%s", out.c_str());
  std::printf("submitted: %s\nmonitor: squeue --name %s\nmerge:   %s\n", submit.c_str(), job.c_str(),
              merge_cmd.c_str());
  return 0;
}

// --jobs N: N processes of this program, process k running the runs i with i % N == k, each with
// its share of the CPU threads (OMP_NUM_THREADS; the spec's training.threads, when set, wins).
// The workers die with this process: killed (even by SIGKILL), it takes them along (the kernel's
// parent-death signal, SIGKILL: their runs are `running` until the next open of the database marks
// them interrupted); SIGTERM or SIGINT to it alone is passed on, so each worker cancels its run
// cleanly (`cancelled`, as `train` does) and the sweep exits 130 once they are done.
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
  // Until the workers are known, SIGTERM and SIGINT wait (blocked; a worker unblocks them itself).
  sigset_t stop_signals, old_mask;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, &old_mask);
  std::vector<pid_t> children;
  // With --shard K/M as well (several machines, each with --jobs N): worker k takes K + M·k of M·N.
  const int outer = std::max(1, shard_count_), base = shard_count_ > 1 ? shard_ : 0;
  const pid_t parent = ::getpid();
  for (int k = 0; k < jobs_ && k < n; ++k) {
    const std::string shard = std::to_string(base + outer * k) + "/" + std::to_string(outer * jobs_);
    std::vector<std::string> args{"/proc/self/exe", "--db",      dbPath(),  "--data-dir", dataDir(),
                                  "sweep",          sweep_file_, "--shard", shard};
    if (quiet_) args.push_back("--quiet");
    for (const auto& t : tags_) args.insert(args.end(), {"--tag", t});
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {  // only async-signal-safe calls until exec
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(4);  // the sweep died before the line above
      ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
      ::execve("/proc/self/exe", argv.data(), envp.data());
      ::_exit(127);
    }
    if (pid < 0) {
      for (pid_t started : children) waitpid(started, nullptr, 0);  // they finish their runs first
      sigprocmask(SIG_SETMASK, &old_mask, nullptr);
      throw RunError("sweep --jobs: cannot start a worker process");
    }
    children.push_back(pid);
  }
  struct sigaction on_stop {
  }, old_term{}, old_int{};
  on_stop.sa_handler = on_stop_signal;
  sigemptyset(&on_stop.sa_mask);
  sigaction(SIGTERM, &on_stop, &old_term);
  sigaction(SIGINT, &on_stop, &old_int);
  sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  int rc = 0;
  bool passed_on = false;
  for (pid_t pid : children) {
    int status = 0;
    for (;;) {  // polled, so that a signal between a check and a blocking wait is never missed
      if (g_stop_requested && !passed_on) {
        passed_on = true;
        for (pid_t c : children) ::kill(c, SIGTERM);
      }
      const pid_t r = waitpid(pid, &status, WNOHANG);
      if (r == pid || (r < 0 && errno != EINTR)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 4;
    rc = std::max(rc, code == 130 ? 130 : code);
  }
  sigaction(SIGTERM, &old_term, nullptr);
  sigaction(SIGINT, &old_int, nullptr);
  std::printf("sweep: %d worker process(es) done (%s thread(s) each)\n", int(children.size()), threads.c_str());
  return g_stop_requested ? 130 : rc;
}

}  // namespace hl::cli
