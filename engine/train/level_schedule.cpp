#include "engine/train/level_schedule.h"

#include <sstream>

using json = nlohmann::json;

namespace hl::train {
namespace {

// A tick of CMS level i (docs/MODELS.md): a gradient step on the window's mean gradient (its norm
// logged as grad_norm before training.grad_clip_cms clips it), or for
// a consolidating level θ ← θ + β(θ_faster − θ); then, nested, the next faster level restarts
// from this level's parameters (the paper's meta-learned initial state, eqs. 72–74; docs/MEMORY.md
// "Nested CMS") with a fresh optimizer. `at` is the step the series point is logged at.
void tick_level(TrainerState& st, size_t i, int64_t at, Emitter& emit) {
  auto& L = st.levels[i];
  torch::NoGradGuard ng;
  if (L.consolidates()) {
    const auto& fast = st.levels[i - 1].g.params;
    for (size_t k = 0; k < L.g.params.size(); ++k)
      L.g.params[k].add_(L.g.consolidate_rate * (fast[k].detach() - L.g.params[k].detach()));
    for (auto& p : L.g.params) p.mutable_grad() = torch::Tensor();
  } else {
    // The window's length: the clock for step clocks, the steps since the last tick for task clocks.
    const double n = L.g.clock_unit == ClockUnit::Tasks ? double(std::max<int64_t>(L.loss_n, 1)) : double(L.g.clock);
    for (auto& p : L.g.params)
      if (p.grad().defined()) p.mutable_grad().div_(n);  // window mean
    bool clipped = false;
    const double norm = clip_gradients(L.g.params, L.clip, &clipped);
    emit.point("grad_norm", L.g.name, at, norm, L.g.block, L.g.clock);
    ++L.clip_ticks;
    L.clipped += clipped;
    L.opt->step();
    L.opt->zero_grad();
  }
  ++L.ticks;
  if (L.loss_n > 0) emit.point("loss", L.g.name, at, L.loss_sum / double(L.loss_n), L.g.block, L.g.clock);
  L.loss_sum = 0;
  L.loss_n = 0;
  if (L.g.nested && L.g.index > 0) {  // the faster level restarts from the state this level now holds
    auto& F = st.levels[i - 1];
    unflat_into(flat(L.g.params), F.g.params);
    F.opt = make_optimizer(F.ocfg, F.g.params);
  }
}

}  // namespace

void start_task(TrainerState& st, RunSetup& s) {
  st.theta_task = flat(st.outer_params);
  for (auto& L : st.levels) L.theta_task = flat(L.g.params);
  if (st.head.on) st.head.theta_task = s.model->memoryW().detach().reshape(-1).clone();
}

void emit_drift(TrainerState& st, RunSetup& s, Emitter& emit) {
  auto now = flat(st.outer_params);
  emit.point("drift_task", "outer", st.step, drift(now, st.theta_task));
  emit.point("drift_run", "outer", st.step, drift(now, st.theta_run));
  for (auto& L : st.levels) {
    auto lnow = flat(L.g.params);
    emit.point("drift_task", L.g.name, st.step, drift(lnow, L.theta_task), L.g.block, L.g.clock);
    emit.point("drift_run", L.g.name, st.step, drift(lnow, L.theta_run), L.g.block, L.g.clock);
  }
  if (st.head.on) {  // the head starts empty (W = 0): a drift against a zero state is not stored
    auto w = s.model->memoryW().detach().reshape(-1);
    if (st.head.theta_task.defined() && st.head.theta_task.norm().item<double>() > 0)
      emit.point("drift_task", "head", st.step, drift(w, st.head.theta_task), -1, st.head.clock);
    if (st.head.theta_run.norm().item<double>() > 0)
      emit.point("drift_run", "head", st.step, drift(w, st.head.theta_run), -1, st.head.clock);
  }
}

void record_context(TrainerState& st, RunSetup& s, const torch::Tensor& x, Emitter& emit) {
  auto ctx = s.model->contextStats();
  if (ctx.empty()) return;
  auto lens = to_vec(x.ne(s.pad).sum(1));
  for (const auto& cs : ctx) {
    const int C = cs.chunk;
    emit.point("loss", cs.level, st.step, cs.loss, cs.block, C);
    emit.point("drift", cs.level, st.step, cs.drift, cs.block, C);
    auto& a = st.context_audit[{cs.block, cs.level}];
    a.chunk = C;
    a.actual += cs.writes;
    a.clamped += cs.clamped;
    // The titans memory also writes its persistent tokens (0 for other mixers).
    const auto& bc = s.mcfg.blocks[cs.block];
    const int P = bc.type == BlockType::Titans || (bc.type == BlockType::Hope && bc.mixer == Mixer::Titans)
                      ? bc.persistent_tokens
                      : 0;
    for (int64_t n : lens) a.expected += (n + P + C - 1) / C;
  }
}

void after_outer_step(TrainerState& st, double lv, Emitter& emit) {
  for (size_t i = 0; i < st.levels.size(); ++i) {  // fastest first within a block
    auto& L = st.levels[i];
    L.loss_sum += lv;
    ++L.loss_n;
    if (L.consolidates())  // no gradient step: its gradient is not kept
      for (auto& p : L.g.params) p.mutable_grad() = torch::Tensor();
    if (L.g.clock_unit == ClockUnit::Tasks || (st.step + 1) % L.g.clock != 0) continue;
    tick_level(st, i, st.step, emit);
  }
}

void head_after_step(TrainerState& st, RunSetup& s, const torch::Tensor& pooled, const torch::Tensor& y,
                     Emitter& emit) {
  auto& head = st.head;
  head.keys.push_back(s.model->memoryKeys(pooled));
  head.labels.push_back(y.detach().clone());
  if ((st.step + 1) % head.clock != 0) return;
  auto K = torch::cat(head.keys);
  auto Y = torch::cat(head.labels);
  const double head_loss = s.model->memoryWrite(K, Y, &head.clamped);
  ++head.ticks;
  emit.point("loss", "head", st.step, head_loss / double(std::max<int64_t>(1, K.size(0))), -1, head.clock);
  head.keys.clear();
  head.labels.clear();
}

bool task_boundary(TrainerState& st, Emitter& emit) {
  bool ticked = false;
  for (size_t i = 0; i < st.levels.size(); ++i)
    if (st.levels[i].g.clock_unit == ClockUnit::Tasks && st.boundaries % st.levels[i].g.clock == 0) {
      tick_level(st, i, st.step - 1, emit);
      ticked = true;
    }
  return ticked;
}

void probe_levels(const TrainerState& st, RunSetup& s, const RunOptions& opt, int64_t at, bool task_end) {
  if (!opt.level_probe) return;
  auto state_bytes = [](const torch::optim::Optimizer& o) {
    torch::serialize::OutputArchive a;
    o.save(a);
    std::ostringstream os;
    a.save_to(os);
    return os.str();
  };
  auto floats = [](const torch::Tensor& t) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
  };
  for (const auto& L : st.levels) {
    LevelProbe p;
    p.level = L.g.name;
    p.block = L.g.block;
    p.step = at;
    p.task_end = task_end;
    p.ticks = L.ticks;
    p.params = floats(flat(L.g.params));
    p.optimizer_state = state_bytes(*L.opt);
    opt.level_probe(p);
  }
  if (st.head.on) {
    LevelProbe p;
    p.level = "head";
    p.step = at;
    p.task_end = task_end;
    p.ticks = st.head.ticks;
    p.params = floats(s.model->memoryW().reshape(-1));
    auto sv = floats(s.model->memoryS().reshape(-1));
    p.optimizer_state.assign(reinterpret_cast<const char*>(sv.data()), sv.size() * sizeof(float));
    opt.level_probe(p);
  }
}

