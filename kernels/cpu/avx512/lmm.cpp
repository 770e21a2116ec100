// The AVX-512 build of kernels/cpu/lmm.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX512 1
#include "../lmm.cpp"
