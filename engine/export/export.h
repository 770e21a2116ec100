// Results tables for papers and notes: the seed-grouped results table and one run's accuracy
// matrix, as CSV, Markdown or LaTeX (booktabs). No Qt, no torch.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/metrics/metrics.h"
#include "engine/store/store.h"

namespace hl::exporter {

enum class Format { Csv, Markdown, Latex };

struct TableOptions {
  Format format = Format::Markdown;
  int decimals = 3;
  bool task_il = false;     // accuracy_matrix_table: the task-IL matrix instead of class-IL
  bool train_time = false;  // results_table: a last column, train seconds (summary train_seconds)
  // results_table: when not empty, a "Config" column after Model naming each row's configuration
  // (config_hash -> label, e.g. a sweep's grid point); rows of the same model otherwise look alike.
  std::map<std::string, std::string> config_labels;
};

// One row per config_hash (runs that differ only in seed; a run with an empty config_hash is its
// own group): dataset, model (RunRecord.name), strategy, head, protocol, n (runs), then
// final_avg_acc, forgetting, bwt, macro_f1, task_il_acc from summary_json as mean ± sample std
// over the runs where the key is a number, and params. Rows sorted by dataset, model, strategy
// (then head, protocol, config_hash). Missing values: "–" (Markdown), "--" (LaTeX), empty (CSV);
// the std is left out when fewer than two runs have the value. Runs are taken as given (no status
// filter).
std::string results_table(const std::vector<hl::store::RunRecord>& runs, const TableOptions& opt);

// R as a T×T table (rows "after task i", columns "task j", 1-based) with blanks above the
// diagonal and for missing cells, plus the A_i column (blank for an incomplete row).
std::string accuracy_matrix_table(const hl::store::RunRecord& run, const std::vector<hl::store::AccuracyCell>& cells,
                                  const TableOptions& opt);

// R (or the task-IL matrix) from stored cells: T = 1 + the largest task index; missing cells NaN.
hl::metrics::Matrix accuracy_matrix(const std::vector<hl::store::AccuracyCell>& cells, bool task_il = false);

// "mean ± sample std" of xs as a Markdown cell of results_table ("–" when empty, no std below two
// values): the one formatting of a seed group's statistic, for the report's own tables too.
std::string mean_std_markdown(const std::vector<double>& xs, int decimals);

// Run ids as `hopelab-cli export --runs` takes them: "3,5,7-9" (spaces around parts allowed).
// Throws hl::SpecError "<what>: 'PART' is not a run id or range (e.g. 3,5,7-9)".
std::vector<int64_t> parse_run_ids(const std::string& s, const std::string& what = "--runs");

}  // namespace hl::exporter
