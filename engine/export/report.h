// The results report (`hopelab-cli report`, docs/RESULTS.md): for each sweep file, the runs of its
// grid found finished in a run database, as the seed-grouped results table, with what did not run
// and the budget the sweep set; then hope against the transformer per set-up (where Hope loses) and
// each sweep's best configuration; then the measured numbers beside the seed document's claimed ones.
// Everything in it comes from the database; nothing is typed in but the seed's claims, which are
// labelled as such. No Qt, no torch.
#pragma once
#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "engine/spec/sweep.h"
#include "engine/store/store.h"

namespace hl::exporter {

struct ReportSection {
  std::string file;                               // the sweep file as given on the command line
  std::string name;                               // the sweep's name
  nlohmann::json set = nlohmann::json::object();  // the sweep's fixed overrides (its budget)
  int planned = 0;                                // runs the sweep lists
  std::vector<std::string> missing;               // labels of listed runs never started (no record at all)
  // Listed runs with a record but none finished (diverged, failed, cancelled, interrupted, or still
  // running): the label and the newest such record, whose status and error the report quotes.
  std::vector<std::pair<std::string, hl::store::RunRecord>> unfinished;
  std::vector<hl::store::RunRecord> runs;     // the finished runs found, one per listed run
  std::map<std::string, std::string> labels;  // config hash -> grid point label without the seed
  // Recorded test-time ablations of the finished runs (`evaluate --record`), by run id; the caller
  // fills it from the run database (match_sweep leaves it empty).
  std::map<int64_t, std::vector<hl::store::AblationRecord>> ablations;
};

// Each listed run of `sw` matched to the newest finished run in `all` with its config hash and
// seed (what `sweep` skips as done); of the others, those with some record are `unfinished` (with
// the newest record) and the rest `missing`, by label.
ReportSection match_sweep(const hl::spec::Sweep& sw, const std::vector<hl::store::RunRecord>& all);

struct ReportOptions {
  int decimals = 3;
  std::string command;  // the command line that generated it (quoted in the header)
  std::string db;       // the database read
  std::string version;  // Hope Lab's version stamp
  // Non-empty: each section shows figure_runs()' accuracy-matrix heatmaps and forgetting curves,
  // linked as FIGURES/<run uuid>-matrix.png and -forgetting.png (drawn by the GUI's
  // `hopelab --figures DIR --runs IDS`; `report --figures DIR` writes the ids it needs).
  std::string figures_link;
};

// The runs a section draws figures of: its fine-tuned, class-incremental, softmax-head hope and
// transformer runs of its smallest seed (the seed document's comparison), hope first.
std::vector<hl::store::RunRecord> figure_runs(const ReportSection& s);

// The seed document's claimed final accuracies (../shared/seed, "주요 결과"), in percent: not the
// paper's (docs/HOPE.md), not measured here. Dataset names as Hope Lab spells them.
struct SeedClaim {
  const char* model;
  const char* dataset;
  double percent;
};
const std::vector<SeedClaim>& seed_claims();

// Markdown: a header saying how it was generated, a section per sweep (which builds, LibTorch
// versions, devices and hosts made its runs; results table with train seconds, coverage, budget),
// "Hope against the Transformer" (per sweep and set-up: both means,
// the difference, a verdict against the seeds' spread; the best configuration; the best trained
// Hope variant without replay, and apart Hope's untrained features with the NCM head, each against
// the best replay configuration), and "Against the
// seed document's claims" (fine-tuned, class-incremental, softmax-head rows of hope / transformer / lstm beside the
// claimed numbers).
std::string results_report(const std::vector<ReportSection>& sections, const ReportOptions& opt);

}  // namespace hl::exporter
