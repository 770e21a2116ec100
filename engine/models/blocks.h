// Blocks of the classifier: transformer, lstm, retnet, cms, titans, hope, hope_attention. Equations: docs/MODELS.md.
// Engine-internal (includes torch through torch_wrap.h); never include from a moc-read header.
//
// Shapes: x [B, L, d] floating, mask [B, L] bool (true = real token) -> [B, L, d].
#pragma once
#include "engine/models/classifier.h"
#include "engine/memory/selfmod_titans.h"

#include <memory>
#include <string>
#include <vector>

namespace hl::models {

// Position-wise MLP: Linear(d, f*d) -> GELU -> Linear(f*d, d).
class FeedForwardImpl : public torch::nn::Module {
 public:
  // hidden_dropout > 0: dropout on the hidden layer (after GELU) while training.
  FeedForwardImpl(int d_model, int ffn_mult, double hidden_dropout = 0);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::nn::Linear fc1_{nullptr}, fc2_{nullptr};
  double hidden_dropout_ = 0;
};
TORCH_MODULE(FeedForward);

// Pre-norm block with a token mixer and an MLP:
//   x <- x + Dropout(mix(LN1(x), mask));  x <- x + Dropout(FFN(LN2(x))).
// Subclasses provide mix(); they are responsible for keeping padded positions out of real ones.
class PreNormBlockImpl : public BlockImpl {
 public:
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) override;

 protected:
  PreNormBlockImpl(int d_model, int ffn_mult, double dropout, double ffn_dropout = 0);
  // h = LN1(x) [B, L, d], mask [B, L] -> [B, L, d]
  virtual torch::Tensor mix(const torch::Tensor& h, const torch::Tensor& mask) = 0;

 private:
  torch::nn::LayerNorm norm1_{nullptr}, norm2_{nullptr};
  FeedForward ffn_{nullptr};
  torch::nn::Dropout drop_{nullptr};
};

// Bidirectional multi-head softmax self-attention (q, k, v from one fused projection), padded
// keys masked out. A row with no real token attends to all of its (padded) keys instead, so it
// stays finite; its outputs are never pooled.
class TransformerBlockImpl : public PreNormBlockImpl {
 public:
  // dropout: the residual branches; attention_dropout: the attention probabilities; ffn_dropout:
  // the FFN's hidden layer (0 = none: no random numbers drawn).
  TransformerBlockImpl(int d_model, int heads, int ffn_mult, double dropout, double attention_dropout = 0,
                       double ffn_dropout = 0);

 protected:
  torch::Tensor mix(const torch::Tensor& h, const torch::Tensor& mask) override;

 private:
  int heads_;
  double attention_dropout_ = 0;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};

// Unidirectional (causal, left to right) LSTM, pre-norm residual:
//   x <- x + P(LSTM(LN(x)))   with P = Linear(hidden, d) when hidden != d, identity otherwise.
// Causality means right padding cannot reach real positions. No dropout (BlockConfig.dropout is
// a transformer/retnet field).
class LstmBlockImpl : public BlockImpl {
 public:
  LstmBlockImpl(int d_model, int hidden);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) override;

 private:
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::Linear proj_{nullptr};  // null when hidden == d_model
};

// Multi-scale retention (Sun et al. 2023) as the mixer, FFN as in the transformer block.
// No xPos rotation (positions come from the classifier's learned embedding); no bias in the
// q, k, v, gate and output projections (as the reference implementation).
class RetNetBlockImpl : public PreNormBlockImpl {
 public:
  RetNetBlockImpl(int d_model, int heads, int ffn_mult, double dropout);

  // Which retention form forward() uses: parallel (default, for training) or recurrent
  // (O(1) state per step). Both compute the same function.
  void setRecurrent(bool on) { recurrent_ = on; }
  bool recurrent() const { return recurrent_; }

  // gamma_h = 1 - 2^(-5-h), h = 0..heads-1
  static std::vector<double> decays(int heads);
  // q, k [B, H, L, dk], v [B, H, L, dv], gamma [H] -> [B, H, L, dv]
  // Parallel: (Q K^T (.) D) V, D[n, m] = gamma^(n-m) for n >= m else 0.
  static torch::Tensor retentionParallel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                         const torch::Tensor& gamma);
  // Recurrent: S_n = gamma S_{n-1} + k_n^T v_n,  o_n = q_n S_n  (S_0 = 0).
  static torch::Tensor retentionRecurrent(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          const torch::Tensor& gamma);

 protected:
  torch::Tensor mix(const torch::Tensor& h, const torch::Tensor& mask) override;

 private:
  int heads_;
  bool recurrent_ = false;
  torch::nn::Linear wq_{nullptr}, wk_{nullptr}, wv_{nullptr}, wg_{nullptr}, wo_{nullptr};
  torch::nn::GroupNorm gn_{nullptr};
};

