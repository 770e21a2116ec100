// Fused paths of the memory recurrences: autograd functions over the torch-free kernels of
// kernels/, and the rule for when they apply. What a kernel does not cover (another device or
// dtype) runs the LibTorch path it replaces; docs/KERNELS.md lists both. Include after
// engine/torch_wrap.h (TOOLCHAIN.md §4.1).
#pragma once

#include "engine/torch_wrap.h"

#include <utility>

namespace hl::memory {

/// Whether the fused segment write covers tensors like W0: CPU, float32 or float64. (CUDA: see
/// docs/KERNELS.md; until a GPU has run the CUDA kernel the CUDA device takes the LibTorch path.)
bool segment_write_fused_applies(const torch::Tensor& W0);

/// The segment write of kernels/include/hl_kernels/segment_write.h as an autograd function:
/// W0, S0 [N, O, I]; U [N, n, I] (u_t as rows); G [N, n, O]; eta, alpha, valid [N, n] (valid 0/1,
/// no gradient). Returns {W, S} [N, O, I]. Differentiable once (the reverse pass is the kernel's
/// hand-written one, which recomputes the segment's states from W0, S0); asking for a second
/// derivative throws.
std::pair<torch::Tensor, torch::Tensor> segment_write_fused(const torch::Tensor& W0, const torch::Tensor& S0,
                                                            const torch::Tensor& U, const torch::Tensor& G,
                                                            const torch::Tensor& eta, const torch::Tensor& alpha,
                                                            const torch::Tensor& valid, double beta, double damp,
                                                            bool dgd);

}  // namespace hl::memory
