// hopelab-bench: training throughput per baseline and the run store's overhead, each as a ratio
// against a baseline measured in the same process, interleaved so drift hits both sides alike.
//   hopelab-bench train [--repeats N]   samples/s per preset, ratio to transformer, over the whole
//                                       run and without its evaluations
//   hopelab-bench store [--repeats N]   the same run with and without the store (goal <= 1.02)
//   hopelab-bench steptime              forward + backward time of one Hope block (fused kernels and
//                                       LibTorch path) vs one Transformer block at equal width,
//                                       sequence lengths 64..2048
//   hopelab-bench actmem                activation memory of one Hope block's forward (what its
//                                       autograd graph holds for the backward), fused kernels vs
//                                       LibTorch path, sequence lengths 64..512
//   hopelab-bench peers                 training samples/s of hope (differentiable and stop-gradient
//                                       writes), hope-attention and transformer on random tokens in
//                                       the configuration bench/peers/run.sh gives the nested-learning
//                                       peer (2 blocks, 4 heads, batch 32, length 32, AdamW 1e-3)
// Data: $HOPELAB_DATA_DIR (or --data-dir). Timings are the trainer's own train_seconds (the
// training loop with its evaluations; data loading and tokenizer training excluded) and, for
// `train`, the same less the summary's eval_seconds.
#include <CLI/CLI.hpp>

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "engine/torch_wrap.h"  // first: the engine's single torch include

#include "engine/data/dataset.h"
#include "engine/memory/fused.h"
#include "engine/models/classifier.h"
#include "engine/spec/spec.h"
#include "engine/train/experiment.h"
#include "engine/train/model_config.h"

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
  double eval_seconds = 0;  // part of seconds: evaluations and live diagnostics
};

Timing run(const json& spec, hl::train::RunOptions opt) {
  auto r = hl::train::run_experiment(spec, opt, {});
  if (r.status != hl::RunStatus::Finished)
    throw std::runtime_error("benchmark run " + hl::name(r.status) + ": " + r.error);
  return {r.summary["train_seconds"].get<double>(), r.summary["samples_seen"].get<double>(),
          r.summary["eval_seconds"].get<double>()};
}

// A 1-block classifier (d 128, 70 classes) in training mode and a random batch [batch, L] for it.
struct BlockModel {
  hl::models::Classifier model{nullptr};
  torch::Tensor tokens, labels;
};
BlockModel blockModel(const hl::models::BlockConfig& block, int L, int batch, bool fused) {
  hl::models::ModelConfig cfg;
  cfg.vocab_size = 2000;
  cfg.max_len = L;
  cfg.d_model = 128;
  cfg.blocks = {block};
  cfg.num_classes = 70;
  BlockModel m;
  m.model = hl::models::build(cfg);
  m.model->setFusedKernels(fused);  // training.kernels
  m.model->train();
  m.tokens = torch::randint(1, cfg.vocab_size, {batch, L}, torch::kLong);
  m.labels = torch::randint(0, cfg.num_classes, {batch}, torch::kLong);
  return m;
}

// Median seconds of forward + backward of a 1-block classifier on random tokens [batch, L].
double stepSeconds(const hl::models::BlockConfig& block, int L, int batch, int repeats, bool fused = true) {
  auto [model, tokens, labels] = blockModel(block, L, batch, fused);
  std::vector<double> t;
  for (int r = 0; r <= repeats; ++r) {  // the first is a warm-up
    model->zero_grad();
    auto t0 = std::chrono::steady_clock::now();
    auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), labels);
    loss.backward();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) t.push_back(s);
  }
  return median(t);
}

// Resident memory of this process in bytes (/proc/self/statm).
int64_t residentBytes() {
  std::ifstream f("/proc/self/statm");
  long long size = 0, resident = 0;
  f >> size >> resident;
  return resident * int64_t(::sysconf(_SC_PAGESIZE));
}

