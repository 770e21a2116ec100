// Sweep files: a grid of runs over presets, spec fields and seeds, expanded into an ordered list
// of completed, validated specs (hopelab-cli sweep; docs/SWEEPS.md). No Qt, no torch.
//
//   {
//     "name": "banking77-small",
//     "preset": "transformer",            // or "spec": "base.json" (relative to the sweep file)
//     "set":  {"training.epochs": 1},     // fixed --set overrides for every run
//     "grid": {"preset": ["transformer", "lstm"],          // any --set path, or "preset"
//              "experiment.strategy.type": ["finetune", "replay"]},
//     "seeds": [0, 1, 2]
//   }
//
// "seeds" defaults to the base spec's own seed; experiment.seed may not be a grid axis or a set
// path (seeds are the sweep's own axis). Runs are ordered grid point by grid point (the grid's keys in file order, the
// last varying fastest), seeds innermost; run i of the list is `--index i`.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace hl::spec {

struct SweepRun {
  int index = 0;
  nlohmann::json spec;  // completed and valid, experiment.seed set
  std::string label;    // "preset=lstm experiment.strategy.type=replay seed=1"
};

struct Sweep {
  std::string name;
  std::vector<SweepRun> runs;
};

// Throws hl::SpecError naming the file and the field (a malformed file, an unknown preset or
// path, a combination the validator refuses, a grid of more than 100000 runs).
Sweep load_sweep(const std::string& path);
Sweep parse_sweep(const std::string& text, const std::string& path, const std::string& base_dir);

}  // namespace hl::spec
