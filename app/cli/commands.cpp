#include "commands.h"
#include "commit_log.h"

#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "engine/common/error.h"
#include "engine/data/dataset.h"
#include "engine/metrics/metrics.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/train/diagnose.h"
#include "engine/train/experiment.h"
#include "progress.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace hl::cli {
namespace {

// "a | b | c": a kind's names for --help.
std::string alternatives(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " | ") + n;
  return out;
}

std::string fmt(const json& v, int decimals = 3) {
  if (v.is_null()) return "-";
  if (v.is_number_float()) {
    if (std::isnan(v.get<double>())) return "-";
    char b[64];
    std::snprintf(b, sizeof b, "%.*f", decimals, v.get<double>());
    return b;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string time_str(double unix_s) {
  if (unix_s <= 0) return "";
  time_t t = time_t(unix_s);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", std::localtime(&t));
  return buf;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) {
    if (c == '"') o += '"';
    o += c;
  }
  return o + "\"";
}

json parse_summary(const store::RunRecord& r) {
  try {
    return r.summary_json.empty() ? json::object() : json::parse(r.summary_json);
  } catch (...) {
    return json::object();
  }
}

}  // namespace

Commands::Commands(CLI::App& app) : app_(app) {
  app.footer(
      "Environment: HOPELAB_DATA_DIR (datasets, as --data-dir); HOPELAB_KERNEL_ISA = auto | baseline | avx2-fma | "
      "avx512 (the CPU kernels' instruction set; default auto: the widest this CPU has; docs/KERNELS.md)");
  app.add_option("--db", db_, "Run database (default: <user data dir>/runs.db)");
  app.add_option("--data-dir", data_dir_, "Dataset folder (default: $HOPELAB_DATA_DIR, else <user data dir>/datasets)");
  // Global options are accepted after the subcommand too (`hopelab-cli runs --db x.db`): the
  // subcommands made below inherit fallthrough and pass options they do not know up to here.
  app.fallthrough();

  train_ = app.add_subcommand("train", "Train a model on a class-incremental (or joint) experiment and store the run");
  auto* src = train_->add_option_group("source");
  src->add_option("--preset", preset_, "Built-in preset (see `presets`); default transformer");
  src->add_option("--spec", spec_file_, "Spec JSON file")->check(CLI::ExistingFile);
  src->require_option(0, 1);
  train_->add_option("--dataset", dataset_, "clinc150 | banking77 | dbpedia70 | dbpedia14 | a folder path");
  train_->add_option("--split", split_, "Dataset split (banking77: vag | all77)");
  train_->add_option("--protocol", protocol_, alternatives(names<Protocol>()))->check(CLI::IsMember(names<Protocol>()));
  train_->add_option("--strategy", strategy_, alternatives(names<StrategyType>()))
      ->check(CLI::IsMember(names<StrategyType>()));
  train_->add_option("--head", head_, alternatives(names<HeadType>()))->check(CLI::IsMember(names<HeadType>()));
  train_->add_option("--task-order", task_order_, "Task order index (VAG orders; else a seeded permutation)")
      ->check(CLI::NonNegativeNumber);
  train_->add_option("--epochs", epochs_, "Epochs per task")->check(CLI::NonNegativeNumber);
  train_->add_option("--limit-per-class", limit_per_class_, "Train rows per class (0 = all)")
      ->check(CLI::NonNegativeNumber);
  train_->add_option("--eval-limit-per-class", eval_limit_per_class_, "Test rows per class (0 = all)")
      ->check(CLI::NonNegativeNumber);
  train_->add_option("--seed", seeds_, "Seed; several (--seed 0 1 2) run one run per seed")->expected(1, -1);
  train_->add_option("--device", device_, "cpu | cuda")->check(CLI::IsMember({"cpu", "cuda"}));
  train_->add_option("--set", sets_, "Override a spec field: --set model.d_model=256 (repeatable)");
  train_->add_option("--tag", tags_, "Tag the run (repeatable)");
  train_->add_option("--notes", notes_, "Notes stored with the run");
  train_->add_flag("--quiet", quiet_, "No progress bar");
  train_->add_flag("--no-store", no_store_, "Do not write the run to the database");
  train_->add_option("--result-json", result_json_, "Also write the run's summary JSON to this file");
  train_
      ->add_option("--resume", resume_,
                   "Continue a stored run that did not finish (interrupted, cancelled, failed, diverged) from its "
                   "last task-end checkpoint, with its own spec and data")
      ->check(CLI::PositiveNumber);

  runs_ = app.add_subcommand("runs", "List stored runs, newest first");
  runs_->add_option("--format", format_, "table | csv | json")->check(CLI::IsMember({"table", "csv", "json"}));
  runs_->add_option("--dataset", f_dataset_, "Only this dataset");
  runs_->add_option("--model", f_model_, "Only this model/preset name");
  runs_->add_option("--strategy", f_strategy_, "Only this strategy");
  runs_->add_option("--status", f_status_, "Only this status");
  runs_->add_option("--tag", f_tag_, "Only runs with this tag");
  runs_->add_option("--limit", limit_, "At most N runs");
  runs_merge_ = runs_->add_subcommand(
      "merge",
      "Merge run databases (e.g. the shards of a `sweep --slurm` array) into one, matched by run UUID: runs new to "
      "it are copied with their series, accuracy matrix, evaluations and checkpoint index; merging again adds "
      "nothing; a finished copy replaces an unfinished one (docs/STORE.md, docs/SCALING.md)");
  runs_merge_->add_option("shards", merge_shards_, "Run databases to merge from")->required()->expected(1, -1);
  runs_merge_->add_option("--into", merge_into_, "The database to merge into (default: --db, else the user's runs.db)");

  runs_delete_ = runs_->add_subcommand(
      "delete",
      "Delete runs with all their rows (series, accuracy matrix, evaluations, checkpoint index, confusion "
      "matrices), as the Runs tab's Delete does; a sweep then runs them again. A run stored as running is refused");
  runs_delete_->add_option("ids", delete_ids_, "Run ids (see `hopelab-cli runs`)")->required()->expected(1, -1);

  runs_confusion_ = runs_->add_subcommand(
      "confusion",
      "A run's confusion matrix after a task: the class-IL predictions on the evaluation split over the classes "
      "seen so far (true class x predicted class), classes grouped by task; a summary, or the matrix as CSV/JSON");
  runs_confusion_->add_option("run", run_id_, "Run id")->required();
  runs_confusion_->add_option("--task", confusion_task_, "After task J, 1-based (default: the last task evaluated)")
      ->check(CLI::PositiveNumber);
  {
    auto* fmt = runs_confusion_->add_option_group("format");
    fmt->add_flag("--csv", csv_, "The matrix as CSV: one row per true class, one column per predicted class");
    fmt->add_flag("--json", json_, "The matrix as JSON (classes with their tasks and names, counts row by row)");
    fmt->require_option(0, 1);
  }
  runs_confusion_->add_flag(
      "--normalise", normalise_,
      "Each row divided by its sum (the share of the true class's rows), in --csv and the summary");
  runs_confusion_->add_option("--out", out_, "Write to this file instead of stdout");

  attribute_ = app.add_subcommand(
      "attribute",
      "Per-level forgetting attribution of a finished run: for each level (outer, each in-context memory, each CMS "
      "level, the memory head) and each task j, that level is put back to its state at the end of task j, the rest "
      "stays final, and task j's accuracy is measured; the gain over the final model is the level's share of task "
      "j's forgetting (needs the run's task-end snapshots, training.snapshots; docs/MODELS.md)");
  attribute_->add_option("run", run_id_, "Run id")->required();
  {
    auto* fmt = attribute_->add_option_group("format");
    fmt->add_flag("--json", json_, "Machine-readable JSON (gains as fractions)");
    fmt->add_flag("--csv", csv_, "The level x task table of gains (accuracy points) as CSV");
    fmt->require_option(0, 1);
  }
  attribute_->add_flag("--quiet", quiet_, "No progress on stderr");

  evaluate_ = app.add_subcommand(
      "evaluate",
      "Test-time ablation of a finished run: its saved model evaluated on the test rows of every task, as saved and "
      "with --set overrides that keep the weights' shapes (e.g. model.blocks.0.memory_writes=false: does the "
      "trained model use its in-context writes?), per task and mean, without training again (docs/MODELS.md)");
  evaluate_
      ->add_option("runs", eval_runs_,
                   "Run id, or several (3,5,7-9: e.g. the seeds of one configuration; then one line per run and "
                   "the change's mean ± std)")
      ->required();
  evaluate_->add_flag("--writes-off", writes_off_,
                      "Turn off the in-context writes of every self-modifying Titans block (memory_writes false)");
  evaluate_->add_option("--set", sets_,
                        "Override a field of the saved spec: --set model.blocks.0.inner_lr=0.01 (repeatable; with "
                        "--writes-off, or at least one)");
  evaluate_->add_option("--checkpoint", eval_which_, "last (default: the model whose accuracies the run stored) | best")
      ->check(CLI::IsMember({"last", "best"}));
  evaluate_->add_flag("--json", json_, "Print JSON");
  evaluate_->add_flag("--record", record_,
                      "Store each result in the run database (table ablations: `show --json` lists them, `report` "
                      "tabulates them; docs/STORE.md); the same run, overrides and checkpoint again replaces it");
  evaluate_
      ->add_flag("--missing-only", missing_only_,
                 "With --record: skip the runs that already have this ablation recorded (same overrides and "
                 "checkpoint)")
      ->needs("--record");
  evaluate_
      ->add_flag("--skip-without-writes", skip_without_writes_,
                 "With --writes-off: skip, with a line saying so, the runs that have no in-context writes to turn "
                 "off (no self-modifying Titans block, or trained with memory_writes false) instead of failing")
      ->needs("--writes-off");

  show_ = app.add_subcommand("show", "Show one run");
  show_->add_option("run", run_id_, "Run id")->required();
  show_->add_flag("--json", json_, "Machine-readable JSON (metrics, accuracy matrix, series)");

  export_ = app.add_subcommand("export", "Export result tables (runs that differ only by seed -> mean ± std)");
  export_->add_option("--runs", export_runs_, "Run ids: 3,5,7-9 (default: all finished runs)");
  export_->add_option("--format", export_format_, "csv | md | latex")->check(CLI::IsMember({"csv", "md", "latex"}));
  export_->add_option("--matrix", matrix_run_, "Export this run's accuracy matrix instead");
  export_->add_option("--decimals", decimals_, "Decimals (default 3)")->check(CLI::Range(0, 10));
  export_->add_option("--out", out_, "Write to this file instead of stdout");

  validate_ = app.add_subcommand("validate", "Validate a spec: every error and warning with its JSON path");
  validate_->add_option("spec", validate_file_, "Spec JSON file or preset name")->required();

  diagnose_ = app.add_subcommand(
      "diagnose",
      "The in-context memory of every self-modifying Titans block on a real batch, at initialisation or from a "
      "checkpoint: cos(k, v), inner loss, DGD erase / association, memory share, context effect at token 8, η, α, "
      "clamp rate (docs/MEMORY.md \"Diagnostics\")");
  {
    auto* dsrc = diagnose_->add_option_group("source");
    dsrc->add_option("--preset", preset_, "Built-in preset (see `presets`)");
    dsrc->add_option("--spec", spec_file_, "Spec JSON file")->check(CLI::ExistingFile);
    dsrc->add_option("--checkpoint", diag_checkpoint_, "A run's checkpoint (.pt): its spec, tokenizer and weights")
        ->check(CLI::ExistingFile);
    dsrc->require_option(0, 1);
  }
  diagnose_->add_option("--dataset", dataset_, "clinc150 | banking77 | dbpedia70 | dbpedia14 | a folder path");
  diagnose_->add_option("--set", sets_, "Override a spec field: --set model.blocks.0.inner_lr=0.2 (repeatable)");
  diagnose_->add_option("--seed", seeds_, "Seed of the initialisation and of the batch's rows")->expected(1);
  diagnose_->add_option("--batch", diag_batch_, "Rows in the batch (1 to 4096)")->check(CLI::Range(1, 4096));
  diagnose_->add_flag("--json", json_, "Print JSON");

  bench_ = app.add_subcommand("bench", "Benchmarks measured in one run (docs/KERNELS.md)");
  bench_->require_subcommand(1);
  bench_kernels_ = bench_->add_subcommand(
      "kernels",
      "Each fused kernel vs the LibTorch path it replaces, forward + backward, float32, with this run's "
      "torch::mm peak on the same threads (or GPU) and the two paths' largest relative difference");
  bench_kernels_->add_option("--repeats", bench_repeats_, "Timed repetitions per side (interleaved)")
      ->check(CLI::Range(1, 1000));
  bench_kernels_
      ->add_option("--device", bench_device_,
                   "cpu, or cuda (the CUDA segment write; needs a GPU and a build with the CUDA kernels)")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  bench_kernels_->add_flag("--json", json_, "Print one JSON array, an object per case");

  report_ = app.add_subcommand("report",
                               "The results report (Markdown, docs/RESULTS.md) of one or more sweep files: each "
                               "sweep's finished runs in the database as a seed-grouped table, what did not run, the "
                               "sweep's budget and which builds and devices made the runs; Hope against the "
                               "Transformer per set-up with a verdict against the seeds' spread, the best "
                               "configuration and the best Hope variant without replay against replay; and the "
                               "measured numbers beside the seed document's claims");
  report_->add_option("sweeps", report_files_, "Sweep files (JSON), e.g. sweeps/laptop/*.json")
      ->required()
      ->check(CLI::ExistingFile);
  report_->add_option("--out", out_, "Write to this file (e.g. docs/RESULTS.md) instead of stdout");
  report_->add_option("--decimals", decimals_, "Decimals (default 3)")->check(CLI::Range(0, 10));
  report_->add_option("--figures", report_figures_,
                      "Link each sweep's heatmap and forgetting-curve PNGs from this folder (hope and transformer, "
                      "fine-tuned, first seed) and write the run ids to draw into DIR/runs.txt; the GUI draws them: "
                      "hopelab --db DB --figures DIR --runs IDS");

  presets_ = app.add_subcommand("presets", "List the built-in presets");
  presets_->add_option("--show", preset_show_, "Print this preset's full spec JSON");

  sweep_ = app.add_subcommand("sweep",
                              "Run a grid of experiments from a sweep file (docs/SWEEPS.md): runs already finished "
                              "in the database are skipped, interrupted ones resumed from their checkpoint");
  sweep_->add_option("file", sweep_file_, "Sweep file (JSON)")->required()->check(CLI::ExistingFile);
  sweep_->add_option("--jobs", jobs_, "Processes on this machine, the CPU threads split between them")
      ->check(CLI::Range(1, 64));
  sweep_->add_option("--index", sweep_index_, "Run only run INDEX of the list (0-based; e.g. a Slurm array task)")
      ->check(CLI::NonNegativeNumber);
  sweep_->add_option("--shard", shard_spec_, "K/N: run the runs i with i % N == K (what --jobs gives each process)");
  sweep_->add_flag("--list", sweep_list_, "List the runs with their state in the database; run nothing");
  sweep_->add_flag("--quiet", quiet_, "No progress bar");
  sweep_->add_option("--tag", tags_, "Extra tags for every run (each run also gets sweep:NAME)");
  sweep_->add_flag("--sole-writer", sole_writer_,
                   "This process is the database's only writer (a Slurm array task's own shard): a run stored as "
                   "running was left by a process that is gone, on whatever host, and is resumed");
  auto* sl = sweep_->add_option_group("Slurm",
                                      "With --slurm: write an sbatch job-array script, one task per run "
                                      "(docs/SCALING.md)");
  sl->add_flag("--slurm", slurm_,
               "Write an sbatch job-array script (one array task per run, each into its own database shard) "
               "instead of running; print how to submit it");
  sl->add_flag("--submit", slurm_submit_, "With --slurm: also submit the script with sbatch");
  sl->add_option("--shard-dir", slurm_dir_,
                 "Folder of the script, the shards (shard-I.db) and the logs (default: ./slurm-NAME; on a file "
                 "system the compute nodes share)");
  sl->add_option("--partition", slurm_partition_, "sbatch --partition (default: the cluster's default)");
  sl->add_option("--time", slurm_time_, "sbatch --time per run (default 04:00:00)");
  sl->add_option("--cpus-per-task", slurm_cpus_, "sbatch --cpus-per-task, also OMP_NUM_THREADS (default 2)")
      ->check(CLI::Range(1, 1024));
  sl->add_option("--mem", slurm_mem_, "sbatch --mem per run (default 8G)");
  sl->add_option("--gpus", slurm_gpus_, "GPUs per run: sbatch --gres=gpu:N (default 0; set experiment.device cuda)")
      ->check(CLI::Range(0, 64));
  sl->add_option("--account", slurm_account_, "sbatch --account");
  sl->add_option("--max-parallel", slurm_max_parallel_,
                 "At most this many array tasks at once: --array=...%N (default 16)")
      ->check(CLI::Range(1, 100000));
  sl->add_option("--job-name", slurm_job_name_, "sbatch --job-name (default hopelab-NAME)");
  sl->add_option("--sbatch", slurm_extra_,
                 "Another sbatch option for the script, e.g. --sbatch=--qos=long (repeatable)")
      ->allow_extra_args(false);

  data_ = app.add_subcommand("data", "Datasets: list, verify, fetch, import");
  data_->require_subcommand(1);
  data_list_ = data_->add_subcommand("list", "Known datasets and where they are looked for");
  data_verify_ = data_->add_subcommand("verify", "Check the known files against their checksums");
  data_fetch_ = data_->add_subcommand("fetch", "Download the datasets from their public sources into the data dir");
  data_fetch_->add_option("what", fetch_what_, "Dataset name or all (default)");
  data_fetch_->add_option("--mirror", mirror_, "Base URL of a mirror laid out like the data dir (file:// works)");
  data_import_ = data_->add_subcommand("import", "Copy a local copy of the datasets into the data dir and verify it");
  data_import_->add_option("dir", import_src_, "Folder laid out like the data dir")
      ->required()
      ->check(CLI::ExistingDirectory);
}

