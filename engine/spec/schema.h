// Field metadata for the spec's model part as an editor needs it: kind, range, unit, choices and a
// one-line doc per field, read from the field table (fields.h) that the validator and the
// completed defaults read too. No Qt, no torch.
#pragma once
#include <nlohmann/json.hpp>

#include "engine/spec/fields.h"

#include <string>
#include <vector>

namespace hl::spec {

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

}  // namespace hl::spec
