// hopelab-bench: training throughput per baseline and the run store's overhead, each as a ratio
// against a baseline measured in the same process, interleaved so drift hits both sides alike.
//   hopelab-bench train [--repeats N]   samples/s per preset, ratio to transformer
//   hopelab-bench store [--repeats N]   the same run with and without the store (goal <= 1.02)
// Data: $HOPELAB_DATA_DIR (or --data-dir). Timings are the trainer's own train_seconds (the
// training loop with its evaluations; data loading and tokenizer training excluded).
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/spec/spec.h"
#include "engine/train/experiment.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

json bench_spec(const std::string& preset, int limit, int epochs) {
  json s = hl::spec::preset(preset);
  s["experiment"]["dataset"] = "banking77";
  s["training"]["epochs"] = epochs;
  s["training"]["limit_per_class"] = limit;
  s["training"]["eval_limit_per_class"] = 10;
  s["training"]["checkpoints"] = false;
  return hl::spec::complete(s);
}

struct Timing {
  double seconds = 0;
  double samples = 0;
};

Timing run(const json& spec, hl::train::RunOptions opt) {
  auto r = hl::train::run_experiment(spec, opt, {});
  if (r.status != "finished") throw std::runtime_error("benchmark run " + r.status + ": " + r.error);
  return {r.summary["train_seconds"].get<double>(), r.summary["samples_seen"].get<double>()};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hopelab-bench: Hope Lab benchmarks (ratios against a baseline measured in the same run)"};
  app.require_subcommand(1);
  app.fallthrough();  // --repeats etc. also after the subcommand
  std::string data_dir;
  int repeats = 3, limit = 40, epochs = 1;
  app.add_option("--data-dir", data_dir, "Dataset folder (default: $HOPELAB_DATA_DIR)");
  app.add_option("--repeats", repeats, "Interleaved repetitions per variant (median reported)")->check(CLI::PositiveNumber);
  app.add_option("--limit-per-class", limit, "Banking77 train rows per class")->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs, "Epochs per task")->check(CLI::PositiveNumber);
  auto* train = app.add_subcommand("train", "Training samples/s of each baseline preset, ratio to transformer");
  std::vector<std::string> presets = {"transformer", "lstm", "retnet"};
  train->add_option("--presets", presets, "Presets to compare (the first is the baseline)");
  auto* store = app.add_subcommand("store", "Run-store overhead: the same run with and without the store");
  CLI11_PARSE(app, argc, argv);

  hl::train::RunOptions opt;
  opt.data_dir = hl::data::resolve_data_dir(data_dir);
  fs::path tmp = fs::temp_directory_path() / ("hopelab-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  opt.cache_dir = (tmp / "cache").string();
  try {
    if (train->parsed()) {
      std::vector<std::vector<double>> rate(presets.size());
      std::vector<json> specs;
      for (const auto& p : presets) specs.push_back(bench_spec(p, limit, epochs));
      run(specs[0], opt);  // warm-up: tokenizer cache, allocator
      for (int r = 0; r < repeats; ++r)
        for (size_t i = 0; i < presets.size(); ++i) {
          Timing t = run(specs[i], opt);
          rate[i].push_back(t.samples / t.seconds);
        }
      std::printf("%-14s %12s %10s %12s\n", "preset", "samples/s", "ratio", "params");
      double base = median(rate[0]);
      for (size_t i = 0; i < presets.size(); ++i) {
        json d = hl::train::describe(specs[i]);
        std::printf("%-14s %12.1f %10.3f %12lld\n", presets[i].c_str(), median(rate[i]), median(rate[i]) / base,
                    (long long)d["params"].get<int64_t>());
      }
      std::printf("(banking77, %d rows/class, %d epoch(s)/task, median of %d, ratio = samples/s / %s's)\n", limit,
                  epochs, repeats, presets[0].c_str());
    } else if (store->parsed()) {
      json spec = bench_spec("transformer", limit, epochs);
      std::vector<double> with, without;
      run(spec, opt);  // warm-up
      for (int r = 0; r < repeats; ++r) {
        hl::train::RunOptions o = opt;
        without.push_back(run(spec, o).seconds);
        o.db_path = (tmp / "bench.db").string();
        with.push_back(run(spec, o).seconds);
      }
      double a = median(without), b = median(with);
      std::printf("without store  %8.3f s (median of %d)\nwith store     %8.3f s\nratio          %8.3f  (goal <= 1.02)\n",
                  a, repeats, b, b / a);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    fs::remove_all(tmp);
    return 1;
  }
  fs::remove_all(tmp);
  return 0;
}
