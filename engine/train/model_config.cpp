#include "engine/train/model_config.h"

#include "engine/spec/fields.h"
#include "engine/spec/spec.h"

namespace hl::train {

using json = nlohmann::json;

DatasetDefaults dataset_defaults(const std::string& name, const std::string& split) {
  if (name == "clinc150") return {3000, 64, 150};
  if (name == "banking77") return {2000, 64, split == "all77" ? 77 : 70};
  if (name == "dbpedia70") return {8000, 128, 70};
  if (name == "dbpedia14") return {8000, 128, 14};
  return {2000, 64, 10};
}

namespace {

// A block field, or the field table's default for it when the block type does not have it (the
// config struct has every field; only the block's own ones matter for its type).
template <class T>
T block_field(const json& b, const char* key) {
  return b.contains(key)
             ? b.at(key).get<T>()
             : spec::block_field_default(b.value("type", std::string()), *spec::find_field("block", key)).get<T>();
}

// A block's choice field parsed into its enum; an unknown value throws SpecError naming
// `where`.key (a validated spec never has one).
template <class E>
E block_kind(const json& b, const char* key, const std::string& where) {
  return parse<E>(block_field<std::string>(b, key), where + "." + key);
}

// The CMS level fields of a block with levels (cms; any block that holds a `levels` array).
void parse_cms_levels(const json& b, models::BlockConfig& bc, const std::string& where) {
  bc.cms_variant = block_kind<CmsVariant>(b, "variant", where);
  bc.cms_clock_unit = block_kind<ClockUnit>(b, "clock_unit", where);
  bc.cms_transfer = block_kind<Transfer>(b, "transfer", where);
  bc.cms_consolidate_rate = block_field<double>(b, "consolidate_rate");
  for (const auto& L : b.at("levels")) {
    bc.cms_clocks.push_back(L.at("clock").get<int>());
    bc.cms_lrs.push_back(L.value("lr", spec::find_field("level", "lr")->def.get<double>()));  // optional
    models::LevelInit in;
    if (L.contains("init_from") && L["init_from"].is_object()) {
      const json& f = L["init_from"];
      in.checkpoint = f.value("checkpoint", std::string());
      in.block = f.value("block", 0);
      in.level = f.value("level", 0);
    }
    bc.cms_init.push_back(in);
  }
}

}  // namespace

models::ModelConfig model_config(const json& user_spec, int vocab, int max_len, int num_classes, int pad_id) {
  // Completed here too (a checkpoint of an older build may lack newer fields): every default comes
  // from the field table (engine/spec/fields.h), none is written again below.
  const json spec = spec::complete(user_spec);
  const json& m = spec.at("model");
  models::ModelConfig c;
  c.vocab_size = vocab;
  c.max_len = max_len;
  c.d_model = m.at("d_model").get<int>();
  c.positions = parse<Positions>(m.at("positions").get<std::string>(), "model.positions");
  c.embedding_dropout = m.at("embedding_dropout").get<double>();
  c.pooling = parse<Pooling>(m.at("pooling").get<std::string>(), "model.pooling");
  for (size_t i = 0; i < m.at("blocks").size(); ++i) {
    const json& b = m.at("blocks")[i];
    const std::string where = "model.blocks[" + std::to_string(i) + "]";
    models::BlockConfig bc;
    bc.type = parse<BlockType>(b.at("type").get<std::string>(), where + ".type");
    bc.heads = block_field<int>(b, "heads");
    bc.ffn_mult = block_field<int>(b, "ffn_mult");
    bc.dropout = block_field<double>(b, "dropout");
    bc.hidden = block_field<int>(b, "hidden");
    if (bc.type == BlockType::Transformer) {
      bc.attention_dropout = block_field<double>(b, "attention_dropout");
      bc.ffn_dropout = block_field<double>(b, "ffn_dropout");
    }
    const bool hope = is_hope(bc.type);
    if (bc.type == BlockType::Titans || hope) {
      bc.inner_lr = block_field<double>(b, "inner_lr");
      bc.momentum = block_field<double>(b, "momentum");
      bc.retain = block_field<double>(b, "retain");
      bc.chunk = block_field<int>(b, "chunk");
      bc.stop_grad_writes = block_field<bool>(b, "stop_grad_writes");
      bc.persistent_tokens = block_field<int>(b, "persistent_tokens");
      bc.state_bound = block_field<double>(b, "state_bound");
    }
    if (hope) {
      bc.mixer = bc.type == BlockType::HopeAttention ? Mixer::Attention : block_kind<Mixer>(b, "mixer", where);
      bc.chunk_other = block_field<int>(b, "chunk_other");
      bc.dgd_layers = block_kind<DgdLayers>(b, "dgd_layers", where);
      bc.inner_objective = block_kind<InnerObjective>(b, "inner_objective", where);
      bc.memory_inputs = block_kind<MemoryInputs>(b, "memory_inputs", where);
      bc.memory_init_scale = block_field<double>(b, "memory_init_scale");
      bc.eta_max = block_field<double>(b, "eta_max");
      bc.momentum_dampening = block_field<bool>(b, "momentum_dampening");
      bc.memory_writes = block_field<bool>(b, "memory_writes");
      bc.memory_write_dropout = block_field<double>(b, "memory_write_dropout");
    }
    if (has_cms_levels(bc.type)) parse_cms_levels(b, bc, where);
    c.blocks.push_back(bc);
  }
  c.head = parse<HeadType>(m.at("head").at("type").get<std::string>(), "model.head.type");
  c.ncm_scale = m.at("head").at("ncm_scale").get<double>();
  c.memory_clock = m.at("head").at("clock").get<int>();
  c.memory_inner_lr = m.at("head").at("inner_lr").get<double>();
  c.memory_retain = m.at("head").at("retain").get<double>();
  c.memory_momentum = m.at("head").at("momentum").get<double>();
  c.memory_scale = m.at("head").at("scale").get<double>();
  c.num_classes = num_classes;
  c.pad_id = pad_id;
  return c;
}

}  // namespace hl::train
