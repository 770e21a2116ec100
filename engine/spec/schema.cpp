#include "engine/spec/schema.h"

#include <functional>
#include <map>

#include "engine/spec/spec.h"

using json = nlohmann::json;

namespace hl::spec {
namespace {

FieldInfo integer(const char* name, double lo, double hi, const char* unit, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "int", f.unit = unit, f.doc = doc, f.min = lo, f.max = hi;
  return f;
}
FieldInfo number(const char* name, double lo, double hi, int decimals, const char* unit, const char* doc,
                 bool min_open = false) {
  FieldInfo f;
  f.name = name, f.kind = "number", f.unit = unit, f.doc = doc, f.min = lo, f.max = hi;
  f.decimals = decimals, f.min_open = min_open;
  return f;
}
FieldInfo choice(const char* name, std::vector<std::string> choices, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "choice", f.doc = doc, f.choices = std::move(choices);
  return f;
}
FieldInfo boolean(const char* name, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "bool", f.doc = doc;
  return f;
}

// The candidates the validator accepts at `path` when `make(candidate)` builds the spec: choice
// lists follow the validator as it gains values (all candidates when it does not check the field).
std::vector<std::string> accepted(const std::vector<std::string>& candidates,
                                  const std::function<json(const std::string&)>& make, const std::string& path) {
  std::vector<std::string> out;
  for (const auto& c : candidates) {
    bool ok = true;
    for (const auto& i : validate(complete(make(c))).issues)
      if (i.error && i.path == path) ok = false;
    if (ok) out.push_back(c);
  }
  return out;
}

json withCmsField(const std::string& field, const std::string& value) {
  json s = defaults();
  json b = block_defaults("cms");
  b[field] = value;
  s["model"]["blocks"] = json::array({b});
  return s;
}

std::vector<std::string> cmsChoices(const std::string& field, const std::vector<std::string>& candidates) {
  return accepted(
      candidates, [&](const std::string& c) { return withCmsField(field, c); }, "model.blocks[0]." + field);
}

// Block fields by name. The limits are the validator's (spec.cpp, validate_impl); a field name
// means the same in every block type that has it.
// The table's order is the display order: the most telling fields first.
std::vector<std::string>& block_order() {
  static std::vector<std::string> order;
  return order;
}

const std::map<std::string, FieldInfo>& block_table() {
  static const std::map<std::string, FieldInfo> t = [] {
    std::map<std::string, FieldInfo> m;
    auto add = [&m](FieldInfo f) {
      block_order().push_back(f.name);
      m[f.name] = f;
    };
    add(integer("heads", 1, 64, "heads", "Attention / memory heads; must divide model.d_model"));
    add(integer("chunk", 1, 4096, "tokens",
                "Memory write chunk; longer than 16 tokens warns (a short text never writes)"));
    add(integer("chunk_other", 1, 4096, "tokens",
                "Self-modifying Titans: chunk of the k, v, η, α memories; longer than 16 tokens warns"));
    add(choice("mixer", {"selfmod", "titans"},
               "Hope block's token mixer: self-modifying Titans, or plain Titans memory (the no-selfmod ablation)"));
    add(choice(
        "dgd_layers", {"per_layer", "first", "none"},
        "Which memory layers get the DGD factor (α I − η u uᵀ): every layer, the first only, or none (plain GD)"));
    add(choice(
        "inner_objective", {"l2", "dot"},
        "Inner objective of the memory writes: L2 regression ‖M(k) − v̂‖² or the dot product (gated delta rule)"));
    add(integer("hidden", 0, 8192, "units", "LSTM hidden size (0 = model.d_model)"));
    add(choice("variant", cmsChoices("variant", {"sequential", "independent", "nested"}),
               "sequential: levels applied in turn; independent: outputs mixed by learned weights; "
               "nested: sequential, and each tick of a level resets the next faster level to its start"));
    add(choice("clock_unit", cmsChoices("clock_unit", {"steps", "tasks"}),
               "What a level's clock counts: optimizer steps or tasks"));
    add(choice("transfer", cmsChoices("transfer", {"gradient", "consolidate"}),
               "How a slower level learns: from its own gradient, or by consolidating the faster level"));
    add(number("consolidate_rate", 0.0, 1.0, 3, "", "Consolidation step toward the faster level (> 0)", true));
    add(integer("ffn_mult", 1, 16, "× d_model", "MLP width as a multiple of model.d_model"));
    add(number("inner_lr", 0.0, 10.0, 3, "",
               "Memory step size (must be > 0): Titans: upper scale of θ_t; self-modifying Titans: η scale "
               "(η_t = inner_lr · softplus(·); above 0.3 warns)",
               true));
    add(number("momentum", 0.0, 1.0, 3, "",
               "Titans: upper bound of the surprise momentum η_t; self-modifying Titans: the DGD momentum β"));
    add(number("retain", 0.0, 1.0, 3, "",
               "Titans: lower bound of the per-token retention (1 = no forgetting); self-modifying Titans: "
               "the retention gate α_t at initialisation"));
    add(number("dropout", 0.0, 0.9, 2, "", "Dropout on the block's residual branches"));
    add(boolean("stop_grad_writes", "Stop gradients through the memory writes"));
    add(integer("persistent_tokens", 0, 64, "tokens",
                "Titans memory: learnable tokens prepended to every sequence (Titans eq. 19); 0 = none"));
    return m;
  }();
  return t;
}

}  // namespace

FieldInfo infer_field(const std::string& name, const nlohmann::json& value) {
  FieldInfo f;
  f.name = name;
  f.known = false;
  f.doc = "No metadata for this field: edited as its JSON type";
  if (value.is_boolean())
    f.kind = "bool";
  else if (value.is_number_integer())
    f.kind = "int", f.min = -1e9, f.max = 1e9;
  else if (value.is_number())
    f.kind = "number", f.min = -1e9, f.max = 1e9, f.decimals = 6;
  else
    f.kind = "string";
  return f;
}

FieldInfo block_field(const std::string& name, const nlohmann::json& value) {
  const auto& t = block_table();
  auto it = t.find(name);
  return it != t.end() ? it->second : infer_field(name, value);
}

std::vector<FieldInfo> block_fields(const std::string& type) {
  std::vector<FieldInfo> out;
  const json d = block_defaults(type);
  block_table();                          // fills block_order()
  for (const auto& name : block_order())  // known fields in display order
    if (d.contains(name)) out.push_back(block_field(name, d[name]));
  for (auto it = d.begin(); it != d.end(); ++it) {  // then the ones without metadata
    if (it.key() == "type" || it.key() == "levels" || block_table().count(it.key())) continue;
    out.push_back(block_field(it.key(), it.value()));
  }
  return out;
}

std::vector<FieldInfo> level_fields() {
  return {integer("clock", 1, 100000000, "steps", "Update period: the level steps once every `clock` optimizer steps"),
          number("lr", 0.0, 10.0, 5, "lr", "The level's learning rate (0 = the optimizer's lr)")};
}

FieldInfo model_field(const std::string& path, const nlohmann::json& value) {
  if (path == "d_model") return integer("d_model", 8, 4096, "dims", "Model width");
  if (path == "vocab_size")
    return integer("vocab_size", 0, 1000000, "tokens", "Vocabulary size (0 = the dataset's default, else >= 16)");
  if (path == "max_len") return integer("max_len", 0, 4096, "tokens", "Longest input (0 = the dataset's default)");
  if (path == "positions") return choice("positions", {"learned", "none"}, "Position embedding");
  if (path == "head.type") {
    static const std::vector<std::string> heads = accepted(
        {"softmax", "ncm", "memory"},
        [](const std::string& c) {
          json s = defaults();
          s["model"]["head"]["type"] = c;
          return s;
        },
        "model.head.type");
    return choice("type", heads,
                  "softmax: a trained linear classifier; ncm: cosine nearest-class-mean (network untrained); "
                  "memory: a linear associative memory written by DGD on its own clock (the network still trains)");
  }
  if (path == "head.ncm_scale")
    return number("ncm_scale", 0.0, 1000.0, 1, "scale", "Cosine logit scale of the NCM head (> 0)", true);
  // memory-head fields (docs/MODELS.md "Heads")
  if (path == "head.clock") return integer("clock", 1, 100000000, "steps", "Memory head: update period");
  if (path == "head.inner_lr")
    return number("inner_lr", 0.0, 10.0, 3, "lr", "Memory head: inner learning rate (> 0)", true);
  if (path == "head.retain") return number("retain", 0.0, 1.0, 3, "", "Memory head: retention per write");
  if (path == "head.momentum") return number("momentum", 0.0, 1.0, 3, "", "Memory head: momentum");
  if (path == "head.scale") return number("scale", 0.0, 1000.0, 1, "scale", "Memory head: logit scale (> 0)", true);
  auto dot = path.rfind('.');
  return infer_field(dot == std::string::npos ? path : path.substr(dot + 1), value);
}

}  // namespace hl::spec
