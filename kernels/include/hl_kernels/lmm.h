// The Titans long-term memory (engine/memory/titans_memory.cpp, docs/MEMORY.md) for whole
// sequences, forward and reverse pass, one (sequence, head) pair at a time. Torch-free: raw
// pointers to contiguous row-major arrays. Maths (docs/KERNELS.md "Titans long-term memory"):
// M(x) = x + W1 silu(W2 x) per pair, W1 [D, F], W2 [F, D]; per chunk of C tokens, every token is
// read (y_t = M(q_t)) and differentiated at the chunk-start weights:
//   h = W2 k, s = silu(h), e = 2 (k + W1 s − v), δ = (W1ᵀ e) ⊙ silu'(h),
//   G1 = e sᵀ, G2 = δ kᵀ, θ1 = min(θ, b / (3‖s‖²)), θ2 = min(θ, b / (3‖k‖²)) (the clamp),
// then, token after token, S ← η S − θ G, W ← (1 − α) W + S for both layers, and at the chunk end
// W ← W · min(1, state_bound ‖W_0‖ / ‖W‖) (no bound when state_bound is 0). Padded tokens (valid 0)
// read 0 and write nothing; their inputs are never read. The engine's chunked path solves the same
// token recurrence in closed form per chunk, so the two agree to rounding.
#pragma once

#include <cstdint>

namespace hl::kernels {

struct LmmDims {
  int64_t B = 0, H = 0, L = 0, D = 0, F = 0;
  int64_t C = 1;                 // tokens per chunk
  bool w0_per_sequence = false;  // W1, W2, S1, S2 (start) [B, H, ...] instead of [H, ...]
  bool clamp = true;
  double clamp_bound = 1.8;
  double state_bound = 0;  // 0 = no bound
  bool stop_grad = false;  // writes are constants: the reverse pass sends the reads' gradient to the start state
};

/// Chunks per sequence.
inline int64_t lmm_chunks(const LmmDims& d) {
  return (d.L + d.C - 1) / d.C;
}
/// Elements of one pair's state (W1, W2, S1, S2): 4 · D · F.
inline int64_t lmm_state_size(const LmmDims& d) {
  return 4 * d.D * d.F;
}
/// Elements of one pair's checkpoint: the state at every chunk start.
inline int64_t lmm_checkpoint_size(const LmmDims& d) {
  return lmm_chunks(d) * lmm_state_size(d);
}

template <typename T>
struct LmmArgs {
  const T *q = nullptr, *k = nullptr, *v = nullptr;            // [B, H, L, D]
  const T *theta = nullptr, *eta = nullptr, *alpha = nullptr;  // [B, H, L]
  const T* valid = nullptr;                                    // [B, L] 0/1
  const T *W1 = nullptr, *W2 = nullptr;                        // start [H or B·H, D, F], [.., F, D]
  const T *S1 = nullptr, *S2 = nullptr;                        // start momenta, same shapes; nullptr = 0
};

template <typename T>
struct LmmOut {
  T* y = nullptr;              // [B, H, L, D]
  T* final_state = nullptr;    // [B·H, 4·D·F]: W1, W2, S1, S2 after the last chunk
  T* ck = nullptr;             // [B·H, lmm_checkpoint_size] or nullptr (no reverse pass to come)
  double* loss = nullptr;      // [B·H, chunks]: Σ over the chunk's real tokens of ‖M(k) − v‖²
  int64_t* clamped = nullptr;  // [B·H]: clamped (token, layer) writes of real tokens
};

template <typename T>
struct LmmGrads {
  T *dq = nullptr, *dk = nullptr, *dv = nullptr;            // [B, H, L, D]
  T *dtheta = nullptr, *deta = nullptr, *dalpha = nullptr;  // [B, H, L]
  T *dW1 = nullptr, *dW2 = nullptr;                         // [B·H, D, F], [B·H, F, D] per pair
  T *dS1 = nullptr, *dS2 = nullptr;                         // same, or nullptr (not wanted)
};

/// Pairs p0 ≤ p < p1 (p = b · H + h).
template <typename T>
void lmm_forward(const LmmDims& d, const LmmArgs<T>& in, const LmmOut<T>& out, int64_t p0, int64_t p1);

/// The reverse pass from the output gradient dy [B, H, L, D] (the final state and the losses
/// carry none), recomputing each chunk from its checkpoint. Overwrites every gradient of the pairs.
template <typename T>
void lmm_backward(const LmmDims& d, const LmmArgs<T>& in, const T* ck, const T* dy, const LmmGrads<T>& g, int64_t p0,
                  int64_t p1);

}  // namespace hl::kernels
