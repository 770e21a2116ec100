// Titans long-term memory (LMM): a deep residual MLP per head written in context with surprise
// momentum and forgetting (HOPE.md §5, DECISIONS.md "Self-modifying Titans"). Two paths that
// compute the same maths: a plain reference (per-token autograd gradients, token loop) and a
// chunked path (batched closed-form gradients, momentum/forgetting as a linear recurrence via
// cumulative products). Both are torch-differentiable. Semantics in docs/MEMORY.md.
// Include after engine/torch_wrap.h (TOOLCHAIN.md §4.1); this header never includes torch itself
// through <torch/torch.h>.
#pragma once

#include "engine/torch_wrap.h"

#include <cstdint>

namespace hl::memory {

struct LmmConfig {
  int64_t heads = 1;
  int64_t head_dim = 16;
  int64_t hidden = 0;             // MLP hidden width F; 0 means head_dim
  int64_t chunk = 4;              // C: tokens per write (weights are frozen within a chunk)
  bool stop_grad_writes = false;  // writes are constants for the outer loss (straight-through)
  bool clamp = true;              // clamp θ so that 3·θ·‖u‖² ≤ clamp_bound per layer write
  double clamp_bound = 1.8;
  double state_bound = 0;  // at every chunk end ‖W‖_F ≤ state_bound · ‖W_0‖_F per map (0 = none; state_bound.h)
  int64_t hiddenWidth() const { return hidden > 0 ? hidden : head_dim; }
};

// Memory weights M(x) = x + W1 σ(W2 x), σ = SiLU, per head. Shapes either per head (shared by
// the batch: the meta-learned initial state) or per sequence:
//   W1 [H, D, F] or [B, H, D, F];  W2 [H, F, D] or [B, H, F, D]
//   S1, S2: momentum, same shapes as W1, W2; undefined means zeros.
struct LmmState {
  torch::Tensor W1, W2, S1, S2;
};

struct LmmResult {
  torch::Tensor y;               // [B, H, L, D]; y_t = M_{chunk start}(q_t); 0 at padded tokens
  torch::Tensor loss_per_chunk;  // [B, n_chunks]: mean over heads and valid tokens of
                                 // ‖M(k_t) − v_t‖² at the chunk-start weights (0 if no valid token)
  torch::Tensor chunk_tokens;    // [B, n_chunks] int64 (mask's device): valid tokens per chunk
  torch::Tensor drift;           // [B]: ‖M_end − M_0‖ / ‖M_0‖ over all heads' W1, W2
  LmmState final_state;          // per sequence: [B, H, ...]
  int64_t clamped = 0;           // clamped (token, head, layer) writes, valid tokens only
  int64_t writes = 0;            // (sequence, chunk) pairs with ≥ 1 valid token
  bool fused = false;            // lmm_fused ran the CPU kernel (kernels/include/hl_kernels/lmm.h)
};

// Inputs: q, k, v [B, H, L, D]; theta (step, Titans θ = spec inner_lr), eta (momentum decay,
// Titans η = spec momentum), alpha (forget gate, Titans α = 1 − spec retain): [B, H, L], per token.
// mask [B, L] (bool or 0/1; undefined = all valid). Padded tokens never write memory.
LmmResult lmm_reference(const LmmConfig& cfg, const LmmState& init, const torch::Tensor& q, const torch::Tensor& k,
                        const torch::Tensor& v, const torch::Tensor& theta, const torch::Tensor& eta,
                        const torch::Tensor& alpha, const torch::Tensor& mask = {});

LmmResult lmm_chunked(const LmmConfig& cfg, const LmmState& init, const torch::Tensor& q, const torch::Tensor& k,
                      const torch::Tensor& v, const torch::Tensor& theta, const torch::Tensor& eta,
                      const torch::Tensor& alpha, const torch::Tensor& mask = {});

// The same maths through the CPU kernel of kernels/include/hl_kernels/lmm.h (one autograd node, a
// hand-written reverse pass that recomputes each chunk from its stored start state) where
// lmm_fused_applies(k) holds; anything else runs lmm_chunked. Differentiable in y only: the final
// state, the losses and the drift carry no graph (the Titans mixer reads them as statistics); ask
// lmm_chunked where they must. Agrees with lmm_chunked to rounding (the kernel runs the token
// recurrence that lmm_chunked solves in closed form per chunk; docs/KERNELS.md).
LmmResult lmm_fused(const LmmConfig& cfg, const LmmState& init, const torch::Tensor& q, const torch::Tensor& k,
                    const torch::Tensor& v, const torch::Tensor& theta, const torch::Tensor& eta,
                    const torch::Tensor& alpha, const torch::Tensor& mask = {});

// Whether lmm_fused runs its kernel for inputs like k: CPU, float32 or float64.
bool lmm_fused_applies(const torch::Tensor& k);

// A fresh initial state [H, ...]: W2 ~ N(0, 1/D), W1 ~ N(0, w1_scale²/F), zero momentum.
LmmState lmm_init_state(const LmmConfig& cfg, const torch::TensorOptions& opts, double w1_scale = 0.1);

}  // namespace hl::memory
