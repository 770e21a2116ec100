#include "engine/train/batches.h"

#include <algorithm>

namespace hl::train {

Encoded encode(const std::vector<data::Example>& rows, const data::Tokenizer& tok, int max_len) {
  Encoded e;
  e.ids.reserve(rows.size());
  e.labels.reserve(rows.size());
  for (const auto& r : rows) {
    auto ids = tok.encode(r.text, max_len);
    e.ids.emplace_back(ids.begin(), ids.end());
    e.labels.push_back(r.label);
  }
  return e;
}

torch::Tensor batch_tokens(const Encoded& e, const std::vector<int64_t>& idx, int64_t pad) {
  size_t L = 1;
  for (int64_t i : idx) L = std::max(L, e.ids[i].size());
  auto t = torch::full({int64_t(idx.size()), int64_t(L)}, pad, torch::kLong);
  auto acc = t.accessor<int64_t, 2>();
  for (size_t b = 0; b < idx.size(); ++b)
    for (size_t k = 0; k < e.ids[idx[b]].size(); ++k) acc[b][k] = e.ids[idx[b]][k];
  return t;
}

torch::Tensor batch_labels(const Encoded& e, const std::vector<int64_t>& idx) {
  auto t = torch::empty({int64_t(idx.size())}, torch::kLong);
  for (size_t b = 0; b < idx.size(); ++b) t[b] = e.labels[idx[b]];
  return t;
}

std::vector<int64_t> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kCPU).to(torch::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

torch::Tensor flat(const std::vector<torch::Tensor>& ps) {
  std::vector<torch::Tensor> v;
  for (const auto& p : ps) v.push_back(p.detach().reshape(-1));
  return v.empty() ? torch::zeros({1}) : torch::cat(v).clone();
}

void unflat_into(const torch::Tensor& flat_v, std::vector<torch::Tensor>& ps) {
  torch::NoGradGuard ng;
  int64_t off = 0;
  for (auto& p : ps) {
    p.copy_(flat_v.narrow(0, off, p.numel()).view_as(p));
    off += p.numel();
  }
}

double drift(const torch::Tensor& now, const torch::Tensor& ref) {
  double denom = ref.norm().item<double>();
  return (now - ref).norm().item<double>() / std::max(denom, 1e-12);
}

}  // namespace hl::train
