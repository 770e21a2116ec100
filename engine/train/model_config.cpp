#include "engine/train/model_config.h"

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

// The CMS level fields of a block with levels (cms; any block that holds a `levels` array).
void parse_cms_levels(const json& b, models::BlockConfig& bc) {
  bc.cms_variant = b.value("variant", std::string("sequential"));
  bc.cms_clock_unit = b.value("clock_unit", std::string("steps"));
  bc.cms_transfer = b.value("transfer", std::string("gradient"));
  bc.cms_consolidate_rate = b.value("consolidate_rate", 0.5);
  for (const auto& L : b.at("levels")) {
    bc.cms_clocks.push_back(L.at("clock").get<int>());
    bc.cms_lrs.push_back(L.value("lr", 0.0));
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

models::ModelConfig model_config(const json& spec, int vocab, int max_len, int num_classes, int pad_id) {
  const json& m = spec.at("model");
  models::ModelConfig c;
  c.vocab_size = vocab;
  c.max_len = max_len;
  c.d_model = m.at("d_model").get<int>();
  c.positions = m.at("positions").get<std::string>();
  for (const auto& b : m.at("blocks")) {
    models::BlockConfig bc;
    bc.type = b.at("type").get<std::string>();
    bc.heads = b.value("heads", 4);
    bc.ffn_mult = b.value("ffn_mult", 2);
    bc.dropout = b.value("dropout", 0.1);
    bc.hidden = b.value("hidden", 0);
    const bool hope = bc.type == "hope" || bc.type == "hope_attention";
    if (bc.type == "titans" || hope) {
      bc.inner_lr = b.value("inner_lr", 0.1);
      bc.momentum = b.value("momentum", 0.9);
      bc.retain = b.value("retain", 0.99);
      bc.chunk = b.value("chunk", 4);
      bc.stop_grad_writes = b.value("stop_grad_writes", false);
      bc.persistent_tokens = b.value("persistent_tokens", 0);
    }
    if (hope) {
      bc.mixer = bc.type == "hope_attention" ? "attention" : b.value("mixer", std::string("selfmod"));
      bc.chunk_other = b.value("chunk_other", 8);
      bc.dgd_layers = b.value("dgd_layers", std::string("per_layer"));
      bc.inner_objective = b.value("inner_objective", std::string("l2"));
    }
    if (bc.type == "cms" || hope) parse_cms_levels(b, bc);
    c.blocks.push_back(bc);
  }
  c.head = m.at("head").at("type").get<std::string>();
  c.ncm_scale = m.at("head").value("ncm_scale", 16.0);
  c.memory_clock = m.at("head").value("clock", 1);
  c.memory_inner_lr = m.at("head").value("inner_lr", 0.1);
  c.memory_retain = m.at("head").value("retain", 1.0);
  c.memory_momentum = m.at("head").value("momentum", 0.9);
  c.memory_scale = m.at("head").value("scale", 16.0);
  c.num_classes = num_classes;
  c.pad_id = pad_id;
  return c;
}

}  // namespace hl::train
