#include "engine/spec/fields.h"

#include <map>

#include "engine/common/kinds.h"

namespace hl::spec {
namespace {

using json = nlohmann::json;

FieldInfo integer(const char* name, json def, double lo, double hi, const char* unit, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "int", f.def = std::move(def), f.unit = unit, f.doc = doc, f.min = lo, f.max = hi;
  return f;
}
FieldInfo number(const char* name, json def, double lo, double hi, int decimals, const char* unit, const char* doc,
                 bool min_open = false) {
  FieldInfo f;
  f.name = name, f.kind = "number", f.def = std::move(def), f.unit = unit, f.doc = doc, f.min = lo, f.max = hi;
  f.decimals = decimals, f.min_open = min_open;
  return f;
}
FieldInfo choice(const char* name, json def, std::vector<std::string> choices, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "choice", f.def = std::move(def), f.doc = doc, f.choices = std::move(choices);
  return f;
}
FieldInfo boolean(const char* name, json def, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "bool", f.def = std::move(def), f.doc = doc;
  return f;
}
FieldInfo text(const char* name, json def, bool nonempty, const char* doc) {
  FieldInfo f;
  f.name = name, f.kind = "string", f.def = std::move(def), f.doc = doc, f.nonempty = nonempty;
  return f;
}
FieldInfo in(FieldInfo f, std::vector<std::string> blocks) {
  f.blocks = std::move(blocks);
  return f;
}

std::vector<std::string> types(std::initializer_list<BlockType> ts) {
  std::vector<std::string> out;
  for (BlockType t : ts) out.push_back(name(t));
  return out;
}
using BT = BlockType;
const std::vector<std::string> kAttention =
    types({BT::Transformer, BT::Retnet, BT::Titans, BT::Hope, BT::HopeAttention});
const std::vector<std::string> kMemory = types({BT::Titans, BT::Hope});
const std::vector<std::string> kLevels = types({BT::Cms, BT::Hope, BT::HopeAttention});
const std::vector<std::string> kHope = types({BT::Hope});

std::map<std::string, std::vector<FieldInfo>> build() {
  std::map<std::string, std::vector<FieldInfo>> t;
  t["model"] = {
      integer("d_model", 128, 8, 4096, "dims", "Model width"),
      integer("vocab_size", 0, 0, 1000000, "tokens", "Vocabulary size (0 = the dataset's default, else >= 16)"),
      integer("max_len", 0, 0, 4096, "tokens", "Longest input (0 = the dataset's default)"),
      choice("positions", "learned", names<Positions>(), "Position embedding"),
      number("embedding_dropout", 0.0, 0.0, 0.9, 2, "", "Dropout on the token + position embeddings while training"),
      choice("pooling", "mean", names<Pooling>(),
             "How the classifier reads a sequence: mean over its real tokens, or its last real token only (then "
             "all context must reach the last position through the blocks' token mixing)"),
  };
  t["model.head"] = {
      choice("type", "softmax", names<HeadType>(),
             "softmax: a trained linear classifier; ncm: cosine nearest-class-mean (network untrained); memory: "
             "a linear associative memory written by DGD on its own clock (the network still trains)"),
      number("ncm_scale", 16.0, 0.0, 1000.0, 1, "scale", "Cosine logit scale of the NCM head (> 0)", true),
      // memory head (DECISIONS.md "Heads"; docs/MODELS.md "Memory head")
      integer("clock", 1, 1, kLargeCount, "steps", "Memory head: update period"),
      number("inner_lr", 0.1, 0.0, 10.0, 3, "lr", "Memory head: inner learning rate (> 0)", true),
      number("retain", 1.0, 0.0, 1.0, 3, "", "Memory head: retention per write"),
      number("momentum", 0.9, 0.0, 1.0, 3, "", "Memory head: momentum"),
      number("scale", 16.0, 0.0, 1000.0, 1, "scale", "Memory head: logit scale (> 0)", true),
  };
  t["optimizer"] = {
      choice("type", "adamw", {"adamw", "sgd", "sgd_momentum", "delta_momentum", "deep_momentum", "m3"},
             "The outer optimizer (docs/OPTIMIZERS.md)"),
      number("lr", 1e-3, 0.0, 10.0, 6, "lr", "Learning rate (> 0)", true),
      number("weight_decay", 0.01, 0.0, 10.0, 4, "", "Decoupled weight decay"),
      number("beta1", 0.9, 0.0, 0.999999, 3, "", "First-moment decay"),
      number("beta2", 0.999, 0.0, 0.999999, 4, "", "Second-moment decay"),
      number("momentum", 0.9, 0.0, 0.999999, 3, "", "Momentum (sgd_momentum, delta_momentum)"),
      integer("m3_slow_every", 10, 1, 1000000, "steps", "M3: period of the slow momentum"),
      integer("m3_ns_steps", 5, 0, 100, "", "M3: Newton-Schulz iterations"),
      integer("deep_hidden", 4, 1, 1024, "units", "Deep momentum: hidden width of the momentum MLP"),
      number("deep_inner_lr", 1e-3, 0.0, 10.0, 5, "lr", "Deep momentum: inner learning rate"),
  };
  t["training"] = {
      integer("epochs", 5, 0, 10000, "", "Epochs per task"),
      integer("batch_size", 32, 1, 65536, "rows", "Batch size"),
      integer("eval_every", 0, 0, kLargeCount, "steps", "Periodic evaluation interval (0 = four per task)"),
      integer("limit_per_class", 0, 0, kLargeCount, "rows", "Train rows per class (0 = all)"),
      integer("eval_limit_per_class", 0, 0, kLargeCount, "rows", "Test rows per class (0 = all)"),
      number("grad_clip", 0.0, 0.0, 1e6, 2, "", "Global gradient-norm clip of the outer level (0 = off)"),
      number("grad_clip_memory", 0.0, 0.0, 1e6, 2, "",
             "Gradient-norm clip of the in-context memories' outer parameters, applied before grad_clip (0 = off)"),
      number("grad_clip_rest", 0.0, 0.0, 1e6, 2, "",
             "Gradient-norm clip of the other outer parameters, applied before grad_clip (0 = off)"),
      number("grad_clip_cms", 0.0, 0.0, 1e6, 2, "",
             "Gradient-norm clip of each CMS level's window-mean gradient at its tick (0 = off)"),
      number("dev_fraction", 0.0, 0.0, 0.5, 2, "", "Train rows per class held out to pick best.pt"),
      integer("threads", 0, 0, 256, "", "CPU threads (0 = LibTorch's default)"),
      boolean("checkpoints", true, "Save last.pt and best.pt at task ends"),
      choice("kernels", "auto", {"auto", "reference"},
             "Memory recurrences: auto = the fused kernels where they apply (CPU float32/float64), reference = "
             "the LibTorch path (docs/KERNELS.md; left out of the config hash)"),
      boolean("snapshots", true,
              "Save the model's weights at every task end (for forgetting attribution; left out of the "
              "config hash)"),
  };
  t["experiment"] = {
      text("dataset", "banking77", true, "A dataset name (clinc150, banking77, dbpedia70, dbpedia14) or a folder path"),
      text("split", "", false, "The dataset's split (\"\" = its default)"),
      choice("protocol", "class-incremental", names<Protocol>(), "Tasks in turn, or all at once"),
      integer("task_order", 0, 0, 1000000, "", "Which task order (0 = the published one)"),
      integer("seed", 0, 0, double(1LL << 53), "", "Random seed"),
      choice("device", "cpu", {"cpu", "cuda"}, "Where the run trains"),
  };
  t["experiment.strategy"] = {
      choice("type", "finetune", names<StrategyType>(), "The continual-learning strategy"),
      number("ewc_lambda", 100.0, 0.0, 1e12, 1, "", "EWC: penalty weight λ"),
      integer("replay_per_class", 10, 1, 1000000, "rows", "Replay: buffer rows per class"),
  };
  t["experiment.data"] = {
      text("text_column", "text", true, "Folder datasets: the text column"),
      text("label_column", "label", true, "Folder datasets: the label column"),
      integer("classes_per_task", 10, 1, 100000, "classes", "Folder datasets: classes per task"),
  };
  // Block fields by name (a name means the same in every block type that has it), display order.
  t["block"] = {
      in(integer("heads", 4, 1, 64, "heads", "Attention / memory heads; must divide model.d_model"), kAttention),
      in(integer("chunk", 4, 1, 4096, "tokens",
                 "Memory write chunk; longer than 16 tokens warns (a short text never "
                 "writes)"),
         kMemory),
      in(integer("chunk_other", 8, 1, 4096, "tokens",
                 "Self-modifying Titans: chunk of the k, v, η, α memories; longer than 16 tokens warns"),
         kHope),
      in(choice("mixer", "selfmod", {name(Mixer::Selfmod), name(Mixer::Titans)},
                "Hope block's token mixer: self-modifying Titans, or plain Titans memory (the no-selfmod ablation)"),
         kHope),
      in(choice("dgd_layers", "per_layer", names<DgdLayers>(),
                "Which memory layers get the DGD factor (α I − η u uᵀ): every layer, the first only, or none "
                "(plain GD)"),
         kHope),
      in(choice("inner_objective", "l2", names<InnerObjective>(),
                "Inner objective of the memory writes: L2 regression ‖M(k) − v̂‖² or the dot product (gated delta "
                "rule)"),
         kHope),
      in(choice("memory_inputs", "separate", names<MemoryInputs>(),
                "Self-modifying Titans: the k, v, η, α memories read one shared projection of the input, or "
                "one projection each (k, v and the η/α pair; schema 1: shared)"),
         kHope),
      in(number("memory_init_scale", 0.6, 0.0, 10.0, 3, "",
                "Self-modifying Titans: scale of the memories' initial second layer W1 ~ N(0, s²/F) (schema 1: "
                "0.1)"),
         kHope),
      in(number("eta_max", 1.0, 0.0, 100.0, 3, "",
                "Self-modifying Titans: η bound, η_t = eta_max · σ(·) starting at inner_lr; 0 = unbounded "
                "inner_lr · softplus(·) (schema 1)"),
         kHope),
      in(boolean("momentum_dampening", true,
                 "Self-modifying Titans: momentum S ← β S − (1 − β) η G, so the accumulated write is never "
                 "larger than the largest single write (schema 1: off, S ← β S − η G)"),
         kHope),
      in(number("state_bound", 2.0, 0.0, 1000.0, 2, "",
                "The in-context memory (self-modifying Titans, the Titans memory of mixer titans, or a titans "
                "block's): at every chunk boundary each memory map is projected onto ‖W‖ ≤ state_bound · "
                "‖W_0‖ (its initial state); 0 = no bound (a titans block's default; schema 1), else at least 1"),
         types({BT::Hope, BT::Titans})),
      in(boolean("memory_writes", true,
                 "Self-modifying Titans: write the in-context memories; false is the ablation with the writes "
                 "off: every token reads the output memory at its initial, learned state (docs/MEMORY.md "
                 "\"Writes off\")"),
         kHope),
      in(number("memory_write_dropout", 0.0, 0.0, 0.9, 2, "",
                "Self-modifying Titans, in training only: the probability that a sequence's in-context writes "
                "are dropped for one forward (it reads the output memory at its initial state, as with "
                "memory_writes false); evaluation always writes (docs/MEMORY.md \"Write dropout\")"),
         kHope),
      in(integer("hidden", 0, 0, 8192, "units", "LSTM hidden size (0 = model.d_model)"), types({BT::Lstm})),
      in(choice("variant", "sequential", names<CmsVariant>(),
                "sequential: levels applied in turn; independent: outputs mixed by learned weights; nested: "
                "sequential, and each tick of a level restarts the next faster level from this level's parameters"),
         kLevels),
      in(choice("clock_unit", "steps", names<ClockUnit>(), "What a level's clock counts: optimizer steps or tasks"),
         kLevels),
      in(choice("transfer", "gradient", names<Transfer>(),
                "How a slower level learns: from its own gradient, or by consolidating the faster level"),
         kLevels),
      in(number("consolidate_rate", 0.5, 0.0, 1.0, 3, "", "Consolidation step toward the faster level (> 0)", true),
         kLevels),
      in(integer("ffn_mult", 2, 1, 16, "× d_model", "MLP width as a multiple of model.d_model"),
         types({BT::Transformer, BT::Retnet, BT::Titans, BT::Hope, BT::HopeAttention, BT::Cms})),
      in(number("inner_lr", 0.1, 0.0, 10.0, 3, "",
                "Memory step size (must be > 0): Titans: upper scale of θ_t; self-modifying Titans: η at "
                "initialisation (hope blocks default to 0.5; η_t = eta_max · σ(·), or inner_lr · softplus(·) when "
                "eta_max is 0)",
                true),
         kMemory),
      in(number("momentum", 0.9, 0.0, 1.0, 3, "",
                "Titans: upper bound of the surprise momentum η_t; self-modifying Titans: the DGD momentum β "
                "(hope blocks default to 0.5)"),
         kMemory),
      in(number("retain", 0.99, 0.0, 1.0, 3, "",
                "Titans: lower bound of the per-token retention (1 = no forgetting); self-modifying Titans: the "
                "retention gate α_t at initialisation"),
         kMemory),
      in(number("dropout", 0.1, 0.0, 0.9, 2, "", "Dropout on the block's residual branches"), kAttention),
      in(number("attention_dropout", 0.0, 0.0, 0.9, 2, "", "Transformer: dropout on the attention probabilities"),
         types({BT::Transformer})),
      in(number("ffn_dropout", 0.0, 0.0, 0.9, 2, "", "Transformer: dropout on the FFN hidden layer (after GELU)"),
         types({BT::Transformer})),
      in(boolean("stop_grad_writes", false, "Stop gradients through the memory writes"), kMemory),
      in(integer("persistent_tokens", 0, 0, 64, "tokens",
                 "Titans memory: learnable tokens prepended to every sequence (Titans eq. 19); 0 = none"),
         kMemory),
  };
  t["level"] = {
      integer("clock", 1, 1, kLargeCount, "steps", "Update period: the level steps once every `clock` optimizer steps"),
      number("lr", 0.0, 0.0, 10.0, 5, "lr", "The level's learning rate (0 = the optimizer's lr)"),
  };
  return t;
}

const std::map<std::string, std::vector<FieldInfo>>& table() {
  static const auto t = build();
  return t;
}

}  // namespace

const std::vector<std::string>& field_sections() {
  static const std::vector<std::string> s{"model",           "model.head", "optimizer",
                                          "training",        "experiment", "experiment.strategy",
                                          "experiment.data", "block",      "level"};
  return s;
}

const std::vector<FieldInfo>& section_fields(const std::string& section) {
  static const std::vector<FieldInfo> none;
  auto it = table().find(section);
  return it == table().end() ? none : it->second;
}

const FieldInfo* find_field(const std::string& section, const std::string& name) {
  for (const auto& f : section_fields(section))
    if (f.name == name) return &f;
  return nullptr;
}

nlohmann::json block_field_default(const std::string& type, const FieldInfo& f) {
  // A hope block's mixer is self-modifying Titans by default: its η at initialisation and DGD
  // momentum (docs/MEMORY.md "Active memory"); the table's 0.1 and 0.9 are the Titans memory's.
  if (type == name(BlockType::Hope) && f.name == "inner_lr") return 0.5;
  if (type == name(BlockType::Hope) && f.name == "momentum") return 0.5;
  // A titans block (the Titans baseline) had no state bound before the field reached it: 0 keeps
  // its runs as they were (docs/MEMORY.md "State bound").
  if (type == name(BlockType::Titans) && f.name == "state_bound") return 0.0;
  return f.def;
}

}  // namespace hl::spec
