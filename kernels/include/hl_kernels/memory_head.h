// The memory head's write (engine/models/classifier.cpp, memoryWrite): a linear associative memory
// W [C, D] with momentum S, written by DGD once per labelled key, one key after the other (each
// write sees the previous one's W). Torch-free: raw pointers to contiguous row-major arrays.
// Maths (the reference loop it must agree with, dgd_write): docs/KERNELS.md "Memory head write".
#pragma once

#include <cstdint>

namespace hl::kernels {

/// Per key i (u = keys[i], y = the one-hot row of labels[i]):
///   η_i = η, or 1.8 / (3 uᵀu) where 3 η uᵀu > 1.8 (the write clamp; counted in *clamped)
///   e   = W u − y;  loss += eᵀe
///   S   = β S − 2 η_i e uᵀ
///   W   = α W − η_i (W u) uᵀ + S
/// W, S [C, D] are updated in place; keys [n, D]; labels [n], each in [0, C) (checked before
/// anything is written: returns −1 and leaves W, S untouched otherwise). Returns the summed loss.
template <typename T>
double memory_head_write(T* W, T* S, const T* keys, const int64_t* labels, int64_t n, int64_t C, int64_t D, double eta,
                         double alpha, double beta, int64_t* clamped);

}  // namespace hl::kernels
