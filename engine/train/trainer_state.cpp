#include "engine/train/trainer_state.h"

#include <ATen/CPUGeneratorImpl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include "engine/common/error.h"
#include "engine/optim/optimizers.h"
#include "engine/train/checkpoint_format.h"

using json = nlohmann::json;

namespace fs = std::filesystem;

namespace hl::train {
namespace {

int64_t read_int(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isInt())
    throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toInt();
}

double read_double(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isDouble())
    throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toDouble();
}

torch::Tensor generator_state(const at::Generator& g) {
  at::Generator gen = g;  // shares the implementation
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(at::Generator& g, const torch::Tensor& state) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

metrics::Matrix matrix_from_json(const json& j) {
  metrics::Matrix R;
  for (const auto& row : j) {
    R.emplace_back();
    for (const auto& v : row) R.back().push_back(v.is_null() ? metrics::nan() : v.get<double>());
  }
  return R;
}

std::string level_key(size_t i, const std::string& field) {
  return "hopelab.level." + std::to_string(i) + "." + field;
}

}  // namespace

json matrix_to_json(const metrics::Matrix& R) {
  json out = json::array();
  for (const auto& row : R) {
    json r = json::array();
    for (double v : row) r.push_back(std::isnan(v) ? json(nullptr) : json(v));
    out.push_back(r);
  }
  return out;
}

std::string checkpoint_string(torch::serialize::InputArchive& ar, const std::string& key) {
  c10::IValue v;
  if (!ar.try_read(key, v) || !v.isString())
    throw RunError("checkpoint has no '" + key + "' (not a Hope Lab checkpoint?)");
  return v.toStringRef();
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

double clip_gradients(const std::vector<torch::Tensor>& params, double max_norm, bool* clipped) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params)
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2).to(torch::kFloat64));
  const double n = norms.empty() ? 0.0 : torch::stack(norms).norm(2).item<double>();
  const bool clip = max_norm > 0 && n > max_norm;
  if (clip) {
    const double f = max_norm / (n + 1e-6);
    for (const auto& p : params)
      if (p.grad().defined()) p.grad().mul_(f);
  }
  if (clipped) *clipped = clip;
  return n;
}

TrainerState initial_state(RunSetup& s) {
  TrainerState st;
  for (auto& p : s.model->parameters())
    if (p.requires_grad()) st.params.push_back(p);
  std::set<const void*> in_level;
  for (auto& g : s.model->levels()) {
    Level L;
    L.g = g;
    for (auto& p : g.params) in_level.insert(p.unsafeGetTensorImpl());
    st.levels.push_back(std::move(L));
  }
  for (auto& p : st.params)
    if (!in_level.count(p.unsafeGetTensorImpl())) st.outer_params.push_back(p);
  st.optimizer = make_optimizer(s.spec.at("optimizer"), st.outer_params);
  {
    std::set<const void*> memory;
    for (auto& p : s.model->memoryParameters()) memory.insert(p.unsafeGetTensorImpl());
    ClipGroup mem{"memory", {}, s.tr().at("grad_clip_memory").get<double>()};
    ClipGroup rest{"rest", {}, s.tr().at("grad_clip_rest").get<double>()};
    for (auto& p : st.outer_params) (memory.count(p.unsafeGetTensorImpl()) ? mem : rest).params.push_back(p);
    if (!mem.params.empty()) st.clip_groups.push_back(std::move(mem));
    if (!rest.params.empty()) st.clip_groups.push_back(std::move(rest));
  }
  for (auto& L : st.levels) {
    L.clip = s.tr().at("grad_clip_cms").get<double>();
    json o = s.spec.at("optimizer");
    if (L.g.lr > 0) o["lr"] = L.g.lr;
    L.ocfg = o;
    L.opt = make_optimizer(o, L.g.params);
    L.theta_run = flat(L.g.params);
  }
  st.head.on = s.mcfg.head == HeadType::Memory;
  st.head.clock = s.mcfg.memory_clock;
  if (st.head.on) st.head.theta_run = s.model->memoryW().detach().reshape(-1).clone();
  st.data_gen = at::make_generator<at::CPUGeneratorImpl>(s.seed);
  st.replay_gen = at::make_generator<at::CPUGeneratorImpl>(s.seed + 12345);
  st.R.assign(s.T, std::vector<double>(s.T, metrics::nan()));
  st.RT.assign(s.T, std::vector<double>(s.T, metrics::nan()));
  st.theta_run = flat(st.outer_params);
  return st;
}