std::string Commands::dbPath() const {
  if (!db_.empty()) return db_;
  std::string d = data::user_data_dir();
  fs::create_directories(d);
  return d + "/runs.db";
}

std::string Commands::dataDir() const {
  return data::resolve_data_dir(data_dir_);
}

int Commands::run() {
  if (train_->parsed()) return train();
  if (diagnose_->parsed()) return diagnose();
  if (bench_kernels_->parsed()) return benchKernels();
  if (runs_merge_->parsed()) return runsMerge();
  if (runs_delete_->parsed()) return runsDelete();
  if (runs_confusion_->parsed()) return runsConfusion();
  if (attribute_->parsed()) return attribute();
  if (evaluate_->parsed()) return evaluateRun();
  if (runs_->parsed()) return runs();
  if (show_->parsed()) return show();
  if (export_->parsed()) return exportTables();
  if (report_->parsed()) return reportResults();
  if (validate_->parsed()) return validate();
  if (presets_->parsed()) return presets();
  if (data_list_->parsed()) return dataList();
  if (data_verify_->parsed()) return dataVerify();
  if (data_fetch_->parsed()) return dataFetch();
  if (data_import_->parsed()) return dataImport();
  if (sweep_->parsed()) {
    if (!shard_spec_.empty()) {
      const auto slash = shard_spec_.find('/');
      try {
        shard_ = std::stoi(shard_spec_.substr(0, slash));
        shard_count_ = std::stoi(shard_spec_.substr(slash + 1));
      } catch (const std::exception&) {
        shard_count_ = 0;
      }
      if (slash == std::string::npos || shard_count_ < 1 || shard_ < 0 || shard_ >= shard_count_)
        throw SpecError("--shard " + shard_spec_ + ": expected K/N with 0 <= K < N, e.g. 0/2");
    }
    return sweep();
  }
  return 2;
}

