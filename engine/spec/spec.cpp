#include "engine/spec/spec.h"

#include <fstream>
#include <map>
#include <set>
#include <filesystem>
#include <sstream>

#include "engine/common/error.h"
#include "engine/common/sha256.h"
#include "engine/spec/presets_data.h"

using json = nlohmann::json;

namespace hl::spec {
namespace {

const std::set<std::string> kProtocols = {"class-incremental", "joint"};
const std::set<std::string> kStrategies = {"finetune", "ewc", "replay"};
const std::set<std::string> kHeads = {"softmax", "ncm", "memory"};
const std::set<std::string> kOptimizers = {"adamw", "sgd", "sgd_momentum", "delta_momentum", "deep_momentum", "m3"};
const std::set<std::string> kDevices = {"cpu", "cuda"};
const std::set<std::string> kPositions = {"learned", "none"};

json merge(const json& base, const json& over) {
  if (!base.is_object() || !over.is_object()) return over;
  json out = base;
  for (auto it = over.begin(); it != over.end(); ++it) {
    if (out.contains(it.key()))
      out[it.key()] = merge(out[it.key()], it.value());
    else
      out[it.key()] = it.value();
  }
  return out;
}

}  // namespace

bool Validation::ok() const {
  for (const auto& i : issues)
    if (i.error) return false;
  return true;
}

std::string Validation::format() const {
  std::ostringstream os;
  for (const auto& i : issues) os << (i.error ? "error: " : "warning: ") << i.path << ": " << i.message << "\n";
  return os.str();
}

std::vector<std::string> block_types() {
  return {"transformer", "lstm", "retnet", "cms", "titans", "hope", "hope_attention"};
}

json block_defaults(const std::string& type) {
  if (type == "transformer") return {{"type", type}, {"heads", 4}, {"ffn_mult", 2}, {"dropout", 0.1}};
  if (type == "retnet") return {{"type", type}, {"heads", 4}, {"ffn_mult", 2}, {"dropout", 0.1}};
  if (type == "lstm") return {{"type", type}, {"hidden", 0}};
  if (type == "cms")  // DECISIONS.md: 3 levels, clocks 1, 4, 16 steps, each at the base lr
    return {{"type", type},
            {"variant", "sequential"},
            {"clock_unit", "steps"},
            {"transfer", "gradient"},
            {"consolidate_rate", 0.5},
            {"ffn_mult", 2},
            {"levels",
             json::array({{{"clock", 1}, {"lr", 0.0}}, {{"clock", 4}, {"lr", 0.0}}, {{"clock", 16}, {"lr", 0.0}}})}};
  if (type == "titans")  // DECISIONS.md: memory chunk 4; θ 0.1, η 0.9; retain 0.99
    return {{"type", type},          {"heads", 4},      {"ffn_mult", 2},
            {"dropout", 0.1},        {"inner_lr", 0.1}, {"momentum", 0.9},
            {"retain", 0.99},        {"chunk", 4},      {"stop_grad_writes", false},
            {"persistent_tokens", 0}};
  if (type == "hope")  // DECISIONS.md: self-modifying Titans (η scale 0.1, β 0.9, chunks 4 and 8,
                       // per-layer DGD, L2 objective) + CMS (clocks 1, 4, 16 at the base lr)
    return {{"type", type},
            {"mixer", "selfmod"},
            {"heads", 4},
            {"ffn_mult", 2},
            {"dropout", 0.1},
            {"inner_lr", 0.1},
            {"momentum", 0.9},
            {"retain", 0.99},
            {"chunk", 4},
            {"chunk_other", 8},
            {"dgd_layers", "per_layer"},
            {"inner_objective", "l2"},
            {"stop_grad_writes", false},
            {"persistent_tokens", 0},
            {"variant", "sequential"},
            {"clock_unit", "steps"},
            {"transfer", "gradient"},
            {"consolidate_rate", 0.5},
            {"levels", block_defaults("cms")["levels"]}};
  if (type == "hope_attention")  // softmax attention in place of self-modifying Titans
    return {{"type", type},
            {"heads", 4},
            {"ffn_mult", 2},
            {"dropout", 0.1},
            {"variant", "sequential"},
            {"clock_unit", "steps"},
            {"transfer", "gradient"},
            {"consolidate_rate", 0.5},
            {"levels", block_defaults("cms")["levels"]}};
  return json::object();
}

json defaults() {
  json blk = block_defaults("transformer");
  return {
      {"schema_version", kSchemaVersion},
      {"name", "transformer"},
      {"description", ""},
      {"model",
       {{"d_model", 128},
        {"vocab_size", 0},
        {"max_len", 0},
        {"positions", "learned"},
        {"blocks", json::array({blk, blk})},
        {"head",
         {{"type", "softmax"},
          {"ncm_scale", 16.0},
          // memory head (DECISIONS.md "Heads"; docs/MODELS.md "Memory head")
          {"clock", 1},
          {"inner_lr", 0.1},
          {"retain", 1.0},
          {"momentum", 0.9},
          {"scale", 16.0}}}}},
      {"optimizer",
       {{"type", "adamw"},
        {"lr", 1e-3},
        {"weight_decay", 0.01},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"momentum", 0.9},
        {"m3_slow_every", 10},
        {"m3_ns_steps", 5},
        {"deep_hidden", 4},
        {"deep_inner_lr", 1e-3}}},
      {"training",
       {{"epochs", 5},
        {"batch_size", 32},
        {"eval_every", 0},
        {"limit_per_class", 0},
        {"eval_limit_per_class", 0},
        {"grad_clip", 0.0},
        {"dev_fraction", 0.0},
        {"threads", 0},
        {"checkpoints", true}}},
      {"experiment",
       {{"dataset", "banking77"},
        {"split", ""},
        {"protocol", "class-incremental"},
        {"strategy", {{"type", "finetune"}, {"ewc_lambda", 100.0}, {"replay_per_class", 10}}},
        {"task_order", 0},
        {"seed", 0},
        {"device", "cpu"},
        {"data", {{"text_column", "text"}, {"label_column", "label"}, {"classes_per_task", 10}}}}},
  };
}