json cadence_audit(const TrainerState& st, const RunSetup& s) {
  const int64_t trained = s.trainable ? st.step : 0;
  json cad = json::array();
  cad.push_back({{"level", "outer"}, {"block", -1}, {"clock", 1}, {"expected", trained}, {"actual", st.outer_steps}});
  for (const auto& L : st.levels) {
    const bool tasks = L.g.clock_unit == ClockUnit::Tasks;
    json entry = {{"level", L.g.name},
                  {"block", L.g.block},
                  {"clock", L.g.clock},
                  {"expected", tasks ? (s.trainable ? st.boundaries : 0) / L.g.clock : trained / L.g.clock},
                  {"actual", L.ticks}};
    if (tasks) entry["clock_unit"] = name(ClockUnit::Tasks);
    cad.push_back(entry);
  }
  if (st.head.on)
    cad.push_back({{"level", "head"},
                   {"block", -1},
                   {"clock", st.head.clock},
                   {"expected", trained / st.head.clock},
                   {"actual", st.head.ticks}});
  for (const auto& [key, a] : st.context_audit)  // expected: sum over sequences of ceil(tokens / C)
    cad.push_back({{"level", key.second},
                   {"block", key.first},
                   {"clock", a.chunk},
                   {"expected", a.expected},
                   {"actual", a.actual}});
  return cad;
}

}  // namespace hl::train
