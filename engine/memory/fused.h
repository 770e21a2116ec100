// Fused paths of the memory recurrences: autograd functions over the torch-free kernels of
// kernels/, and the rule for when they apply. What a kernel does not cover (another device or
// dtype) runs the LibTorch path it replaces; docs/KERNELS.md lists both. Include after
// engine/torch_wrap.h (TOOLCHAIN.md §4.1).
#pragma once

#include "engine/torch_wrap.h"

#include <utility>

#include "hl_kernels/smt_segment.h"

namespace hl::memory {

/// Whether the fused segment write covers tensors like W0: float32 or float64 on the CPU, or on a
/// CUDA device when the build has the CUDA kernels (cuda_kernels_built(); docs/KERNELS.md "CUDA").
bool segment_write_fused_applies(const torch::Tensor& W0);

/// Whether the whole-segment and whole-sequence kernels (smt_segment_fused, smt_sequence_fused)
/// cover tensors like x: CPU, float32 or float64 (they have no CUDA version).
bool smt_fused_applies(const torch::Tensor& x);

/// The whole-sequence kernel's checkpoint spacing in segments (SmtSequenceDims::ck_every) for the
/// calls that follow, process-wide: 0 (the default) chooses by length (every segment up to 32
/// segments, about √segments beyond); k > 0 forces k. For tests and benchmarks.
void set_sequence_checkpoint_every(int64_t every);

/// Whether the whole-sequence kernel skips each row's trailing pad segments
/// (SmtSequenceDims::skip_pad_tail; default true) for the forwards that follow, process-wide. The
/// results are the same bits either way; for tests.
void set_sequence_skip_pad_tail(bool skip);

/// Bytes of the whole-sequence kernel's pooled checkpoint buffers that autograd nodes still hold
/// (the pool keeps released buffers resident for reuse; `hopelab-bench actmem` counts these).
int64_t checkpoint_pool_bytes_in_use();

/// Releases the pooled checkpoint buffers no autograd node holds (benchmarks that measure memory).
void release_free_checkpoint_buffers();

/// Whether this build compiled kernels/cuda (nvcc and a CUDA build of LibTorch at configure time).
bool cuda_kernels_built();

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

/// The outputs of one fused self-modifying Titans segment (smt_segment_fused).
struct SmtSegmentFused {
  torch::Tensor W1, W2, S1, S2;  // states after the segment [B, 5, H, D, F] / [B, 5, H, F, D]
  torch::Tensor loss;            // [B, 5, H, n] per-token associative loss at the read state (no gradient)
  torch::Tensor clamped;         // [] int64: clamped real writes
};

/// The whole segment of smt_chunked between two chunk boundaries (reads of the k, v, η, α
/// memories, links, targets, inner gradients, clamps and the writes of all five memories) through
/// kernels/include/hl_kernels/smt_segment.h as one autograd function (the output memory's read of
/// the queries and the state bound stay outside). R1, R2: read states; W1, W2, S1, S2: running
/// states at the segment start; x [B, X, H, n, D]; valid [B, n] (0/1, x's dtype). w_eta, b_eta,
/// w_alpha, b_alpha as SmtParams (converted to x's dtype). Applies where
/// smt_fused_applies(x) holds; differentiable once.
SmtSegmentFused smt_segment_fused(const hl::kernels::SmtSegmentCoeffs& c, const torch::Tensor& R1,
                                  const torch::Tensor& R2, const torch::Tensor& W1, const torch::Tensor& W2,
                                  const torch::Tensor& S1, const torch::Tensor& S2, const torch::Tensor& x,
                                  const torch::Tensor& valid, const torch::Tensor& w_eta, const torch::Tensor& b_eta,
                                  const torch::Tensor& w_alpha, const torch::Tensor& b_alpha);

/// The outputs of smt_sequence_fused.
struct SmtSequenceFused {
  torch::Tensor y;               // [B, H, L, D] the output memory's reads of q (not masked)
  torch::Tensor W1, W2, S1, S2;  // final states
  torch::Tensor loss;            // [B, 5, H, L] per-token associative loss (no gradient)
  torch::Tensor clamped;         // [] int64
};

/// The whole sequence of smt_chunked (every segment, the read-state refreshes at chunk starts, the
/// output memory's read of q and the state bound) through kernels/include/hl_kernels/smt_segment.h
/// as one autograd function. W1, W2: the start states [B, 5, H, D, F] / [B, 5, H, F, D] (momenta
/// start at 0); x [B, X, H, L, D]; q [B, H, L, D]; valid [B, L] (0/1, x's dtype). It keeps the
/// states at every segment start for the reverse pass: (segments + 1) · B · H · 20 · D · F
/// elements. Applies where smt_fused_applies(x) holds; differentiable once. Without
/// `final_states` (only where no gradient is recorded: a forward for evaluation) W1 .. S2 of the
/// result are left undefined and never copied out of the kernel's buffer. With `trace` (also only
/// without a gradient) *trace receives the per-token trace [B, H, L, 4] of
/// hl_kernels::SmtSequenceOut::trace.
SmtSequenceFused smt_sequence_fused(const hl::kernels::SmtSegmentCoeffs& c, int64_t chunk_memory, int64_t chunk_other,
                                    double state_bound, const torch::Tensor& W1, const torch::Tensor& W2,
                                    const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& valid,
                                    const torch::Tensor& w_eta, const torch::Tensor& b_eta,
                                    const torch::Tensor& w_alpha, const torch::Tensor& b_alpha,
                                    bool final_states = true, torch::Tensor* trace = nullptr);

}  // namespace hl::memory
