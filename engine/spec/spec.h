// The experiment spec: one JSON document for architecture + experiment. The editor edits it, the
// CLI reads it, the engine builds from it, the store hashes it. No Qt, no torch.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace hl::spec {

constexpr int kSchemaVersion = 2;  // 2: the active self-modifying Titans defaults (docs/SPEC.md)

struct Issue {
  std::string path;  // JSON path, e.g. "model.blocks[1].heads"
  std::string message;
  bool error = true;  // false = warning
};

struct Validation {
  std::vector<Issue> issues;
  bool ok() const;             // no errors (warnings allowed)
  std::string format() const;  // one line per issue: "error: PATH: MESSAGE"
};

// The full default spec (a Transformer baseline on banking77, DECISIONS.md defaults).
nlohmann::json defaults();
// Deep-merges `user` over the defaults (objects merge, arrays and scalars replace). Blocks are
// completed with their type's defaults.
nlohmann::json complete(const nlohmann::json& user);
// Every error and warning, each with its JSON path. Expects a completed spec.
Validation validate(const nlohmann::json& spec);

// Canonical text: keys sorted, no whitespace, numbers as nlohmann dumps them. Equal specs -> equal text.
std::string canonical(const nlohmann::json& spec);
// Hashes leave out `description`, `training.kernels` (which code computes the same maths) and
// `training.snapshots` (what a run saves, not what it trains).
std::string config_hash(const nlohmann::json& spec);  // sha256 of canonical spec without experiment.seed
std::string run_hash(const nlohmann::json& spec);     // sha256 of canonical spec with the seed

// Reads a spec file; throws hl::SpecError naming the file and the parse position.
nlohmann::json load_file(const std::string& path);
// The parse of load_file on text already read (`path` only names it in messages).
nlohmann::json parse_text(const std::string& text, const std::string& path);
// --set path=value: path "a.b[2].c" or "a.b.2.c"; value parsed as JSON when it parses, else a string.
// Throws hl::SpecError naming the path when it does not exist in the spec.
void set_path(nlohmann::json& spec, const std::string& path, const std::string& value);

// Built-in presets (resources/presets/*.json, compiled in).
std::vector<std::string> preset_names();
nlohmann::json preset(const std::string& name);  // completed; throws SpecError listing the names if unknown
std::string preset_description(const std::string& name);
// What loading preset `name` into an existing spec gives (the app's Load preset): the preset owns
// name, description, model, optimizer and the training fields in preset_training_fields(); the
// experiment and the rest of training (epochs, batch size, limits, evaluation, dev split, threads,
// checkpoints: the protocol) stay. So a preset loaded into the default spec equals the CLI's
// `--preset name`, and a preset loaded after another leaves nothing of the other behind.
nlohmann::json with_preset(const nlohmann::json& spec, const std::string& name);
const std::vector<std::string>& preset_training_fields();  // {"grad_clip"}

// Default block fields for a block type (empty object for unknown types).
nlohmann::json block_defaults(const std::string& type);
std::vector<std::string> block_types();

}  // namespace hl::spec