json complete(const json& user) {
  if (!user.is_object()) throw SpecError("spec: the top level must be a JSON object");
  json out = merge(defaults(), user);
  // Blocks replace the default array as a whole; complete each with its type's defaults.
  if (out["model"].is_object() && out["model"]["blocks"].is_array()) {
    for (auto& b : out["model"]["blocks"]) {
      if (b.is_object() && b.contains("type") && b["type"].is_string())
        b = merge(block_defaults(b["type"].get<std::string>()), b);
    }
  }
  return out;
}

namespace {

struct Checker {
  Validation v;
  void err(const std::string& p, const std::string& m) { v.issues.push_back({p, m, true}); }
  void warn(const std::string& p, const std::string& m) { v.issues.push_back({p, m, false}); }

  const json* at(const json& j, const std::string& key, const std::string& path) {
    if (!j.is_object() || !j.contains(key)) {
      err(path, "missing");
      return nullptr;
    }
    return &j[key];
  }
  void integer(const json& j, const std::string& key, const std::string& path, long lo, long hi) {
    const json* x = at(j, key, path);
    if (!x) return;
    if (!x->is_number_integer()) return err(path, "must be an integer, got " + x->dump());
    long v = x->get<long>();
    if (v < lo || v > hi)
      err(path, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " + std::to_string(v));
  }
  void number(const json& j, const std::string& key, const std::string& path, double lo, double hi,
              bool lo_open = false) {
    const json* x = at(j, key, path);
    if (!x) return;
    if (!x->is_number()) return err(path, "must be a number, got " + x->dump());
    double v = x->get<double>();
    if (v < lo || v > hi || (lo_open && v == lo)) {
      std::ostringstream os;
      os << "must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << v;
      err(path, os.str());
    }
  }
  void choice(const json& j, const std::string& key, const std::string& path, const std::set<std::string>& allowed) {
    const json* x = at(j, key, path);
    if (!x) return;
    if (!x->is_string() || !allowed.count(x->get<std::string>())) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      err(path, "must be one of " + list + ", got " + x->dump());
    }
  }
  void boolean(const json& j, const std::string& key, const std::string& path) {
    const json* x = at(j, key, path);
    if (x && !x->is_boolean()) err(path, "must be true or false, got " + x->dump());
  }
  void unknownKeys(const json& j, const json& known, const std::string& path) {
    if (!j.is_object()) return;
    for (auto it = j.begin(); it != j.end(); ++it)
      if (!known.contains(it.key())) warn(path + (path.empty() ? "" : ".") + it.key(), "unknown field (ignored)");
  }
};

}  // namespace

