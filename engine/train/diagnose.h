// `hopelab-cli diagnose`: the in-context memory's state on real batches, at initialisation or from
// a checkpoint (docs/MEMORY.md "Diagnostics"). Torch-free header.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "engine/train/experiment.h"

namespace hl::train {

struct DiagnoseOptions {
  std::string checkpoint;  // a Hope Lab checkpoint (.pt): its spec, tokenizer and weights; "" = initialisation
  int batch = 32;          // rows of the batch (the train rows, shuffled with the spec's seed)
};

// {"spec_name", "dataset", "rows", "tokens", "checkpoint", "blocks": [{"block", "cos_kv", "inner_loss",
// "inner_loss_other", "erase_over_assoc", "memory_share", "context_effect_t8", "context_rows",
// "eta": {mean, p05, p50, p95}, "alpha": {…}, "clamp_rate"}, …]}: one entry per block with a
// self-modifying Titans memory (none for other block types). Throws SpecError / DataError /
// RunError (a bad checkpoint) like a run would.
nlohmann::json diagnose(const nlohmann::json& spec, const RunOptions& opt, const DiagnoseOptions& d);

}  // namespace hl::train
