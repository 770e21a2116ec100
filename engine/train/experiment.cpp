// The class-incremental / joint trainer. One function, run_experiment, drives everything; the
// pieces below are kept small and named for the step of the protocol they implement
// (DECISIONS.md, "Continual-learning protocol").
#include "engine/train/experiment.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/detail/CUDAHooksInterface.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "engine/common/error.h"
#include "engine/common/version.h"
#include "engine/train/checkpoint_format.h"
#include "engine/data/dataset.h"
#include "engine/data/tokenizer.h"
#include "engine/metrics/metrics.h"
#include "engine/models/classifier.h"
#include "engine/models/level_init.h"
#include "engine/train/model_config.h"
#include "engine/optim/optimizers.h"
#include "engine/spec/spec.h"
#include "engine/store/store.h"
#include "engine/torch_wrap.h"

namespace fs = std::filesystem;

namespace hl::train {
namespace {

constexpr float kMaskedLogit = -1e9f;

// ---------------------------------------------------------------- tokenised data
struct Encoded {
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> labels;
};

Encoded encode(const std::vector<data::Example>& rows, const data::Tokenizer& tok, int max_len) {
  Encoded e;
  e.ids.reserve(rows.size());
  e.labels.reserve(rows.size());
  for (const auto& r : rows) {
    auto ids = tok.encode(r.text, max_len);
    e.ids.emplace_back(ids.begin(), ids.end());
    e.labels.push_back(r.label);
  }
  return e;
}

// Tokens [B, Lmax] padded with pad_id to the longest row of the batch.
torch::Tensor batch_tokens(const Encoded& e, const std::vector<int64_t>& idx, int64_t pad) {
  size_t L = 1;
  for (int64_t i : idx) L = std::max(L, e.ids[i].size());
  auto t = torch::full({int64_t(idx.size()), int64_t(L)}, pad, torch::kLong);
  auto acc = t.accessor<int64_t, 2>();
  for (size_t b = 0; b < idx.size(); ++b)
    for (size_t k = 0; k < e.ids[idx[b]].size(); ++k) acc[b][k] = e.ids[idx[b]][k];
  return t;
}

torch::Tensor batch_labels(const Encoded& e, const std::vector<int64_t>& idx) {
  auto t = torch::empty({int64_t(idx.size())}, torch::kLong);
  for (size_t b = 0; b < idx.size(); ++b) t[b] = e.labels[idx[b]];
  return t;
}

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// ---------------------------------------------------------------- observers
struct Emitter {
  std::vector<Observer*> obs;
  int64_t run_id = 0;
  void operator()(Event e) {
    e.run_id = run_id;
    for (auto* o : obs) o->onEvent(e);
  }
  void point(const std::string& name, const std::string& level, int64_t step, double v, int block = -1,
             int clock = 1) {
    Event e;
    e.kind = EventKind::Point;
    e.name = name;
    e.level = level;
    e.step = step;
    e.value = v;
    e.block = block;
    e.clock = clock;
    (*this)(e);
  }
  void log(const std::string& m) {
    Event e;
    e.kind = EventKind::Log;
    e.message = m;
    (*this)(e);
  }
};

// Writes every event of one run into the store through the batched RunWriter.
class StoreObserver : public Observer {
 public:
  StoreObserver(const std::string& db, int64_t run_id) : w_(db, run_id) {}
  void onEvent(const Event& e) override {
    switch (e.kind) {
      case EventKind::Point: w_.point(e.name, e.level, e.block, e.clock, e.step, e.value); break;
      case EventKind::Eval:
        w_.eval({e.step, e.task, e.eval_task, e.acc});
        break;
      case EventKind::Accuracy: w_.accuracy({e.task, e.eval_task, e.acc, e.task_il_acc}); break;
      case EventKind::Checkpoint: w_.checkpoint({e.message, e.path, e.step, e.task, e.value}); break;
      default: break;
    }
  }
  store::RunWriter& writer() { return w_; }

 private:
  store::RunWriter w_;
};

// ---------------------------------------------------------------- evaluation
struct EvalRow {
  std::vector<double> acc, til;         // per evaluated task
  std::vector<int> y_true, y_pred;      // class-IL predictions over all evaluated rows
};

// Class-IL accuracy on each task in `eval_tasks` with logits restricted to `seen` classes, and
// task-IL accuracy (argmax inside the task's own classes).
EvalRow evaluate(models::Classifier& model, const Encoded& test, const std::vector<std::vector<int>>& tasks,
                 const std::vector<int>& eval_tasks, const torch::Tensor& seen_mask, int64_t pad) {
  torch::NoGradGuard ng;
  bool was_training = model->is_training();
  model->eval();
  EvalRow row;
  const int C = int(seen_mask.size(0));
  std::vector<int> task_of(C, -1);
  for (size_t t = 0; t < tasks.size(); ++t)
    for (int c : tasks[t]) task_of[c] = int(t);
  std::vector<std::vector<int64_t>> rows_of(tasks.size());
  for (size_t i = 0; i < test.labels.size(); ++i) {
    int t = task_of[test.labels[i]];
    if (t >= 0) rows_of[t].push_back(int64_t(i));
  }
  for (int t : eval_tasks) {
    const auto& rows = rows_of[t];
    auto own = torch::full({C}, kMaskedLogit);
    for (int c : tasks[t]) own[c] = 0.f;
    own = own.to(seen_mask.device());
    int64_t correct = 0, correct_til = 0;
    for (size_t s = 0; s < rows.size(); s += 256) {
      std::vector<int64_t> idx(rows.begin() + s, rows.begin() + std::min(rows.size(), s + 256));
      auto logits = model->forward(batch_tokens(test, idx, pad).to(seen_mask.device()));
      auto y = batch_labels(test, idx).to(seen_mask.device());
      auto pred = (logits + seen_mask).argmax(1);
      auto pred_til = (logits + own).argmax(1);
      correct += pred.eq(y).sum().item<int64_t>();
      correct_til += pred_til.eq(y).sum().item<int64_t>();
      auto pv = to_vec(pred);
      for (size_t k = 0; k < idx.size(); ++k) {
        row.y_true.push_back(int(test.labels[idx[k]]));
        row.y_pred.push_back(int(pv[k]));
      }
    }
    double n = std::max<size_t>(rows.size(), 1);
    row.acc.push_back(rows.empty() ? metrics::nan() : correct / n);
    row.til.push_back(rows.empty() ? metrics::nan() : correct_til / n);
  }
  model->train(was_training);
  return row;
}

// ---------------------------------------------------------------- parameters and drift
torch::Tensor flat(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> v;
  for (const auto& p : ps) v.push_back(p.detach().reshape(-1));
  return v.empty() ? torch::zeros({1}) : torch::cat(v).clone();
}


// A CMS level during training: its own optimizer, stepped every `clock` outer steps on the
// gradient averaged over its window; between ticks nothing touches its parameters.
struct Level {
  models::LevelGroup g;
  json ocfg;  // its optimizer's spec (lr replaced by the level's lr), for a nested reset
  std::unique_ptr<torch::optim::Optimizer> opt;
  // transfer: consolidate makes every level but the fastest a consolidating one: no gradient step,
  // at its tick it moves toward the next faster level.
  bool consolidates() const { return g.transfer == "consolidate" && g.index > 0; }
  int64_t ticks = 0;
  double loss_sum = 0;
  int64_t loss_n = 0;
  torch::Tensor theta_task, theta_run;
};

// The memory head as its own level `head`: the (key, label) rows of its window wait until its
// tick, then are DGD-written in order (docs/MODELS.md "Memory head").
struct HeadLevel {
  int clock = 1;
  int64_t ticks = 0, clamped = 0;
  std::vector<torch::Tensor> keys, labels;  // the window in progress
  torch::Tensor theta_task, theta_run;
};

// Copies a flat snapshot back into the parameters (a nested reset).
void unflat_into(const torch::Tensor& flat_v, std::vector<torch::Tensor>& ps) {
  torch::NoGradGuard ng;
  int64_t off = 0;
  for (auto& p : ps) {
    p.copy_(flat_v.narrow(0, off, p.numel()).view_as(p));
    off += p.numel();
  }
}

double drift(const torch::Tensor& now, const torch::Tensor& ref) {
  double denom = ref.norm().item<double>();
  return (now - ref).norm().item<double>() / std::max(denom, 1e-12);
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const json& o, std::vector<torch::Tensor> params) {
  optim::OptimConfig c;
  c.lr = o.at("lr").get<double>();
  c.weight_decay = o.at("weight_decay").get<double>();
  c.beta1 = o.at("beta1").get<double>();
  c.beta2 = o.at("beta2").get<double>();
  c.momentum = o.at("momentum").get<double>();
  c.m3_slow_every = o.at("m3_slow_every").get<int64_t>();
  c.m3_ns_steps = o.at("m3_ns_steps").get<int64_t>();
  c.deep_hidden = o.at("deep_hidden").get<int64_t>();
  c.deep_inner_lr = o.at("deep_inner_lr").get<double>();
  return optim::make_optimizer(o.at("type").get<std::string>(), std::move(params), c);
}

std::string now_iso() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::gmtime(&t));
  return buf;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

json num_or_null(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

// ---------------------------------------------------------------- checkpoint fields
std::string read_string(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString()) throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toStringRef();
}

int64_t read_int(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isInt()) throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toInt();
}

