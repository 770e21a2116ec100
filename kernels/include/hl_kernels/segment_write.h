// Fused segment write of a DGD-written linear map: the token-by-token rank-1 recurrence that the
// self-modifying Titans fast path (engine/memory/selfmod_titans.cpp, smt_chunked) applies to every
// layer of every memory between two chunk boundaries. Torch-free: raw pointers to contiguous
// row-major arrays, shapes as integers. Maths and the reference it must agree with:
// docs/KERNELS.md "Segment write".
#pragma once

#include <cstdint>

namespace hl::kernels {

/// Shapes of one segment write: N independent rows (batch · memories · heads), n tokens, maps
/// W, S of O × I.
struct SegmentWriteDims {
  int64_t N = 0;  ///< rows
  int64_t n = 0;  ///< tokens in the segment
  int64_t O = 0;  ///< output width of the map
  int64_t I = 0;  ///< input width of the map (length of u)
};

/// Constants of the recurrence.
struct SegmentWriteCoeffs {
  double beta = 0;  ///< momentum β
  double damp = 1;  ///< d: 1, or 1 − β with momentum dampening
  bool dgd = true;  ///< with the DGD factor W (α I − η u uᵀ); without it W α
};

/// Per row r and token t, with m_t ∈ {0, 1} the token's validity (a pad changes nothing):
///   S_t = b_t S_{t−1} − d η̃_t g_t u_tᵀ
///   W_t = a_t W_{t−1} − e_t (W_{t−1} u_t) u_tᵀ + m_t S_t
/// where η̃_t = m_t η_t, a_t = m_t α_t + 1 − m_t, b_t = m_t β + 1 − m_t and e_t = η̃_t with the DGD
/// factor, 0 without. Inputs (contiguous): W0, S0 [N, O, I]; U [N, n, I] (u_t as rows); G [N, n, O]
/// (g_t as rows); eta, alpha, valid [N, n] (valid holds 0 or 1). Outputs W, S [N, O, I] (the
/// states after the last token; may not alias the inputs).
template <typename T>
struct SegmentWriteArgs {
  const T* W0 = nullptr;
  const T* S0 = nullptr;
  const T* U = nullptr;
  const T* G = nullptr;
  const T* eta = nullptr;
  const T* alpha = nullptr;
  const T* valid = nullptr;
};

/// Forward over rows [row0, row1): writes W and S of those rows. Thread-safe for disjoint row
/// ranges (the caller threads over rows).
template <typename T>
void segment_write_forward(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                           T* W, T* S, int64_t row0, int64_t row1);

/// Gradients of the forward's inputs. The reverse pass recomputes the n intermediate states of a
/// row from W0, S0 (nothing but the inputs is saved between forward and backward). dW, dS [N, O, I]:
/// gradients of the outputs (nullptr: zero). Writes dW0, dS0 [N, O, I], dU [N, n, I], dG [N, n, O],
/// deta, dalpha [N, n] for rows [row0, row1). No gradient for valid or the constants.
template <typename T>
struct SegmentWriteGrads {
  T* dW0 = nullptr;
  T* dS0 = nullptr;
  T* dU = nullptr;
  T* dG = nullptr;
  T* deta = nullptr;
  T* dalpha = nullptr;
};
template <typename T>
void segment_write_backward(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                            const T* dW, const T* dS, const SegmentWriteGrads<T>& out, int64_t row0, int64_t row1);

}  // namespace hl::kernels