// Throws std::invalid_argument naming `field` (e.g. "model.blocks[1]") plus the member.
// Continuum Memory System block: levels of MLPs, each pre-normed, fastest first.
//   sequential:  x <- x + MLP_l(LN_l(x)) for l = 1..K in order
//   independent: x + sum_l softmax(w)_l MLP_l(LN_l(x)) with learned mixing weights w
//   nested:      the sequential forward; the trainer resets level l−1 at each tick of level l
// The levels' different update rates are the trainer's job (LevelGroup clocks).
class CmsBlockImpl : public BlockImpl {
 public:
  CmsBlockImpl(int d_model, const BlockConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) override;
  // Parameters of level l (its norm and MLP; the mixing weights belong to the outer level).
  std::vector<torch::Tensor> levelParameters(size_t l);
  size_t numLevels() const { return mlps_.size(); }
  CmsBlockImpl* cmsPart() override { return this; }

 private:
  CmsVariant variant_;
  std::vector<torch::nn::LayerNorm> norms_;
  std::vector<FeedForward> mlps_;
  torch::Tensor mix_;  // independent variant: [K] logits of the mixing weights
};

// Titans long-term memory as a token mixer (engine/memory/titans_memory.h, lmm_chunked;
// docs/MODELS.md "Titans block"), h = LN(x) [B, L, d] -> [B, L, d]:
//   q, k, v = SiLU(causal depthwise conv4(Linear(h)))  per head; q, k L2-normalised
//   θ_t = inner_lr·softplus(·), η_t = momentum·sigmoid(·), α_t = (1 − retain)·sigmoid(·)
//   y = memory read (initial weights W1, W2 are parameters); out(sigmoid(g(h)) ⊙ y)
// With persistent_tokens P > 0, P learnable tokens are prepended to every sequence (Titans eq. 19)
// and their outputs dropped.
class TitansMixerImpl : public torch::nn::Module {
 public:
  TitansMixerImpl(int d_model, const BlockConfig& cfg);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& mask);
  // Memory statistics of the last forward (level context.memory; block index left at -1).
  ContextStats stats() const { return stats_; }
  torch::Tensor memW1() const { return w1_; }
  torch::Tensor memW2() const { return w2_; }
  torch::nn::Linear gateLayer() const { return gates_; }
  // training.kernels: whether the memory may take the fused kernel (hl::memory::lmm_fused).
  void setFused(bool on) { fused_ = on; }
  // Forwards since construction through the fused kernel, and through the LibTorch path.
  int64_t fusedForwards() const { return fused_forwards_; }
  int64_t referenceForwards() const { return reference_forwards_; }

 private:
  int heads_;
  double inner_lr_, momentum_, retain_;
  int chunk_;
  double state_bound_;  // a Hope block's state_bound (0 for a Titans block: no such field)
  bool stop_grad_writes_;
  torch::nn::Linear wq_{nullptr}, wk_{nullptr}, wv_{nullptr}, gates_{nullptr}, wg_{nullptr}, wo_{nullptr};
  torch::nn::Conv1d conv_{nullptr};  // depthwise over 3·d channels (q, k, v), window 4
  torch::Tensor w1_, w2_;            // memory initial state [H, D, F], [H, F, D]
  torch::Tensor persistent_;         // [P, d] persistent memory tokens (undefined when P = 0)
  ContextStats stats_;
  bool fused_ = true;
  int64_t fused_forwards_ = 0, reference_forwards_ = 0;
  torch::Tensor mix(const torch::Tensor& h, const torch::Tensor& mask);
};
TORCH_MODULE(TitansMixer);

