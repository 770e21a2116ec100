// CUDA segment write (kernels/include/hl_kernels/segment_write_cuda.h): the recurrence of
// kernels/cpu/segment_write.cpp with one thread block per row. A row's two O × I maps stay in the
// caller's output buffers in device memory (4 KB each at O = I = 32 in fp32: L1/L2-resident for the
// block's lifetime); each token is
//   1. W_{t−1} u_t, one warp per output row o (a shuffle reduction), into shared memory;
//   2. the rank-1 updates of S and W, one element per thread.
// The backward recomputes W_0 … W_{n−1} into scratch with the same code, then walks the tokens
// backwards: per output row (one warp each) the dot products of docs/KERNELS.md "Segment write",
// the column sums du over the rows (one thread per input column), the element updates of dW and
// dS, and the token's scalar gradients summed over the rows by one thread in row order. Every
// reduction has a fixed order, so the results do not depend on scheduling (deterministic).
// No torch headers here (docs/ARCHITECTURE.md): raw device pointers, shapes, a stream.
#include <cuda_runtime.h>

#include "hl_kernels/segment_write_cuda.h"
#include "hl_kernels/segment_write_token.h"

namespace hl::kernels {
namespace {

constexpr int kThreads = 256;  // 8 warps per block (one block per row)

template <typename T>
using Token = detail::SegmentToken<T>;  // the per-token coefficients, as the CPU kernel's

template <typename T>
__device__ Token<T> token(const SegmentWriteCoeffs& c, T valid, T eta, T alpha) {
  return detail::segment_token<T>(c, valid, eta, alpha);
}

template <typename T>
__device__ T warpSum(T v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// The first `steps` tokens of one row (the calling block's). Wsave == nullptr: W is updated in
// place. Otherwise Wsave [steps + 1, O, I] holds W_0 in slot 0 and receives the state after token
// t in slot t + 1 (W is not touched). wu: shared memory of O elements.
template <typename T>
__device__ void runRow(int64_t steps, int64_t O, int64_t I, const SegmentWriteCoeffs& c, T* W, T* S, const T* U,
                       const T* G, const T* eta, const T* alpha, const T* valid, T* wu, T* Wsave) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t OI = O * I;
  for (int64_t t = 0; t < steps; ++t) {
    const Token<T> k = token(c, valid[t], eta[t], alpha[t]);
    const T* u = U + t * I;
    const T* g = G + t * O;
    const T* Wsrc = Wsave ? Wsave + t * OI : W;
    T* Wdst = Wsave ? Wsave + (t + 1) * OI : W;
    if (k.e != T(0)) {
      for (int64_t o = warp; o < O; o += warps) {
        T acc = 0;
        for (int64_t i = lane; i < I; i += 32) acc += Wsrc[o * I + i] * u[i];
        acc = warpSum(acc);
        if (lane == 0) wu[o] = acc;
      }
      __syncthreads();
    }
    for (int64_t idx = threadIdx.x; idx < OI; idx += blockDim.x) {
      const int64_t o = idx / I, i = idx - o * I;
      const T sv = k.b * S[idx] - (k.c * g[o]) * u[i];
      S[idx] = sv;
      const T wo = k.e != T(0) ? k.e * wu[o] : T(0);
      Wdst[idx] = k.a * Wsrc[idx] - wo * u[i] + k.m * sv;
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forwardKernel(SegmentWriteDims d, SegmentWriteCoeffs c, SegmentWriteArgs<T> in, T* W, T* S) {
  extern __shared__ unsigned char smem[];
  T* wu = reinterpret_cast<T*>(smem);
  const int64_t r = blockIdx.x, OI = d.O * d.I, i0 = r * d.n;
  T* Wr = W + r * OI;
  T* Sr = S + r * OI;
  for (int64_t idx = threadIdx.x; idx < OI; idx += blockDim.x) {
    Wr[idx] = in.W0[r * OI + idx];
    Sr[idx] = in.S0[r * OI + idx];
  }
  __syncthreads();
  runRow<T>(d.n, d.O, d.I, c, Wr, Sr, in.U + i0 * d.I, in.G + i0 * d.O, in.eta + i0, in.alpha + i0, in.valid + i0, wu,
            nullptr);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    backwardKernel(SegmentWriteDims d, SegmentWriteCoeffs c, SegmentWriteArgs<T> in, const T* dWout, const T* dSout,
                   SegmentWriteGrads<T> out, T* scratch) {
  extern __shared__ unsigned char smem[];
  const int64_t O = d.O, I = d.I, n = d.n, OI = O * I;
  T* wu = reinterpret_cast<T*>(smem);  // O each: the recomputation's W u, then per output row
  T* P = wu + O;                       // e (dW u)
  T* Q = P + O;                        // e (W u)
  T* PC = Q + O;                       // c g
  T* SA = PC + O;                      // ⟨dW, W_{t−1}⟩ of the row
  T* SE = SA + O;                      // −(dW u)(W u)
  T* SC = SE + O;                      // −g (dS u)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int64_t r = blockIdx.x, i0 = r * n;
  const T *U = in.U + i0 * I, *G = in.G + i0 * O, *eta = in.eta + i0, *alpha = in.alpha + i0, *valid = in.valid + i0;
  T* dW = out.dW0 + r * OI;
  T* dS = out.dS0 + r * OI;
  for (int64_t idx = threadIdx.x; idx < OI; idx += blockDim.x) {
    dW[idx] = dWout ? dWout[r * OI + idx] : T(0);
    dS[idx] = dSout ? dSout[r * OI + idx] : T(0);
  }
  if (n <= 0) return;
  T* Wprev = scratch + r * (n + 1) * OI;  // W_0 … W_{n−1}
  T* Ssc = Wprev + n * OI;
  for (int64_t idx = threadIdx.x; idx < OI; idx += blockDim.x) {
    Wprev[idx] = in.W0[r * OI + idx];
    Ssc[idx] = in.S0[r * OI + idx];
  }
  __syncthreads();
  runRow<T>(n - 1, O, I, c, nullptr, Ssc, U, G, eta, alpha, valid, wu, Wprev);
  T *dU = out.dU + i0 * I, *dG = out.dG + i0 * O;
  for (int64_t t = n - 1; t >= 0; --t) {
    const Token<T> k = token(c, valid[t], eta[t], alpha[t]);
    const T* u = U + t * I;
    const T* g = G + t * O;
    const T* Wp = Wprev + t * OI;
    const bool withE = c.dgd && k.e != T(0), withC = k.c != T(0);
    // Per output row: ⟨dW_t, W_{t−1}⟩, W_{t−1} u, dW_t u; dS_t += m dW_t and dS_t u.
    for (int64_t o = warp; o < O; o += warps) {
      T sa = 0, w_u = 0, dwu = 0, dsu = 0;
      for (int64_t i = lane; i < I; i += 32) {
        const int64_t idx = o * I + i;
        const T dw = dW[idx], wp = Wp[idx];
        sa += dw * wp;
        w_u += wp * u[i];
        dwu += dw * u[i];
        const T v = dS[idx] + k.m * dw;
        dS[idx] = v;
        dsu += v * u[i];
      }
      sa = warpSum(sa);
      w_u = warpSum(w_u);
      dwu = warpSum(dwu);
      dsu = warpSum(dsu);
      if (lane == 0) {
        SA[o] = sa;
        SE[o] = c.dgd ? -(dwu * w_u) : T(0);
        SC[o] = -(g[o] * dsu);
        dG[t * O + o] = -k.c * dsu;
        P[o] = withE ? k.e * dwu : T(0);
        Q[o] = withE ? k.e * w_u : T(0);
        PC[o] = withC ? k.c * g[o] : T(0);
      }
    }
    __syncthreads();
    // du = −Σ_o (e (dW u)_o W_{t−1}[o, :] + e (W u)_o dW_t[o, :] + c g_o dS_t[o, :]), rows in order.
    for (int64_t i = threadIdx.x; i < I; i += blockDim.x) {
      T acc = 0;
      for (int64_t o = 0; o < O; ++o) acc += P[o] * Wp[o * I + i] + Q[o] * dW[o * I + i] + PC[o] * dS[o * I + i];
      dU[t * I + i] = -acc;
    }
    __syncthreads();
    // dW_{t−1} = a dW_t − e (dW_t u) uᵀ; dS_{t−1} = b dS_t; the token's scalars, rows in order.
    for (int64_t idx = threadIdx.x; idx < OI; idx += blockDim.x) {
      const int64_t o = idx / I, i = idx - o * I;
      dW[idx] = k.a * dW[idx] - P[o] * u[i];
      dS[idx] *= k.b;
    }
    if (threadIdx.x == 0) {
      T da = 0, de = 0, dc = 0;
      for (int64_t o = 0; o < O; ++o) {
        da += SA[o];
        de += SE[o];
        dc += SC[o];
      }
      out.deta[i0 + t] = k.m * (T(c.damp) * dc + (c.dgd ? de : T(0)));
      out.dalpha[i0 + t] = k.m * da;
    }
    __syncthreads();
  }
}

}  // namespace

template <typename T>
int segment_write_forward_cuda(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                               T* W, T* S, void* stream) {
  if (d.N <= 0) return 0;
  forwardKernel<T><<<static_cast<unsigned>(d.N), kThreads, static_cast<size_t>(d.O) * sizeof(T),
                     static_cast<cudaStream_t>(stream)>>>(d, c, in, W, S);
  return static_cast<int>(cudaGetLastError());
}

int64_t segment_write_backward_cuda_scratch(const SegmentWriteDims& d) {
  return d.N * (d.n + 1) * d.O * d.I;
}

template <typename T>
int segment_write_backward_cuda(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                                const T* dW, const T* dS, const SegmentWriteGrads<T>& out, T* scratch, void* stream) {
  if (d.N <= 0) return 0;
  backwardKernel<T><<<static_cast<unsigned>(d.N), kThreads, 7 * static_cast<size_t>(d.O) * sizeof(T),
                      static_cast<cudaStream_t>(stream)>>>(d, c, in, dW, dS, out, scratch);
  return static_cast<int>(cudaGetLastError());
}

const char* cuda_error_text(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

int cuda_compute_major(int device) {
  int major = -1;
  return cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) == cudaSuccess ? major : -1;
}

template int segment_write_forward_cuda<float>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                               const SegmentWriteArgs<float>&, float*, float*, void*);
template int segment_write_forward_cuda<double>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                                const SegmentWriteArgs<double>&, double*, double*, void*);
template int segment_write_backward_cuda<float>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                                const SegmentWriteArgs<float>&, const float*, const float*,
                                                const SegmentWriteGrads<float>&, float*, void*);
template int segment_write_backward_cuda<double>(const SegmentWriteDims&, const SegmentWriteCoeffs&,
                                                 const SegmentWriteArgs<double>&, const double*, const double*,
                                                 const SegmentWriteGrads<double>&, double*, void*);

}  // namespace hl::kernels