// Bytes held by the autograd graph of one forward of a 1-block classifier on random tokens
// [batch, L]: resident memory with the graph (and the loss) alive minus before the forward. The
// caller sets mallopt(M_MMAP_THRESHOLD) low, so that every tensor of 64 KB or more is its own
// mapping and goes back to the system when freed: temporaries freed during the forward do not count.
// A measurement of resident pages, so approximate (allocations under 64 KB and the allocator's own
// bookkeeping come and go with the heap); the ratio of the two paths is the figure that matters.
int64_t activationBytes(const hl::models::BlockConfig& block, int L, int batch, bool fused) {
  torch::manual_seed(0);
  auto [model, tokens, labels] = blockModel(block, L, batch, fused);
  hl::memory::release_free_checkpoint_buffers();  // the warm-up makes the one this forward reuses
  {  // warm-up: the gradients' buffers and any lazily built state exist before the measurement
    auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), labels);
    loss.backward();
  }
  const int64_t before = residentBytes(), pooled = hl::memory::checkpoint_pool_bytes_in_use();
  auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), labels);
  // The fused path's checkpoint comes from a pool that the warm-up already made resident: count
  // the pooled buffers this forward's graph holds.
  return residentBytes() - before + hl::memory::checkpoint_pool_bytes_in_use() - pooled;
}