int Commands::diagnose() {
  json spec;
  if (diag_checkpoint_.empty()) {
    spec = spec::complete(!spec_file_.empty() ? spec::load_file(spec_file_)
                                              : spec::preset(preset_.empty() ? "hope" : preset_));
    if (!dataset_.empty()) {
      std::error_code ec;
      spec["experiment"]["dataset"] =
          fs::is_directory(dataset_, ec) ? fs::absolute(dataset_).lexically_normal().string() : dataset_;
    }
    if (!seeds_.empty()) spec["experiment"]["seed"] = seeds_.front();
    for (const auto& s : sets_) {
      auto eq = s.find('=');
      if (eq == std::string::npos) throw SpecError("--set " + s + ": expected PATH=VALUE");
      spec::set_path(spec, s.substr(0, eq), s.substr(eq + 1));
    }
  } else if (!dataset_.empty() || !seeds_.empty() || !sets_.empty()) {
    throw SpecError("--checkpoint diagnoses the run as it was saved: --dataset, --seed and --set do not go with it");
  }
  train::RunOptions opt;
  opt.data_dir = dataDir();
  train::DiagnoseOptions d;
  d.checkpoint = diag_checkpoint_;
  d.batch = diag_batch_;
  const json r = train::diagnose(spec, opt, d);
  if (json_) {
    std::cout << r.dump(2) << "\n";
    return 0;
  }
  std::printf("%s on %s: %lld rows, %lld tokens, %s\n", r["spec_name"].get<std::string>().c_str(),
              r["dataset"].get<std::string>().c_str(), (long long)r["rows"].get<int64_t>(),
              (long long)r["tokens"].get<int64_t>(),
              diag_checkpoint_.empty() ? "at initialisation" : ("from " + diag_checkpoint_).c_str());
  if (r["blocks"].empty()) {
    std::printf("no self-modifying Titans block in this model: nothing to diagnose\n");
    return 0;
  }
  std::printf("%-6s %7s %9s %9s %9s %9s %9s %15s %15s %8s\n", "block", "cos_kv", "in_loss", "erase/as", "mem_share",
              "ctx_t8", "in_loss4", "eta p05/50/95", "alpha p05/50/95", "clamped");
  for (const auto& b : r["blocks"]) {
    const double ctx = b["context_effect_t8"].get<double>();
    std::printf("%-6d %7.3f %9.4f %9.3f %9.3f %9s %9.4f %4.3f/%4.3f/%4.3f %4.3f/%4.3f/%4.3f %8.4f\n",
                b["block"].get<int>(), b["cos_kv"].get<double>(), b["inner_loss"].get<double>(),
                b["erase_over_assoc"].get<double>(), b["memory_share"].get<double>(),
                ctx < 0 ? "-" : std::to_string(ctx).substr(0, 5).c_str(), b["inner_loss_other"].get<double>(),
                b["eta"]["p05"].get<double>(), b["eta"]["p50"].get<double>(), b["eta"]["p95"].get<double>(),
                b["alpha"]["p05"].get<double>(), b["alpha"]["p50"].get<double>(), b["alpha"]["p95"].get<double>(),
                b["clamp_rate"].get<double>());
    if (!b.value("writes", true))
      std::printf(
          "       block %d has its memory writes off (memory_writes false): it writes nothing, so only "
          "mem_share and ctx_t8 (0) apply\n",
          b["block"].get<int>());
  }
  return 0;
}