// Self-modifying Titans as a token mixer (engine/memory/selfmod_titans.h, smt_chunked;
// docs/MODELS.md "Self-modifying Titans"), h = LN(x) [B, L, d] -> [B, L, d]:
//   x_m, q = L2-normalise(SiLU(causal depthwise conv4(Linear(h)))) per head (q: the output
//   memory's query; x_m: the input of the k, v, η, α memories, one shared or, `memory_inputs:
//   separate`, one for k, one for v and one for the η/α pair)
//   o = self-modifying memory read; out(sigmoid(g(h)) ⊙ o)
class SelfModMixerImpl : public torch::nn::Module {
 public:
  SelfModMixerImpl(int d_model, const BlockConfig& cfg);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& mask);
  // context.memory and context.other statistics of the last forward in training mode (block index left at -1).
  std::vector<ContextStats> stats() const { return stats_; }
  const hl::memory::SmtConfig& memoryConfig() const { return mc_; }
  MemoryDiagnostics diagnose(const torch::Tensor& h, const torch::Tensor& mask);
  // training.kernels: whether the memory's segment writes may take the fused kernel.
  void setFused(bool on) { mc_.fused = on; }
  // Forwards since construction that wrote through the fused kernel, and through the LibTorch path.
  int64_t fusedForwards() const { return fused_forwards_; }
  int64_t referenceForwards() const { return reference_forwards_; }

 private:
  struct Inputs {
    torch::Tensor x, q;  // [B, H, L, D], L2-normalised
    hl::memory::SmtParams p;
  };
  Inputs inputs(const torch::Tensor& h, const torch::Tensor& mask);
  hl::memory::SmtConfig mc_;
  double write_dropout_ = 0;  // BlockConfig::memory_write_dropout
  int64_t inputs_ = 1;        // memory inputs: 1 shared, or 3 (k, v, and the η/α pair)
  torch::nn::Linear wx_{nullptr}, wq_{nullptr}, wg_{nullptr}, wo_{nullptr};
  torch::nn::Conv1d conv_{nullptr};  // depthwise over (inputs_ + 1)·d channels (memory inputs, q), window 4
  torch::Tensor w1_, w2_, w_eta_, b_eta_, w_alpha_, b_alpha_;
  std::vector<ContextStats> stats_;
  int64_t fused_forwards_ = 0, reference_forwards_ = 0;
};
TORCH_MODULE(SelfModMixer);

// Multi-head softmax self-attention over real tokens (the transformer block's mixer).
class AttentionMixerImpl : public torch::nn::Module {
 public:
  AttentionMixerImpl(int d_model, int heads);
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& mask);

 private:
  int heads_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
};
TORCH_MODULE(AttentionMixer);

// Titans block: the Titans mixer followed by the FFN of the transformer block.
class TitansBlockImpl : public PreNormBlockImpl {
 public:
  TitansBlockImpl(int d_model, const BlockConfig& cfg);
  ContextStats stats() const { return lmm_->stats(); }
  torch::Tensor memW1() const { return lmm_->memW1(); }
  torch::Tensor memW2() const { return lmm_->memW2(); }
  torch::nn::Linear gateLayer() const { return lmm_->gateLayer(); }
  std::vector<ContextStats> contextStats() const override { return {lmm_->stats()}; }

 protected:
  torch::Tensor mix(const torch::Tensor& h, const torch::Tensor& mask) override { return lmm_(h, mask); }

 private:
  TitansMixer lmm_{nullptr};
};

// Hope block (DECISIONS.md): x <- x + Dropout(mixer(LN(x))), then the CMS levels in place of the
// FFN. mixer: self-modifying Titans (`hope`, default), Titans memory (`mixer: titans`, the
// hope-no-selfmod ablation) or softmax attention (`hope_attention`).
class HopeBlockImpl : public BlockImpl {
 public:
  HopeBlockImpl(int d_model, const BlockConfig& cfg);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) override;
  CmsBlockImpl* cmsPart() override { return cms_.get(); }
  std::vector<ContextStats> contextStats() const override;
  std::vector<MemoryDiagnostics> diagnose(const torch::Tensor& x, const torch::Tensor& mask) override;

 private:
  Mixer mixer_;
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Dropout drop_{nullptr};
  SelfModMixer smt_{nullptr};
  TitansMixer lmm_{nullptr};
  AttentionMixer attn_{nullptr};
  std::shared_ptr<CmsBlockImpl> cms_;
};

void validate_block(const BlockConfig& b, int d_model, const std::string& field);
// The CMS level fields any block with levels carries: variant (sequential | independent |
// nested), clock_unit, transfer, consolidate_rate, init_from. Errors name `field`.
void validate_cms_levels(const BlockConfig& b, const std::string& field);
// Validates (errors name `field`), then builds the block.
std::shared_ptr<BlockImpl> make_block(const BlockConfig& b, int d_model, const std::string& field = "block");
// 2 x multiply-adds of one block's forward for one sequence of seq_len tokens (docs/MODELS.md).
double block_flops(const BlockConfig& b, int d_model, int seq_len);

}  // namespace hl::models
