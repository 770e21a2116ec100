// A tiny Hope-like experiment for the GUI tests: Titans memory block + a 3-level CMS block on a
// Banking77 slice (5 train / 5 test rows per class, 1 epoch), so the per-level lanes and the drift
// of every level appear within seconds on a shared 2-core machine.
#pragma once
#include <nlohmann/json.hpp>

#include "engine/spec/spec.h"

inline nlohmann::json tiny_spec(int seed = 0) {
  nlohmann::json s = hl::spec::preset("titans");
  s["name"] = "tiny-hope";
  s["model"]["d_model"] = 32;
  s["model"]["blocks"] = nlohmann::json::array({hl::spec::block_defaults("titans"), hl::spec::block_defaults("cms")});
  s["model"]["blocks"][0]["heads"] = 2;
  s["experiment"]["dataset"] = "banking77";
  s["experiment"]["seed"] = seed;
  s["training"]["epochs"] = 1;
  s["training"]["limit_per_class"] = 5;
  s["training"]["eval_limit_per_class"] = 5;
  s["training"]["batch_size"] = 16;
  s["training"]["eval_every"] = 1000;  // evaluate at task ends only
  return hl::spec::complete(s);
}