int Commands::train() {
  if (resume_ > 0) {
    if (!spec_file_.empty() || !preset_.empty() || !sets_.empty() || !dataset_.empty() || !seeds_.empty() ||
        !split_.empty() || !protocol_.empty() || !strategy_.empty() || !head_.empty() || !device_.empty() ||
        task_order_ >= 0 || epochs_ >= 0 || limit_per_class_ >= 0 || eval_limit_per_class_ >= 0 || !tags_.empty() ||
        !notes_.empty() || no_store_ || !result_json_.empty())
      throw SpecError(
          "--resume continues a stored run with its own spec and settings: only --db, --data-dir and "
          "--quiet go with it");
    train::RunOptions opt;
    opt.data_dir = dataDir();
    opt.db_path = dbPath();
    opt.resume_run = resume_;
    opt.on_commit = commit_log_from_env();
    train::Control control;
    CancelOnSignal guard(&control);
    ProgressBar bar(quiet_);
    return report(train::run_experiment(json::object(), opt, {&bar}, &control));
  }
  json spec =
      !spec_file_.empty() ? spec::load_file(spec_file_) : spec::preset(preset_.empty() ? "transformer" : preset_);
  spec = spec::complete(spec);
  auto& ex = spec["experiment"];
  if (!dataset_.empty()) {
    // A folder is stored as an absolute path, so the run can be resumed or re-run from anywhere.
    std::error_code ec;
    ex["dataset"] = fs::is_directory(dataset_, ec) ? fs::absolute(dataset_).lexically_normal().string() : dataset_;
  }
  if (!split_.empty()) ex["split"] = split_;
  if (!protocol_.empty()) ex["protocol"] = protocol_;
  if (!strategy_.empty()) ex["strategy"]["type"] = strategy_;
  if (!head_.empty()) spec["model"]["head"]["type"] = head_;
  if (task_order_ >= 0) ex["task_order"] = task_order_;
  if (!device_.empty()) ex["device"] = device_;
  if (epochs_ >= 0) spec["training"]["epochs"] = epochs_;
  if (limit_per_class_ >= 0) spec["training"]["limit_per_class"] = limit_per_class_;
  if (eval_limit_per_class_ >= 0) spec["training"]["eval_limit_per_class"] = eval_limit_per_class_;
  for (const auto& s : sets_) {
    auto eq = s.find('=');
    if (eq == std::string::npos) throw SpecError("--set " + s + ": expected PATH=VALUE, e.g. --set model.d_model=256");
    spec::set_path(spec, s.substr(0, eq), s.substr(eq + 1));
  }
  auto v = spec::validate(spec::complete(spec));
  for (const auto& i : v.issues)
    if (!i.error) std::fprintf(stderr, "warning: %s: %s\n", i.path.c_str(), i.message.c_str());
  if (!v.ok()) throw SpecError("the spec has errors:\n" + v.format());
  if (seeds_.empty()) seeds_.push_back(spec["experiment"]["seed"].get<long long>());

  train::RunOptions opt;
  opt.data_dir = dataDir();
  opt.db_path = no_store_ ? "" : dbPath();
  opt.tags = tags_;
  opt.notes = notes_;
  opt.on_commit = commit_log_from_env();
  train::Control control;
  CancelOnSignal guard(&control);
  ProgressBar bar(quiet_);
  int rc = 0;
  json all_results = json::array();
  for (long long seed : seeds_) {
    spec["experiment"]["seed"] = seed;
    auto r = train::run_experiment(spec, opt, {&bar}, &control);
    all_results.push_back({{"run_id", r.run_id}, {"status", r.status}, {"error", r.error}, {"summary", r.summary}});
    int code = report(r);
    if (code == 130) {
      rc = 130;
      break;
    }
    if (code != 0) rc = code;
  }
  if (!result_json_.empty()) {
    std::ofstream out(result_json_);
    out << (all_results.size() == 1 ? all_results[0] : all_results).dump(2) << "\n";
  }
  return rc;
}

