#include "engine/train/strategies.h"

#include <algorithm>

namespace hl::train {
namespace {

class FineTune : public Strategy {};

// Replay (DECISIONS.md): at each task end up to m rows per class of that task join the buffer; each
// batch gets as many buffer rows as it has, drawn uniformly with replacement.
class Replay : public Strategy {
 public:
  explicit Replay(int per_class) : m_(per_class) {}
  void extend_batch(TrainerState& st, std::vector<int64_t>& idx) override {
    if (st.replay_buffer.empty()) return;
    auto pick = torch::randint(int64_t(st.replay_buffer.size()), {int64_t(idx.size())}, st.replay_gen, torch::kLong);
    for (int64_t p : to_vec(pick)) idx.push_back(st.replay_buffer[p]);
  }
  void task_end(TrainerState& st, RunSetup& s, int phase, const torch::Tensor&) override {
    if (s.joint) return;
    const auto& rows = s.phase_rows[phase];
    for (int c : s.phases[phase]) {
      std::vector<int64_t> of_c;
      for (int64_t i : rows)
        if (s.train.labels[i] == c) of_c.push_back(i);
      auto perm = to_vec(torch::randperm(int64_t(of_c.size()), st.replay_gen, torch::kLong));
      for (int k = 0; k < std::min<int>(m_, int(of_c.size())); ++k) st.replay_buffer.push_back(of_c[perm[k]]);
    }
  }

 private:
  int m_;
};

// Online EWC (gamma = 1): penalty λ/2 Σ F (θ − θ*)², F the diagonal empirical Fisher accumulated
// over tasks, θ* the parameters at the latest task end.
class Ewc : public Strategy {
 public:
  explicit Ewc(double lambda) : lambda_(lambda) {}
  torch::Tensor penalty(TrainerState& st, const torch::Tensor& loss) override {
    if (st.ewc_fisher.empty()) return {};
    torch::Tensor pen = torch::zeros({}, loss.options());
    for (size_t k = 0; k < st.params.size(); ++k)
      pen = pen + (st.ewc_fisher[k] * (st.params[k] - st.ewc_anchor[k]).pow(2)).sum();
    return 0.5 * lambda_ * pen;
  }
  void task_end(TrainerState& st, RunSetup& s, int phase, const torch::Tensor& seen) override {
    if (s.joint || !s.trainable) return;
    auto& params = st.params;
    if (st.ewc_fisher.empty())
      for (auto& p : params) st.ewc_fisher.push_back(torch::zeros_like(p));
    std::vector<torch::Tensor> f;
    for (auto& p : params) f.push_back(torch::zeros_like(p));
    s.model->eval();
    std::vector<torch::Tensor> stash;  // CMS windows in progress survive the Fisher pass
    for (auto& L : st.levels)
      for (auto& p : L.g.params) stash.push_back(p.grad().defined() ? p.grad().detach().clone() : torch::Tensor());
    const auto& rows = s.phase_rows[phase];
    const size_t bs = size_t(s.batch_size);
    int nb = 0;
    for (size_t b = 0; b < rows.size(); b += bs, ++nb) {
      std::vector<int64_t> idx(rows.begin() + b, rows.begin() + std::min(rows.size(), b + bs));
      auto logits = s.model->forward(batch_tokens(s.train, idx, s.pad).to(s.device)) + seen;
      auto loss = torch::nn::functional::cross_entropy(logits, batch_labels(s.train, idx).to(s.device));
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      loss.backward();
      for (size_t k = 0; k < params.size(); ++k)
        // The batch-mean gradient's square is ~1/B of the mean per-sample squared gradient
        // (the empirical Fisher); scale by B instead of paying for per-sample gradients.
        if (params[k].grad().defined()) f[k] += params[k].grad().detach().pow(2) * double(idx.size());
    }
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    size_t i = 0;
    for (auto& L : st.levels)
      for (auto& p : L.g.params) p.mutable_grad() = stash[i++];
    s.model->train();
    st.ewc_anchor.clear();
    for (size_t k = 0; k < params.size(); ++k) {
      st.ewc_fisher[k] += f[k] / std::max(nb, 1);
      st.ewc_anchor.push_back(params[k].detach().clone());
    }
  }

 private:
  double lambda_;
};

}  // namespace

std::unique_ptr<Strategy> make_strategy(const RunSetup& s) {
  const auto& st = s.ex().at("strategy");
  if (s.strategy == StrategyType::Replay) return std::make_unique<Replay>(st.at("replay_per_class").get<int>());
  if (s.strategy == StrategyType::Ewc) return std::make_unique<Ewc>(st.at("ewc_lambda").get<double>());
  return std::make_unique<FineTune>();
}

}  // namespace hl::train
