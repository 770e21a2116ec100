#include "engine/train/run_setup.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "engine/common/error.h"
#include "engine/common/version.h"
#include "engine/models/level_init.h"
#include "engine/spec/spec.h"
#include "engine/train/checkpoint_format.h"
#include "engine/train/model_config.h"
#include "engine/train/trainer_state.h"

using json = nlohmann::json;

namespace fs = std::filesystem;

namespace hl::train {
namespace {

std::string now_iso() {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::gmtime(&t));
  return buf;
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// 1. The spec: a resumed run's own (with its checkpoint), else the user's completed.
// A checkpoint opened and its format checked; RunError (prefixed by `context`) naming the file.
std::unique_ptr<torch::serialize::InputArchive> open_checkpoint(const std::string& path, const std::string& context) {
  auto ar = std::make_unique<torch::serialize::InputArchive>();
  try {
    ar->load_from(path);
  } catch (const std::exception& e) {
    const std::string what = e.what();  // LibTorch appends a backtrace: its first line says it
    throw RunError(context + "cannot read checkpoint " + path + " (" + what.substr(0, what.find('\n')) + ")");
  }
  check_checkpoint_format(*ar, path);
  return ar;
}

void resolve_spec(const json& user_spec, const RunOptions& opt, RunSetup& s) {
  if (opt.resume_run > 0) {
    if (opt.db_path.empty()) throw SpecError("resume: a run database is needed (--db)");
    s.db = store::RunStore::open(opt.db_path);
    auto rec = s.db->getRun(opt.resume_run);
    const std::string id = std::to_string(opt.resume_run);
    if (!rec) throw SpecError("resume: run " + id + " is not in " + opt.db_path + " (see `hopelab-cli runs`)");
    if (rec->status == RunStatus::Finished)
      throw SpecError("resume: run " + id + " already finished; nothing to resume");
    if (rec->status == RunStatus::Running)
      throw SpecError("resume: run " + id + " is still running (pid " + std::to_string(rec->pid) + " on " + rec->host +
                      "); cancel it first");
    std::string path;
    for (const auto& c : s.db->checkpoints(opt.resume_run))
      if (c.kind == CheckpointKind::Last) path = c.path;
    if (path.empty() || !fs::exists(path))
      throw RunError("resume: run " + id + " has no checkpoint to resume from" +
                     (path.empty() ? std::string(" (checkpoints are saved at the end of each task)")
                                   : " (" + path + " is missing)"));
    s.spec = json::parse(rec->spec_json);
    s.resume_data_hash = rec->data_hash;
    s.resume_split_hash = rec->split_hash;
    s.resume_ar = open_checkpoint(path, "resume: ");
  } else {
    s.spec = spec::complete(user_spec);
  }
  auto v = spec::validate(s.spec);
  if (!v.ok()) throw SpecError("the spec has errors:\n" + v.format());
  s.dataset_name = s.ex().at("dataset").get<std::string>();
  s.protocol = parse<Protocol>(s.ex().at("protocol").get<std::string>(), "experiment.protocol");
  s.joint = s.protocol == Protocol::Joint;
  s.strategy = parse<StrategyType>(s.ex().at("strategy").at("type").get<std::string>(), "experiment.strategy.type");
  s.seed = s.ex().at("seed").get<uint64_t>();
  s.device_name = s.ex().at("device").get<std::string>();
  if (s.device_name == "cuda" && !torch::cuda::is_available())
    throw SpecError("experiment.device: cuda requested but no CUDA device is available (use --device cpu)");
  s.device = torch::Device(s.device_name == "cuda" ? torch::kCUDA : torch::kCPU);
  if (s.tr().at("threads").get<int>() > 0) torch::set_num_threads(s.tr().at("threads").get<int>());
}

// 2. Data (errors here are data errors: nothing is stored yet), tokenizer and encoded rows.
void load_data(const RunOptions& opt, RunSetup& s, Emitter& emit) {
  data::LoadOptions lo;
  lo.data_dir = opt.data_dir;
  lo.split = s.ex().at("split").get<std::string>();
  lo.task_order = s.ex().at("task_order").get<int>();
  lo.limit_per_class = s.tr().at("limit_per_class").get<int>();
  lo.eval_limit_per_class = s.tr().at("eval_limit_per_class").get<int>();
  lo.seed = s.seed;
  lo.text_column = s.ex().at("data").at("text_column").get<std::string>();
  lo.label_column = s.ex().at("data").at("label_column").get<std::string>();
  lo.classes_per_task = s.ex().at("data").at("classes_per_task").get<int>();
  s.ds = data::load(s.dataset_name, lo);
  const auto& ds = s.ds;
  if (s.resume_ar && !s.resume_data_hash.empty() &&
      (ds.data_hash != s.resume_data_hash || ds.split_hash != s.resume_split_hash))
    throw DataError("resume: the data of " + s.dataset_name + " in " + opt.data_dir + " differs from what run " +
                    std::to_string(opt.resume_run) +
                    " trained on (data or split hash changed); resume with the original data");
  std::vector<int> test_rows(ds.class_names.size(), 0);
  for (const auto& r : ds.test) ++test_rows[r.label];
  for (size_t t = 0; t < ds.tasks.size(); ++t) {
    int n = 0;
    for (int c : ds.tasks[t]) n += test_rows[c];
    if (n == 0)
      throw DataError(s.dataset_name + ": task " + std::to_string(t + 1) + " (classes " +
                      ds.class_names[ds.tasks[t][0]] +
                      ", ...) has no test rows, so it cannot be evaluated: the test file must contain every class "
                      "that the train file has");
  }
  for (const auto& w : ds.warnings) emit.log("warning: " + w);

  const std::string cache_dir = opt.cache_dir.empty() ? data::user_data_dir() + "/cache" : opt.cache_dir;
  const json& m = s.spec.at("model");
  int vocab = m.at("vocab_size").get<int>() > 0 ? m.at("vocab_size").get<int>() : ds.default_vocab;
  int max_len = m.at("max_len").get<int>() > 0 ? m.at("max_len").get<int>() : ds.max_len;
  // DECISIONS.md: the tokenizer is trained on all of the dataset's train texts, also when the run
  // itself subsamples them (--limit-per-class), so quick and full runs tokenize alike.
  std::vector<std::string> texts;
  if (!s.resume_ar) {
    data::Dataset all = ds;
    if (lo.limit_per_class > 0) {
      data::LoadOptions lo_all = lo;
      lo_all.limit_per_class = 0;
      all = data::load(s.dataset_name, lo_all);
    }
    texts.reserve(all.train.size());
    for (const auto& r : all.train) texts.push_back(r.text);
  }
  std::string tok_warning;
  s.tok = s.resume_ar ? data::Tokenizer::fromProto(checkpoint_string(*s.resume_ar, "hopelab.tokenizer"))
                      : data::Tokenizer::train(texts, vocab, cache_dir + "/tokenizers", &tok_warning);
  if (!tok_warning.empty()) emit.log("warning: " + tok_warning);
  s.pad = s.tok.padId();
  s.train = encode(ds.train, s.tok, max_len);
  s.test = encode(ds.test, s.tok, max_len);
  s.mcfg = model_config(s.spec, s.tok.vocabSize(), max_len, int(ds.class_names.size()), int(s.pad));
}

// 3. The model (seeded); consolidating levels must mirror the next faster level's shapes.
void build_model(RunSetup& s) {
  torch::manual_seed(s.seed);
  s.C = int(s.ds.class_names.size());
  s.model = models::build(s.mcfg);
  // training.kernels; a spec recorded before the field existed has none: auto.
  s.model->setFusedKernels(s.tr().value("kernels", std::string("auto")) != "reference");
  auto gs = s.model->levels();
  for (size_t i = 0; i < gs.size(); ++i) {
    if (gs[i].transfer != Transfer::Consolidate || gs[i].index == 0) continue;
    const auto& f = gs[i - 1];
    bool same = f.block == gs[i].block && f.params.size() == gs[i].params.size();
    for (size_t k = 0; same && k < f.params.size(); ++k) same = f.params[k].sizes().equals(gs[i].params[k].sizes());
    if (!same)
      throw SpecError("model.blocks[" + std::to_string(gs[i].block) +
                      "].transfer: consolidate needs every level of the block to have the same parameter shapes");
  }
  // Level stacking; a resumed run takes every parameter from its checkpoint instead.
  if (!s.resume_ar) models::init_levels_from_checkpoints(*s.model);
  s.model->to(s.device);
  s.n_params = models::count_params(*s.model);
  s.trainable = s.model->headIsTrainable();
}

// training.dev_fraction: ⌊fraction · n_c⌋ train rows of each class (seeded, its own generator so
// the rest of the run's randomness is unchanged) are held out as a dev set that picks best.pt.
void hold_out_dev(RunSetup& s, double dev_fraction) {
  auto dev_gen = at::make_generator<at::CPUGeneratorImpl>(s.seed + 4242);
  for (auto& rows : s.phase_rows) {
    std::map<int64_t, std::vector<int64_t>> of_class;
    for (int64_t i : rows) of_class[s.train.labels[i]].push_back(i);
    std::set<int64_t> held;
    for (auto& [c, idx] : of_class) {
      const int64_t n_dev = int64_t(std::floor(dev_fraction * double(idx.size())));
      auto perm = to_vec(torch::randperm(int64_t(idx.size()), dev_gen, torch::kLong));
      for (int64_t k = 0; k < n_dev; ++k) held.insert(idx[perm[k]]);
    }
    std::vector<int64_t> keep;
    for (int64_t i : rows) {
      if (!held.count(i)) {
        keep.push_back(i);
        continue;
      }
      s.dev.ids.push_back(s.train.ids[i]);
      s.dev.labels.push_back(s.train.labels[i]);
    }
    rows = std::move(keep);
  }
}

// 4. The protocol's phases: every task in turn, or (joint) all classes at once.
void plan_phases(RunSetup& s) {
  s.T = int(s.ds.tasks.size());
  if (s.joint) {
    std::vector<int> all;
    for (const auto& t : s.ds.tasks) all.insert(all.end(), t.begin(), t.end());
    s.phases.push_back(all);
  } else {
    s.phases = s.ds.tasks;
  }
  std::vector<int> class_phase(s.C, -1);
  for (size_t p = 0; p < s.phases.size(); ++p)
    for (int c : s.phases[p]) class_phase[c] = int(p);
  s.phase_rows.assign(s.phases.size(), {});
  for (size_t i = 0; i < s.train.labels.size(); ++i)
    if (class_phase[s.train.labels[i]] >= 0) s.phase_rows[class_phase[s.train.labels[i]]].push_back(int64_t(i));
  const double dev_fraction = s.tr().value("dev_fraction", 0.0);
  if (dev_fraction > 0) hold_out_dev(s, dev_fraction);
  s.batch_size = s.tr().at("batch_size").get<int>();
  s.epochs = s.tr().at("epochs").get<int>();
  for (const auto& rows : s.phase_rows) {
    int64_t per_epoch = (int64_t(rows.size()) + s.batch_size - 1) / s.batch_size;
    s.steps_of_phase.push_back(s.trainable ? per_epoch * s.epochs : per_epoch);
    s.total_steps += s.steps_of_phase.back();
  }
}

store::RunRecord new_record(const RunSetup& s, const RunOptions& opt) {
  store::RunRecord r;
  r.status = RunStatus::Running;
  r.name = s.spec.at("name").get<std::string>();
  r.spec_json = spec::canonical(s.spec);
  r.config_hash = spec::config_hash(s.spec);
  r.run_hash = spec::run_hash(s.spec);
  r.dataset = s.dataset_name;
  r.protocol = name(s.protocol);
  r.strategy = name(s.strategy);
  r.model = s.spec.at("name").get<std::string>();
  r.head = name(s.mcfg.head);
  r.data_hash = s.ds.data_hash;
  r.split_hash = s.ds.split_hash;
  r.seed = int64_t(s.seed);
  r.params = s.n_params;
  r.app_version = hl::app_version();
  r.torch_version = torch_version();
  r.cuda_version = cuda_version();
  r.device = s.device_name;
  r.pid = store::current_pid();
  r.host = store::current_host();
  r.process_start = store::process_start_time(r.pid);
  r.created_at = unix_now();
  r.tags = opt.tags;
  r.notes = opt.notes;
  r.summary_json = "{}";
  return r;
}

// 5. The run record (continued when resuming), the store observer first among the observers,
// the checkpoint folder beside the database, and the RunStarted event.
void open_record(const RunOptions& opt, RunSetup& s, Emitter& emit) {
  if (s.resume_ar) {
    const int64_t pid = store::current_pid();
    s.db->resumeRun(opt.resume_run, pid, store::current_host(), store::process_start_time(pid));
    s.run_id = opt.resume_run;
  } else if (!opt.db_path.empty()) {
    s.db = store::RunStore::open(opt.db_path);
    s.run_id = s.db->createRun(new_record(s, opt));
  }
  if (s.run_id) {
    emit.run_id = s.run_id;
    try {
      if (opt.writer_open_fault) opt.writer_open_fault();
      s.store_obs = std::make_unique<StoreObserver>(opt.db_path, s.run_id);
    } catch (const std::exception& e) {
      // The run exists but nothing can be written to it: say why there rather than leave it
      // `running` for as long as this process lives (a GUI's), then report the error as it came.
      try {
        s.db->setStatus(s.run_id, RunStatus::Failed, std::string("the run's writer could not open: ") + e.what());
        s.db->finish(s.run_id, RunStatus::Failed);
      } catch (const std::exception&) {
      }
      throw;
    }
    if (opt.on_commit) s.store_obs->writer().setCommitHook(opt.on_commit);
    emit.obs.insert(emit.obs.begin(), s.store_obs.get());
  }
  Event e;
  e.kind = EventKind::RunStarted;
  e.total_steps = s.total_steps;
  e.num_tasks = int(s.phases.size());
  e.message = s.spec.at("name").get<std::string>();
  emit(e);
  emit.log("params " + std::to_string(s.n_params) + ", vocab " + std::to_string(s.tok.vocabSize()) + ", " +
           std::to_string(s.train.labels.size()) + " train / " + std::to_string(s.test.labels.size()) + " test rows, " +
           std::to_string(s.T) + " tasks");
  // Checkpoints live beside the run database (<db>.checkpoints/run-<id>), so two databases never
  // share a folder; a run without a store keeps none unless a checkpoint folder is given. The path
  // is made absolute: the store records it, and a relative one (`--db runs.db`) would name another
  // file as soon as the database is opened from another working directory.
  std::error_code ec;
  const auto absolute = [&](const std::string& p) {
    const fs::path a = fs::absolute(p, ec);
    return ec ? p : a.lexically_normal().string();
  };
  if (!opt.checkpoint_dir.empty())
    s.ckpt_dir = absolute(opt.checkpoint_dir) + "/" +
                 (s.run_id ? "run-" + std::to_string(s.run_id)
                           : "run-" + now_iso() + "-" + std::to_string(store::current_pid()));
  else if (s.run_id)
    s.ckpt_dir = absolute(opt.db_path) + ".checkpoints/run-" + std::to_string(s.run_id);
  s.save_ckpt = s.tr().at("checkpoints").get<bool>() && !s.ckpt_dir.empty();
}

}  // namespace

RunSetup set_up_model(const json& user_spec, const RunOptions& opt, Emitter& emit, const std::string& checkpoint,
                      const std::vector<std::string>& sets) {
  RunSetup s;
  json spec = user_spec;
  if (!checkpoint.empty()) {
    if (!fs::is_regular_file(checkpoint)) throw RunError("checkpoint " + checkpoint + " does not exist");
    s.resume_ar = open_checkpoint(checkpoint, "");
    spec = json::parse(checkpoint_string(*s.resume_ar, "hopelab.spec"));
    for (const auto& set : sets) {
      const auto eq = set.find('=');
      if (eq == std::string::npos) throw SpecError("--set " + set + ": expected PATH=VALUE");
      spec::set_path(spec, set.substr(0, eq), set.substr(eq + 1));
    }
  } else if (!sets.empty()) {
    throw SpecError("set_up_model: overrides go with a checkpoint; edit the spec itself otherwise");
  }
  RunOptions o = opt;
  o.resume_run = 0;
  resolve_spec(spec, o, s);
  load_data(o, s, emit);
  build_model(s);
  if (s.resume_ar) {
    // Module::load replaces each tensor by the saved one whatever its shape: compare the shapes
    // the spec builds with those loaded, so an override that resizes the model is named here
    // rather than failing inside a forward.
    std::map<std::string, std::vector<int64_t>> built;
    for (const auto& p : s.model->named_parameters(true)) built[p.key()] = p.value().sizes().vec();
    for (const auto& b : s.model->named_buffers(true)) built[b.key()] = b.value().sizes().vec();
    std::string mismatch;
    try {
      s.model->load(*s.resume_ar);
      auto check = [&](const std::string& n, const torch::Tensor& t) {
        auto it = built.find(n);
        if (mismatch.empty() && it != built.end() && it->second != t.sizes().vec())
          mismatch = n + " is " + c10::str(t.sizes()) + " in the checkpoint, " +
                     c10::str(c10::IntArrayRef(it->second)) + " in the model the spec builds";
      };
      for (const auto& p : s.model->named_parameters(true)) check(p.key(), p.value());
      for (const auto& b : s.model->named_buffers(true)) check(b.key(), b.value());
    } catch (const c10::Error& e) {
      if (sets.empty()) throw;
      mismatch = e.what_without_backtrace();
      mismatch = mismatch.substr(0, mismatch.find('\n'));
    }
    if (!mismatch.empty()) {
      std::string list;
      for (const auto& set : sets) list += (list.empty() ? "" : ", ") + set;
      if (sets.empty())
        throw RunError("the weights in " + checkpoint + " do not fit the model its own spec builds (" + mismatch +
                       "): the checkpoint is damaged or from an incompatible Hope Lab build");
      throw RunError("the weights in " + checkpoint + " do not fit the model these overrides make (" + list +
                     "): " + mismatch +
                     ". Overrides of a saved model can only change fields that leave every parameter's shape as it "
                     "is (memory_writes, inner_lr, eta_max, the write clamp, ...), not its sizes or blocks");
    }
  }
  return s;
}

RunSetup set_up_run(const json& user_spec, const RunOptions& opt, Emitter& emit) {
  RunSetup s;
  resolve_spec(user_spec, opt, s);
  load_data(opt, s, emit);
  build_model(s);
  plan_phases(s);
  open_record(opt, s, emit);
  return s;
}

}  // namespace hl::train