int Commands::report(const train::RunResult& r) {
  const auto& s = r.summary;
  std::printf("run %lld %s: final avg acc %s, forgetting %s, BWT %s, macro-F1 %s, task-IL acc %s (%s s)\n",
              (long long)r.run_id, name(r.status).c_str(), fmt(s.value("final_avg_acc", json())).c_str(),
              fmt(s.value("forgetting", json())).c_str(), fmt(s.value("bwt", json())).c_str(),
              fmt(s.value("macro_f1", json())).c_str(), fmt(s.value("task_il_acc", json())).c_str(),
              fmt(s.value("train_seconds", json()), 1).c_str());
  std::fflush(stdout);
  if (r.status == RunStatus::Cancelled) {
    if (r.run_id && s.value("tasks_completed", 0) > 0)
      std::fprintf(stderr, "continue it with: hopelab-cli --db %s train --resume %lld\n", dbPath().c_str(),
                   (long long)r.run_id);
    return 130;
  }
  return r.status == RunStatus::Finished ? 0 : 4;
}

int Commands::runs() {
  auto db = store::RunStore::open(dbPath());
  store::RunFilter f;
  f.dataset = f_dataset_;
  f.model = f_model_;
  f.strategy = f_strategy_;
  if (!f_status_.empty()) f.status = parse<RunStatus>(f_status_, "--status");
  f.tag = f_tag_;
  f.limit = limit_;
  auto rs = db->listRuns(f);
  if (format_ == "json") {
    json arr = json::array();
    for (const auto& r : rs) {
      json s = parse_summary(r);
      arr.push_back({{"id", r.id},
                     {"status", r.status},
                     {"name", r.name},
                     {"dataset", r.dataset},
                     {"protocol", r.protocol},
                     {"strategy", r.strategy},
                     {"head", r.head},
                     {"seed", r.seed},
                     {"params", r.params},
                     {"config_hash", r.config_hash},
                     {"created_at", r.created_at},
                     {"finished_at", r.finished_at},
                     {"tags", r.tags},
                     {"final_avg_acc", s.value("final_avg_acc", json())},
                     {"forgetting", s.value("forgetting", json())}});
    }
    std::cout << arr.dump(2) << "\n";
    return 0;
  }
  const char* cols[] = {"id",   "status", "name",      "dataset",    "protocol", "strategy",
                        "head", "seed",   "final_acc", "forgetting", "created",  "tags"};
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : rs) {
    json s = parse_summary(r);
    std::string tags;
    for (const auto& t : r.tags) tags += (tags.empty() ? "" : ",") + t;
    rows.push_back({std::to_string(r.id), name(r.status), r.name, r.dataset, r.protocol, r.strategy, r.head,
                    std::to_string(r.seed), fmt(s.value("final_avg_acc", json())), fmt(s.value("forgetting", json())),
                    time_str(r.created_at), tags});
  }
  if (format_ == "csv") {
    for (size_t i = 0; i < std::size(cols); ++i) std::cout << (i ? "," : "") << cols[i];
    std::cout << "\n";
    for (const auto& row : rows) {
      for (size_t i = 0; i < row.size(); ++i) std::cout << (i ? "," : "") << csv_field(row[i]);
      std::cout << "\n";
    }
    return 0;
  }
  std::vector<size_t> w(std::size(cols));
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::string(cols[i]).size();
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size(); ++i) w[i] = std::max(w[i], row[i].size());
  auto line = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size(); ++i)
      std::printf("%-*s%s", int(w[i]), row[i].c_str(), i + 1 < row.size() ? "  " : "\n");
  };
  line(std::vector<std::string>(std::begin(cols), std::end(cols)));
  for (const auto& row : rows) line(row);
  if (rows.empty()) std::printf("(no runs in %s)\n", dbPath().c_str());
  return 0;
}

