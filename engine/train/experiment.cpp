// The class-incremental / joint trainer: run_experiment orchestrates the parts, each in its own
// file pair (engine/train/): run_setup (spec, data, tokenizer, model, phases, run record),
// trainer_state (everything a checkpoint holds, one save and one load), level_schedule (when each
// level updates, drift, cadence), strategies (fine-tune, replay, EWC), evaluator (periodic and
// task-end evaluations, the accuracy matrix) and summary. This file holds the step loop.
// DECISIONS.md, "Continual-learning protocol".
#include "engine/train/experiment.h"

#include <ATen/detail/CUDAHooksInterface.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "engine/common/error.h"
#include "engine/spec/spec.h"
#include "engine/torch_wrap.h"
#include "engine/train/evaluator.h"
#include "engine/train/level_schedule.h"
#include "engine/train/model_config.h"
#include "engine/train/run_setup.h"
#include "engine/train/strategies.h"
#include "engine/train/summary.h"
#include "engine/train/trainer_state.h"

using json = nlohmann::json;

namespace hl::train {
namespace {

// What the step loop works on, and how it ends.
struct Loop {
  Loop(RunSetup& s_, TrainerState& st_, Strategy& strategy_, Emitter& emit_, const RunOptions& opt_, Control* control_)
      : s(s_),
        st(st_),
        strategy(strategy_),
        emit(emit_),
        opt(opt_),
        control(control_),
        grad_clip(s_.tr().at("grad_clip").get<double>()) {}
  RunSetup& s;
  TrainerState& st;
  Strategy& strategy;
  Emitter& emit;
  const RunOptions& opt;
  Control* control;
  double grad_clip = 0;
  int64_t global_steps = 0, global_clipped = 0;  // since the last clip_rate point
  RunStatus status = RunStatus::Finished;
  std::string error;
  int64_t diverged_step = -1;
};

// Between two steps: holds while paused (observers learn when the trainer really stops and
// restarts, not when the request was made); true when the run is to stop as cancelled.
bool paused_or_cancelled(Loop& L) {
  if (!L.control) return false;
  if (L.control->pauseRequested() && !L.control->cancelRequested()) {
    L.emit.status(RunStatus::Paused, L.st.step);
    while (L.control->pauseRequested() && !L.control->cancelRequested())
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    L.emit.status(RunStatus::Running, L.st.step);
  }
  if (!L.control->cancelRequested()) return false;
  L.status = RunStatus::Cancelled;
  return true;
}

// The ncm head: the frozen network only feeds the class means.
void ncm_step(Loop& L, const std::vector<int64_t>& idx) {
  torch::NoGradGuard ng;
  L.s.model->eval();
  auto feats = L.s.model->features(batch_tokens(L.s.train, idx, L.s.pad).to(L.s.device));
  L.s.model->ncmObserve(feats, batch_labels(L.s.train, idx).to(L.s.device));
}

// clip_rate points: the fraction of steps (CMS levels: ticks) since the last point whose gradient
// norm was clipped, for each clip that is on; counters restart.
void emit_clip_rates(Loop& L) {
  auto& st = L.st;
  const int64_t at = st.step - 1;
  auto rate = [](int64_t clipped, int64_t n) { return double(clipped) / double(n); };
  for (auto& g : st.clip_groups) {
    if (g.clip > 0 && g.steps > 0) L.emit.point("clip_rate", g.name, at, rate(g.clipped, g.steps));
    g.steps = g.clipped = 0;
  }
  if (L.grad_clip > 0 && L.global_steps > 0)
    L.emit.point("clip_rate", "outer", at, rate(L.global_clipped, L.global_steps));
  L.global_steps = L.global_clipped = 0;
  for (auto& lv : st.levels) {
    if (lv.clip > 0 && lv.clip_ticks > 0)
      L.emit.point("clip_rate", lv.g.name, at, rate(lv.clipped, lv.clip_ticks), lv.g.block, lv.g.clock);
    lv.clip_ticks = lv.clipped = 0;
  }
}

// At every evaluation, the self-modifying Titans memories' diagnostics (docs/MEMORY.md
// "Diagnostics") on a fixed batch: 32 test rows spread evenly over the split, the model in eval
// mode (no dropout, so no random numbers drawn). Series mem.<quantity>, level context.memory.
void emit_memory_diagnostics(Loop& L) {
  auto& s = L.s;
  bool selfmod = false;
  for (const auto& b : s.mcfg.blocks) selfmod |= b.type == BlockType::Hope && b.mixer == Mixer::Selfmod;
  const int64_t n = int64_t(s.test.ids.size());
  if (!selfmod || n == 0) return;
  std::vector<int64_t> rows;
  const int64_t k = std::min<int64_t>(32, n);
  for (int64_t i = 0; i < k; ++i) rows.push_back(i * n / k);
  const bool was_training = s.model->is_training();
  s.model->eval();
  const auto diags = s.model->diagnose(batch_tokens(s.test, rows, s.pad).to(s.device));
  if (was_training) s.model->train();
  const int64_t at = L.st.step - 1;
  for (const auto& d : diags) {
    auto put = [&](const char* name, double v) {
      if (std::isfinite(v)) L.emit.point(name, "context.memory", at, v, d.block);  // NaN: writes off
    };
    put("mem.cos_kv", d.cos_kv);
    put("mem.inner_loss", d.inner_loss);
    put("mem.erase_over_assoc", d.erase_over_assoc);
    put("mem.share", d.memory_share);
    if (d.context_effect_t8 >= 0) put("mem.context_t8", d.context_effect_t8);
    put("mem.eta", d.eta_mean);
    put("mem.clamp_rate", d.clamp_rate);
  }
}

// What to change after a non-finite loss. An in-context memory whose inner loss is no longer finite
// (or has grown past 1e6; it is of order 1 to 10 in a healthy run, docs/MEMORY.md) blew up inside
// the forward, where no gradient clip reaches: its writes are too large.
std::string divergence_advice(RunSetup& s, double grad_clip) {
  std::string blocks;
  for (const auto& cs : s.model->contextStats())
    if (!std::isfinite(cs.loss) || cs.loss > 1e6) blocks += (blocks.empty() ? "" : ", ") + std::to_string(cs.block);
  if (!blocks.empty())
    return "the in-context memory's inner loss blew up in block(s) " + blocks +
           ": lower that block's model.blocks.N.inner_lr (the size of its writes), bound its state with "
           "model.blocks.N.state_bound (e.g. 2; 0 is no bound) or, for a self-modifying Titans memory, its η "
           "with eta_max; or lower optimizer.lr";
  char clip[32];
  std::snprintf(clip, sizeof clip, "%g", grad_clip);
  return grad_clip > 0 ? "lower optimizer.lr (training.grad_clip is already " + std::string(clip) + ")"
                       : "lower optimizer.lr or set training.grad_clip";
}

// One outer step on rows idx (the strategy may add rows); false when the loss is not finite.
bool train_step(Loop& L, int phase, std::vector<int64_t>& idx, const torch::Tensor& seen) {
  auto& s = L.s;
  auto& st = L.st;
  L.strategy.extend_batch(st, idx);
  auto x = batch_tokens(s.train, idx, s.pad).to(s.device);
  auto y = batch_labels(s.train, idx).to(s.device);
  auto pooled = s.model->features(x);
  auto logits = s.model->logits(pooled) + seen;
  record_context(st, s, x, L.emit);  // level 0, the in-context memories: loss before writes, drift
  auto loss = torch::nn::functional::cross_entropy(logits, y);
  torch::Tensor total = loss;
  if (auto pen = L.strategy.penalty(st, loss); pen.defined()) total = loss + pen;
  double lv = loss.item<double>();
  if (L.opt.poison_loss && L.opt.poison_loss(st.step)) lv = std::nan("");  // test seam
  if (!std::isfinite(lv) || !std::isfinite(total.item<double>())) {
    L.status = RunStatus::Diverged;
    L.diverged_step = st.step;
    L.error = "loss became " + std::string(std::isnan(lv) ? "NaN" : "Inf") + " at step " + std::to_string(st.step) +
              " (task " + std::to_string(phase) + "); " + divergence_advice(s, L.grad_clip);
    return false;
  }
  st.optimizer->zero_grad();  // the outer level only: CMS levels keep accumulating
  total.backward();
  for (auto& g : st.clip_groups) {  // per group first (pre-clip norms logged), then the global clip
    bool clipped = false;
    L.emit.point("grad_norm", g.name, st.step, clip_gradients(g.params, g.clip, &clipped));
    ++g.steps;
    g.clipped += clipped;
  }
  if (L.grad_clip > 0) {
    bool clipped = false;
    clip_gradients(st.outer_params, L.grad_clip, &clipped);
    ++L.global_steps;
    L.global_clipped += clipped;
  }
  st.optimizer->step();
  ++st.outer_steps;
  L.emit.point("loss", "outer", st.step, lv);
  after_outer_step(st, lv, L.emit);
  if (st.head.on) head_after_step(st, s, pooled, y, L.emit);
  return true;
}

// Adds the seconds of its scope to TrainerState::eval_seconds.
class EvalClock {
 public:
  explicit EvalClock(TrainerState& st) : st_(st) {}
  ~EvalClock() { st_.eval_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }
  EvalClock(const EvalClock&) = delete;
  EvalClock& operator=(const EvalClock&) = delete;

