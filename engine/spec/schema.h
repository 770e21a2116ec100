// Field metadata for the spec's model part: kind, range, unit, choices and a one-line doc per
// field, taken from the validator's limits (spec.cpp) so that an editor can offer the same ranges
// the validator enforces. No Qt, no torch.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace hl::spec {

struct FieldInfo {
  std::string name;                  // key inside its object, e.g. "heads"
  std::string kind;                  // "int", "number", "bool", "choice", "string"
  std::string unit;                  // short unit or scale, e.g. "tokens", "× d_model" ("" = none)
  std::string doc;                   // one line for a tooltip
  double min = 0.0, max = 0.0;       // inclusive range for int and number
  bool min_open = false;             // true: min itself is excluded (e.g. inner_lr in (0, 10])
  std::vector<std::string> choices;  // for "choice": the candidates the validator accepts
  int decimals = 0;                  // suggested display precision for "number"
  bool known = true;                 // false: inferred from a JSON value (no metadata)
};

// Metadata for every field of a block type's defaults except "type" and "levels": the fields
// with metadata in display order (heads, chunk, ... dropout, flags), then the others, inferred
// from the default's JSON type (known = false).
std::vector<FieldInfo> block_fields(const std::string& type);
// Metadata for one field of a block by name, regardless of type; inferred from `value` when the
// name is not in the table.
FieldInfo block_field(const std::string& name, const nlohmann::json& value = nullptr);
// Fields of one CMS level: "clock" and "lr".
std::vector<FieldInfo> level_fields();
// Model-level fields by path inside "model": "d_model", "vocab_size", "max_len", "positions",
// "head.<field>" for every field of defaults()["model"]["head"]. Unknown paths are inferred from
// `value` (known = false).
FieldInfo model_field(const std::string& path, const nlohmann::json& value = nullptr);
// A field inferred from a JSON value: bool, int (range 0..1e9), number, or string.
FieldInfo infer_field(const std::string& name, const nlohmann::json& value);

// Limits on the number of CMS levels in a block (the validator's 1..6).
constexpr int kMinLevels = 1;
constexpr int kMaxLevels = 6;

}  // namespace hl::spec