// runs delete ID...: every id is checked before anything is deleted, so a typo deletes nothing.
int Commands::runsDelete() {
  auto db = store::RunStore::open(dbPath());
  for (int64_t id : delete_ids_) {
    const auto r = db->getRun(id);
    if (!r)
      throw SpecError("run " + std::to_string(id) + " is not in " + dbPath() +
                      " (see `hopelab-cli runs`); nothing deleted");
    if (r->status == RunStatus::Running)
      throw SpecError("run " + std::to_string(id) + " is running (pid " + std::to_string(r->pid) + " on " + r->host +
                      "); stop it first; nothing deleted");
  }
  for (int64_t id : delete_ids_) {
    const auto r = db->getRun(id);
    db->deleteRun(id);
    std::printf("deleted run %lld (%s, %s, seed %lld, %s)\n", (long long)id, r->name.c_str(), r->dataset.c_str(),
                (long long)r->seed, name(r->status).c_str());
  }
  return 0;
}

// runs merge SHARD... --into DB: every shard in its turn (docs/STORE.md, "Merging databases"). A
// shard that is refused stops the merge with its message; the shards before it stay merged.
int Commands::runsMerge() {
  const std::string into = merge_into_.empty() ? dbPath() : merge_into_;
  auto db = store::RunStore::open(into);
  store::MergeReport total;
  for (const auto& shard : merge_shards_) {
    const store::MergeReport r = db->merge(shard);
    std::printf(
        "%s: %d added, %d updated, %d unchanged, %d kept (%lld points, %lld accuracy cells, %lld evals, "
        "%lld checkpoint rows, %lld confusion matrices copied; %lld recorded ablations added or updated)\n",
        shard.c_str(), r.added, r.updated, r.unchanged, r.kept, (long long)r.points, (long long)r.accuracy_cells,
        (long long)r.evals, (long long)r.checkpoints, (long long)r.confusion_matrices, (long long)r.ablations);
    for (const auto& why : r.kept_why) std::printf("  %s\n", why.c_str());
    total.added += r.added;
    total.updated += r.updated;
    total.unchanged += r.unchanged;
    total.kept += r.kept;
    total.points += r.points;
  }
  std::printf("merged %zu database(s) into %s: %d added, %d updated, %d unchanged, %d kept; %lld points copied\n",
              merge_shards_.size(), into.c_str(), total.added, total.updated, total.unchanged, total.kept,
              (long long)total.points);
  return 0;
}