 private:
  TrainerState& st_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// Every step of one phase, over its epochs in the data generator's order.
void train_phase(Loop& L, int phase, const torch::Tensor& seen) {
  auto& s = L.s;
  auto& st = L.st;
  const auto& rows = s.phase_rows[phase];
  int64_t eval_every = s.tr().at("eval_every").get<int64_t>();
  if (eval_every <= 0) eval_every = std::max<int64_t>(1, s.steps_of_phase[phase] / 4);
  int64_t phase_step = 0;
  const int n_epochs = s.trainable ? s.epochs : 1;
  const size_t bs = size_t(s.batch_size);
  for (int ep = 0; ep < n_epochs && L.status == RunStatus::Finished; ++ep) {
    auto perm = to_vec(torch::randperm(int64_t(rows.size()), st.data_gen, torch::kLong));
    for (size_t b = 0; b < perm.size(); b += bs) {
      if (paused_or_cancelled(L)) break;
      std::vector<int64_t> idx;
      for (size_t k = b; k < std::min(perm.size(), b + bs); ++k) idx.push_back(rows[perm[k]]);
      if (!s.trainable)
        ncm_step(L, idx);
      else if (!train_step(L, phase, idx, seen))
        break;
      ++st.step;
      ++phase_step;
      st.samples += int64_t(idx.size());
      probe_levels(st, s, L.opt, st.step - 1, false);
      Event pe;
      pe.kind = EventKind::Progress;
      pe.step = st.step;
      pe.total_steps = s.total_steps;
      pe.samples_seen = st.samples;
      pe.task = phase;
      pe.num_tasks = int(s.phases.size());
      pe.epoch = ep;
      L.emit(pe);
      if (s.trainable && phase_step % eval_every == 0 && phase_step < s.steps_of_phase[phase]) {
        EvalClock clock(st);
        periodic_eval(st, s, phase, L.emit);
        emit_clip_rates(L);
        emit_memory_diagnostics(L);
      }
    }
  }
}

// A task boundary: task-clocked levels tick, the strategy's bookkeeping, the accuracy-matrix row,
// drift, last.pt and (when the score is the best so far) best.pt.
// `last` takes the matrix row as soon as it is evaluated, so that a failure while saving the
// checkpoints leaves a summary whose macro-F1 matches its accuracy matrix.
void end_phase(Loop& L, int phase, const torch::Tensor& seen, EvalRow& last) {
  auto& s = L.s;
  auto& st = L.st;
  s.model->train();
  ++st.boundaries;
  if (s.trainable && task_boundary(st, L.emit)) probe_levels(st, s, L.opt, st.step - 1, true);
  L.strategy.task_end(st, s, phase, seen);
  {
    EvalClock clock(st);
    last = task_end_eval(st, s, phase, seen, L.emit);
    if (s.trainable) {
      emit_clip_rates(L);
      emit_memory_diagnostics(L);
    }
  }
  const double avg = mean_acc(last);
  emit_drift(st, s, L.emit);
  save_checkpoint(st, s, CheckpointKind::Last, phase, avg, L.emit);
  save_snapshot(s, phase, st.step, L.emit);  // training.snapshots: the model as just evaluated
  double select;
  {
    EvalClock clock(st);
    select = best_score(st, s, phase, seen, avg, L.emit);
  }
  if (select >= st.best_avg) {
    st.best_avg = select;
    save_checkpoint(st, s, CheckpointKind::Best, phase, select, L.emit);
  }
  Event e;
  e.kind = EventKind::TaskFinished;
  e.task = phase;
  e.num_tasks = int(s.phases.size());
  e.value = avg;
  L.emit(e);
}

}  // namespace

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

bool cuda_available() {
  return torch::cuda::is_available();
}

// The CUDA runtime LibTorch was built against ("13.0"), with "(no device)" when none is usable;
// "none" for a CPU-only LibTorch.
std::string cuda_version() {
  try {
    const auto& hooks = at::detail::getCUDAHooks();
    if (!hooks.hasCUDART()) return "none";
    long v = hooks.versionCUDART();
    return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10) + (cuda_available() ? "" : " (no device)");
  } catch (const std::exception&) {
    return "none";
  }
}

json describe(const json& user_spec, int num_classes) {
  json spec = spec::complete(user_spec);
  const json& e = spec.at("experiment");
  auto dd = dataset_defaults(e.at("dataset").get<std::string>(), e.at("split").get<std::string>());
  int vocab = spec["model"]["vocab_size"].get<int>() > 0 ? spec["model"]["vocab_size"].get<int>() : dd.vocab;
  int len = spec["model"]["max_len"].get<int>() > 0 ? spec["model"]["max_len"].get<int>() : dd.max_len;
  int C = num_classes > 0 ? num_classes : dd.classes;
  auto cfg = model_config(spec, vocab, len, C, 0);
  torch::NoGradGuard ng;
  auto model = models::build(cfg);
  json blocks = json::array();
  int64_t total = models::count_params(*model);
  // Per-block counts: the classifier registers blocks as "block<i>" children when present.
  for (const auto& child : model->named_children()) {
    blocks.push_back({{"name", child.key()}, {"params", models::count_params(*child.value())}});
  }
  return {{"params", total},  {"flops_per_sample", models::flops_per_sample(cfg, len)},
          {"seq_len", len},   {"vocab_size", vocab},
          {"num_classes", C}, {"modules", blocks}};
}

RunResult run_experiment(const json& user_spec, const RunOptions& opt, const std::vector<Observer*>& observers,
                         Control* control) {
  // The whole run draws from LibTorch's one global generator (initialisation, dropout): nothing
  // else in this process may build a model meanwhile (attribute_forgetting waits here).
  std::lock_guard<std::mutex> generator_lock(global_generator_mutex());
  Emitter emit{observers, 0};
  RunSetup s = set_up_run(user_spec, opt, emit);  // throws SpecError / DataError before storing
  RunResult result;
  result.run_id = s.run_id;
  // From here on a failure must not leave the run `running`: mark it failed with the reason.
  auto fail_run = [&](const std::string& msg) -> RunError {
    if (s.store_obs) {
      auto& w = s.store_obs->writer();
      w.status(RunStatus::Failed, msg);
      w.finish(RunStatus::Failed);
      try {
        w.flush();
      } catch (const std::exception&) {
      }
    }
    return RunError(msg);
  };
  TrainerState st;
  try {
    st = initial_state(s);
  } catch (const std::exception& e) {
    throw fail_run(std::string("optimizer: ") + e.what());
  }
  auto strategy = make_strategy(s);
  st.started = std::chrono::steady_clock::now();
  int first_phase = 0;
  if (s.resume_ar) try {
      first_phase = load_checkpoint(st, s);
      emit.log("resumed run " + std::to_string(s.run_id) + " after task " + std::to_string(first_phase) + " of " +
               std::to_string(s.phases.size()) + " (step " + std::to_string(st.step) + ")");
    } catch (const std::exception& e) {
      throw fail_run(std::string("resume: ") + e.what());
    }

  Loop L(s, st, *strategy, emit, opt, control);
  EvalRow last_eval;
  try {
    s.model->train();
    probe_levels(st, s, opt, st.step - 1, false);
    for (int phase = first_phase; phase < int(s.phases.size()); ++phase) {
      start_task(st, s);
      Event e;
      e.kind = EventKind::TaskStarted;
      e.task = phase;
      e.num_tasks = int(s.phases.size());
      emit(e);
      const auto seen = seen_mask_for(s, phase);
      train_phase(L, phase, seen);
      if (L.status != RunStatus::Finished) break;
      end_phase(L, phase, seen, last_eval);
    }
  } catch (const std::exception& e) {
    L.status = RunStatus::Failed;
    L.error = e.what();
  }

  const double seconds = st.train_seconds();
  result.status = L.status;
  result.error = L.error;
  result.diverged_step = L.diverged_step;
  result.summary = run_summary(st, s, last_eval, seconds);
  // Stored before it is told: a run whose records could not all be written ends failed.
  if (s.store_obs) s.store_obs->end(result.status, result.error, result.diverged_step, result.summary.dump());
  emit.status(result.status, st.step, result.error);
  return result;
}

}  // namespace hl::train
