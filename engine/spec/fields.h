// The spec's field table: every scalar field of every spec section once, with its type, default,
// range or choices, unit, one-line doc and (for block fields) the block types that have it. The
// completed defaults (spec.cpp defaults(), block_defaults()), the validator's per-field checks
// and the editor's inspector (schema.h) all read it, so no limit is written twice. Structure
// (blocks, levels lists, init_from) and cross-field rules (heads divide d_model, warnings) stay
// in the validator. No Qt, no torch.
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
  std::vector<std::string> choices;  // for "choice": the accepted values, in display order
  int decimals = 0;                  // suggested display precision for "number"
  bool known = true;                 // false: inferred from a JSON value (no metadata)
  // From the table only:
  nlohmann::json def;               // the default a completed spec holds
  std::vector<std::string> blocks;  // section "block": the block types that have the field
  bool nonempty = false;            // "string": must not be empty
};

// The sections: "model", "model.head", "optimizer", "training", "experiment",
// "experiment.strategy", "experiment.data", "block" (every block type's fields) and "level" (a CMS
// level). In display order within a section.
const std::vector<std::string>& field_sections();
const std::vector<FieldInfo>& section_fields(const std::string& section);
// nullptr when the section has no such field.
const FieldInfo* find_field(const std::string& section, const std::string& name);
// The default of block field f in a block of `type`: f.def, except where a block type has its own
// (a hope block's inner_lr and momentum, 0.5 and 0.5: docs/SPEC.md "Hope blocks").
nlohmann::json block_field_default(const std::string& type, const FieldInfo& f);

// The upper bound of counts and step clocks that have no natural limit.
constexpr double kLargeCount = 100000000;
// How many CMS levels a block may have.
constexpr int kMinLevels = 1;
constexpr int kMaxLevels = 6;

}  // namespace hl::spec