int Commands::show() {
  auto db = store::RunStore::open(dbPath());
  auto r = db->getRun(run_id_);
  if (!r) throw SpecError("run " + std::to_string(run_id_) + " is not in " + dbPath() + " (see `hopelab-cli runs`)");
  json s = parse_summary(*r);
  auto cells = db->accuracy(run_id_);
  const json& nt = s.contains("num_tasks") ? s["num_tasks"] : json(0);
  if (!nt.is_number_integer() || nt.get<int64_t>() < 0 || nt.get<int64_t>() > store::kMaxTasks)
    throw StoreError("run database " + dbPath() + ": run " + std::to_string(run_id_) + " has num_tasks " + nt.dump() +
                     " in its summary, not 0.." + std::to_string(store::kMaxTasks) +
                     ": the database is damaged or was not written by Hope Lab");
  int T = nt.get<int>();
  for (const auto& c : cells) T = std::max({T, c.after_task + 1, c.task + 1});
  json M = json::array(), MT = json::array();
  for (int i = 0; i < T; ++i) {
    M.push_back(json::array());
    MT.push_back(json::array());
    for (int j = 0; j < T; ++j) {
      M[i].push_back(nullptr);
      MT[i].push_back(nullptr);
    }
  }
  for (const auto& c : cells) {
    M[c.after_task][c.task] = c.acc;
    MT[c.after_task][c.task] = c.task_il_acc;
  }
  json series = json::array();
  for (const auto& se : db->series(run_id_)) {
    json pts = json::array();
    for (const auto& p : se.points) pts.push_back({p.first, p.second});
    series.push_back(
        {{"name", se.name}, {"level", se.level}, {"block", se.block}, {"clock", se.clock}, {"points", pts}});
  }
  json ck = json::array();
  for (const auto& c : db->checkpoints(run_id_))
    ck.push_back({{"kind", c.kind}, {"path", c.path}, {"step", c.step}, {"task", c.task}, {"metric", c.metric}});
  // Recorded test-time ablations (`evaluate --record`): the mean over tasks as saved and ablated.
  json abl = json::array();
  for (const auto& a : db->ablations(run_id_)) {
    const json res = json::parse(a.result_json, nullptr, false);
    const json mean = res.is_object() && res.contains("mean") ? res["mean"] : json();
    abl.push_back({{"overrides", a.overrides},
                   {"checkpoint", a.checkpoint},
                   {"as_saved", mean.is_object() ? mean.value("as_saved", json()) : json()},
                   {"ablated", mean.is_object() ? mean.value("ablated", json()) : json()},
                   {"exact", res.is_object() ? res.value("exact", json()) : json()},
                   {"app_version", a.app_version},
                   {"created_at", a.created_at}});
  }
  json spec;
  try {
    spec = json::parse(r->spec_json);
  } catch (...) {
    spec = nullptr;
  }
  json out = {
      {"id", r->id},
      {"status", r->status},
      {"name", r->name},
      {"dataset", r->dataset},
      {"protocol", r->protocol},
      {"strategy", r->strategy},
      {"head", r->head},
      {"seed", r->seed},
      {"config_hash", r->config_hash},
      {"run_hash", r->run_hash},
      {"data_hash", r->data_hash},
      {"split_hash", r->split_hash},
      {"params", r->params},
      {"app_version", r->app_version},
      {"torch_version", r->torch_version},
      {"cuda_version", r->cuda_version},
      {"device", r->device},
      {"host", r->host},
      {"pid", r->pid},
      {"created_at", r->created_at},
      {"finished_at", r->finished_at},
      {"tags", r->tags},
      {"notes", r->notes},
      {"error", r->error},
      {"diverged_step", r->diverged_step >= 0 ? json(r->diverged_step) : json(nullptr)},
      {"accuracy_matrix", M},
      {"task_il_matrix", MT},
      {"final_avg_acc", s.value("final_avg_acc", json())},
      {"avg_acc", s.value("avg_acc", json::array())},
      {"forgetting", s.value("forgetting", json())},
      {"bwt", s.value("bwt", json())},
      {"macro_f1", s.value("macro_f1", json())},
      {"task_il_acc", s.value("task_il_acc", json())},
      {"steps", s.value("steps", json())},
      {"cadence", s.value("cadence", json::array())},
      {"train_seconds", s.value("train_seconds", json())},
      {"kernels", s.value("kernels", json())},  // fused-cpu | fused-cuda | reference | mixed | none (docs/KERNELS.md)
      {"kernel_isa", s.value("kernel_isa", json())},  // the CPU kernels' instruction set, where they ran
      {"cpu", s.value("cpu", json())},                // the machine that made the run (docs/STORE.md)
      {"threads", s.value("threads", json())},
      {"checkpoints", ck},
      {"ablations", abl},
      {"series", series},
      {"spec", spec}};
  if (json_) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::printf("run %lld  %s  (%s)\n", (long long)r->id, name(r->status).c_str(), r->name.c_str());
  std::printf("  dataset %s, %s, strategy %s, head %s, seed %lld, params %lld\n", r->dataset.c_str(),
              r->protocol.c_str(), r->strategy.c_str(), r->head.c_str(), (long long)r->seed, (long long)r->params);
  std::printf("  config %s  run %s\n", r->config_hash.substr(0, 12).c_str(), r->run_hash.substr(0, 12).c_str());
  std::printf("  created %s  finished %s  on %s (%s, LibTorch %s)\n", time_str(r->created_at).c_str(),
              time_str(r->finished_at).c_str(), r->host.c_str(), r->device.c_str(), r->torch_version.c_str());
  if (out["kernels"].is_string() && out["kernels"] != "none")
    std::printf("  memory recurrences: %s path%s\n", out["kernels"].get<std::string>().c_str(),
                out["kernel_isa"].is_string() ? (" (" + out["kernel_isa"].get<std::string>() + ")").c_str() : "");
  if (out["cpu"].is_string())
    std::printf("  CPU %s, %s threads\n", out["cpu"].get<std::string>().c_str(),
                out["threads"].is_number() ? std::to_string(out["threads"].get<int>()).c_str() : "?");
  if (!r->error.empty()) std::printf("  error: %s\n", r->error.c_str());
  std::printf("  final avg acc %s  forgetting %s  BWT %s  macro-F1 %s  task-IL acc %s\n",
              fmt(out["final_avg_acc"]).c_str(), fmt(out["forgetting"]).c_str(), fmt(out["bwt"]).c_str(),
              fmt(out["macro_f1"]).c_str(), fmt(out["task_il_acc"]).c_str());
  if (T > 0) {
    std::printf("  accuracy matrix R[i][j] (row: after task i, column: task j)\n");
    for (int i = 0; i < T; ++i) {
      std::printf("   ");
      for (int j = 0; j < T; ++j) std::printf(" %6s", M[i][j].is_null() ? "." : fmt(M[i][j]).c_str());
      std::printf("\n");
    }
  }
  for (const auto& a : abl)
    std::printf("  ablation (%s.pt, %s): %s -> %s\n", a["checkpoint"].get<std::string>().c_str(),
                a["overrides"].get<std::string>().c_str(), fmt(a["as_saved"]).c_str(), fmt(a["ablated"]).c_str());
  std::printf("  %zu series, %zu checkpoints\n", series.size(), ck.size());
  return 0;
}

