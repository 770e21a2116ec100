// Fused segment of self-modifying Titans: everything the fast path (engine/memory/selfmod_titans.cpp,
// smt_chunked) computes between two chunk boundaries for one (sequence, head) pair, except the
// output memory's read of the queries and the state bound: the reads of the k, v, η, α memories,
// k, v (L2-normalised), the η and α links, the self-generated targets of all five memories, the
// closed-form inner gradients, the two write clamps and the DGD writes with momentum of both
// layers of all five memories. Forward and a hand-written reverse pass that recomputes the
// segment from its inputs (nothing else is saved). Torch-free: raw pointers to contiguous
// row-major arrays. Maths: docs/MEMORY.md "Fast path"; the derivation of the reverse pass:
// docs/KERNELS.md "Whole segment".
#pragma once

#include <cstdint>

namespace hl::kernels {

/// Shapes: B sequences, H heads, n tokens in the segment, head width D, memory hidden width F,
/// X memory inputs (1: the k, v, η, α memories read one shared input; 4: one each).
struct SmtSegmentDims {
  int64_t B = 0, H = 0, n = 0, D = 0, F = 0, X = 1;
};

/// Constants (SmtConfig in engine/memory/selfmod_titans.h).
struct SmtSegmentCoeffs {
  double beta = 0.9;         ///< momentum β
  double damp = 1;           ///< 1, or 1 − β with momentum dampening
  bool dgd2 = true;          ///< the first layer W2 is written with the DGD factor
  bool dgd1 = true;          ///< the second layer W1 is written with the DGD factor
  bool l2 = true;            ///< inner objective: L2 (e = 2(M(k) − v̂)); false: dot (e = −v̂)
  bool clamp = true;         ///< η ← min(η, clamp_bound / (3 c)) per write
  double clamp_bound = 1.8;  ///< see clamp
  double eta_scale = 0.1;    ///< η = eta_scale · softplus(z) when eta_max = 0
  double eta_max = 0;        ///< > 0: η = eta_max · σ(z)
};

/// Inputs (contiguous). The five memories are stacked along the second dimension (k, v, η, α,
/// output): R1, W1, S1 [B, 5, H, D, F]; R2, W2, S2 [B, 5, H, F, D]. R: the read states of the
/// segment; W, S: the running states and momenta at its start. x [B, X, H, n, D] (the segment's
/// memory inputs); w_eta, w_alpha [H, D]; b_eta, b_alpha [H]; valid [B, n] (0 or 1).
template <typename T>
struct SmtSegmentArgs {
  const T *R1 = nullptr, *R2 = nullptr;
  const T *W1 = nullptr, *W2 = nullptr, *S1 = nullptr, *S2 = nullptr;
  const T* x = nullptr;
  const T *w_eta = nullptr, *b_eta = nullptr, *w_alpha = nullptr, *b_alpha = nullptr;
  const T* valid = nullptr;
};

/// Forward outputs: the states after the segment W1o, S1o [B, 5, H, D, F], W2o, S2o [B, 5, H, F, D]
/// (may not alias the inputs); loss [B, 5, H, n]: ‖M(k_t) − v̂_t‖² per memory at the read state
/// (also at pads: the caller masks); clamped [B, H]: clamped real writes of the pair (both layers,
/// all memories).
template <typename T>
struct SmtSegmentOut {
  T *W1 = nullptr, *S1 = nullptr, *W2 = nullptr, *S2 = nullptr;
  T* loss = nullptr;
  int64_t* clamped = nullptr;
};

/// Gradients of the inputs: dR1, dW1, dS1 [B, 5, H, D, F]; dR2, dW2, dS2 [B, 5, H, F, D];
/// dx [B, X, H, n, D]; per sequence (the caller sums over B): dw_eta, dw_alpha [B, H, D], db_eta,
/// db_alpha [B, H]. All overwritten for the pairs a call covers.
template <typename T>
struct SmtSegmentGrads {
  T *dR1 = nullptr, *dR2 = nullptr, *dW1 = nullptr, *dW2 = nullptr, *dS1 = nullptr, *dS2 = nullptr;
  T* dx = nullptr;
  T *dw_eta = nullptr, *db_eta = nullptr, *dw_alpha = nullptr, *db_alpha = nullptr;
};

/// Forward over the (sequence, head) pairs [p0, p1) (pair = b · H + h). Thread-safe for disjoint
/// ranges.
template <typename T>
void smt_segment_forward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                         const SmtSegmentOut<T>& out, int64_t p0, int64_t p1);

/// Reverse pass over the pairs [p0, p1) given the gradients of the output states (nullptr: zero; the
/// loss and the clamp count carry no gradient).
template <typename T>
void smt_segment_backward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                          const T* dW1o, const T* dS1o, const T* dW2o, const T* dS2o, const SmtSegmentGrads<T>& g,
                          int64_t p0, int64_t p1);

// ---------------------------------------------------------------------------------------------
// The whole sequence of one (sequence, head) pair in one call: every segment of smt_chunked in
// order, with the read-state refreshes at chunk starts, the output memory's read of the queries
// and the state bound in between, so that the pair's states (80 KB in float32 at D = F = 32) stay
// in the core's cache for the whole sequence instead of streaming through memory once per segment.
// The forward stores the states at every segment start, or with ck_every > 1 only at some (the
// checkpoints); the reverse pass walks the segments backwards from them, recomputing each segment
// and, between sparse checkpoints, first the block's states (docs/KERNELS.md "Whole sequence").