double read_double(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isDouble()) throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toDouble();
}

torch::Tensor generator_state(at::Generator& g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void set_generator_state(at::Generator& g, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

json matrix_to_json(const metrics::Matrix& R) {
  json out = json::array();
  for (const auto& row : R) {
    json r = json::array();
    for (double v : row) r.push_back(num_or_null(v));
    out.push_back(r);
  }
  return out;
}

metrics::Matrix matrix_from_json(const json& j) {
  metrics::Matrix R;
  for (const auto& row : j) {
    R.emplace_back();
    for (const auto& v : row) R.back().push_back(v.is_null() ? metrics::nan() : v.get<double>());
  }
  return R;
}

}  // namespace

std::string torch_version() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

bool cuda_available() { return torch::cuda::is_available(); }

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
  return {{"params", total},
          {"flops_per_sample", models::flops_per_sample(cfg, len)},
          {"seq_len", len},
          {"vocab_size", vocab},
          {"num_classes", C},
          {"modules", blocks}};
}

RunResult run_experiment(const json& user_spec, const RunOptions& opt, const std::vector<Observer*>& observers,
                         Control* control) {
  // 1. Spec (a resumed run's own spec).
  std::unique_ptr<store::RunStore> db;
  std::unique_ptr<torch::serialize::InputArchive> resume_ar;
  json spec;
  std::string resume_data_hash, resume_split_hash;
  if (opt.resume_run > 0) {
    if (opt.db_path.empty()) throw SpecError("resume: a run database is needed (--db)");
    db = store::RunStore::open(opt.db_path);
    auto rec = db->getRun(opt.resume_run);
    const std::string id = std::to_string(opt.resume_run);
    if (!rec) throw SpecError("resume: run " + id + " is not in " + opt.db_path + " (see `hopelab-cli runs`)");
    if (rec->status == "finished") throw SpecError("resume: run " + id + " already finished; nothing to resume");
    if (rec->status == "running")
      throw SpecError("resume: run " + id + " is still running (pid " + std::to_string(rec->pid) + " on " + rec->host +
                      "); cancel it first");
    std::string path;
    for (const auto& c : db->checkpoints(opt.resume_run))
      if (c.kind == "last") path = c.path;
    if (path.empty() || !fs::exists(path))
      throw RunError("resume: run " + id + " has no checkpoint to resume from" +
                     (path.empty() ? std::string(" (checkpoints are saved at the end of each task)")
                                   : " (" + path + " is missing)"));
    spec = json::parse(rec->spec_json);
    resume_data_hash = rec->data_hash;
    resume_split_hash = rec->split_hash;
    resume_ar = std::make_unique<torch::serialize::InputArchive>();
    try {
      resume_ar->load_from(path);
    } catch (const std::exception& e) {
      throw RunError("resume: cannot read checkpoint " + path + " (" + e.what() + ")");
    }
    check_checkpoint_format(*resume_ar, path);
  } else {
    spec = spec::complete(user_spec);
  }
  auto v = spec::validate(spec);
  if (!v.ok()) throw SpecError("the spec has errors:\n" + v.format());
  const json& ex = spec.at("experiment");
  const json& tr = spec.at("training");
  const std::string dataset_name = ex.at("dataset").get<std::string>();
  const std::string protocol = ex.at("protocol").get<std::string>();
  const std::string strategy = ex.at("strategy").at("type").get<std::string>();
  const uint64_t seed = ex.at("seed").get<uint64_t>();
  const std::string device_name = ex.at("device").get<std::string>();
  if (device_name == "cuda" && !torch::cuda::is_available())
    throw SpecError("experiment.device: cuda requested but no CUDA device is available (use --device cpu)");
  const torch::Device device(device_name == "cuda" ? torch::kCUDA : torch::kCPU);
  if (tr.at("threads").get<int>() > 0) torch::set_num_threads(tr.at("threads").get<int>());

  // 2. Data and tokenizer (errors here are data errors: nothing is stored yet).
  data::LoadOptions lo;
  lo.data_dir = opt.data_dir;
  lo.split = ex.at("split").get<std::string>();
  lo.task_order = ex.at("task_order").get<int>();
  lo.limit_per_class = tr.at("limit_per_class").get<int>();
  lo.eval_limit_per_class = tr.at("eval_limit_per_class").get<int>();
  lo.seed = seed;
  lo.text_column = ex.at("data").at("text_column").get<std::string>();
  lo.label_column = ex.at("data").at("label_column").get<std::string>();
  lo.classes_per_task = ex.at("data").at("classes_per_task").get<int>();
  data::Dataset ds = data::load(dataset_name, lo);
  if (resume_ar && (ds.data_hash != resume_data_hash || ds.split_hash != resume_split_hash))
    throw DataError("resume: the data of " + dataset_name + " in " + opt.data_dir +
                    " differs from what run " + std::to_string(opt.resume_run) +
                    " trained on (data or split hash changed); resume with the original data");
  {
    std::vector<int> test_rows(ds.class_names.size(), 0);
    for (const auto& r : ds.test) ++test_rows[r.label];
    for (size_t t = 0; t < ds.tasks.size(); ++t) {
      int n = 0;
      for (int c : ds.tasks[t]) n += test_rows[c];
      if (n == 0)
        throw DataError(dataset_name + ": task " + std::to_string(t + 1) + " (classes " + ds.class_names[ds.tasks[t][0]] +
                        ", ...) has no test rows, so it cannot be evaluated: the test file must contain every class "
                        "that the train file has");
    }
  }

  Emitter emit{observers, 0};
  for (const auto& w : ds.warnings) emit.log("warning: " + w);

  const std::string user_dir = data::user_data_dir();
  const std::string cache_dir = opt.cache_dir.empty() ? user_dir + "/cache" : opt.cache_dir;
  int vocab = spec["model"]["vocab_size"].get<int>() > 0 ? spec["model"]["vocab_size"].get<int>() : ds.default_vocab;
  int max_len = spec["model"]["max_len"].get<int>() > 0 ? spec["model"]["max_len"].get<int>() : ds.max_len;
  // DECISIONS.md: the tokenizer is trained on all of the dataset's train texts, also when the run
  // itself subsamples them (--limit-per-class), so quick and full runs tokenize alike.
  std::vector<std::string> texts;
  if (!resume_ar) {
    data::Dataset all = ds;
    if (lo.limit_per_class > 0) {
      data::LoadOptions lo_all = lo;
      lo_all.limit_per_class = 0;
      all = data::load(dataset_name, lo_all);
    }
    texts.reserve(all.train.size());
    for (const auto& r : all.train) texts.push_back(r.text);
  }
  std::string tok_warning;
  data::Tokenizer tok = resume_ar ? data::Tokenizer::fromProto(read_string(*resume_ar, "hopelab.tokenizer"))
                                  : data::Tokenizer::train(texts, vocab, cache_dir + "/tokenizers", &tok_warning);
  if (!tok_warning.empty()) emit.log("warning: " + tok_warning);
  const int64_t pad = tok.padId();
  Encoded train = encode(ds.train, tok, max_len);
  Encoded test = encode(ds.test, tok, max_len);

  // 3. Model.
  torch::manual_seed(seed);
  const int C = int(ds.class_names.size());
  auto mcfg = model_config(spec, tok.vocabSize(), max_len, C, int(pad));
  models::Classifier model = models::build(mcfg);
  {
    // consolidate moves a level toward the next faster one: their parameters must match.
    auto gs = model->levels();
    for (size_t i = 0; i < gs.size(); ++i) {
      if (gs[i].transfer != "consolidate" || gs[i].index == 0) continue;
      const auto& f = gs[i - 1];
      bool same = f.block == gs[i].block && f.params.size() == gs[i].params.size();
      for (size_t k = 0; same && k < f.params.size(); ++k) same = f.params[k].sizes().equals(gs[i].params[k].sizes());
      if (!same)
        throw SpecError("model.blocks[" + std::to_string(gs[i].block) + "].transfer: consolidate needs every level of the block to have the same parameter shapes");
    }
  }
  // Level stacking; a resumed run takes every parameter from its checkpoint instead.
  if (!resume_ar) models::init_levels_from_checkpoints(*model);
  model->to(device);
  const int64_t n_params = models::count_params(*model);
  const bool trainable = model->headIsTrainable();

  // 4. Tasks of the protocol.
  const int T = int(ds.tasks.size());
  const bool joint = protocol == "joint";
  std::vector<std::vector<int>> phases;  // class sets trained in each phase
  if (joint) {
    std::vector<int> all;
    for (const auto& t : ds.tasks) all.insert(all.end(), t.begin(), t.end());
    phases.push_back(all);
  } else {
    phases = ds.tasks;
  }
  std::vector<int> class_phase(C, -1);
  for (size_t p = 0; p < phases.size(); ++p)
    for (int c : phases[p]) class_phase[c] = int(p);
  std::vector<std::vector<int64_t>> phase_rows(phases.size());
  for (size_t i = 0; i < train.labels.size(); ++i)
    if (class_phase[train.labels[i]] >= 0) phase_rows[class_phase[train.labels[i]]].push_back(int64_t(i));
  // training.dev_fraction: ⌊fraction · n_c⌋ train rows of each class (seeded, its own generator so
  // the rest of the run's randomness is unchanged) are held out as a dev set that picks best.pt.
  const double dev_fraction = tr.value("dev_fraction", 0.0);
  Encoded dev;
  if (dev_fraction > 0) {
    auto dev_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 4242);
    for (auto& rows : phase_rows) {
      std::map<int64_t, std::vector<int64_t>> of_class;
      for (int64_t i : rows) of_class[train.labels[i]].push_back(i);
      std::set<int64_t> held;
      for (auto& [c, idx] : of_class) {
        const int64_t n_dev = int64_t(std::floor(dev_fraction * double(idx.size())));
        auto perm = to_vec(torch::randperm(int64_t(idx.size()), dev_gen, torch::kLong));
        for (int64_t k = 0; k < n_dev; ++k) held.insert(idx[perm[k]]);
      }
      std::vector<int64_t> keep;
      for (int64_t i : rows) {
        if (!held.count(i)) { keep.push_back(i); continue; }
        dev.ids.push_back(train.ids[i]);
        dev.labels.push_back(train.labels[i]);
      }
      rows = std::move(keep);
    }
  }
  const int bs = tr.at("batch_size").get<int>();
  const int epochs = tr.at("epochs").get<int>();
  int64_t total_steps = 0;
  std::vector<int64_t> steps_of_phase;
  for (const auto& rows : phase_rows) {
    int64_t per_epoch = (int64_t(rows.size()) + bs - 1) / bs;
    steps_of_phase.push_back(trainable ? per_epoch * epochs : per_epoch);
    total_steps += steps_of_phase.back();
  }

  // 5. The run record.
  std::unique_ptr<StoreObserver> store_obs;
  RunResult result;
  if (resume_ar) {
    const int64_t pid = store::current_pid();
    db->resumeRun(opt.resume_run, pid, store::current_host(), store::process_start_time(pid));
    result.run_id = opt.resume_run;
    emit.run_id = result.run_id;
    store_obs = std::make_unique<StoreObserver>(opt.db_path, result.run_id);
    emit.obs.insert(emit.obs.begin(), store_obs.get());
  } else if (!opt.db_path.empty()) {
    db = store::RunStore::open(opt.db_path);
    store::RunRecord r;
    r.status = "running";
    r.name = spec.at("name").get<std::string>();
    r.spec_json = spec::canonical(spec);
    r.config_hash = spec::config_hash(spec);
    r.run_hash = spec::run_hash(spec);
    r.dataset = dataset_name;
    r.protocol = protocol;
    r.strategy = strategy;
    r.model = spec.at("name").get<std::string>();
    r.head = mcfg.head;
    r.data_hash = ds.data_hash;
    r.split_hash = ds.split_hash;
    r.seed = int64_t(seed);
    r.params = n_params;
    r.app_version = hl::app_version();
    r.torch_version = torch_version();
    r.cuda_version = cuda_version();
    r.device = device_name;
    r.pid = store::current_pid();
    r.host = store::current_host();
    r.process_start = store::process_start_time(r.pid);
    r.created_at = unix_now();
    r.tags = opt.tags;
    r.notes = opt.notes;
    r.summary_json = "{}";
    result.run_id = db->createRun(r);
    emit.run_id = result.run_id;
    store_obs = std::make_unique<StoreObserver>(opt.db_path, result.run_id);
    emit.obs.insert(emit.obs.begin(), store_obs.get());
  }
  {
    Event e;
    e.kind = EventKind::RunStarted;
    e.total_steps = total_steps;
    e.num_tasks = int(phases.size());
    e.message = spec.at("name").get<std::string>();
    emit(e);
  }
  emit.log("params " + std::to_string(n_params) + ", vocab " + std::to_string(tok.vocabSize()) + ", " +
           std::to_string(train.labels.size()) + " train / " + std::to_string(test.labels.size()) +
           " test rows, " + std::to_string(T) + " tasks");

  // 6. Training state.
  std::vector<torch::Tensor> params;  // every trainable parameter (EWC's)
  for (auto& p : model->parameters())
    if (p.requires_grad()) params.push_back(p);
  std::vector<Level> levels;
  std::vector<torch::Tensor> outer_params;  // the outer level: everything not in a CMS level
  {
    std::set<const void*> in_level;
    for (auto& g : model->levels()) {
      Level L;
      L.g = g;
      for (auto& p : g.params) in_level.insert(p.unsafeGetTensorImpl());
      levels.push_back(std::move(L));
    }
    for (auto& p : params)
      if (!in_level.count(p.unsafeGetTensorImpl())) outer_params.push_back(p);
  }
  // From here on a failure must not leave the run `running`: mark it failed with the reason.
  auto fail_run = [&](const std::string& msg) -> RunError {
    if (store_obs) {
      auto& w = store_obs->writer();
      w.status("failed", msg);
      w.finish("failed");
      try { w.flush(); } catch (const std::exception&) {}
    }
    return RunError(msg);
  };
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  try {
    optimizer = make_optimizer(spec.at("optimizer"), outer_params);
    for (auto& L : levels) {
      json o = spec.at("optimizer");
      if (L.g.lr > 0) o["lr"] = L.g.lr;
      L.ocfg = o;
      L.opt = make_optimizer(o, L.g.params);
      L.theta_run = flat(L.g.params);
    }
  } catch (const std::exception& e) {
    throw fail_run(std::string("optimizer: ") + e.what());
  }
  const bool memory_head = mcfg.head == "memory";
  HeadLevel head;
  head.clock = mcfg.memory_clock;
  if (memory_head) head.theta_run = model->memoryW().detach().reshape(-1).clone();
  auto data_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto replay_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 12345);
  std::vector<int64_t> replay_buffer;
  const int replay_m = ex.at("strategy").at("replay_per_class").get<int>();
  const double ewc_lambda = ex.at("strategy").at("ewc_lambda").get<double>();
  std::vector<torch::Tensor> ewc_fisher, ewc_anchor;
  const double grad_clip = tr.at("grad_clip").get<double>();
  // Checkpoints live beside the run database (<db>.checkpoints/run-<id>), so two databases never
  // share a folder; a run without a store keeps none unless a checkpoint folder is given.
  std::string ckpt_dir;
  if (!opt.checkpoint_dir.empty())
    ckpt_dir = opt.checkpoint_dir + "/" +
               (result.run_id ? "run-" + std::to_string(result.run_id)
                              : "run-" + now_iso() + "-" + std::to_string(store::current_pid()));
  else if (result.run_id)
    ckpt_dir = opt.db_path + ".checkpoints/run-" + std::to_string(result.run_id);
  const bool save_ckpt = tr.at("checkpoints").get<bool>() && !ckpt_dir.empty();
  json label_map = ds.class_names;

  metrics::Matrix R(T, std::vector<double>(T, metrics::nan()));
  metrics::Matrix RT(T, std::vector<double>(T, metrics::nan()));
  EvalRow last_eval;
  int64_t step = 0, samples = 0, outer_steps = 0;
  struct ContextAudit {
    int chunk = 1;
    int64_t expected = 0, actual = 0, clamped = 0;
  };
  // By (block, level): in-context writes of training forwards.
  std::map<std::pair<int, std::string>, ContextAudit> context_audit;
  torch::Tensor theta_run = flat(outer_params), theta_task;
  // Drift of each level (DECISIONS.md): ||θ(t) − θ(task start)|| / ||θ(task start)||, and since run start.
  auto emit_drift = [&] {
    auto now = flat(outer_params);
    emit.point("drift_task", "outer", step, drift(now, theta_task));
    emit.point("drift_run", "outer", step, drift(now, theta_run));
    for (auto& L : levels) {
      auto lnow = flat(L.g.params);
      emit.point("drift_task", L.g.name, step, drift(lnow, L.theta_task), L.g.block, L.g.clock);
      emit.point("drift_run", L.g.name, step, drift(lnow, L.theta_run), L.g.block, L.g.clock);
    }
    if (memory_head) {  // the head starts empty (W = 0): a drift against a zero state is not stored
      auto w = model->memoryW().detach().reshape(-1);
      if (head.theta_task.defined() && head.theta_task.norm().item<double>() > 0)
        emit.point("drift_task", "head", step, drift(w, head.theta_task), -1, head.clock);
      if (head.theta_run.norm().item<double>() > 0)
        emit.point("drift_run", "head", step, drift(w, head.theta_run), -1, head.clock);
    }
  };
  // A tick of CMS level i (docs/MODELS.md): a gradient step on the window's mean gradient, or for
  // a consolidating level θ ← θ + β(θ_faster − θ); then, nested, the next faster level is reset to
  // its run-start parameters with a fresh optimizer. `at` is the step the series point is logged at.
  auto tick_level = [&](size_t i, int64_t at) {
    auto& L = levels[i];
    torch::NoGradGuard ng;
    if (L.consolidates()) {
      const auto& fast = levels[i - 1].g.params;
      for (size_t k = 0; k < L.g.params.size(); ++k)
        L.g.params[k].add_(L.g.consolidate_rate * (fast[k].detach() - L.g.params[k].detach()));
      for (auto& p : L.g.params) p.mutable_grad() = torch::Tensor();
    } else {
      // The window's length: the clock for step clocks, the steps since the last tick for task clocks.
      const double n = L.g.clock_unit == "tasks" ? double(std::max<int64_t>(L.loss_n, 1)) : double(L.g.clock);
      for (auto& p : L.g.params)
        if (p.grad().defined()) p.mutable_grad().div_(n);  // window mean
      L.opt->step();
      L.opt->zero_grad();
    }
    ++L.ticks;
    if (L.loss_n > 0) emit.point("loss", L.g.name, at, L.loss_sum / double(L.loss_n), L.g.block, L.g.clock);
    L.loss_sum = 0;
    L.loss_n = 0;
    if (L.g.nested && L.g.index > 0) {
      auto& F = levels[i - 1];
      unflat_into(F.theta_run, F.g.params);
      F.opt = make_optimizer(F.ocfg, F.g.params);
    }
  };
  auto probe = [&](int64_t at, bool task_end) {
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
    for (auto& L : levels) {
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
    if (memory_head) {
      LevelProbe p;
      p.level = "head";
      p.step = at;
      p.task_end = task_end;
      p.ticks = head.ticks;
      p.params = floats(model->memoryW().reshape(-1));
      auto sv = floats(model->memoryS().reshape(-1));
      p.optimizer_state.assign(reinterpret_cast<const char*>(sv.data()), sv.size() * sizeof(float));
      opt.level_probe(p);
    }
  };
  std::string status = "finished", error;
  double best_avg = -1;
  auto t_start = std::chrono::steady_clock::now();

  auto seen_mask_for = [&](int phase) {
    auto m = torch::full({C}, kMaskedLogit);
    for (int p = 0; p <= phase; ++p)
      for (int c : phases[p]) m[c] = 0.f;
    return m.to(device);
  };
  auto eval_tasks_for = [&](int phase) {
    std::vector<int> ts;
    int upto = joint ? T - 1 : phase;
    for (int t = 0; t <= upto; ++t) ts.push_back(t);
    return ts;
  };
  auto save_checkpoint = [&](const std::string& kind, int phase, double metric) {
    if (!save_ckpt) return;
    fs::create_directories(ckpt_dir);
    std::string path = ckpt_dir + "/" + kind + ".pt";
    torch::serialize::OutputArchive ar;
    model->save(ar);
    torch::serialize::OutputArchive oa;
    optimizer->save(oa);
    ar.write("optimizer", oa);
    for (size_t i = 0; i < levels.size(); ++i) {  // level optimizers and their half-filled windows
      torch::serialize::OutputArchive la;
      levels[i].opt->save(la);
      ar.write("hopelab.level." + std::to_string(i) + ".optimizer", la);
      ar.write("hopelab.level." + std::to_string(i) + ".ticks", c10::IValue(levels[i].ticks));
      ar.write("hopelab.level." + std::to_string(i) + ".loss_sum", c10::IValue(levels[i].loss_sum));
      ar.write("hopelab.level." + std::to_string(i) + ".loss_n", c10::IValue(levels[i].loss_n));
      ar.write("hopelab.level." + std::to_string(i) + ".theta_run", levels[i].theta_run);
      for (size_t k = 0; k < levels[i].g.params.size(); ++k) {
        const auto& gr = levels[i].g.params[k].grad();
        ar.write("hopelab.level." + std::to_string(i) + ".grad." + std::to_string(k),
                 gr.defined() ? gr.detach() : torch::zeros_like(levels[i].g.params[k]));
      }
    }
    if (memory_head) {  // W and S are model buffers; the head's window and counters are here
      ar.write("hopelab.head.ticks", c10::IValue(head.ticks));
      ar.write("hopelab.head.clamped", c10::IValue(head.clamped));
      ar.write("hopelab.head.theta_run", head.theta_run);
      ar.write("hopelab.head.keys", head.keys.empty() ? torch::zeros({0, mcfg.d_model}) : torch::cat(head.keys));
      ar.write("hopelab.head.labels", head.labels.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(head.labels));
    }
    {  // the in-context memories' cadence audit so far, so a resumed run's audit covers the whole run
      json ca = json::array();
      for (const auto& [key, a] : context_audit)
        ca.push_back({{"block", key.first}, {"level", key.second}, {"chunk", a.chunk}, {"expected", a.expected}, {"actual", a.actual},
                      {"clamped", a.clamped}});
      ar.write("hopelab.context_audit", c10::IValue(ca.dump()));
    }
    write_checkpoint_format(ar);
    ar.write("hopelab.spec", c10::IValue(spec.dump()));
    ar.write("hopelab.tokenizer", c10::IValue(tok.proto()));
    ar.write("hopelab.labels", c10::IValue(label_map.dump()));
    ar.write("hopelab.phase", c10::IValue(int64_t(phase)));
    ar.write("hopelab.step", c10::IValue(step));
    // Everything a resumed run needs to continue exactly as an uninterrupted one would.
    ar.write("hopelab.samples", c10::IValue(samples));
    ar.write("hopelab.best_avg", c10::IValue(best_avg));
    ar.write("hopelab.R", c10::IValue(matrix_to_json(R).dump()));
    ar.write("hopelab.RT", c10::IValue(matrix_to_json(RT).dump()));
    ar.write("hopelab.replay", torch::tensor(replay_buffer, torch::kLong));
    ar.write("hopelab.ewc_n", c10::IValue(int64_t(ewc_fisher.size())));
    for (size_t k = 0; k < ewc_fisher.size(); ++k) {
      ar.write("hopelab.ewc_fisher." + std::to_string(k), ewc_fisher[k]);
      ar.write("hopelab.ewc_anchor." + std::to_string(k), ewc_anchor[k]);
    }
    ar.write("hopelab.rng.data", generator_state(data_gen));
    ar.write("hopelab.rng.replay", generator_state(replay_gen));
    at::Generator global_gen = at::detail::getDefaultCPUGenerator();
    ar.write("hopelab.rng.global", generator_state(global_gen));
    ar.write("hopelab.theta_run", theta_run);
    ar.save_to(path + ".tmp");
    fs::rename(path + ".tmp", path);
    Event e;
    e.kind = EventKind::Checkpoint;
    e.message = kind;
    e.path = path;
    e.step = step;
    e.task = phase;
    e.value = metric;
    emit(e);
  };
  auto periodic_eval = [&](int phase) {
    auto row = evaluate(model, test, ds.tasks, eval_tasks_for(phase), seen_mask_for(phase), pad);
    auto ts = eval_tasks_for(phase);
    for (size_t k = 0; k < ts.size(); ++k) {
      Event e;
      e.kind = EventKind::Eval;
      e.step = step;
      e.task = phase;
      e.eval_task = ts[k];
      e.acc = row.acc[k];
      e.task_il_acc = row.til[k];
      emit(e);
      emit.point("acc.task" + std::to_string(ts[k]), "eval", step, row.acc[k], ts[k]);
    }
    emit_drift();
  };

  int first_phase = 0;
  if (resume_ar) try {
    auto& ar = *resume_ar;
    if (read_string(ar, "hopelab.spec") != spec.dump())
      throw RunError("the checkpoint belongs to another run (its spec differs)");
    model->load(ar);
    torch::serialize::InputArchive oa;
    ar.read("optimizer", oa);
    optimizer->load(oa);
    for (size_t i = 0; i < levels.size(); ++i) {
      const std::string pre = "hopelab.level." + std::to_string(i) + ".";
      torch::serialize::InputArchive la;
      ar.read(pre + "optimizer", la);
      levels[i].opt->load(la);
      levels[i].ticks = read_int(ar, pre + "ticks");
      levels[i].loss_sum = read_double(ar, pre + "loss_sum");
      levels[i].loss_n = read_int(ar, pre + "loss_n");
      ar.read(pre + "theta_run", levels[i].theta_run);
      for (size_t k = 0; k < levels[i].g.params.size(); ++k) {
        torch::Tensor gr;
        ar.read(pre + "grad." + std::to_string(k), gr);
        levels[i].g.params[k].mutable_grad() = gr.clone();
      }
    }
    if (memory_head) {
      head.ticks = read_int(ar, "hopelab.head.ticks");
      head.clamped = read_int(ar, "hopelab.head.clamped");
      ar.read("hopelab.head.theta_run", head.theta_run);
      torch::Tensor k, y;
      ar.read("hopelab.head.keys", k);
      ar.read("hopelab.head.labels", y);
      if (k.size(0) > 0) {
        head.keys.push_back(k.to(device));
        head.labels.push_back(y.to(device));
      }
    }
    {
      c10::IValue ca;
      if (ar.try_read("hopelab.context_audit", ca))  // absent in checkpoints of older builds
        for (const auto& a : json::parse(ca.toStringRef())) {
          auto& c = context_audit[{a.at("block").get<int>(), a.at("level").get<std::string>()}];
          c.chunk = a.at("chunk").get<int>();
          c.expected = a.at("expected").get<int64_t>();
          c.actual = a.at("actual").get<int64_t>();
          c.clamped = a.at("clamped").get<int64_t>();
        }
    }
    first_phase = int(read_int(ar, "hopelab.phase")) + 1;
    step = read_int(ar, "hopelab.step");
    outer_steps = trainable ? step : 0;
    samples = read_int(ar, "hopelab.samples");
    best_avg = read_double(ar, "hopelab.best_avg");
    R = matrix_from_json(json::parse(read_string(ar, "hopelab.R")));
    RT = matrix_from_json(json::parse(read_string(ar, "hopelab.RT")));
    torch::Tensor rb;
    ar.read("hopelab.replay", rb);
    replay_buffer = to_vec(rb);
    const int64_t n_ewc = read_int(ar, "hopelab.ewc_n");
    ewc_fisher.assign(n_ewc, torch::Tensor());
    ewc_anchor.assign(n_ewc, torch::Tensor());
    for (int64_t k = 0; k < n_ewc; ++k) {
      ar.read("hopelab.ewc_fisher." + std::to_string(k), ewc_fisher[k]);
      ar.read("hopelab.ewc_anchor." + std::to_string(k), ewc_anchor[k]);
    }
    torch::Tensor st;
    ar.read("hopelab.rng.data", st);
    set_generator_state(data_gen, st);
    ar.read("hopelab.rng.replay", st);
    set_generator_state(replay_gen, st);
    ar.read("hopelab.rng.global", st);
    at::Generator global_gen = at::detail::getDefaultCPUGenerator();
    set_generator_state(global_gen, st);
    ar.read("hopelab.theta_run", theta_run);
    if (int(R.size()) != T) throw RunError("resume: the checkpoint's accuracy matrix does not match the dataset's tasks");
    emit.log("resumed run " + std::to_string(result.run_id) + " after task " + std::to_string(first_phase) + " of " +
             std::to_string(phases.size()) + " (step " + std::to_string(step) + ")");
  } catch (const std::exception& e) {
    throw fail_run(std::string("resume: ") + e.what());
  }
  int64_t boundaries = first_phase;  // task ends so far: the clock of task-clocked levels
  try {
    model->train();
    probe(step - 1, false);
    for (int phase = first_phase; phase < int(phases.size()); ++phase) {
      theta_task = flat(outer_params);
      for (auto& L : levels) L.theta_task = flat(L.g.params);
      if (memory_head) head.theta_task = model->memoryW().detach().reshape(-1).clone();
      {
        Event e;
        e.kind = EventKind::TaskStarted;
        e.task = phase;
        e.num_tasks = int(phases.size());
        emit(e);
      }
      const auto& rows = phase_rows[phase];
      auto seen = seen_mask_for(phase);
      int64_t eval_every = tr.at("eval_every").get<int64_t>();
      if (eval_every <= 0) eval_every = std::max<int64_t>(1, steps_of_phase[phase] / 4);
      int64_t phase_step = 0;
      const int n_epochs = trainable ? epochs : 1;
      for (int ep = 0; ep < n_epochs && status == "finished"; ++ep) {
        auto perm = to_vec(torch::randperm(int64_t(rows.size()), data_gen, torch::kLong));
        for (size_t s = 0; s < perm.size(); s += bs) {
          if (control && control->pauseRequested() && !control->cancelRequested()) {
            // Observers (the app's Live header, queue and status bar) learn when the trainer
            // really stops and restarts, not when the request was made.
            Event pe;
            pe.kind = EventKind::Status;
            pe.status = "paused";
            pe.step = step;
            emit(pe);
            while (control->pauseRequested() && !control->cancelRequested())
              std::this_thread::sleep_for(std::chrono::milliseconds(50));
            pe.status = "running";
            emit(pe);
          }
          if (control && control->cancelRequested()) {
            status = "cancelled";
            break;
          }
          std::vector<int64_t> idx;
          for (size_t k = s; k < std::min(perm.size(), s + bs); ++k) idx.push_back(rows[perm[k]]);
          if (!trainable) {  // ncm head: the frozen network only feeds the class means
            torch::NoGradGuard ng;
            model->eval();
            auto feats = model->features(batch_tokens(train, idx, pad).to(device));
            model->ncmObserve(feats, batch_labels(train, idx).to(device));
          } else {
            if (strategy == "replay" && !replay_buffer.empty()) {
              auto pick = torch::randint(int64_t(replay_buffer.size()), {int64_t(idx.size())}, replay_gen, torch::kLong);
              for (int64_t p : to_vec(pick)) idx.push_back(replay_buffer[p]);
            }
            auto x = batch_tokens(train, idx, pad).to(device);
            auto y = batch_labels(train, idx).to(device);
            auto pooled = model->features(x);
            auto logits = model->logits(pooled) + seen;
            // Level 0, the in-context memories: their loss before writes and drift, per step.
            auto ctx = model->contextStats();
            if (!ctx.empty()) {
              auto lens = to_vec(x.ne(pad).sum(1));
              for (const auto& cs : ctx) {
                const int C = cs.chunk;
                emit.point("loss", cs.level, step, cs.loss, cs.block, C);
                emit.point("drift", cs.level, step, cs.drift, cs.block, C);
                auto& a = context_audit[{cs.block, cs.level}];
                a.chunk = C;
                a.actual += cs.writes;
                a.clamped += cs.clamped;
                // The titans memory also writes its persistent tokens (0 for other mixers).
                const auto& bc = mcfg.blocks[cs.block];
                const int P = bc.type == "titans" || (bc.type == "hope" && bc.mixer == "titans") ? bc.persistent_tokens : 0;
                for (int64_t n : lens) a.expected += (n + P + C - 1) / C;
              }
            }
            auto loss = torch::nn::functional::cross_entropy(logits, y);
            torch::Tensor total = loss;
            if (strategy == "ewc" && !ewc_fisher.empty()) {
              torch::Tensor pen = torch::zeros({}, loss.options());
              for (size_t k = 0; k < params.size(); ++k)
                pen = pen + (ewc_fisher[k] * (params[k] - ewc_anchor[k]).pow(2)).sum();
              total = loss + 0.5 * ewc_lambda * pen;
            }
            double lv = loss.item<double>();
            if (opt.poison_loss && opt.poison_loss(step)) lv = std::nan("");  // test seam
            if (!std::isfinite(lv) || !std::isfinite(total.item<double>())) {
              status = "diverged";
              result.diverged_step = step;
              error = "loss became " + std::string(std::isnan(lv) ? "NaN" : "Inf") + " at step " +
                      std::to_string(step) + " (task " + std::to_string(phase) +
                      "); lower optimizer.lr or set training.grad_clip";
              break;
            }
            optimizer->zero_grad();  // the outer level only: CMS levels keep accumulating
            total.backward();
            if (grad_clip > 0) torch::nn::utils::clip_grad_norm_(outer_params, grad_clip);
            optimizer->step();
            ++outer_steps;
            emit.point("loss", "outer", step, lv);
            for (size_t i = 0; i < levels.size(); ++i) {  // fastest first within a block
              auto& L = levels[i];
              L.loss_sum += lv;
              ++L.loss_n;
              if (L.consolidates())  // no gradient step: its gradient is not kept
                for (auto& p : L.g.params) p.mutable_grad() = torch::Tensor();
              if (L.g.clock_unit == "tasks" || (step + 1) % L.g.clock != 0) continue;
              tick_level(i, step);
            }
            if (memory_head) {  // the head level: its window's rows are written at its tick
              head.keys.push_back(model->memoryKeys(pooled));
              head.labels.push_back(y.detach().clone());
              if ((step + 1) % head.clock == 0) {
                auto K = torch::cat(head.keys);
                auto Y = torch::cat(head.labels);
                const double head_loss = model->memoryWrite(K, Y, &head.clamped);
                ++head.ticks;
                emit.point("loss", "head", step, head_loss / double(std::max<int64_t>(1, K.size(0))), -1, head.clock);
                head.keys.clear();
                head.labels.clear();
              }
            }
          }
          ++step;
          ++phase_step;
          samples += int64_t(idx.size());
          probe(step - 1, false);
          Event pe;
          pe.kind = EventKind::Progress;
          pe.step = step;
          pe.total_steps = total_steps;
          pe.samples_seen = samples;
          pe.task = phase;
          pe.num_tasks = int(phases.size());
          pe.epoch = ep;
          emit(pe);
          if (trainable && phase_step % eval_every == 0 && phase_step < steps_of_phase[phase]) periodic_eval(phase);
        }
      }
      if (status != "finished") break;
      model->train();
      // A task boundary: task-clocked CMS levels tick every `clock` boundaries.
      ++boundaries;
      if (trainable) {
        bool ticked = false;
        for (size_t i = 0; i < levels.size(); ++i)
          if (levels[i].g.clock_unit == "tasks" && boundaries % levels[i].g.clock == 0) {
            tick_level(i, step - 1);
            ticked = true;
          }
        if (ticked) probe(step - 1, true);
      }

      // End of the phase: strategy bookkeeping, then the accuracy-matrix row.
      if (strategy == "replay" && !joint) {
        for (int c : phases[phase]) {
          std::vector<int64_t> of_c;
          for (int64_t i : rows)
            if (train.labels[i] == c) of_c.push_back(i);
          auto perm = to_vec(torch::randperm(int64_t(of_c.size()), replay_gen, torch::kLong));
          for (int k = 0; k < std::min<int>(replay_m, int(of_c.size())); ++k) replay_buffer.push_back(of_c[perm[k]]);
        }
      }
      if (strategy == "ewc" && !joint && trainable) {
        // Diagonal empirical Fisher over this task's rows (mean of squared batch gradients),
        // accumulated over tasks; the anchor is the latest parameters (online EWC, gamma = 1).
        if (ewc_fisher.empty())
          for (auto& p : params) ewc_fisher.push_back(torch::zeros_like(p));
        std::vector<torch::Tensor> f;
        for (auto& p : params) f.push_back(torch::zeros_like(p));
        model->eval();
        std::vector<torch::Tensor> stash;  // CMS windows in progress survive the Fisher pass
        for (auto& L : levels)
          for (auto& p : L.g.params) stash.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::Tensor());
        int nb = 0;
        for (size_t s = 0; s < rows.size(); s += bs, ++nb) {
          std::vector<int64_t> idx(rows.begin() + s, rows.begin() + std::min(rows.size(), s + bs));
          auto logits = model->forward(batch_tokens(train, idx, pad).to(device)) + seen;
          auto loss = torch::nn::functional::cross_entropy(logits, batch_labels(train, idx).to(device));
          for (auto& p : params) p.mutable_grad() = torch::Tensor();
          loss.backward();
          for (size_t k = 0; k < params.size(); ++k)
            // The batch-mean gradient's square is ~1/B of the mean per-sample squared gradient
            // (the empirical Fisher); scale by B instead of paying for per-sample gradients.
            if (params[k].grad().defined()) f[k] += params[k].grad().detach().pow(2) * double(idx.size());
        }
        for (auto& p : params) p.mutable_grad() = torch::Tensor();
        {
          size_t i = 0;
          for (auto& L : levels)
            for (auto& p : L.g.params) p.mutable_grad() = stash[i++];
        }
        model->train();
        ewc_anchor.clear();
        for (size_t k = 0; k < params.size(); ++k) {
          ewc_fisher[k] += f[k] / std::max(nb, 1);
          ewc_anchor.push_back(params[k].detach().clone());
        }
      }

      last_eval = evaluate(model, test, ds.tasks, eval_tasks_for(phase), seen, pad);
      auto ts = eval_tasks_for(phase);
      int row_i = joint ? T - 1 : phase;
      for (size_t k = 0; k < ts.size(); ++k) {
        R[row_i][ts[k]] = last_eval.acc[k];
        RT[row_i][ts[k]] = last_eval.til[k];
        Event e;
        e.kind = EventKind::Accuracy;
        e.task = row_i;
        e.eval_task = ts[k];
        e.acc = last_eval.acc[k];
        e.task_il_acc = last_eval.til[k];
        emit(e);
        Event ev = e;
        ev.kind = EventKind::Eval;
        ev.step = step;
        ev.task = phase;
        emit(ev);
        emit.point("acc.task" + std::to_string(ts[k]), "eval", step, last_eval.acc[k], ts[k]);
      }
      double avg = 0;
      for (double a : last_eval.acc) avg += a;
      avg /= std::max<size_t>(1, last_eval.acc.size());
      emit.point("avg_acc", "eval", step, avg);
      emit_drift();
      save_checkpoint("last", phase, avg);
      double select = avg;  // best.pt: the dev set's mean accuracy when there is one, else the test's
      if (!dev.labels.empty()) {
        auto drow = evaluate(model, dev, ds.tasks, eval_tasks_for(phase), seen, pad);
        select = 0;
        int nd = 0;
        for (double a : drow.acc)
          if (!std::isnan(a)) { select += a; ++nd; }
        select /= std::max(nd, 1);
        emit.point("dev_avg_acc", "eval", step, select);
      }
      if (select >= best_avg) {
        best_avg = select;
        save_checkpoint("best", phase, select);
      }
      Event e;
      e.kind = EventKind::TaskFinished;
      e.task = phase;
      e.num_tasks = int(phases.size());
      e.value = avg;
      emit(e);
    }
  } catch (const std::exception& ex_) {
    status = "failed";
    error = ex_.what();
  }

  // 7. Summary.
  json summary;
  int rows_done = 0;
  for (int i = 0; i < T; ++i)
    if (!std::isnan(R[i][0])) rows_done = i + 1;
  if (joint) {
    double a = 0, til = 0;
    int n = 0;
    for (int j = 0; j < T; ++j)
      if (!std::isnan(R[T - 1][j])) { a += R[T - 1][j]; til += RT[T - 1][j]; ++n; }
    summary["final_avg_acc"] = n ? json(a / n) : json(nullptr);
    summary["task_il_acc"] = n ? json(til / n) : json(nullptr);
    summary["forgetting"] = nullptr;
    summary["bwt"] = nullptr;
    summary["avg_acc"] = n ? json::array({a / n}) : json::array();
  } else if (rows_done > 0) {
    metrics::Matrix done(R.begin(), R.begin() + rows_done);
    for (auto& row : done) row.resize(rows_done);
    auto s = metrics::summarize(done);
    summary["final_avg_acc"] = num_or_null(s.final_avg_acc);
    summary["forgetting"] = num_or_null(s.forgetting);
    summary["bwt"] = num_or_null(s.bwt);
    summary["avg_acc"] = s.avg_acc;
    double til = 0;
    for (int j = 0; j < rows_done; ++j) til += RT[rows_done - 1][j];
    summary["task_il_acc"] = til / rows_done;
  } else {
    for (const char* k : {"final_avg_acc", "forgetting", "bwt", "task_il_acc"}) summary[k] = nullptr;
    summary["avg_acc"] = json::array();
  }
  summary["macro_f1"] = last_eval.y_true.empty() ? json(nullptr)
                                                 : json(metrics::macro_f1(last_eval.y_true, last_eval.y_pred));
  summary["accuracy_matrix"] = matrix_to_json(R);  // R and RT are T x T throughout
  summary["task_il_matrix"] = matrix_to_json(RT);
  summary["tasks_completed"] = joint ? (rows_done ? 1 : 0) : rows_done;
  summary["num_tasks"] = T;
  summary["steps"] = step;
  // Cadence audit: expected vs actual updates per level (a partial window at the end does not tick).
  {
    const int64_t trained = trainable ? step : 0;
    json cad = json::array();
    cad.push_back({{"level", "outer"}, {"block", -1}, {"clock", 1}, {"expected", trained}, {"actual", outer_steps}});
    for (const auto& L : levels) {
      const bool tasks = L.g.clock_unit == "tasks";
      json entry = {{"level", L.g.name}, {"block", L.g.block}, {"clock", L.g.clock},
                    {"expected", tasks ? (trainable ? boundaries : 0) / L.g.clock : trained / L.g.clock},
                    {"actual", L.ticks}};
      if (tasks) entry["clock_unit"] = "tasks";
      cad.push_back(entry);
    }
    if (memory_head) {
      cad.push_back({{"level", "head"}, {"block", -1}, {"clock", head.clock}, {"expected", trained / head.clock},
                     {"actual", head.ticks}});
      summary["head_clamped_writes"] = head.clamped;
    }
    int64_t clamped = 0;
    for (const auto& [key, a] : context_audit) {  // expected: sum over sequences of ceil(tokens / C)
      cad.push_back({{"level", key.second}, {"block", key.first}, {"clock", a.chunk}, {"expected", a.expected},
                     {"actual", a.actual}});
      clamped += a.clamped;
    }
    summary["cadence"] = cad;
    if (!context_audit.empty()) summary["clamped_writes"] = clamped;
  }
  if (!dev.labels.empty()) summary["dev_rows"] = int64_t(dev.labels.size());
  summary["samples_seen"] = samples;
  summary["params"] = n_params;
  summary["train_seconds"] =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  summary["classes"] = label_map;
  summary["tasks"] = ds.tasks;
  if (!ds.warnings.empty()) summary["data_warnings"] = ds.warnings;

  result.status = status;
  result.error = error;
  result.summary = summary;
  {
    Event e;
    e.kind = EventKind::Status;
    e.status = status;
    e.message = error;
    e.step = step;
    emit(e);
  }
  if (store_obs) {
    auto& w = store_obs->writer();
    if (status != "finished") w.status(status, error, result.diverged_step);
    w.summary(summary.dump());
    w.finish(status);
    w.flush();
  }
  return result;
}

}  // namespace hl::train