// One training step as bench/peers/nested_learning_peer.py times the peer's: forward, loss,
// backward, global gradient clip at 1, AdamW step (every parameter, every step: the trainer steps
// a CMS level only on its clock, so this is an upper bound on our optimizer's share). Our models
// classify (masked mean pooling, 70 classes) where the peer predicts the next token over the
// vocabulary: the head differs, the blocks are what is compared.
json peerStep(const std::string& preset, int dim, bool stop_grad, int batch, int length, int steps) {
  json s = hl::spec::preset(preset);
  s["model"]["d_model"] = dim;
  for (auto& b : s["model"]["blocks"]) {
    b["heads"] = 4;
    if (b.value("type", std::string()) == "hope" && b.contains("stop_grad_writes")) b["stop_grad_writes"] = stop_grad;
  }
  s = hl::spec::complete(s);
  const int vocab = 2000, classes = 70;
  torch::manual_seed(0);
  auto model = hl::models::build(hl::train::model_config(s, vocab, length, classes, 0));
  model->train();
  torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
  auto tokens = torch::randint(1, vocab, {batch, length}, torch::kLong);
  auto labels = torch::randint(0, classes, {batch}, torch::kLong);
  std::vector<double> t;
  for (int r = 0; r <= steps; ++r) {  // the first is a warm-up
    auto t0 = std::chrono::steady_clock::now();
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(model->forward(tokens), labels);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    opt.step();
    double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) t.push_back(sec);
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  const double step = median(t);
  return {{"peer", "hopelab"},
          {"variant", preset + (preset == "hope" ? (stop_grad ? "/stop-grad" : "/differentiable") : "")},
          {"dim", dim},
          {"batch", batch},
          {"length", length},
          {"samples_per_s", batch / step},
          {"step_ms", step * 1e3},
          {"params", params},
          {"threads", torch::get_num_threads()}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"hopelab-bench: Hope Lab benchmarks (ratios against a baseline measured in the same run)"};
  app.require_subcommand(1);
  app.fallthrough();  // --repeats etc. also after the subcommand
  std::string data_dir;
  int repeats = 3, limit = 40, epochs = 1;
  app.add_option("--data-dir", data_dir, "Dataset folder (default: $HOPELAB_DATA_DIR)");
  app.add_option("--repeats", repeats, "Interleaved repetitions per variant (median reported)")
      ->check(CLI::PositiveNumber);
  app.add_option("--limit-per-class", limit, "Banking77 train rows per class")->check(CLI::PositiveNumber);
  app.add_option("--epochs", epochs, "Epochs per task")->check(CLI::PositiveNumber);
  auto* train = app.add_subcommand("train", "Training samples/s of each baseline preset, ratio to transformer");
  std::vector<std::string> presets = {"transformer", "lstm", "retnet"};
  train->add_option("--presets", presets, "Presets to compare (the first is the baseline)");
  auto* store = app.add_subcommand("store", "Run-store overhead: the same run with and without the store");
  auto* steptime = app.add_subcommand(
      "steptime", "Forward + backward seconds of one Hope block vs one Transformer block (d 128) per sequence length");
  int batch = 2, max_len = 2048;
  steptime->add_option("--batch", batch, "Sequences per step")->check(CLI::PositiveNumber);
  steptime->add_option("--max-len", max_len, "Longest sequence (powers of two from 64)")->check(CLI::Range(64, 8192));
  std::string step_only = "all";
  steptime
      ->add_option("--only", step_only,
                   "Time one column only (hope, ref or transformer; the others print 0): a clean process to profile, "
                   "e.g. under perf record")
      ->check(CLI::IsMember({"all", "hope", "ref", "transformer"}));
  auto* actmem = app.add_subcommand(
      "actmem",
      "Activation memory of one Hope block's forward (graph kept for backward), fused vs LibTorch path, and the "
      "time the fused path's checkpoint spacing costs");
  int act_batch = 8, act_max_len = 512;
  actmem->add_option("--batch", act_batch, "Sequences per forward")->check(CLI::PositiveNumber);
  actmem->add_option("--max-len", act_max_len, "Longest sequence (powers of two from 64)")->check(CLI::Range(64, 4096));
  auto* peers = app.add_subcommand(
      "peers",
      "Training samples/s of hope, hope-attention, transformer in the peer-matched configuration (JSON lines)");
  std::vector<int> dims = {128, 256};
  int peer_steps = 5;
  peers->add_option("--dims", dims, "Model widths")->check(CLI::PositiveNumber);
  peers->add_option("--steps", peer_steps, "Timed steps per model (median; one warm-up before)")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  if (peers->parsed()) {
    for (int dim : dims) {
      for (bool sg : {false, true}) std::printf("%s\n", peerStep("hope", dim, sg, 32, 32, peer_steps).dump().c_str());
      std::printf("%s\n", peerStep("hope-attention", dim, false, 32, 32, peer_steps).dump().c_str());
      std::printf("%s\n", peerStep("transformer", dim, false, 32, 32, peer_steps).dump().c_str());
      std::fflush(stdout);
    }
    return 0;
  }

  // The hope preset's block (its defaults; spec schema 2, docs/MEMORY.md "Active memory" and
  // "State bound").
  hl::models::BlockConfig hope;
  hope.type = hl::BlockType::Hope;
  hope.ffn_mult = 1;
  hope.cms_clocks = {1, 4, 16};
  hope.cms_lrs = {0, 0, 0};
  hope.memory_inputs = hl::MemoryInputs::Separate;
  hope.memory_init_scale = 0.6;
  hope.eta_max = 1.0;
  hope.momentum_dampening = true;
  hope.inner_lr = 0.5;
  hope.momentum = 0.5;
  hope.state_bound = 2.0;

  if (actmem->parsed()) {
    ::mallopt(M_MMAP_THRESHOLD, 64 * 1024);  // fixed: freed tensors leave the resident set
    ::mallopt(M_TRIM_THRESHOLD, 64 * 1024);
    std::printf("%6s %12s %14s %12s %8s %14s %12s %8s\n", "L", "LibTorch MB", "fused dense MB", "fused MB", "ratio",
                "dense s/step", "s/step", "time");
    for (int L = 64; L <= act_max_len; L *= 2) {
      const double ref = activationBytes(hope, L, act_batch, false) / 1e6;
      hl::memory::set_sequence_checkpoint_every(1);  // a checkpoint at every segment start
      const double dense = activationBytes(hope, L, act_batch, true) / 1e6;
      hl::memory::set_sequence_checkpoint_every(0);  // the default spacing
      const double fu = activationBytes(hope, L, act_batch, true) / 1e6;
      std::vector<double> td, ta;
      for (int r = 0; r < repeats; ++r) {  // interleaved
        hl::memory::set_sequence_checkpoint_every(1);
        td.push_back(stepSeconds(hope, L, act_batch, 1));
        hl::memory::set_sequence_checkpoint_every(0);
        ta.push_back(stepSeconds(hope, L, act_batch, 1));
      }
      std::printf("%6d %12.1f %14.1f %12.1f %8.3f %14.4f %12.4f %8.2f\n", L, ref, dense, fu, fu / ref, median(td),
                  median(ta), median(ta) / median(td));
      std::fflush(stdout);
    }
    std::printf(
        "(batch %d, d_model 128, the hope preset's block, float32; MB: resident memory held by the forward's "
        "autograd graph, approximate (bench/hopelab_bench.cpp activationBytes); ratio: fused (default checkpoint "
        "spacing) / LibTorch path; s/step: forward + backward, median of %d interleaved, dense = a checkpoint at "
        "every segment; time = default / dense)\n",
        act_batch, repeats);
    return 0;
  }

  if (steptime->parsed()) {
    // The blocks of the hope and transformer presets (their defaults), one each, equal width.
    hl::models::BlockConfig tr;
    tr.type = hl::BlockType::Transformer;
    torch::manual_seed(0);
    std::printf("%6s %14s %14s %14s %10s %10s\n", "L", "hope s/step", "hope ref s/st", "transf. s/step", "hope/tr.",
                "ref/tr.");
    double h64 = 0, t64 = 0;
    for (int L = 64; L <= max_len; L *= 2) {
      std::vector<double> hs, rs, ts;
      for (int r = 0; r < repeats; ++r) {  // interleaved
        const bool all = step_only == "all";
        hs.push_back(all || step_only == "hope" ? stepSeconds(hope, L, batch, 1) : 0.0);
        rs.push_back(all || step_only == "ref" ? stepSeconds(hope, L, batch, 1, /*fused=*/false) : 0.0);
        ts.push_back(all || step_only == "transformer" ? stepSeconds(tr, L, batch, 1) : 0.0);
      }
      const double th = median(hs), thr = median(rs), tt = median(ts);
      if (L == 64) {
        h64 = th;
        t64 = tt;
      }
      std::printf(
          "%6d %14.4f %14.4f %14.4f %10.2f %10.2f   (growth vs L=64: hope %.1fx, transformer %.1fx, length %dx)\n", L,
          th, thr, tt, th / tt, thr / tt, th / h64, tt / t64, L / 64);
      std::fflush(stdout);
    }
    std::printf(
        "(batch %d, d_model 128, one block each, CPU threads %d, median of %d interleaved runs; hope: the "
        "preset's block with the fused kernels, hope ref: the same on the LibTorch path)\n",
        batch, torch::get_num_threads(), repeats);
    return 0;
  }

  hl::train::RunOptions opt;
  opt.data_dir = hl::data::resolve_data_dir(data_dir);
  fs::path tmp = fs::temp_directory_path() / ("hopelab-bench-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  opt.cache_dir = (tmp / "cache").string();
  try {
    if (train->parsed()) {
      // Whole run (what a user waits for) and without the evaluations (the training steps and the
      // rest); a short run spends most of its time evaluating (docs/KERNELS.md).
      std::vector<std::vector<double>> rate(presets.size()), steps_rate(presets.size()), eval_share(presets.size());
      std::vector<json> specs;
      for (const auto& p : presets) specs.push_back(bench_spec(p, limit, epochs));
      run(specs[0], opt);  // warm-up: tokenizer cache, allocator
      for (int r = 0; r < repeats; ++r)
        for (size_t i = 0; i < presets.size(); ++i) {
          Timing t = run(specs[i], opt);
          rate[i].push_back(t.samples / t.seconds);
          steps_rate[i].push_back(t.samples / std::max(1e-9, t.seconds - t.eval_seconds));
          eval_share[i].push_back(t.eval_seconds / t.seconds);
        }
      std::printf("%-14s %12s %10s %12s %10s %10s %12s\n", "preset", "samples/s", "ratio", "no-eval s/s", "ratio",
                  "eval %", "params");
      const double base = median(rate[0]), steps_base = median(steps_rate[0]);
      for (size_t i = 0; i < presets.size(); ++i) {
        json d = hl::train::describe(specs[i]);
        std::printf("%-14s %12.1f %10.3f %12.1f %10.3f %10.1f %12lld\n", presets[i].c_str(), median(rate[i]),
                    median(rate[i]) / base, median(steps_rate[i]), median(steps_rate[i]) / steps_base,
                    100 * median(eval_share[i]), (long long)d["params"].get<int64_t>());
      }
      std::printf(
          "(banking77, %d rows/class, %d epoch(s)/task, median of %d, ratio = samples/s / %s's; no-eval: samples over "
          "the run's seconds less its evaluations' (summary eval_seconds); eval %%: their share of the run)\n",
          limit, epochs, repeats, presets[0].c_str());
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
      std::printf(
          "without store  %8.3f s (median of %d)\nwith store     %8.3f s\nratio          %8.3f  (goal <= 1.02)\n", a,
          repeats, b, b / a);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    fs::remove_all(tmp);
    return 1;
  }
  fs::remove_all(tmp);
  return 0;
}
