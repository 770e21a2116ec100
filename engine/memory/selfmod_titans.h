// Self-modifying Titans (HOPE.md §4, DECISIONS.md "Self-modifying Titans"): five in-context
// memories per head — k, v, η, α and the output memory — each a 2-layer residual MLP
// M(x) = x + W1 σ(W2 x) (σ = SiLU) that generates its own target v̂ = M(v) and is written by
// delta gradient descent (DGD) with momentum:
//   S_t = β S_{t−1} − η_t G_t;   W_t = W_{t−1}(α_t I − η_t u uᵀ) + S_t
// for each linear map W of a memory with input u (W2: u = k_t; W1: u = σ(W2 k_t)), G the gradient
// of the inner objective at the chunk-start state. Two chunk sizes: the output memory is read
// with its state frozen over chunks of `chunk_memory` tokens, the k, v, η, α memories over chunks
// of `chunk_other` tokens. Two paths compute the same maths: a plain token-by-token reference
// (inner gradients by autograd, writes as explicit matrix products) and the fast path (reads and
// closed-form gradients batched over the tokens between chunk boundaries, rank-1 writes).
// Semantics and every choice the paper leaves open: docs/MEMORY.md "Self-modifying Titans".
// Include after engine/torch_wrap.h (TOOLCHAIN.md §4.1).
#pragma once

#include "engine/torch_wrap.h"

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "engine/common/kinds.h"

