// The AVX-512 build of kernels/cpu/smt_segment.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX512 1
#include "../smt_segment.cpp"