namespace {
std::string str_or(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}
Validation validate_impl(const json& s);
}  // namespace

Validation validate(const json& s) {
  try {
    return validate_impl(s);
  } catch (const json::exception& e) {  // a shape the checks above did not foresee: still an issue, not a crash
    Validation v;
    v.issues.push_back({"", std::string("malformed spec (") + e.what() + ")", true});
    return v;
  }
}

namespace {
// CMS levels and variant of a cms, hope or hope_attention block at path p.
void check_levels(Checker& c, const json& b, const std::string& p) {
  c.choice(b, "variant", p + ".variant", {"sequential", "independent", "nested"});
  c.choice(b, "clock_unit", p + ".clock_unit", {"steps", "tasks"});
  c.choice(b, "transfer", p + ".transfer", {"gradient", "consolidate"});
  c.number(b, "consolidate_rate", p + ".consolidate_rate", 0.0, 1.0, true);
  const json* lv = c.at(b, "levels", p + ".levels");
  if (lv && (!lv->is_array() || lv->empty() || lv->size() > 6)) {
    c.err(p + ".levels", "must be a list of 1 to 6 levels like {\"clock\": 4, \"lr\": 0}");
  } else if (lv) {
    int prev = 0;
    for (size_t l = 0; l < lv->size(); ++l) {
      const json& L = (*lv)[l];
      std::string lp = p + ".levels[" + std::to_string(l) + "]";
      if (!L.is_object()) {
        c.err(lp, "must be an object like {\"clock\": 4, \"lr\": 0}");
        continue;
      }
      c.integer(L, "clock", lp + ".clock", 1, 100000000);
      if (L.contains("lr")) c.number(L, "lr", lp + ".lr", 0.0, 10.0);
      c.unknownKeys(L, json{{"clock", 1}, {"lr", 0.0}, {"init_from", json::object()}}, lp);
      if (L.contains("init_from")) {  // level stacking (docs/MODELS.md)
        const json& in = L["init_from"];
        const std::string ip = lp + ".init_from";
        if (!in.is_object() || !in.contains("checkpoint") || !in["checkpoint"].is_string()) {
          c.err(ip, "must be an object like {\"checkpoint\": \"PATH/last.pt\", \"block\": 0, \"level\": 0}");
        } else {
          c.unknownKeys(in, json{{"checkpoint", ""}, {"block", 0}, {"level", 0}}, ip);
          c.integer(in, "block", ip + ".block", 0, 1000);
          c.integer(in, "level", ip + ".level", 0, 5);
          const std::string path = in["checkpoint"].get<std::string>();
          std::error_code ec;
          if (path.empty() || !std::filesystem::is_regular_file(path, ec))
            c.err(ip + ".checkpoint", "no such checkpoint file '" + path + "'");
        }
      }
      if (L.contains("clock") && L["clock"].is_number_integer()) {
        int ck = L["clock"].get<int>();
        if (ck < prev)
          c.warn(lp + ".clock", "level clocks are not monotone (" + std::to_string(prev) + " then " +
                                    std::to_string(ck) + "): levels are listed fastest first");
        prev = ck;
      }
    }
  }
}

// One block of model.blocks at path p (d_model 0 = unknown).
void check_block(Checker& c, const json& b, const std::string& p, int d_model) {
  if (!b.is_object() || !b.contains("type") || !b["type"].is_string()) {
    c.err(p + ".type",
          "each block needs a string \"type\" (one of transformer, lstm, retnet, cms, titans, hope, hope_attention)");
    return;
  }
  std::string t = b["type"].get<std::string>();
  json bd = block_defaults(t);
  if (bd.empty()) {
    c.err(p + ".type",
          "unknown block type \"" + t + "\" (known: transformer, lstm, retnet, cms, titans, hope, hope_attention)");
    return;
  }
  c.unknownKeys(b, bd, p);
  const bool hope = t == "hope" || t == "hope_attention";
  if (t == "transformer" || t == "retnet" || t == "titans" || hope) {
    c.integer(b, "heads", p + ".heads", 1, 64);
    if (b.contains("heads") && b["heads"].is_number_integer() && d_model > 0) {
      int h = b["heads"].get<int>();
      if (h > 0 && d_model % h != 0)
        c.err(p + ".heads", std::to_string(h) + " does not divide model.d_model " + std::to_string(d_model));
    }
    c.integer(b, "ffn_mult", p + ".ffn_mult", 1, 16);
    c.number(b, "dropout", p + ".dropout", 0.0, 0.9);
    if (t == "titans" || t == "hope") {
      c.number(b, "inner_lr", p + ".inner_lr", 0.0, 10.0, true);
      c.number(b, "momentum", p + ".momentum", 0.0, 1.0);
      c.number(b, "retain", p + ".retain", 0.0, 1.0);
      c.integer(b, "chunk", p + ".chunk", 1, 4096);
      c.boolean(b, "stop_grad_writes", p + ".stop_grad_writes");
      c.integer(b, "persistent_tokens", p + ".persistent_tokens", 0, 64);
      if (b.contains("chunk") && b["chunk"].is_number_integer() && b["chunk"].get<int>() > 16)
        c.warn(p + ".chunk",
               "a memory chunk longer than a typical short text never writes (" + b["chunk"].dump() + " > 16 tokens)");
    }
    if (t == "hope") {
      c.choice(b, "mixer", p + ".mixer", {"selfmod", "titans"});
      c.integer(b, "chunk_other", p + ".chunk_other", 1, 4096);
      c.choice(b, "dgd_layers", p + ".dgd_layers", {"per_layer", "first", "none"});
      c.choice(b, "inner_objective", p + ".inner_objective", {"l2", "dot"});
      if (b.contains("chunk_other") && b["chunk_other"].is_number_integer() && b["chunk_other"].get<int>() > 16)
        c.warn(p + ".chunk_other", "a memory chunk longer than a typical short text never writes (" +
                                       b["chunk_other"].dump() + " > 16 tokens)");
      const bool selfmod = !b.contains("mixer") || b["mixer"] == "selfmod";
      if (selfmod && b.contains("inner_lr") && b["inner_lr"].is_number() && b["inner_lr"].get<double>() > 0.3)
        c.warn(p + ".inner_lr", "η scale " + b["inner_lr"].dump() +
                                    " > 0.3: writes will often be clamped, and with momentum the "
                                    "self-modifying memories can still diverge (docs/MEMORY.md)");
    }
    if (hope) check_levels(c, b, p);
  } else if (t == "lstm") {
    c.integer(b, "hidden", p + ".hidden", 0, 8192);
  } else if (t == "cms") {
    c.integer(b, "ffn_mult", p + ".ffn_mult", 1, 16);
    check_levels(c, b, p);
  }
}

void check_model(Checker& c, const json& s, const json& d) {
  int d_model = 0;
  const json* m = c.at(s, "model", "model");
  if (!m || !m->is_object()) {
    if (s.contains("model")) c.err("model", "must be an object");
    return;
  }
  c.unknownKeys(*m, d["model"], "model");
  c.integer(*m, "d_model", "model.d_model", 8, 4096);
  if (m->contains("d_model") && (*m)["d_model"].is_number_integer()) d_model = (*m)["d_model"].get<int>();
  c.integer(*m, "vocab_size", "model.vocab_size", 0, 1000000);
  if (m->contains("vocab_size") && (*m)["vocab_size"].is_number_integer()) {
    int v = (*m)["vocab_size"].get<int>();
    if (v > 0 && v < 16) c.err("model.vocab_size", "must be 0 (dataset default) or >= 16");
  }
  c.integer(*m, "max_len", "model.max_len", 0, 4096);
  c.choice(*m, "positions", "model.positions", kPositions);
  if (const json* bl = c.at(*m, "blocks", "model.blocks"); bl) {
    if (!bl->is_array())
      c.err("model.blocks", "must be an array of blocks");
    else if (bl->empty())
      c.warn("model.blocks", "no blocks: the model is embedding + pooling + head");
    else
      for (size_t i = 0; i < bl->size(); ++i)
        check_block(c, (*bl)[i], "model.blocks[" + std::to_string(i) + "]", d_model);
  }
  if (const json* h = c.at(*m, "head", "model.head"); h && h->is_object()) {
    c.unknownKeys(*h, d["model"]["head"], "model.head");
    c.choice(*h, "type", "model.head.type", kHeads);
    c.number(*h, "ncm_scale", "model.head.ncm_scale", 0.0, 1000.0, true);
    c.integer(*h, "clock", "model.head.clock", 1, 100000000);
    c.number(*h, "inner_lr", "model.head.inner_lr", 0.0, 10.0, true);
    c.number(*h, "retain", "model.head.retain", 0.0, 1.0);
    c.number(*h, "momentum", "model.head.momentum", 0.0, 1.0);
    c.number(*h, "scale", "model.head.scale", 0.0, 1000.0, true);
    if (str_or(*h, "type") == "memory" && h->contains("inner_lr") && (*h)["inner_lr"].is_number() &&
        (*h)["inner_lr"].get<double>() > 0.6)
      c.warn("model.head.inner_lr",
             "memory head: keys have norm 1, so every write with inner_lr > 0.6 is "
             "clamped to 0.6 (3·η·‖u‖² ≤ 1.8)");
  } else if (h)
    c.err("model.head", "must be an object like {\"type\": \"softmax\"}");
}

void check_optimizer(Checker& c, const json& s, const json& d) {
  if (const json* o = c.at(s, "optimizer", "optimizer"); o && o->is_object()) {
    c.unknownKeys(*o, d["optimizer"], "optimizer");
    c.choice(*o, "type", "optimizer.type", kOptimizers);
    c.number(*o, "lr", "optimizer.lr", 0.0, 10.0, true);
    c.number(*o, "weight_decay", "optimizer.weight_decay", 0.0, 10.0);
    c.number(*o, "beta1", "optimizer.beta1", 0.0, 0.999999);
    c.number(*o, "beta2", "optimizer.beta2", 0.0, 0.999999);
    c.number(*o, "momentum", "optimizer.momentum", 0.0, 0.999999);
    c.integer(*o, "m3_slow_every", "optimizer.m3_slow_every", 1, 1000000);
    c.integer(*o, "m3_ns_steps", "optimizer.m3_ns_steps", 0, 100);
    c.integer(*o, "deep_hidden", "optimizer.deep_hidden", 1, 1024);
    c.number(*o, "deep_inner_lr", "optimizer.deep_inner_lr", 0.0, 10.0);
    if (o->contains("lr") && (*o)["lr"].is_number() && (*o)["lr"].get<double>() > 0.1 && str_or(*o, "type") == "adamw")
      c.warn("optimizer.lr", "AdamW with lr > 0.1 usually diverges");
  }
}

void check_training(Checker& c, const json& s, const json& d) {
  if (const json* t = c.at(s, "training", "training"); t && t->is_object()) {
    c.unknownKeys(*t, d["training"], "training");
    c.integer(*t, "epochs", "training.epochs", 0, 10000);
    c.integer(*t, "batch_size", "training.batch_size", 1, 65536);
    c.integer(*t, "eval_every", "training.eval_every", 0, 100000000);
    c.integer(*t, "limit_per_class", "training.limit_per_class", 0, 100000000);
    c.integer(*t, "eval_limit_per_class", "training.eval_limit_per_class", 0, 100000000);
    c.number(*t, "grad_clip", "training.grad_clip", 0.0, 1e6);
    c.number(*t, "dev_fraction", "training.dev_fraction", 0.0, 0.5);
    c.integer(*t, "threads", "training.threads", 0, 256);
    c.boolean(*t, "checkpoints", "training.checkpoints");
  }
}

void check_experiment(Checker& c, const json& s, const json& d) {
  if (const json* e = c.at(s, "experiment", "experiment"); e && e->is_object()) {
    c.unknownKeys(*e, d["experiment"], "experiment");
    if (const json* ds = c.at(*e, "dataset", "experiment.dataset");
        ds && (!ds->is_string() || ds->get<std::string>().empty()))
      c.err("experiment.dataset",
            "must be a dataset name (clinc150, banking77, dbpedia70, dbpedia14) or a folder path");
    if (const json* sp = c.at(*e, "split", "experiment.split"); sp && !sp->is_string())
      c.err("experiment.split", "must be a string (\"\" = the dataset's default split)");
    c.choice(*e, "protocol", "experiment.protocol", kProtocols);
    if (const json* st = c.at(*e, "strategy", "experiment.strategy"); st && st->is_object()) {
      c.unknownKeys(*st, d["experiment"]["strategy"], "experiment.strategy");
      c.choice(*st, "type", "experiment.strategy.type", kStrategies);
      c.number(*st, "ewc_lambda", "experiment.strategy.ewc_lambda", 0.0, 1e12);
      c.integer(*st, "replay_per_class", "experiment.strategy.replay_per_class", 1, 1000000);
      if (str_or(*e, "protocol") == "joint" && str_or(*st, "type") != "finetune")
        c.warn("experiment.strategy.type", "joint training has a single task: the strategy has no effect");
    } else if (st)
      c.err("experiment.strategy", "must be an object like {\"type\": \"finetune\"}");
    c.integer(*e, "task_order", "experiment.task_order", 0, 1000000);
    c.integer(*e, "seed", "experiment.seed", 0, (1L << 53));
    c.choice(*e, "device", "experiment.device", kDevices);
    if (const json* dd = c.at(*e, "data", "experiment.data"); dd && dd->is_object()) {
      c.unknownKeys(*dd, d["experiment"]["data"], "experiment.data");
      c.integer(*dd, "classes_per_task", "experiment.data.classes_per_task", 1, 100000);
      for (const char* col : {"text_column", "label_column"})
        if (const json* x = c.at(*dd, col, std::string("experiment.data.") + col);
            x && (!x->is_string() || x->get<std::string>().empty()))
          c.err(std::string("experiment.data.") + col, "must be a column name (a non-empty string)");
    }
  }
}

Validation validate_impl(const json& s) {
  Checker c;
  if (!s.is_object()) {
    c.err("", "the spec must be a JSON object");
    return c.v;
  }
  const json d = defaults();
  c.unknownKeys(s, d, "");
  if (const json* v = c.at(s, "schema_version", "schema_version")) {
    if (!v->is_number_integer())
      c.err("schema_version", "must be an integer");
    else if (v->get<int>() > kSchemaVersion)
      c.err("schema_version", "spec is from a newer Hope Lab (schema " + v->dump() + ", this build reads " +
                                  std::to_string(kSchemaVersion) + "): upgrade Hope Lab");
    else if (v->get<int>() < 1)
      c.err("schema_version", "must be >= 1");
  }
  if (const json* n = c.at(s, "name", "name"); n && !n->is_string()) c.err("name", "must be a string");

  check_model(c, s, d);
  check_optimizer(c, s, d);
  check_training(c, s, d);
  check_experiment(c, s, d);
  if (s.contains("model") && s["model"].is_object() && s["model"].contains("head") &&
      str_or(s["model"]["head"], "type") == "ncm")
    c.warn("model.head.type",
           "ncm head: the network is not trained (a class mean has no gradient); the run is the "
           "untrained-network + nearest-class-mean reference");
  return c.v;
}
}  // namespace

