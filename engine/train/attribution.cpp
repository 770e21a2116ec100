#include "engine/train/attribution.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <thread>

#include "engine/common/error.h"
#include "engine/common/version.h"
#include "engine/memory/selfmod_titans.h"
#include "engine/store/store.h"
#include "engine/train/checkpoint_format.h"
#include "engine/train/evaluator.h"
#include "engine/train/run_setup.h"
#include "engine/train/trainer_state.h"

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace hl::train {

std::mutex& global_generator_mutex() {
  static std::mutex m;
  return m;
}

namespace {

// A named parameter or buffer of the model, whole (begin < 0) or rows [begin, end) of its first
// dimension (the stacked memories of self-modifying Titans).
struct Part {
  std::string name;
  int64_t begin = -1, end = -1;
};

struct LevelParts {
  AttributionLevel info;
  std::vector<Part> parts;
};

using State = std::map<std::string, torch::Tensor>;

// Refuses (hl::RunError) a checkpoint file the run `rec` did not write: the spec saved in it
// differs from the run's. Checkpoint rows hold absolute paths, and `runs merge` copies them as
// they are, so a merged database can point at a folder that a later database of the same path
// reuses, run numbers and all: without this check another run's model would be evaluated under
// this run's name. A file whose spec cannot be read is left to the set-up, which names it.
void check_checkpoint_of_run(const store::RunRecord& rec, const std::string& path, const std::string& id,
                             const std::string& what) {
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const std::exception& e) {
    const std::string w = e.what();  // LibTorch appends a backtrace: its first line says it
    throw RunError(id + ": cannot read its " + what + " " + path + " (" + w.substr(0, w.find('\n')) + ")");
  }
  check_checkpoint_format(ar, path);
  std::string saved_text;
  try {
    saved_text = checkpoint_string(ar, "hopelab.spec");
  } catch (const std::exception&) {
    return;
  }
  const json saved = json::parse(saved_text, nullptr, false), mine = json::parse(rec.spec_json, nullptr, false);
  if (saved.is_discarded() || mine.is_discarded() || saved == mine) return;
  const json patch = json::diff(mine, saved);
  const std::string where = patch.empty() ? std::string("?") : patch[0].value("path", std::string("?"));
  throw RunError(id + ": its " + what + " " + path + " was written by another run (its saved spec differs from " + id +
                 "'s at " + where +
                 "). The database's checkpoint rows point at files of another database (a merged shard whose "
                 "checkpoint folder was reused?): evaluate the run in the database that trained it, or put its own "
                 "checkpoint back at that path.");
}

State named_state(torch::nn::Module& m) {
  State out;
  for (const auto& p : m.named_parameters(true)) out[p.key()] = p.value();
  for (const auto& b : m.named_buffers(true)) out[b.key()] = b.value();
  return out;
}

torch::Tensor view_of(const torch::Tensor& t, const Part& p) {
  return p.begin < 0 ? t : t.narrow(0, p.begin, p.end - p.begin);
}

// The model's levels as the trainer groups them (docs/MODELS.md "Levels and forgetting
// attribution"): per block in pipeline order its in-context memory levels and its CMS levels,
// then the memory head, and the outer level first (every parameter and buffer in no other level).
std::vector<LevelParts> level_map(models::Classifier& model, const models::ModelConfig& cfg) {
  static_assert(memory::kSmtOut == memory::kSmtMemories - 1, "the output memory is the last stacked memory");
  const State state = named_state(*model);
  std::map<const void*, std::string> name_of;
  for (const auto& [n, t] : state) name_of[t.unsafeGetTensorImpl()] = n;
  std::map<std::string, int64_t> covered;
  auto add = [&](LevelParts& L, const std::string& n, int64_t begin = -1, int64_t end = -1) {
    auto it = state.find(n);
    if (it == state.end())
      throw RunError("attribution: the model has no parameter '" + n + "' for level " + L.info.label +
                     ": this build's level map does not match its models (engine/train/attribution.cpp)");
    L.parts.push_back({n, begin, end});
    const int64_t k = view_of(it->second, L.parts.back()).numel();
    L.info.numel += k;
    covered[n] += k;
  };
  auto level = [](const std::string& lv, int block, int clock, const std::string& label) {
    LevelParts L;
    L.info.level = lv;
    L.info.block = block;
    L.info.clock = clock;
    L.info.label = label;
    return L;
  };
  std::vector<LevelParts> out;
  out.push_back(level("outer", -1, 1, "outer (the rest)"));
  auto groups = model->levels();
  for (size_t i = 0; i < cfg.blocks.size(); ++i) {
    const std::string pre = "blocks." + std::to_string(i) + ".", b = "b" + std::to_string(i) + " · ";
    const BlockType type = cfg.blocks[i].type;
    if (state.count(pre + "smt.mem_w1")) {  // self-modifying Titans: [k, v, η, α, output] stacked
      auto mem = level("context.memory", int(i), 1, b + "context.memory");
      add(mem, pre + "smt.mem_w1", memory::kSmtOut, memory::kSmtOut + 1);
      add(mem, pre + "smt.mem_w2", memory::kSmtOut, memory::kSmtOut + 1);
      auto other = level("context.other", int(i), 1, b + "context.other");
      add(other, pre + "smt.mem_w1", 0, memory::kSmtOut);
      add(other, pre + "smt.mem_w2", 0, memory::kSmtOut);
      for (const char* n : {"smt.w_eta", "smt.b_eta", "smt.w_alpha", "smt.b_alpha"}) add(other, pre + n);
      out.push_back(std::move(mem));
      out.push_back(std::move(other));
    } else if (state.count(pre + "lmm.mem_w1")) {  // Titans memory: M₀ and its θ, η, α gates
      auto mem = level("context.memory", int(i), 1, b + "context.memory");
      for (const char* n : {"lmm.mem_w1", "lmm.mem_w2", "lmm.gates.weight", "lmm.gates.bias"}) add(mem, pre + n);
      out.push_back(std::move(mem));
    } else if (type == BlockType::Titans || type == BlockType::Hope) {
      throw RunError("attribution: block " + std::to_string(i) + " (" + name(type) +
                     ") has no in-context memory parameters where this build looks for them (" + pre +
                     "smt.mem_w1 or " + pre + "lmm.mem_w1): the level map does not match the model");
    }
    for (const auto& g : groups) {
      if (g.block != int(i)) continue;
      auto L = level(
          g.name, g.block, g.clock,
          b + g.name + " (clock " + std::to_string(g.clock) + (g.clock_unit == ClockUnit::Tasks ? " tasks" : "") + ")");
      for (const auto& p : g.params) add(L, name_of.at(p.unsafeGetTensorImpl()));
      out.push_back(std::move(L));
    }
  }
  if (cfg.head == HeadType::Memory) {
    auto head = level("head", -1, cfg.memory_clock, "head (memory, DGD-written)");
    add(head, "memory_w");
    add(head, "memory_s");
    out.push_back(std::move(head));
  }
  for (const auto& [n, t] : state) {
    const int64_t c = covered.count(n) ? covered.at(n) : 0;
    if (c == 0)
      add(out.front(), n);
    else if (c != t.numel())
      throw RunError("attribution: parameter '" + n + "' is split between levels unevenly (" + std::to_string(c) +
                     " of " + std::to_string(t.numel()) + " entries assigned): the level map does not match the model");
  }
  return out;
}

void put(State& dst, const State& src, const LevelParts& L) {
  torch::NoGradGuard ng;
  for (const auto& p : L.parts) view_of(dst.at(p.name), p).copy_(view_of(src.at(p.name), p));
}

void put_all(State& dst, const State& src) {
  torch::NoGradGuard ng;
  for (auto& [n, t] : dst) t.copy_(src.at(n));
}

// Building models draws from LibTorch's global generator: never while this process trains. Waits
// for global_generator_mutex, calling `waiting` once when it has to; `cancel` set while waiting:
// RunError("<what> cancelled").
std::unique_lock<std::mutex> lock_generator(const std::function<void()>& waiting, const std::atomic<bool>* cancel,
                                            const std::string& what) {
  std::unique_lock<std::mutex> lock(global_generator_mutex(), std::try_to_lock);
  if (!lock.owns_lock()) {
    if (waiting) waiting();
    while (!lock.try_lock()) {
      if (cancel && cancel->load()) throw RunError(what + " cancelled");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  return lock;
}

bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

json number(double v) {
  return std::isfinite(v) ? json(v) : json(nullptr);
}

json numbers(const std::vector<double>& v) {
  json a = json::array();
  for (double x : v) a.push_back(number(x));
  return a;
}

}  // namespace

json Attribution::toJson() const {
  json lv = json::array(), g = json::array();
  for (const auto& l : levels)
    lv.push_back({{"level", l.level}, {"block", l.block}, {"clock", l.clock}, {"label", l.label}, {"numel", l.numel}});
  for (const auto& row : gain) g.push_back(numbers(row));
  return {{"run", run_id},
          {"num_tasks", num_tasks},
          {"levels", lv},
          {"gain", g},
          {"gain_all", numbers(gain_all)},
          {"final_acc", numbers(final_acc)},
          {"acc_at_end", numbers(acc_at_end)},
          {"forgetting", numbers(forgetting)},
          {"reproduced", numbers(reproduced)},
          {"exact", exact}};
}

Attribution attribute_forgetting(const std::string& db_path, int64_t run_id, const AttributionOptions& opt) {
  const std::string id = "run " + std::to_string(run_id);
  auto db = store::RunStore::open(db_path);
  const auto rec = db->getRun(run_id);
  if (!rec) throw SpecError(id + " is not in " + db_path + " (see `hopelab-cli runs`)");
  if (rec->status != RunStatus::Finished)
    throw RunError(id + " is " + name(rec->status) +
                   ": forgetting attribution needs a finished run (the model at every task end and at the end)");
  if (rec->protocol == name(Protocol::Joint))
    throw RunError(id + " is a joint run: it trains one task, so it forgets nothing to attribute");
  int T = 0;
  const auto cells = db->accuracy(run_id);
  for (const auto& c : cells) T = std::max({T, c.after_task + 1, c.task + 1});
  if (T < 2) throw RunError(id + " has " + std::to_string(T) + " task(s): forgetting needs at least two");
  metrics::Matrix R(T, std::vector<double>(T, metrics::nan()));
  for (const auto& c : cells) R[c.after_task][c.task] = c.acc;

  std::map<int, std::string> snapshot;
  for (const auto& c : db->checkpoints(run_id))
    if (c.kind == CheckpointKind::Snapshot) snapshot[c.task] = c.path;
  if (snapshot.empty())
    throw RunError(id +
                   " was recorded without task-end snapshots (training.snapshots was false, or a Hope Lab build "
                   "older than snapshots trained it). Attribution puts each level back to its state at each task "
                   "end, so it needs them: train the configuration again with training.snapshots true (the "
                   "default); --resume cannot add them to tasks already trained.");
  for (int j = 0; j < T; ++j) {
    auto it = snapshot.find(j);
    if (it == snapshot.end())
      throw RunError(id + " has no snapshot of the end of task " + std::to_string(j + 1) + " of " + std::to_string(T) +
                     " (it has " + std::to_string(snapshot.size()) +
                     "; a run resumed from a build without snapshots lacks the earlier ones): train it again to "
                     "attribute its forgetting");
    std::error_code ec;
    if (!fs::is_regular_file(it->second, ec))
      throw RunError(id + ": the snapshot of the end of task " + std::to_string(j + 1) + ", " + it->second +
                     ", is missing (moved or deleted?). Snapshots live in the checkpoint folder beside the run "
                     "database (" +
                     db_path + ".checkpoints/run-" + std::to_string(run_id) + "/).");
    check_checkpoint_of_run(*rec, it->second, id, "snapshot of the end of task " + std::to_string(j + 1));
  }

  RunOptions ro;
  ro.data_dir = opt.data_dir;
  ro.cache_dir = opt.cache_dir;
  Emitter quiet{{}, 0};
  models::Classifier snap{nullptr};
  // Building models draws from LibTorch's global generator: never while this process trains.
  RunSetup s = [&] {
    auto lock = lock_generator(opt.waiting, opt.cancel, "attribution of " + id);
    RunSetup setup = set_up_model(json::object(), ro, quiet, snapshot.at(T - 1));
    snap = models::build(setup.mcfg);
    snap->to(setup.device);
    return setup;
  }();
  if ((!rec->data_hash.empty() && s.ds.data_hash != rec->data_hash) ||
      (!rec->split_hash.empty() && s.ds.split_hash != rec->split_hash))
    throw DataError("the data of " + s.dataset_name + " in " + opt.data_dir + " differs from what " + id +
                    " trained on (data or split hash changed): attribute it with the original data");
  if (int(s.ds.tasks.size()) != T)
    throw DataError(id + " has " + std::to_string(T) + " tasks in its accuracy matrix, its dataset " +
                    std::to_string(s.ds.tasks.size()));
  snap->eval();

  Attribution a;
  a.run_id = run_id;
  a.num_tasks = T;
  const auto levels = level_map(s.model, s.mcfg);
  for (const auto& L : levels) a.levels.push_back(L.info);
  a.gain.assign(levels.size(), std::vector<double>(T, metrics::nan()));
  a.gain_all.assign(T, metrics::nan());
  a.final_acc.assign(T, metrics::nan());
  a.acc_at_end.assign(T, metrics::nan());
  a.forgetting.assign(T, metrics::nan());
  a.reproduced.assign(T, metrics::nan());

  auto mask_upto = [&](int j) {  // as the trainer's seen_mask_for: 0 for classes of tasks 0..j
    auto m = torch::full({s.C}, kMaskedLogit);
    for (int t = 0; t <= j; ++t)
      for (int c : s.ds.tasks[t]) m[c] = 0.f;
    return m.to(s.device);
  };
  const torch::Tensor final_mask = mask_upto(T - 1);
  const int total = T + (T - 1) * (int(levels.size()) + 2);
  int done = 0;
  auto acc_of = [&](int j, const torch::Tensor& mask, const std::string& what) {
    if (opt.cancel && opt.cancel->load()) throw RunError("attribution of " + id + " cancelled");
    const double acc = evaluate(s.model, s.test, s.ds.tasks, {j}, mask, s.pad).acc.at(0);
    ++done;
    if (opt.progress) opt.progress(done, total, "task " + std::to_string(j + 1) + " · " + what);
    return acc;
  };

  State work = named_state(*s.model);
  State final_state;
  for (const auto& [n, t] : work) final_state[n] = t.detach().clone();
  for (int j = 0; j < T; ++j) a.final_acc[j] = acc_of(j, final_mask, "final model");
  for (int j = 0; j + 1 < T; ++j) {
    {
      torch::serialize::InputArchive ar;
      ar.load_from(snapshot.at(j));
      check_checkpoint_format(ar, snapshot.at(j));
      snap->load(ar);
    }
    const State then = named_state(*snap);
    put_all(work, then);
    a.reproduced[j] = acc_of(j, mask_upto(j), "the whole model, classes seen then");
    a.gain_all[j] = acc_of(j, final_mask, "every level") - a.final_acc[j];
    put_all(work, final_state);
    for (size_t l = 0; l < levels.size(); ++l) {
      put(work, then, levels[l]);
      a.gain[l][j] = acc_of(j, final_mask, levels[l].info.label) - a.final_acc[j];
      put(work, final_state, levels[l]);
    }
  }
  a.exact = true;
  for (int j = 0; j < T; ++j) {
    a.acc_at_end[j] = R[j][j];
    a.exact = a.exact && same_bits(a.final_acc[j], R[T - 1][j]);
    if (j + 1 == T) continue;
    a.exact = a.exact && same_bits(a.reproduced[j], R[j][j]);
    double best = -std::numeric_limits<double>::infinity();
    for (int l = j; l < T - 1; ++l)
      if (!std::isnan(R[l][j])) best = std::max(best, R[l][j]);
    a.forgetting[j] = best - R[T - 1][j];
  }
  return a;
}

double Ablation::mean(const std::vector<double>& v) const {
  if (v.empty()) return metrics::nan();
  double t = 0;
  for (double x : v) t += x;
  return t / double(v.size());
}

json Ablation::toJson() const {
  json t = json::array();
  for (int j : tasks) t.push_back(j + 1);
  return {{"run", run_id},
          {"checkpoint", checkpoint},
          {"which", which},
          {"step", step},
          {"sets", sets},
          {"tasks", t},
          {"stored", numbers(stored)},
          {"as_saved", numbers(as_saved)},
          {"as_saved_til", numbers(as_saved_til)},
          {"ablated", numbers(ablated)},
          {"ablated_til", numbers(ablated_til)},
          {"mean",
           {{"stored", number(mean(stored))},
            {"as_saved", number(mean(as_saved))},
            {"ablated", number(mean(ablated))},
            {"change", number(mean(ablated) - mean(as_saved))}}},
          {"exact", exact}};
}

std::vector<std::string> writes_off_overrides(const json& spec) {
  std::vector<std::string> out;
  const json& blocks = spec.at("model").at("blocks");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const json& b = blocks[i];
    if (b.contains("memory_writes") && b.value("mixer", std::string("selfmod")) == "selfmod")
      out.push_back("model.blocks." + std::to_string(i) + ".memory_writes=false");
  }
  return out;
}

Ablation ablate_run(const std::string& db_path, int64_t run_id, const AblationOptions& opt) {
  const std::string id = "run " + std::to_string(run_id);
  if (opt.sets.empty() && !opt.writes_off)
    throw SpecError(
        "evaluate: nothing to change: give --writes-off or at least one --set PATH=VALUE (e.g. --set "
        "model.blocks.0.inner_lr=0.01)");
  if (opt.which != "last" && opt.which != "best")
    throw SpecError("evaluate: --checkpoint " + opt.which + ": expected last or best");
  auto db = store::RunStore::open(db_path);
  const auto rec = db->getRun(run_id);
  if (!rec) throw SpecError(id + " is not in " + db_path + " (see `hopelab-cli runs`)");
  if (rec->status != RunStatus::Finished)
    throw RunError(id + " is " + name(rec->status) + ": test-time ablation evaluates a finished run's saved model");
  const CheckpointKind kind = opt.which == "best" ? CheckpointKind::Best : CheckpointKind::Last;
  Ablation a;
  a.run_id = run_id;
  a.which = opt.which;
  if (opt.writes_off) {
    json spec;
    try {
      spec = json::parse(rec->spec_json);
    } catch (const std::exception&) {
      throw StoreError(id + ": its stored spec is not JSON; the database is damaged");
    }
    a.sets = writes_off_overrides(spec);
    if (a.sets.empty())
      throw SpecError(id + " (" + rec->name +
                      ") has no self-modifying Titans block: there are no in-context writes to turn off");
  }
  a.sets.insert(a.sets.end(), opt.sets.begin(), opt.sets.end());
  for (const auto& c : db->checkpoints(run_id))
    if (c.kind == kind) {
      a.checkpoint = c.path;
      a.step = c.step;
    }
  if (a.checkpoint.empty())
    throw RunError(id + " has no " + opt.which +
                   ".pt recorded (training.checkpoints was false?): train it again "
                   "with checkpoints to evaluate its saved model");
  std::error_code ec;
  if (!fs::is_regular_file(a.checkpoint, ec))
    throw RunError(id + ": its " + opt.which + " checkpoint " + a.checkpoint +
                   " is missing (moved or deleted?). Checkpoints live in the folder beside the run database (" +
                   db_path + ".checkpoints/run-" + std::to_string(run_id) + "/).");
  check_checkpoint_of_run(*rec, a.checkpoint, id, opt.which + " checkpoint");
  // The final evaluation: the last row of the accuracy matrix.
  const auto cells = db->accuracy(run_id);
  int last = -1;
  for (const auto& c : cells) last = std::max(last, c.after_task);
  std::map<int, double> stored;
  for (const auto& c : cells)
    if (c.after_task == last) stored[c.task] = c.acc;
  if (stored.empty()) throw RunError(id + " has no accuracy stored: nothing to compare with");
  for (const auto& [j, acc] : stored) {
    a.tasks.push_back(j);
    a.stored.push_back(acc);
  }

  RunOptions ro;
  ro.data_dir = opt.data_dir;
  ro.cache_dir = opt.cache_dir;
  Emitter quiet{{}, 0};
  auto set_up = [&](const std::vector<std::string>& sets) {
    auto lock = lock_generator(opt.waiting, opt.cancel, "evaluation of " + id);
    RunSetup s = set_up_model(json::object(), ro, quiet, a.checkpoint, sets);
    if ((!rec->data_hash.empty() && s.ds.data_hash != rec->data_hash) ||
        (!rec->split_hash.empty() && s.ds.split_hash != rec->split_hash))
      throw DataError("the data of " + s.dataset_name + " in " + opt.data_dir + " differs from what " + id +
                      " trained on (data or split hash changed): evaluate it with the original data");
    if (a.tasks.back() >= int(s.ds.tasks.size()))
      throw DataError(id + " has accuracies of " + std::to_string(a.tasks.back() + 1) + " tasks, its dataset " +
                      std::to_string(s.ds.tasks.size()));
    s.model->eval();
    return s;
  };
  auto run_eval = [&](RunSetup& s, std::vector<double>& acc, std::vector<double>& til) {
    auto mask = torch::full({s.C}, kMaskedLogit);
    for (int j : a.tasks)
      for (int c : s.ds.tasks[j]) mask[c] = 0.f;
    const EvalRow r = evaluate(s.model, s.test, s.ds.tasks, a.tasks, mask.to(s.device), s.pad);
    acc = r.acc;
    til = r.til;
  };
  // The overridden model first: an override that does not fit fails before any evaluation.
  RunSetup ablated = set_up(a.sets);
  {
    RunSetup s = set_up({});
    run_eval(s, a.as_saved, a.as_saved_til);
  }
  if (opt.cancel && opt.cancel->load()) throw RunError("evaluation of " + id + " cancelled");
  run_eval(ablated, a.ablated, a.ablated_til);
  a.exact = kind == CheckpointKind::Last;
  for (size_t i = 0; i < a.tasks.size(); ++i) a.exact = a.exact && same_bits(a.as_saved[i], a.stored[i]);
  return a;
}

std::string ablation_key(std::vector<std::string> sets) {
  std::sort(sets.begin(), sets.end());
  std::string out;
  for (const auto& k : sets) out += (out.empty() ? "" : " ") + k;
  return out;
}

void record_ablation(const std::string& db_path, const Ablation& a) {
  store::AblationRecord r;
  r.overrides = ablation_key(a.sets);
  r.checkpoint = a.which;
  r.result_json = a.toJson().dump();
  r.app_version = app_version();
  store::RunStore::open(db_path)->recordAblation(a.run_id, r);
}

}  // namespace hl::train
