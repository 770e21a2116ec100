// The closed vocabularies of the spec and the store as enums. Strings are parsed into these once,
// where they enter the engine (spec -> model config and run set-up in train/, rows read from the
// store), and compared as enums everywhere after that. Each enum's names are its spelling in the
// spec / the store, in display order; the spec's field table (engine/spec/fields.cpp) takes its
// choices from here, so a value is never written twice. No Qt, no torch.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hl {

enum class BlockType { Transformer, Lstm, Retnet, Cms, Titans, Hope, HopeAttention };
enum class Mixer { Selfmod, Titans, Attention };  // Attention: hope_attention only (not a spec choice)
enum class CmsVariant { Sequential, Independent, Nested };
enum class ClockUnit { Steps, Tasks };
enum class Transfer { Gradient, Consolidate };
enum class DgdLayers { PerLayer, First, None };
enum class InnerObjective { L2, Dot };
enum class MemoryInputs { Shared, Separate };  // self-modifying Titans: inputs of the k, v, η, α memories
enum class HeadType { Softmax, Ncm, Memory };
enum class Positions { Learned, None };
enum class Pooling { Mean, Last };  // how the classifier reduces a sequence to one feature
enum class StrategyType { Finetune, Ewc, Replay };
enum class Protocol { ClassIncremental, Joint };
// A run's state. Paused is a live state only (trainer events); the store never holds it.
enum class RunStatus { Running, Paused, Finished, Failed, Diverged, Cancelled, Interrupted };
// snapshot: the model alone (weights and buffers) at one task end, for forgetting attribution.
enum class CheckpointKind { Best, Last, Snapshot };

template <class E>
struct KindNames;  // names[i] is the spelling of enumerator i; what names the vocabulary in messages

// The spelling of a value.
template <class E>
std::string name(E e) {
  return std::string(KindNames<E>::names[static_cast<size_t>(e)]);
}
// All spellings, in order.
template <class E>
std::vector<std::string> names() {
  return {KindNames<E>::names.begin(), KindNames<E>::names.end()};
}
// nullopt when s is none of the names.
template <class E>
std::optional<E> try_parse(std::string_view s) {
  const auto& n = KindNames<E>::names;
  for (size_t i = 0; i < n.size(); ++i)
    if (n[i] == s) return static_cast<E>(i);
  return std::nullopt;
}
// "a, b or c": the names for a message.
std::string choices_text(const std::vector<std::string>& names);
// Parses s; throws SpecError naming `field`, the value and the accepted names otherwise.
[[noreturn]] void throw_unknown_kind(const std::string& field, std::string_view value, const char* what,
                                     const std::vector<std::string>& accepted);
template <class E>
E parse(std::string_view s, const std::string& field) {
  if (auto e = try_parse<E>(s)) return *e;
  throw_unknown_kind(field, s, KindNames<E>::what, names<E>());
}

#define HL_KIND(E, WHAT, ...)                                                                   \
  template <>                                                                                   \
  struct KindNames<E> {                                                                         \
    static constexpr const char* what = WHAT;                                                   \
    static constexpr std::array<std::string_view, std::size({__VA_ARGS__})> names{__VA_ARGS__}; \
  };                                                                                            \
  /* JSON holds a kind as its name (not nlohmann's default, the integer) */                     \
  inline void to_json(nlohmann::json& j, E e) {                                                 \
    j = name(e);                                                                                \
  }                                                                                             \
  inline void from_json(const nlohmann::json& j, E& e) {                                        \
    e = parse<E>(j.get<std::string>(), "JSON value");                                           \
  }
HL_KIND(BlockType, "block type", "transformer", "lstm", "retnet", "cms", "titans", "hope", "hope_attention")
HL_KIND(Mixer, "mixer", "selfmod", "titans", "attention")
HL_KIND(CmsVariant, "CMS variant", "sequential", "independent", "nested")
HL_KIND(ClockUnit, "clock unit", "steps", "tasks")
HL_KIND(Transfer, "transfer", "gradient", "consolidate")
HL_KIND(DgdLayers, "dgd_layers", "per_layer", "first", "none")
HL_KIND(InnerObjective, "inner objective", "l2", "dot")
HL_KIND(MemoryInputs, "memory inputs", "shared", "separate")
HL_KIND(HeadType, "head type", "softmax", "ncm", "memory")
HL_KIND(Positions, "positions", "learned", "none")
HL_KIND(Pooling, "pooling", "mean", "last")
HL_KIND(StrategyType, "strategy", "finetune", "ewc", "replay")
HL_KIND(Protocol, "protocol", "class-incremental", "joint")
HL_KIND(RunStatus, "run status", "running", "paused", "finished", "failed", "diverged", "cancelled", "interrupted")
HL_KIND(CheckpointKind, "checkpoint kind", "best", "last", "snapshot")
#undef HL_KIND

// Block types by what they contain.
inline bool has_cms_levels(BlockType t) {
  return t == BlockType::Cms || t == BlockType::Hope || t == BlockType::HopeAttention;
}
inline bool is_hope(BlockType t) {
  return t == BlockType::Hope || t == BlockType::HopeAttention;
}
// Finished, failed, diverged, cancelled or interrupted: the run will not write again by itself.
inline bool is_terminal(RunStatus s) {
  return s != RunStatus::Running && s != RunStatus::Paused;
}
inline bool is_failure(RunStatus s) {
  return s == RunStatus::Failed || s == RunStatus::Diverged;
}

}  // namespace hl
