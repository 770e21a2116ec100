// The AVX2 + FMA build of kernels/cpu/lmm.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX2 1
#include "../lmm.cpp"