namespace {

// The archive to `path` through `path.tmp`, fsync and a rename, so that the previous checkpoint
// stays whole until the new one is. The archive is serialised in memory first: LibTorch's file
// writer cannot fail cleanly (a failed write inside it ends in std::terminate from its destructor),
// so the file is written here, where a full disk or a read-only folder is an error like any other:
// the partial file is removed and a RunError names the file and the system's reason.
void write_checkpoint_file(torch::serialize::OutputArchive& ar, const std::string& path, int64_t run_id) {
  std::string bytes;
  ar.save_to([&bytes](const void* data, size_t n) -> size_t {
    bytes.append(static_cast<const char*>(data), n);
    return n;
  });
  const std::string tmp = path + ".tmp";
  auto fail = [&](const std::string& why) {
    ::unlink(tmp.c_str());
    throw RunError("cannot write the checkpoint " + path + ": " + why +
                   ". The previous checkpoint, if any, is kept: free some space or make the folder writable, then "
                   "continue with `hopelab-cli train --resume " +
                   std::to_string(run_id) + "`.");
  };
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  if (ec) fail(ec.message());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(std::strerror(errno));
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      ::close(fd);
      fail(std::strerror(err));
    }
    done += size_t(n);
  }
  if (::fsync(fd) != 0) {
    const int err = errno;
    ::close(fd);
    fail(std::strerror(err));
  }
  if (::close(fd) != 0) fail(std::strerror(errno));
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(std::strerror(errno));
}

}  // namespace

