// The AVX-512 build of kernels/cpu/segment_write.cpp (kernels/cpu/isa.h).
#define HL_KERNELS_AVX512 1
#include "../segment_write.cpp"
