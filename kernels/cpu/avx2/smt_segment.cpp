// The AVX2 + FMA build of kernels/cpu/smt_segment.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX2 1
#include "../smt_segment.cpp"