std::string canonical(const json& spec) {
  // nlohmann::json objects are std::map-backed: dump() sorts keys.
  return spec.dump();
}

std::string config_hash(const json& spec) {
  json s = spec;
  if (s.contains("experiment") && s["experiment"].is_object()) s["experiment"].erase("seed");
  s.erase("description");
  return sha256_hex(canonical(s));
}

std::string run_hash(const json& spec) {
  json s = spec;
  s.erase("description");
  return sha256_hex(canonical(s));
}

json load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SpecError(path + ": cannot open spec file (check the path)");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    // Translate the byte offset into line:column.
    size_t off = e.byte > 0 ? e.byte - 1 : 0;
    const std::string text = ss.str();
    size_t line = 1, col = 1;
    for (size_t i = 0; i < off && i < text.size(); ++i) {
      if (text[i] == '\n') {
        ++line;
        col = 1;
      } else
        ++col;
    }
    throw SpecError(path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": invalid JSON (" + e.what() +
                    ")");
  }
}

void set_path(json& spec, const std::string& path, const std::string& value) {
  // Split "a.b[2].c" into tokens a, b, 2, c.
  std::vector<std::string> toks;
  std::string cur;
  for (char ch : path) {
    if (ch == '.' || ch == '[' || ch == ']') {
      if (!cur.empty()) toks.push_back(cur);
      cur.clear();
    } else
      cur.push_back(ch);
  }
  if (!cur.empty()) toks.push_back(cur);
  if (toks.empty()) throw SpecError("--set: empty path (use --set model.d_model=256)");
  json* node = &spec;
  std::string walked;
  for (size_t i = 0; i < toks.size(); ++i) {
    const std::string& t = toks[i];
    bool last = i + 1 == toks.size();
    if (node->is_array()) {
      size_t idx = 0;
      try {
        idx = std::stoul(t);
      } catch (...) {
        throw SpecError("--set " + path + ": '" + t + "' is not an index into " + walked);
      }
      if (idx >= node->size())
        throw SpecError("--set " + path + ": index " + t + " out of range for " + walked + " (size " +
                        std::to_string(node->size()) + ")");
      node = &(*node)[idx];
    } else if (node->is_object()) {
      if (!node->contains(t)) {
        if (!last)
          throw SpecError("--set " + path + ": no field '" + t + "' in " + (walked.empty() ? "the spec" : walked));
        // A new leaf is allowed only in objects that are open maps; the spec has none: refuse.
        throw SpecError("--set " + path + ": no field '" + t + "' in " + (walked.empty() ? "the spec" : walked) +
                        " (see `hopelab-cli validate` for the fields)");
      }
      node = &(*node)[t];
    } else {
      throw SpecError("--set " + path + ": " + walked + " is not an object or array");
    }
    walked += (walked.empty() ? "" : ".") + t;
  }
  json v;
  try {
    v = json::parse(value);
  } catch (...) {
    v = value;  // a bare string
  }
  *node = v;
}

std::vector<std::string> preset_names() {
  std::vector<std::string> out;
  for (const auto& p : presets_data()) out.push_back(p.first);
  return out;
}

json preset(const std::string& name) {
  for (const auto& p : presets_data())
    if (p.first == name) return complete(json::parse(p.second));
  std::string list;
  for (const auto& n : preset_names()) list += (list.empty() ? "" : ", ") + n;
  throw SpecError("unknown preset '" + name + "' (known: " + list + ")");
}

std::string preset_description(const std::string& name) {
  return preset(name).value("description", "");
}

const std::vector<std::string>& preset_training_fields() {
  static const std::vector<std::string> fields{"grad_clip"};
  return fields;
}

json with_preset(const json& spec, const std::string& name) {
  const json p = preset(name);  // completed: a field it does not set has its default
  json out = spec.is_object() ? spec : json::object();
  for (const char* k : {"name", "description", "model", "optimizer"}) out[k] = p[k];
  if (!out.contains("training") || !out["training"].is_object()) out["training"] = json::object();
  for (const auto& f : preset_training_fields()) out["training"][f] = p["training"][f];
  return out;
}

}  // namespace hl::spec
