// The state bound of the in-context memories (docs/MEMORY.md "State bound"): at every chunk
// boundary each memory map W [..., O, I] is projected onto the Frobenius ball ‖W‖_F ≤
// state_bound · ‖W_0‖_F around 0, W_0 its initial state. Used by self-modifying Titans
// (selfmod_titans.cpp) and the plain Titans memory of a Hope block (titans_memory.cpp).
#pragma once

#include "engine/torch_wrap.h"

namespace hl::memory {

/// The radius per map, state_bound · ‖W0‖_F [..., 1, 1]; undefined when state_bound is 0 (no
/// bound). Computed once per call, so its gradient reaches W0 through one node.
inline torch::Tensor boundRadius(double state_bound, const torch::Tensor& W0) {
  return state_bound > 0 ? state_bound * W0.pow(2).sum({-2, -1}, true).sqrt() : torch::Tensor();
}

/// W projected map by map onto ‖W‖_F ≤ radius (the identity without a radius). Differentiable,
/// also through the radius.
inline torch::Tensor boundState(const torch::Tensor& W, const torch::Tensor& radius) {
  if (!radius.defined()) return W;
  const torch::Tensor norm = W.pow(2).sum({-2, -1}, true).sqrt().clamp_min(1e-12);
  return W * torch::clamp_max(radius / norm, 1.0);
}

}  // namespace hl::memory
