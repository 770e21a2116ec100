// CUDA segment write: the recurrence of segment_write.h on device pointers, forward and backward,
// one thread block per row. Declared only where the build compiled kernels/cuda (CMake defines
// HL_HAVE_CUDA_KERNELS=1 for whatever links hl_kernels then). Torch-free and CUDA-header-free: the
// stream is passed as a void* (a cudaStream_t; nullptr is the legacy default stream) and every
// launcher returns the CUDA error code of its launch (0: launched). Maths: docs/KERNELS.md
// "Segment write"; the CUDA path: "CUDA".
#pragma once

#include <cstdint>

#include "hl_kernels/segment_write.h"

namespace hl::kernels {

/// W, S [N, O, I] on the device receive the states after the last token (as segment_write_forward
/// over all rows). Returns the CUDA error code of the launch.
template <typename T>
int segment_write_forward_cuda(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                               T* W, T* S, void* stream);

/// Device scratch the backward needs, in elements of T: N · (n + 1) · O · I (the recomputed states
/// W_0 … W_{n−1} and S of every row).
int64_t segment_write_backward_cuda_scratch(const SegmentWriteDims& dims);

/// Gradients as segment_write_backward over all rows; dW, dS may be nullptr (zero). `scratch` holds
/// segment_write_backward_cuda_scratch(dims) elements. Returns the CUDA error code of the launch.
template <typename T>
int segment_write_backward_cuda(const SegmentWriteDims& dims, const SegmentWriteCoeffs& c,
                                const SegmentWriteArgs<T>& in, const T* dW, const T* dS,
                                const SegmentWriteGrads<T>& out, T* scratch, void* stream);

/// The CUDA runtime's text for an error code a launcher returned.
const char* cuda_error_text(int code);

/// The compute capability's major number of CUDA device `device`, or -1 if the runtime cannot say.
/// The kernels carry sm_80 and sm_90 code (and sm_90 PTX): they need 8 or more.
int cuda_compute_major(int device);

/// The largest O the launchers take: the backward keeps 7 · O values in shared memory, within the
/// 48 KB every device grants without opting in (float64).
constexpr int64_t kSegmentWriteCudaMaxO = 768;

}  // namespace hl::kernels
