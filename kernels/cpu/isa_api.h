// Internal, no include guard: the kernel functions one ISA's objects define, declared in
// namespace hl::kernels::HL_ISA_NS (kernels/cpu/isa.h). Included by each kernel source (for its
// own ISA) and by dispatch.cpp (once per ISA). The public functions of the same names in
// hl::kernels (hl_kernels/*.h) forward to one of these.
#include "hl_kernels/lmm.h"
#include "hl_kernels/segment_write.h"
#include "hl_kernels/smt_segment.h"

namespace hl::kernels::HL_ISA_NS {

// One row's building blocks of the segment write, for kernels that fuse the write into a larger
// per-row computation (smt_segment.cpp). Pointers are to the row's own data: W, S [O, I] updated
// in place by the forward; U [n, I]; G [n, O]; eta, alpha, valid [n]. `scratch` holds at least
// segment_write_row_scratch(n, O, I) elements. The backward writes dW0, dS0 [O, I], dU [n, I],
// dG [n, O], deta, dalpha [n] (overwriting); dW, dS may be nullptr (zero) and may not alias dW0, dS0.
int64_t segment_write_row_scratch(int64_t n, int64_t O, int64_t I);
template <typename T>
void segment_write_row_forward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, T* W, T* S, const T* U,
                               const T* G, const T* eta, const T* alpha, const T* valid, T* scratch);
// The forward reading the start states from W0, S0 and writing the end states to W, S (no alias):
// the same numbers as copying W0, S0 into W, S and calling segment_write_row_forward.
template <typename T>
void segment_write_row_forward_from(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0,
                                    const T* S0, T* W, T* S, const T* U, const T* G, const T* eta, const T* alpha,
                                    const T* valid, T* scratch);
template <typename T>
void segment_write_row_backward(int64_t n, int64_t O, int64_t I, const SegmentWriteCoeffs& c, const T* W0, const T* S0,
                                const T* U, const T* G, const T* eta, const T* alpha, const T* valid, const T* dW,
                                const T* dS, T* dW0, T* dS0, T* dU, T* dG, T* deta, T* dalpha, T* scratch);

template <typename T>
void segment_write_forward(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                           T* W, T* S, int64_t row0, int64_t row1);
template <typename T>
void segment_write_backward(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                            const T* dW, const T* dS, const SegmentWriteGrads<T>& out, int64_t row0, int64_t row1);
template <typename T>
void smt_segment_forward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                         const SmtSegmentOut<T>& out, int64_t p0, int64_t p1);
template <typename T>
void smt_segment_backward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                          const T* dW1o, const T* dS1o, const T* dW2o, const T* dS2o, const SmtSegmentGrads<T>& g,
                          int64_t p0, int64_t p1);
int64_t smt_sequence_segments(int64_t L, int64_t chunk_memory, int64_t chunk_other);
int64_t smt_sequence_checkpoint_slots(const SmtSequenceDims& d);
int64_t smt_sequence_checkpoint_size(const SmtSequenceDims& d);
int64_t smt_sequence_ring_size(const SmtSequenceDims& d);
template <typename T>
void smt_sequence_forward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                          const SmtSequenceOut<T>& out, int64_t p0, int64_t p1);
template <typename T>
void smt_sequence_backward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                           const T* ck, const T* dy, const T* dW1e, const T* dW2e, const T* dS1e, const T* dS2e,
                           const SmtSequenceGrads<T>& g, int64_t p0, int64_t p1);

template <typename T>
void lmm_forward(const LmmDims& d, const LmmArgs<T>& in, const LmmOut<T>& out, int64_t p0, int64_t p1);
template <typename T>
void lmm_backward(const LmmDims& d, const LmmArgs<T>& in, const T* ck, const T* dy, const LmmGrads<T>& g, int64_t p0,
                  int64_t p1);

}  // namespace hl::kernels::HL_ISA_NS
