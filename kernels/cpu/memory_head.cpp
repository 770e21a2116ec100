#include "hl_kernels/memory_head.h"

#include <cstddef>
#include <vector>

namespace hl::kernels {

template <typename T>
double memory_head_write(T* W, T* S, const T* keys, const int64_t* labels, int64_t n, int64_t C, int64_t D, double eta,
                         double alpha, double beta, int64_t* clamped) {
  for (int64_t i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= C) return -1.0;
  std::vector<T> Wu(static_cast<size_t>(C));
  double loss = 0;
  for (int64_t i = 0; i < n; ++i) {
    const T* u = keys + i * D;
    T uu = 0;
#pragma omp simd reduction(+ : uu)
    for (int64_t d = 0; d < D; ++d) uu += u[d] * u[d];
    double e_i = eta;
    if (3.0 * eta * double(uu) > 1.8) {
      e_i = 1.8 / (3.0 * double(uu));
      if (clamped) ++*clamped;
    }
    // W u for every class row (needed in full: the error of every class enters the write).
    for (int64_t c = 0; c < C; ++c) {
      const T* w = W + c * D;
      T acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t d = 0; d < D; ++d) acc += w[d] * u[d];
      Wu[static_cast<size_t>(c)] = acc;
    }
    const int64_t y = labels[i];
    const T eta_t = T(e_i), a = T(alpha), b = T(beta);
    for (int64_t c = 0; c < C; ++c) {
      const T wu = Wu[static_cast<size_t>(c)];
      const T err = wu - (c == y ? T(1) : T(0));
      loss += double(err) * double(err);
      const T gs = T(2) * eta_t * err;  // S row: β s − 2 η e_c u
      const T gw = eta_t * wu;          // W row: α w − η (W u)_c u + s
      T* w = W + c * D;
      T* s = S + c * D;
#pragma omp simd
      for (int64_t d = 0; d < D; ++d) {
        s[d] = b * s[d] - gs * u[d];
        w[d] = a * w[d] - gw * u[d] + s[d];
      }
    }
  }
  return loss;
}

template double memory_head_write<float>(float*, float*, const float*, const int64_t*, int64_t, int64_t, int64_t,
                                         double, double, double, int64_t*);
template double memory_head_write<double>(double*, double*, const double*, const int64_t*, int64_t, int64_t, int64_t,
                                          double, double, double, int64_t*);

}  // namespace hl::kernels
