#include "engine/spec/spec.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <filesystem>
#include <sstream>

#include "engine/common/error.h"
#include "engine/common/kinds.h"
#include "engine/common/sha256.h"
#include "engine/spec/fields.h"
#include "engine/spec/presets_data.h"

using json = nlohmann::json;

namespace hl::spec {
namespace {

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
  return names<BlockType>();
}

// A section's fields at their defaults, from the field table (fields.h).
json section_defaults(const std::string& section) {
  json o = json::object();
  for (const auto& f : section_fields(section)) o[f.name] = f.def;
  return o;
}

json block_defaults(const std::string& type) {
  const auto t = try_parse<BlockType>(type);
  if (!t) return json::object();
  json b = {{"type", type}};
  for (const auto& f : section_fields("block"))
    if (std::find(f.blocks.begin(), f.blocks.end(), type) != f.blocks.end()) b[f.name] = block_field_default(type, f);
  // DECISIONS.md: 3 levels, clocks 1, 4, 16 steps, each at the base lr (cms, hope, hope_attention)
  if (has_cms_levels(*t))
    b["levels"] = json::array({{{"clock", 1}, {"lr", 0.0}}, {{"clock", 4}, {"lr", 0.0}}, {{"clock", 16}, {"lr", 0.0}}});
  return b;
}

json defaults() {
  json blk = block_defaults("transformer");
  json model = section_defaults("model");
  model["blocks"] = json::array({blk, blk});
  model["head"] = section_defaults("model.head");
  json experiment = section_defaults("experiment");
  experiment["strategy"] = section_defaults("experiment.strategy");
  experiment["data"] = section_defaults("experiment.data");
  return {{"schema_version", kSchemaVersion},
          {"name", "transformer"},
          {"description", ""},
          {"model", model},
          {"optimizer", section_defaults("optimizer")},
          {"training", section_defaults("training")},
          {"experiment", experiment}};
}

// Fields whose default changed with a schema version: a spec written for an older schema means the
// old value where it leaves the field out (docs/SPEC.md "Schema versions").
const json& legacy_block_defaults(int version) {
  // Schema 2 made the self-modifying Titans memory active and bounded (docs/MEMORY.md "Active memory").
  static const json v1 = {{"memory_inputs", "shared"},   {"memory_init_scale", 0.1}, {"eta_max", 0.0},
                          {"momentum_dampening", false}, {"inner_lr", 0.1},          {"momentum", 0.9},
                          {"state_bound", 0.0}};
  static const json none = json::object();
  return version < 2 ? v1 : none;
}

json complete(const json& user) {
  if (!user.is_object()) throw SpecError("spec: the top level must be a JSON object");
  const json base = defaults();
  // A section (experiment, model, optimizer, training) must stay an object: "experiment": 3 would
  // otherwise reach every reader of experiment.seed (the config hash, a sweep's seeds) as a number.
  // Deeper wrong shapes are validation issues.
  for (auto it = base.begin(); it != base.end(); ++it)
    if (it.value().is_object() && user.contains(it.key()) && !user[it.key()].is_object())
      throw SpecError("spec: '" + it.key() + "' must be an object of fields, got " +
                      user[it.key()].dump().substr(0, 40) +
                      " (`hopelab-cli presets --show transformer` prints a whole spec)");
  json out = merge(base, user);
  const int version = user.contains("schema_version") && user["schema_version"].is_number_integer()
                          ? user["schema_version"].get<int>()
                          : kSchemaVersion;
  // Blocks replace the default array as a whole; complete each with its type's defaults.
  if (out["model"].is_object() && out["model"]["blocks"].is_array()) {
    for (auto& b : out["model"]["blocks"]) {
      if (b.is_object() && b.contains("type") && b["type"].is_string()) {
        json d = block_defaults(b["type"].get<std::string>());
        for (const auto& [k, v] : legacy_block_defaults(version).items())
          if (d.contains(k)) d[k] = v;
        b = merge(d, b);
      }
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
  // Every field of `section` (the field table) that `j` must hold, at path prefix p; block
  // fields only for the block types that have them (`block_type`).
  void fields(const json& j, const std::string& section, const std::string& p, const std::string& block_type = "") {
    for (const auto& f : section_fields(section)) {
      if (!block_type.empty() && std::find(f.blocks.begin(), f.blocks.end(), block_type) == f.blocks.end()) continue;
      field(j, f, p + "." + f.name);
    }
  }
  void field(const json& j, const FieldInfo& f, const std::string& path) {
    if (f.kind == "int") return integer(j, f.name, path, long(f.min), long(f.max));
    if (f.kind == "number") return number(j, f.name, path, f.min, f.max, f.min_open);
    if (f.kind == "choice") return choice(j, f.name, path, std::set<std::string>(f.choices.begin(), f.choices.end()));
    if (f.kind == "bool") return boolean(j, f.name, path);
    const json* x = at(j, f.name, path);
    if (x && (!x->is_string() || (f.nonempty && x->get<std::string>().empty())))
      err(path, std::string(f.nonempty ? "must be a non-empty string" : "must be a string") + ": " + f.doc);
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
  const json* lv = c.at(b, "levels", p + ".levels");
  if (lv && (!lv->is_array() || int(lv->size()) < kMinLevels || int(lv->size()) > kMaxLevels)) {
    c.err(p + ".levels", "must be a list of " + std::to_string(kMinLevels) + " to " + std::to_string(kMaxLevels) +
                             " levels like {\"clock\": 4, \"lr\": 0}");
  } else if (lv) {
    int prev = 0;
    for (size_t l = 0; l < lv->size(); ++l) {
      const json& L = (*lv)[l];
      std::string lp = p + ".levels[" + std::to_string(l) + "]";
      if (!L.is_object()) {
        c.err(lp, "must be an object like {\"clock\": 4, \"lr\": 0}");
        continue;
      }
      c.field(L, *find_field("level", "clock"), lp + ".clock");
      if (L.contains("lr")) c.field(L, *find_field("level", "lr"), lp + ".lr");  // optional: the base lr
      c.unknownKeys(L, json{{"clock", 1}, {"lr", 0.0}, {"init_from", json::object()}}, lp);
      if (L.contains("init_from")) {  // level stacking (docs/MODELS.md)
        const json& in = L["init_from"];
        const std::string ip = lp + ".init_from";
        if (!in.is_object() || !in.contains("checkpoint") || !in["checkpoint"].is_string()) {
          c.err(ip, "must be an object like {\"checkpoint\": \"PATH/last.pt\", \"block\": 0, \"level\": 0}");
        } else {
          c.unknownKeys(in, json{{"checkpoint", ""}, {"block", 0}, {"level", 0}}, ip);
          c.integer(in, "block", ip + ".block", 0, 1000);
          c.integer(in, "level", ip + ".level", 0, kMaxLevels - 1);
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
  c.fields(b, "block", p, t);  // every field of this block type: its type and range (fields.h)
  // Rules across fields and warnings.
  if (bd.contains("heads") && b.contains("heads") && b["heads"].is_number_integer() && d_model > 0) {
    int h = b["heads"].get<int>();
    if (h > 0 && d_model % h != 0)
      c.err(p + ".heads", std::to_string(h) + " does not divide model.d_model " + std::to_string(d_model));
  }
  for (const char* chunk : {"chunk", "chunk_other"})
    if (bd.contains(chunk) && b.contains(chunk) && b[chunk].is_number_integer() && b[chunk].get<int>() > 16)
      c.warn(p + "." + chunk,
             "a memory chunk longer than a typical short text never writes (" + b[chunk].dump() + " > 16 tokens)");
  const bool selfmod = try_parse<BlockType>(t) == BlockType::Hope &&
                       (!b.contains("mixer") || try_parse<Mixer>(str_or(b, "mixer")) == Mixer::Selfmod);
  const bool dampened = !b.contains("momentum_dampening") || b["momentum_dampening"] == true;
  if (selfmod && !dampened && b.contains("inner_lr") && b["inner_lr"].is_number() && b["inner_lr"].get<double>() > 0.3)
    c.warn(p + ".inner_lr", "η scale " + b["inner_lr"].dump() +
                                " > 0.3: writes will often be clamped, and with momentum the "
                                "self-modifying memories can still diverge (docs/MEMORY.md)");
  if (bd.contains("eta_max") && b.contains("eta_max") && b["eta_max"].is_number() && b["eta_max"].get<double>() > 0 &&
      b.contains("inner_lr") && b["inner_lr"].is_number() && b["eta_max"].get<double>() <= b["inner_lr"].get<double>())
    c.err(p + ".eta_max",
          "must be above inner_lr (η starts at inner_lr and stays below eta_max), or 0 for the "
          "unbounded link; got " +
              b["eta_max"].dump() + " with inner_lr " + b["inner_lr"].dump());
  if (bd.contains("state_bound") && b.contains("state_bound") && b["state_bound"].is_number()) {
    const double sb = b["state_bound"].get<double>();
    if (sb != 0 && sb < 1)
      c.err(p + ".state_bound",
            "must be 0 (no bound) or at least 1 (the radius is state_bound times the initial "
            "state's norm, which must lie inside); got " +
                b["state_bound"].dump());
  }
  if (bd.contains("levels")) check_levels(c, b, p);
}

void check_model(Checker& c, const json& s, const json& d) {
  int d_model = 0;
  const json* m = c.at(s, "model", "model");
  if (!m || !m->is_object()) {
    if (s.contains("model")) c.err("model", "must be an object");
    return;
  }
  c.unknownKeys(*m, d["model"], "model");
  c.fields(*m, "model", "model");
  if (m->contains("d_model") && (*m)["d_model"].is_number_integer()) d_model = (*m)["d_model"].get<int>();
  if (m->contains("vocab_size") && (*m)["vocab_size"].is_number_integer()) {
    int v = (*m)["vocab_size"].get<int>();
    if (v > 0 && v < 16) c.err("model.vocab_size", "must be 0 (dataset default) or >= 16");
  }
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
    c.fields(*h, "model.head", "model.head");
    if (try_parse<HeadType>(str_or(*h, "type")) == HeadType::Memory && h->contains("inner_lr") &&
        (*h)["inner_lr"].is_number() && (*h)["inner_lr"].get<double>() > 0.6)
      c.warn("model.head.inner_lr",
             "memory head: keys have norm 1, so every write with inner_lr > 0.6 is "
             "clamped to 0.6 (3·η·‖u‖² ≤ 1.8)");
  } else if (h)
    c.err("model.head", "must be an object like {\"type\": \"softmax\"}");
}

void check_optimizer(Checker& c, const json& s, const json& d) {
  if (const json* o = c.at(s, "optimizer", "optimizer"); o && o->is_object()) {
    c.unknownKeys(*o, d["optimizer"], "optimizer");
    c.fields(*o, "optimizer", "optimizer");
    if (o->contains("lr") && (*o)["lr"].is_number() && (*o)["lr"].get<double>() > 0.1 && str_or(*o, "type") == "adamw")
      c.warn("optimizer.lr", "AdamW with lr > 0.1 usually diverges");
  }
}

void check_training(Checker& c, const json& s, const json& d) {
  if (const json* t = c.at(s, "training", "training"); t && t->is_object()) {
    c.unknownKeys(*t, d["training"], "training");
    c.fields(*t, "training", "training");
  }
}

void check_experiment(Checker& c, const json& s, const json& d) {
  if (const json* e = c.at(s, "experiment", "experiment"); e && e->is_object()) {
    c.unknownKeys(*e, d["experiment"], "experiment");
    c.fields(*e, "experiment", "experiment");
    if (const json* st = c.at(*e, "strategy", "experiment.strategy"); st && st->is_object()) {
      c.unknownKeys(*st, d["experiment"]["strategy"], "experiment.strategy");
      c.fields(*st, "experiment.strategy", "experiment.strategy");
      if (try_parse<Protocol>(str_or(*e, "protocol")) == Protocol::Joint &&
          try_parse<StrategyType>(str_or(*st, "type")) != StrategyType::Finetune)
        c.warn("experiment.strategy.type", "joint training has a single task: the strategy has no effect");
    } else if (st)
      c.err("experiment.strategy", "must be an object like {\"type\": \"finetune\"}");
    if (const json* dd = c.at(*e, "data", "experiment.data"); dd && dd->is_object()) {
      c.unknownKeys(*dd, d["experiment"]["data"], "experiment.data");
      c.fields(*dd, "experiment.data", "experiment.data");
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
      try_parse<HeadType>(str_or(s["model"]["head"], "type")) == HeadType::Ncm)
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

namespace {
// What a hash leaves out besides the seed: the description, training.kernels (the same maths by
// other code, docs/KERNELS.md), and training.snapshots, which changes what a run saves, not what it trains (runs
// recorded before the field existed keep their hashes, so sweeps still find them finished and exports still group them
// with new seeds). A block's memory_writes at its default (true) is left out too: hope runs recorded
// before the field existed trained with the writes on and keep their hashes; memory_write_dropout at
// its default (0) likewise, and model.pooling at its default (mean).
json hashed_part(const json& spec) {
  json s = spec;
  s.erase("description");
  if (s.contains("training") && s["training"].is_object()) {
    s["training"].erase("snapshots");
    s["training"].erase("kernels");  // which code computes the same maths, not what is trained
  }
  if (s.contains("model") && s["model"].is_object() && s["model"].contains("pooling") &&
      s["model"]["pooling"] == "mean")
    s["model"].erase("pooling");
  if (s.contains("model") && s["model"].is_object() && s["model"].contains("blocks") && s["model"]["blocks"].is_array())
    for (auto& b : s["model"]["blocks"])
      if (b.is_object()) {
        if (b.contains("memory_writes") && b["memory_writes"] == true) b.erase("memory_writes");
        if (b.contains("memory_write_dropout") && b["memory_write_dropout"] == 0.0) b.erase("memory_write_dropout");
      }
  return s;
}
}  // namespace

std::string config_hash(const json& spec) {
  json s = hashed_part(spec);
  if (s.contains("experiment") && s["experiment"].is_object()) s["experiment"].erase("seed");
  return sha256_hex(canonical(s));
}

std::string run_hash(const json& spec) {
  return sha256_hex(canonical(hashed_part(spec)));
}

json load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw SpecError(path + ": cannot open spec file (check the path)");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_text(ss.str(), path);
}

json parse_text(const std::string& text, const std::string& path) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // Translate the byte offset into line:column.
    size_t off = e.byte > 0 ? e.byte - 1 : 0;
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
  } catch (const json::exception& e) {  // no position: e.g. a number too large for a double (1e999)
    throw SpecError(path + ": invalid JSON (" + e.what() + ") — write numbers within ±1.7e308");
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
  // By name ("hope" before "hope-attention"; the resource files sort "hope-*.json" first).
  std::sort(out.begin(), out.end());
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
