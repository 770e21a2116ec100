#include "engine/train/diagnose.h"

#include "engine/train/run_setup.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "engine/common/error.h"
#include "engine/train/batches.h"
#include "engine/train/checkpoint_format.h"

namespace hl::train {

using json = nlohmann::json;

json diagnose(const json& spec, const RunOptions& opt, const DiagnoseOptions& d) {
  if (d.batch < 1) throw SpecError("--batch: must be at least 1, got " + std::to_string(d.batch));
  Emitter emit;
  RunSetup s = set_up_model(spec, opt, emit, d.checkpoint);
  s.model->eval();
  std::vector<int64_t> idx(s.train.ids.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::mt19937_64 gen(s.seed);
  std::shuffle(idx.begin(), idx.end(), gen);
  idx.resize(std::min<size_t>(idx.size(), size_t(d.batch)));
  if (idx.empty()) throw DataError("diagnose: the dataset has no train rows");
  const auto tokens = batch_tokens(s.train, idx, s.pad).to(s.device);
  json out = {{"spec_name", s.spec.value("name", "")},
              {"dataset", s.dataset_name},
              {"rows", int64_t(idx.size())},
              {"tokens", tokens.ne(s.pad).sum().item<int64_t>()},
              {"checkpoint", d.checkpoint},
              {"blocks", json::array()}};
  for (const auto& m : s.model->diagnose(tokens)) {
    auto dist = [](double mean, double p05, double p50, double p95) {
      return json{{"mean", mean}, {"p05", p05}, {"p50", p50}, {"p95", p95}};
    };
    out["blocks"].push_back({{"block", m.block},
                             {"writes", m.writes},
                             {"cos_kv", m.cos_kv},
                             {"inner_loss", m.inner_loss},
                             {"inner_loss_other", m.inner_loss_other},
                             {"erase_over_assoc", m.erase_over_assoc},
                             {"memory_share", m.memory_share},
                             {"context_effect_t8", m.context_effect_t8},
                             {"context_rows", m.context_rows},
                             {"eta", dist(m.eta_mean, m.eta_p05, m.eta_p50, m.eta_p95)},
                             {"alpha", dist(m.alpha_mean, m.alpha_p05, m.alpha_p50, m.alpha_p95)},
                             {"clamp_rate", m.clamp_rate}});
  }
  return out;
}

}  // namespace hl::train