int Commands::validate() {
  json spec;
  const bool looks_like_file = validate_file_.find('/') != std::string::npos ||
                               validate_file_.find(".json") != std::string::npos || fs::exists(validate_file_);
  spec = looks_like_file ? spec::load_file(validate_file_) : spec::preset(validate_file_);
  json full;
  try {
    full = spec::complete(spec);
  } catch (const SpecError& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  auto v = spec::validate(full);
  int errors = 0, warnings = 0;
  for (const auto& i : v.issues) (i.error ? errors : warnings)++;
  std::printf("%s", v.format().c_str());
  if (v.ok()) {
    json d = train::describe(full);
    std::printf("params %lld, ~%.3g FLOPs per sample (seq len %d, vocab %d, %d classes)\n",
                (long long)d["params"].get<int64_t>(), d["flops_per_sample"].get<double>(), d["seq_len"].get<int>(),
                d["vocab_size"].get<int>(), d["num_classes"].get<int>());
  }
  std::printf("%s: %d error(s), %d warning(s); config hash %s\n", validate_file_.c_str(), errors, warnings,
              spec::config_hash(full).substr(0, 12).c_str());
  return v.ok() ? 0 : 2;
}

int Commands::presets() {
  if (!preset_show_.empty()) {
    std::cout << spec::preset(preset_show_).dump(2) << "\n";
    return 0;
  }
  for (const auto& n : spec::preset_names()) std::printf("%-18s %s\n", n.c_str(), spec::preset_description(n).c_str());
  return 0;
}

}  // namespace hl::cli