/// Shapes: B sequences, H heads, L tokens, head width D, hidden width F, X memory inputs; the two
/// chunk sizes (the output memory's and the other memories').
struct SmtSequenceDims {
  int64_t B = 0, H = 0, L = 0, D = 0, F = 0, X = 1;
  int64_t chunk_memory = 1, chunk_other = 1;
  /// Checkpoint spacing, in segments: 1 stores every segment start; k > 1 stores segment 0, then
  /// the first start at least k segments after the last stored one that is a multiple of both chunk
  /// sizes, and the end. The reverse pass then runs each block's forward once more.
  int64_t ck_every = 1;
  /// Each row stops after the segment that holds its last real token: the segments after it
  /// (pads only) write nothing, read 0 and lose 0, so forward and reverse pass only copy the state
  /// through them and apply (and reverse) the state bound's projection; every output and gradient
  /// keeps its bits. false runs them in full (tests compare the two).
  bool skip_pad_tail = true;
};

/// The number of segments of a sequence (segments end at a multiple of either chunk size or at L).
int64_t smt_sequence_segments(int64_t L, int64_t chunk_memory, int64_t chunk_other);

/// Inputs (contiguous): W1 [B, 5, H, D, F], W2 [B, 5, H, F, D] the states at the sequence start
/// (momenta start at 0); x [B, X, H, L, D]; q [B, H, L, D]; w_eta, w_alpha [H, D]; b_eta, b_alpha
/// [H]; valid [B, L] (0 or 1). state_bound > 0: after every segment each map is projected onto
/// ‖W‖_F ≤ state_bound · ‖W_start‖_F.
template <typename T>
struct SmtSequenceArgs {
  const T *W1 = nullptr, *W2 = nullptr, *x = nullptr, *q = nullptr;
  const T *w_eta = nullptr, *b_eta = nullptr, *w_alpha = nullptr, *b_alpha = nullptr;
  const T* valid = nullptr;
  double state_bound = 0;
  /// W1, W2 hold one start state [5, H, D, F] / [5, H, F, D] that every sequence starts from (the
  /// layer's parameters: no per-sequence copy), read as batch row 0. The forward only; the reverse
  /// pass takes the start states from the checkpoints.
  bool shared_start = false;
};

/// Stored states per pair: segments + 1 with ck_every 1, fewer otherwise (the last is the final state).
int64_t smt_sequence_checkpoint_slots(const SmtSequenceDims& d);

/// Checkpoint elements per pair: slots × {W1, W2, S1, S2} × 5 memories × D·F, then the state
/// bound's factors (segments × 10).
int64_t smt_sequence_checkpoint_size(const SmtSequenceDims& d);

/// Forward outputs: y [B, H, L, D] (q + the output memory's read of q at its read state, also at
/// pads: the caller masks); ck [B·H, checkpoint size] (the stored states, the last one the final
/// state); loss [B, 5, H, L]; clamped [B, H].
template <typename T>
struct SmtSequenceOut {
  T *y = nullptr, *ck = nullptr, *loss = nullptr;
  int64_t* clamped = nullptr;
  /// A forward that no reverse pass follows (evaluation, no gradient): ck keeps the states of two
  /// segments only, alternately, in smt_sequence_ring_size(d) elements per pair; the final state
  /// is in slot (segments % 2). The same arithmetic, a fraction of the memory traffic.
  bool ring = false;
  /// Optional [B, H, L, 4] (the diagnostics' per-token trace, docs/MEMORY.md "Diagnostics"): per
  /// token cos(k, v) of the normalised key and value, η before the clamp, α, and the output
  /// memory's erase ÷ association size ‖W1 a‖ / max(‖e‖, 1e-12); 0 in skipped pad segments.
  T* trace = nullptr;
};

/// Elements per pair of a ring forward's ck: two state slots and the bound's factors.
int64_t smt_sequence_ring_size(const SmtSequenceDims& d);

/// Gradients: dW1 [B, 5, H, D, F], dW2 [B, 5, H, F, D] (of the start states), dx, dq; per sequence
/// dw_eta, dw_alpha [B, H, D], db_eta, db_alpha [B, H] (the caller sums over B).
template <typename T>
struct SmtSequenceGrads {
  T *dW1 = nullptr, *dW2 = nullptr, *dx = nullptr, *dq = nullptr;
  T *dw_eta = nullptr, *db_eta = nullptr, *dw_alpha = nullptr, *db_alpha = nullptr;
};

template <typename T>
void smt_sequence_forward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                          const SmtSequenceOut<T>& out, int64_t p0, int64_t p1);

/// Reverse pass given the forward's checkpoints and the gradients of y and of the final states
/// (dW1e .. dS2e may be nullptr: zero).
template <typename T>
void smt_sequence_backward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                           const T* ck, const T* dy, const T* dW1e, const T* dW2e, const T* dS1e, const T* dS2e,
                           const SmtSequenceGrads<T>& g, int64_t p0, int64_t p1);

}  // namespace hl::kernels
