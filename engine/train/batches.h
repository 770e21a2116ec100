// Internal to engine/train: tokenised rows and the tensors made from them, and the flat
// parameter snapshots that drift and nested resets use. Owns no state; touches nothing outside
// its arguments.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/tokenizer.h"
#include "engine/torch_wrap.h"

namespace hl::train {

constexpr float kMaskedLogit = -1e9f;  // logits of classes not (yet) seen

struct Encoded {
  std::vector<std::vector<int64_t>> ids;
  std::vector<int64_t> labels;
};

Encoded encode(const std::vector<data::Example>& rows, const data::Tokenizer& tok, int max_len);
// Tokens [B, Lmax] padded with pad_id to the longest row of the batch.
torch::Tensor batch_tokens(const Encoded& e, const std::vector<int64_t>& idx, int64_t pad);
torch::Tensor batch_labels(const Encoded& e, const std::vector<int64_t>& idx);
std::vector<int64_t> to_vec(const torch::Tensor& t);

// All parameters as one detached vector (a snapshot), and back (a nested reset).
torch::Tensor flat(const std::vector<torch::Tensor>& ps);
void unflat_into(const torch::Tensor& flat_v, std::vector<torch::Tensor>& ps);
// ||now − ref|| / ||ref|| (DECISIONS.md, drift).
double drift(const torch::Tensor& now, const torch::Tensor& ref);

}  // namespace hl::train