namespace hl::memory {

// Memory indices along the stacked memory dimension.
enum SmtMemory : int64_t { kSmtKey = 0, kSmtValue = 1, kSmtEta = 2, kSmtAlpha = 3, kSmtOut = 4 };
constexpr int64_t kSmtMemories = 5;

using hl::DgdLayers;       // spec dgd_layers (engine/common/kinds.h)
using hl::InnerObjective;  // spec inner_objective

struct SmtConfig {
  int64_t heads = 1;
  int64_t head_dim = 16;
  int64_t hidden = 0;        // memory MLP hidden width F; 0 means head_dim
  int64_t chunk_memory = 4;  // output memory: tokens per frozen read state
  int64_t chunk_other = 8;   // k, v, η, α memories
  double momentum = 0.9;     // β of the DGD momentum (spec `momentum`)
  double eta_scale = 0.1;  // η at initialisation (spec `inner_lr`); with eta_max = 0: η_t = eta_scale · softplus(·)
  // η link (spec `eta_max`): 0 = eta_scale · softplus(·), unbounded (schema 1); > 0 = eta_max · σ(·),
  // bounded, with b_η = logit(eta_scale / eta_max) so η ≈ eta_scale at initialisation.
  double eta_max = 0;
  // Momentum form (spec `momentum_dampening`): false: S_t = β S_{t−1} − η_t G_t (heavy ball, schema 1);
  // true: S_t = β S_{t−1} − (1 − β) η_t G_t, so the accumulated step is a convex combination of single
  // (clamped) writes and never larger than the largest of them (docs/MEMORY.md "Bounded writes").
  bool dampen = false;
  // State bound (spec `state_bound`): 0 = none (schema 1); > 0: at the end of every segment (every
  // chunk boundary of either size, and the sequence end) each map of each memory and head is
  // projected onto the ball ‖W‖_F ≤ state_bound · ‖W_0‖_F, W_0 its initial state:
  // W ← W · min(1, state_bound · ‖W_0‖_F / ‖W‖_F) (docs/MEMORY.md "State bound"). Must be 0 or ≥ 1.
  double state_bound = 0;
  DgdLayers dgd = DgdLayers::PerLayer;
  InnerObjective objective = InnerObjective::L2;
  bool stop_grad_writes = false;  // writes are constants for the outer loss (straight-through)
  bool clamp = true;              // per write: η ← min(η, clamp_bound / (3‖u‖²)), W2 also by the gain above it
  double clamp_bound = 1.8;
  // smt_chunked's segment writes through the fused kernel (engine/memory/fused.h) where it applies
  // (CPU, float32/float64); false, or any other device or dtype: the LibTorch segment write.
  bool fused = true;
  // spec `memory_writes`: false is the ablation with the in-context writes off: nothing is written,
  // every token reads the output memory at its initial (learned) state, y_t = M_out,0(q_t); the
  // per-token losses, drift, clamp and write counts are 0 (docs/MEMORY.md "Writes off").
  bool writes = true;
  // false: a forward whose level statistics nobody reads (evaluation): where the whole-sequence
  // kernel runs without a gradient, the final states are not copied out and SmtResult's loss_*,
  // drift_*, writes_* and W1 .. S2 are left at 0 / undefined (y, loss_tokens and clamped are kept).
  bool level_stats = true;
  int64_t hiddenWidth() const { return hidden > 0 ? hidden : head_dim; }
};

// Outer (meta-learned) parameters of the memories.
struct SmtParams {
  torch::Tensor W1;       // [5, H, D, F]: initial states, second layer
  torch::Tensor W2;       // [5, H, F, D]: initial states, first layer
  torch::Tensor w_eta;    // [H, D]: η_t = link(⟨w_eta, M_η(x_t)⟩ + b_eta), link per SmtConfig::eta_max
  torch::Tensor b_eta;    // [H]
  torch::Tensor w_alpha;  // [H, D]: α_t = sigmoid(⟨w_alpha, M_α(x_t)⟩ + b_alpha)
  torch::Tensor b_alpha;  // [H]
};

struct SmtResult {
  torch::Tensor y;  // [B, H, L, D]: o_t = M_out(q_t) at its chunk-start state; 0 at padded tokens
  // Per token, memory and head: the associative loss ‖M(k_t) − v̂_t‖² at the read state, before
  // the write (for either objective). [B, 5, H, L]; 0 at padded tokens.
  torch::Tensor loss_tokens;
  // Level statistics (detached doubles), as DECISIONS.md "Levels" defines them:
  double loss_memory = 0;     // mean over (sequence, memory chunk) with real tokens of the chunk's
  double loss_other = 0;      //   mean loss; `other` averages the k, v, η, α memories
  double drift_memory = 0;    // mean over sequences with real tokens of ‖W_end − W_0‖ / ‖W_0‖
  double drift_other = 0;     //   (W1 and W2 of all heads; `other`: the four memories together)
  int64_t writes_memory = 0;  // (sequence, chunk) pairs with ≥ 1 real token, per chunk size
  int64_t writes_other = 0;
  int64_t clamped = 0;           // clamped (token, memory, head, layer) writes, real tokens only
  torch::Tensor W1, W2, S1, S2;  // final state per sequence [B, 5, H, ...]
  bool fused = false;            // smt_chunked wrote through the fused kernel (smt_reference: never)
};

// Per-token quantities of one smt_chunked pass for `hopelab-cli diagnose` (detached; consecutive
// runs of tokens, concatenated along the last dimension: one per segment between chunk boundaries
// from the per-op path, one for the whole sequence from the whole-sequence kernel, which fills it
// when no gradient is recorded; docs/MEMORY.md "Diagnostics").
struct SmtTrace {
  std::vector<torch::Tensor> cos_kv;            // [B, H, n]: cos(k_t, v_t)
  std::vector<torch::Tensor> eta, alpha;        // [B, H, n]
  std::vector<torch::Tensor> erase_over_assoc;  // [B, H, n]: output memory, layer W1: ‖W1 a‖ / ‖e‖
  std::vector<torch::Tensor> valid;             // [B, n]
};

// x: the memories' input per head, shared by the k, v, η, α memories [B, H, L, D] or one per memory
// [B, 4, H, L, D] (k, v, η, α: spec `memory_inputs`); q: queries [B, H, L, D] (L2-normalised by the
// caller); mask [B, L] (bool or 0/1; undefined = all valid). Padded tokens never write and read 0.
SmtResult smt_reference(const SmtConfig& cfg, const SmtParams& p, const torch::Tensor& x, const torch::Tensor& q,
                        const torch::Tensor& mask = {});
SmtResult smt_chunked(const SmtConfig& cfg, const SmtParams& p, const torch::Tensor& x, const torch::Tensor& q,
                      const torch::Tensor& mask = {}, SmtTrace* trace = nullptr);

// The LibTorch segment write of smt_chunked (the path the fused kernel replaces, engine/memory/fused.h):
// n tokens written into N maps W0 [N, O, I] with momentum S0 in closed form (docs/MEMORY.md "Fast
// path"). U [N, I, n] holds u_t as columns, G [N, n, O] g_t as rows; eta, alpha, valid [N, n].
// Returns {W, S}.
std::pair<torch::Tensor, torch::Tensor> segment_write_torch(const torch::Tensor& W0, const torch::Tensor& S0,
                                                            const torch::Tensor& U, const torch::Tensor& G,
                                                            const torch::Tensor& eta, const torch::Tensor& alpha,
                                                            const torch::Tensor& valid, double beta, double damp,
                                                            bool dgdFactor);

// Fresh outer parameters: W2 ~ N(0, 1/D), W1 ~ N(0, w1_scale²/F), w_η, w_α ~ N(0, 0.01/D),
// b_η so that η_t ≈ eta_scale at start (softplus⁻¹(1), or logit(eta_scale / eta_max) when bounded),
// b_α = logit(retain).
SmtParams smt_init_params(const SmtConfig& cfg, double retain, const torch::TensorOptions& opts, double w1_scale = 0.1);

}  // namespace hl::memory
