// The AVX2 + FMA build of kernels/cpu/segment_write.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX2 1
#include "../segment_write.cpp"