void save_checkpoint(const TrainerState& st, RunSetup& s, CheckpointKind kind, int phase, double metric,
                     Emitter& emit) {
  if (!s.save_ckpt) return;
  // A checkpoint only once every record before it is in the run database (flush throws the
  // writer's error): a run resumed from it then has no hole in its series.
  if (s.store_obs) s.store_obs->writer().flush();
  std::string path = s.ckpt_dir + "/" + name(kind) + ".pt";
  torch::serialize::OutputArchive ar;
  s.model->save(ar);
  torch::serialize::OutputArchive oa;
  st.optimizer->save(oa);
  ar.write("optimizer", oa);
  for (size_t i = 0; i < st.levels.size(); ++i) {  // level optimizers and their half-filled windows
    const Level& L = st.levels[i];
    torch::serialize::OutputArchive la;
    L.opt->save(la);
    ar.write(level_key(i, "optimizer"), la);
    ar.write(level_key(i, "ticks"), c10::IValue(L.ticks));
    ar.write(level_key(i, "loss_sum"), c10::IValue(L.loss_sum));
    ar.write(level_key(i, "loss_n"), c10::IValue(L.loss_n));
    ar.write(level_key(i, "theta_run"), L.theta_run);
    for (size_t k = 0; k < L.g.params.size(); ++k) {
      const auto& gr = L.g.params[k].grad();
      ar.write(level_key(i, "grad." + std::to_string(k)),
               gr.defined() ? gr.detach() : torch::zeros_like(L.g.params[k]));
    }
  }
  if (st.head.on) {  // W and S are model buffers; the head's window and counters are here
    ar.write("hopelab.head.ticks", c10::IValue(st.head.ticks));
    ar.write("hopelab.head.clamped", c10::IValue(st.head.clamped));
    ar.write("hopelab.head.theta_run", st.head.theta_run);
    ar.write("hopelab.head.keys", st.head.keys.empty() ? torch::zeros({0, s.mcfg.d_model}) : torch::cat(st.head.keys));
    ar.write("hopelab.head.labels",
             st.head.labels.empty() ? torch::zeros({0}, torch::kLong) : torch::cat(st.head.labels));
  }
  {  // the in-context memories' cadence audit so far, so a resumed run's audit covers the whole run
    json ca = json::array();
    for (const auto& [key, a] : st.context_audit)
      ca.push_back({{"block", key.first},
                    {"level", key.second},
                    {"chunk", a.chunk},
                    {"expected", a.expected},
                    {"actual", a.actual},
                    {"clamped", a.clamped}});
    ar.write("hopelab.context_audit", c10::IValue(ca.dump()));
  }
  write_checkpoint_format(ar);
  ar.write("hopelab.spec", c10::IValue(s.spec.dump()));
  ar.write("hopelab.tokenizer", c10::IValue(s.tok.proto()));
  ar.write("hopelab.labels", c10::IValue(json(s.ds.class_names).dump()));
  ar.write("hopelab.phase", c10::IValue(int64_t(phase)));
  ar.write("hopelab.step", c10::IValue(st.step));
  // Everything a resumed run needs to continue exactly as an uninterrupted one would.
  ar.write("hopelab.samples", c10::IValue(st.samples));
  ar.write("hopelab.train_seconds", c10::IValue(st.train_seconds()));
  ar.write("hopelab.eval_seconds", c10::IValue(st.eval_seconds));
  ar.write("hopelab.best_avg", c10::IValue(st.best_avg));
  ar.write("hopelab.R", c10::IValue(matrix_to_json(st.R).dump()));
  ar.write("hopelab.RT", c10::IValue(matrix_to_json(st.RT).dump()));
  ar.write("hopelab.replay", torch::tensor(st.replay_buffer, torch::kLong));
  ar.write("hopelab.ewc_n", c10::IValue(int64_t(st.ewc_fisher.size())));
  for (size_t k = 0; k < st.ewc_fisher.size(); ++k) {
    ar.write("hopelab.ewc_fisher." + std::to_string(k), st.ewc_fisher[k]);
    ar.write("hopelab.ewc_anchor." + std::to_string(k), st.ewc_anchor[k]);
  }
  ar.write("hopelab.rng.data", generator_state(st.data_gen));
  ar.write("hopelab.rng.replay", generator_state(st.replay_gen));
  ar.write("hopelab.rng.global", generator_state(at::detail::getDefaultCPUGenerator()));
  ar.write("hopelab.theta_run", st.theta_run);
  write_checkpoint_file(ar, path, s.run_id);
  Event e;
  e.kind = EventKind::Checkpoint;
  e.checkpoint = kind;
  e.path = path;
  e.step = st.step;
  e.task = phase;
  e.value = metric;
  emit(e);
}

void save_snapshot(RunSetup& s, int phase, int64_t step, Emitter& emit) {
  // A spec resumed from a run recorded before the field existed has none: no snapshots.
  if (s.ckpt_dir.empty() || !s.tr().value("snapshots", false)) return;
  fs::create_directories(s.ckpt_dir);
  const std::string path = s.ckpt_dir + "/snapshot-task" + std::to_string(phase) + ".pt";
  torch::serialize::OutputArchive ar;
  s.model->save(ar);
  write_checkpoint_format(ar);
  ar.write("hopelab.kind", c10::IValue(name(CheckpointKind::Snapshot)));
  ar.write("hopelab.spec", c10::IValue(s.spec.dump()));
  ar.write("hopelab.tokenizer", c10::IValue(s.tok.proto()));
  ar.write("hopelab.labels", c10::IValue(json(s.ds.class_names).dump()));
  ar.write("hopelab.phase", c10::IValue(int64_t(phase)));
  ar.write("hopelab.step", c10::IValue(step));
  ar.save_to(path + ".tmp");
  fs::rename(path + ".tmp", path);
  Event e;
  e.kind = EventKind::Checkpoint;
  e.checkpoint = CheckpointKind::Snapshot;
  e.path = path;
  e.step = step;
  e.task = phase;
  emit(e);
}

