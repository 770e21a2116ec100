// Spec -> model configuration, shared by the trainer and inference (engine-internal: includes
// torch through the models headers; never include from a moc-read header).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "engine/models/classifier.h"

namespace hl::train {

// Dataset defaults known without reading data.
struct DatasetDefaults {
  int vocab = 2000;
  int max_len = 64;
  int classes = 10;
};
DatasetDefaults dataset_defaults(const std::string& name, const std::string& split);

// The model a completed spec describes, for the tokenizer's vocabulary and pad id, the data's
// max length and class count.
models::ModelConfig model_config(const nlohmann::json& spec, int vocab, int max_len, int num_classes, int pad_id);

}  // namespace hl::train
