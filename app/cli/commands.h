// The subcommands of hopelab-cli, each a small function over the engine API.
#pragma once
#include <CLI/CLI.hpp>

#include "engine/train/experiment.h"

#include <string>
#include <vector>

namespace hl::spec {
struct Sweep;
}

namespace hl::cli {

class Commands {
 public:
  explicit Commands(CLI::App& app);
  int run();  // runs the parsed subcommand; throws hl::Error

 private:
  int train();
  int report(const train::RunResult& r);  // prints the one-line result; returns the exit code
  int runs();
  int show();
  int exportTables();
  int reportResults();
  int validate();
  int presets();
  int dataList();
  int dataVerify();
  int dataFetch();
  int dataImport();
  int sweep();
  int diagnose();
  int sweepInProcesses(int n);
  int sweepSlurm(const spec::Sweep& sw);
  int runsMerge();
  int runsDelete();
  int runsConfusion();
  int attribute();
  int evaluateRun();
  int benchKernels();
  std::string dbPath() const;
  std::string dataDir() const;
  std::string dataDestination() const;  // dataDir(), created, and said on stderr

  CLI::App& app_;
  CLI::App *train_, *runs_, *show_, *export_, *validate_, *presets_, *data_, *data_list_, *data_verify_, *data_fetch_,
      *data_import_, *sweep_, *runs_merge_, *runs_delete_, *diagnose_, *runs_confusion_, *attribute_, *evaluate_,
      *bench_, *bench_kernels_, *report_;
  int bench_repeats_ = 5;
  std::string bench_device_ = "cpu";
  // global
  std::string db_, data_dir_;
  // train
  std::string preset_, spec_file_, dataset_, protocol_, strategy_, head_, device_, notes_, split_;
  int task_order_ = -1, epochs_ = -1, limit_per_class_ = -1, eval_limit_per_class_ = -1;
  std::vector<std::string> sets_, tags_;
  std::vector<long long> seeds_;
  bool quiet_ = false, no_store_ = false;
  std::string result_json_;
  long long resume_ = 0;
  // runs / show / export
  std::string format_ = "table", f_dataset_, f_model_, f_strategy_, f_status_, f_tag_;
  int limit_ = 0;
  long long run_id_ = 0;
  bool json_ = false;
  std::string export_runs_, export_format_ = "md", out_;
  long long matrix_run_ = 0;
  int decimals_ = 3;
  std::vector<std::string> report_files_;
  std::string report_figures_;  // report --figures DIR
  // validate / presets
  std::string validate_file_, preset_show_;
  // data
  std::string fetch_what_ = "all", mirror_, import_src_;
  // sweep
  std::string sweep_file_, shard_spec_;
  int jobs_ = 1, sweep_index_ = -1, shard_ = 0, shard_count_ = 1;
  bool sweep_list_ = false, sole_writer_ = false;
  // sweep --slurm
  bool slurm_ = false, slurm_submit_ = false;
  std::string slurm_partition_, slurm_time_ = "04:00:00", slurm_mem_ = "8G", slurm_account_, slurm_dir_,
                                slurm_job_name_;
  int slurm_cpus_ = 2, slurm_gpus_ = 0, slurm_max_parallel_ = 16;
  std::vector<std::string> slurm_extra_;
  // runs merge
  std::vector<std::string> merge_shards_;
  std::vector<int64_t> delete_ids_;
  std::string merge_into_;
  // runs confusion / attribute
  int confusion_task_ = 0;  // 1-based; 0 = the last
  bool csv_ = false, normalise_ = false;
  std::string eval_which_ = "last";   // evaluate --checkpoint
  bool writes_off_ = false;           // evaluate --writes-off
  bool record_ = false;               // evaluate --record
  bool missing_only_ = false;         // evaluate --missing-only
  bool skip_without_writes_ = false;  // evaluate --skip-without-writes
  std::string eval_runs_;             // evaluate RUNS
  // diagnose
  std::string diag_checkpoint_;
  int diag_batch_ = 32;
};

}  // namespace hl::cli