int load_checkpoint(TrainerState& st, RunSetup& s) {
  auto& ar = *s.resume_ar;
  if (checkpoint_string(ar, "hopelab.spec") != s.spec.dump())
    throw RunError("the checkpoint belongs to another run (its spec differs)");
  s.model->load(ar);
  torch::serialize::InputArchive oa;
  ar.read("optimizer", oa);
  st.optimizer->load(oa);
  for (size_t i = 0; i < st.levels.size(); ++i) {
    Level& L = st.levels[i];
    torch::serialize::InputArchive la;
    ar.read(level_key(i, "optimizer"), la);
    L.opt->load(la);
    L.ticks = read_int(ar, level_key(i, "ticks"));
    L.loss_sum = read_double(ar, level_key(i, "loss_sum"));
    L.loss_n = read_int(ar, level_key(i, "loss_n"));
    ar.read(level_key(i, "theta_run"), L.theta_run);
    for (size_t k = 0; k < L.g.params.size(); ++k) {
      torch::Tensor gr;
      ar.read(level_key(i, "grad." + std::to_string(k)), gr);
      L.g.params[k].mutable_grad() = gr.clone();
    }
  }
  if (st.head.on) {
    st.head.ticks = read_int(ar, "hopelab.head.ticks");
    st.head.clamped = read_int(ar, "hopelab.head.clamped");
    ar.read("hopelab.head.theta_run", st.head.theta_run);
    torch::Tensor k, y;
    ar.read("hopelab.head.keys", k);
    ar.read("hopelab.head.labels", y);
    if (k.size(0) > 0) {
      st.head.keys.push_back(k.to(s.device));
      st.head.labels.push_back(y.to(s.device));
    }
  }
  c10::IValue ca;
  if (ar.try_read("hopelab.context_audit", ca))  // absent in checkpoints of older builds
    for (const auto& a : json::parse(ca.toStringRef())) {
      auto& c = st.context_audit[{a.at("block").get<int>(), a.at("level").get<std::string>()}];
      c.chunk = a.at("chunk").get<int>();
      c.expected = a.at("expected").get<int64_t>();
      c.actual = a.at("actual").get<int64_t>();
      c.clamped = a.at("clamped").get<int64_t>();
    }
  const int first_phase = int(read_int(ar, "hopelab.phase")) + 1;
  st.step = read_int(ar, "hopelab.step");
  st.outer_steps = s.trainable ? st.step : 0;
  st.samples = read_int(ar, "hopelab.samples");
  c10::IValue secs;  // absent in checkpoints of older builds: this process's time only, as before
  if (ar.try_read("hopelab.train_seconds", secs) && secs.isDouble()) st.seconds_before = secs.toDouble();
  c10::IValue esecs;  // absent before eval_seconds existed: this process's evaluations only
  if (ar.try_read("hopelab.eval_seconds", esecs) && esecs.isDouble()) st.eval_seconds = esecs.toDouble();
  st.best_avg = read_double(ar, "hopelab.best_avg");
  st.R = matrix_from_json(json::parse(checkpoint_string(ar, "hopelab.R")));
  st.RT = matrix_from_json(json::parse(checkpoint_string(ar, "hopelab.RT")));
  torch::Tensor rb;
  ar.read("hopelab.replay", rb);
  st.replay_buffer = to_vec(rb);
  const int64_t n_ewc = read_int(ar, "hopelab.ewc_n");
  st.ewc_fisher.assign(n_ewc, torch::Tensor());
  st.ewc_anchor.assign(n_ewc, torch::Tensor());
  for (int64_t k = 0; k < n_ewc; ++k) {
    ar.read("hopelab.ewc_fisher." + std::to_string(k), st.ewc_fisher[k]);
    ar.read("hopelab.ewc_anchor." + std::to_string(k), st.ewc_anchor[k]);
  }
  torch::Tensor g;
  ar.read("hopelab.rng.data", g);
  set_generator_state(st.data_gen, g);
  ar.read("hopelab.rng.replay", g);
  set_generator_state(st.replay_gen, g);
  ar.read("hopelab.rng.global", g);
  at::Generator global_gen = at::detail::getDefaultCPUGenerator();
  set_generator_state(global_gen, g);
  ar.read("hopelab.theta_run", st.theta_run);
  if (int(st.R.size()) != s.T)
    throw RunError("resume: the checkpoint's accuracy matrix does not match the dataset's tasks");
  st.boundaries = first_phase;
  return first_phase;
}

}  // namespace hl::train
