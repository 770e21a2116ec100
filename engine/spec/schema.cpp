#include "engine/spec/schema.h"

#include "engine/spec/spec.h"

using json = nlohmann::json;

namespace hl::spec {

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
  const FieldInfo* f = find_field("block", name);
  return f ? *f : infer_field(name, value);
}

std::vector<FieldInfo> block_fields(const std::string& type) {
  std::vector<FieldInfo> out;
  const json d = block_defaults(type);
  for (const auto& f : section_fields("block"))  // known fields in display order
    if (d.contains(f.name)) out.push_back(f);
  for (auto it = d.begin(); it != d.end(); ++it) {  // then the ones without metadata
    if (it.key() == "type" || it.key() == "levels" || find_field("block", it.key())) continue;
    out.push_back(infer_field(it.key(), it.value()));
  }
  return out;
}

std::vector<FieldInfo> level_fields() {
  return section_fields("level");
}

FieldInfo model_field(const std::string& path, const nlohmann::json& value) {
  const bool head = path.rfind("head.", 0) == 0;
  const std::string name = head ? path.substr(5) : path;
  if (const FieldInfo* f = find_field(head ? "model.head" : "model", name)) return *f;
  auto dot = path.rfind('.');
  return infer_field(dot == std::string::npos ? path : path.substr(dot + 1), value);
}

}  // namespace hl::spec
