// Internal: the namespace (and, for AVX2 and AVX-512, the target) a kernel translation unit
// compiles its code in. A file is compiled once as itself (namespace hl::kernels::baseline, the
// build's ISA) and, on x86-64, once more through kernels/cpu/avx2/<file>.cpp, which defines
// HL_KERNELS_AVX2 first (namespace hl::kernels::avx2, everything between HL_KERNELS_ISA_BEGIN and
// _END compiled for AVX2 + FMA), and once through kernels/cpu/avx512/<file>.cpp (HL_KERNELS_AVX512:
// namespace hl::kernels::avx512, AVX-512 F/VL/BW/DQ on top of AVX2 + FMA, 512-bit vectors
// preferred). The target is a pragma after the standard headers, not a compiler flag, so that
// the inline functions those headers define (instantiated once per program, whichever object the
// linker keeps) stay baseline code: a CPU without AVX2 never runs an AVX2 instruction.
// kernels/cpu/dispatch.cpp defines the public hl::kernels functions and calls one of the three.
#pragma once

#if defined(HL_KERNELS_AVX512)
#define HL_ISA_NS avx512
#if defined(__clang__)
#define HL_KERNELS_ISA_BEGIN                                                                                       \
  _Pragma(                                                                                                         \
      "clang attribute push(__attribute__((target(\"avx2,fma,avx512f,avx512vl,avx512bw,avx512dq\"))), apply_to = " \
      "function)") namespace hl::kernels::avx512 {
#define HL_KERNELS_ISA_END \
  }                        \
  _Pragma("clang attribute pop")
#else
// prefer-vector-width=512: GCC's generic tuning would otherwise vectorise with 256-bit registers.
#define HL_KERNELS_ISA_BEGIN                                                                                        \
  _Pragma("GCC push_options")                                                                                       \
      _Pragma("GCC target(\"avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=512\")") namespace hl:: \
          kernels::avx512 {
#define HL_KERNELS_ISA_END \
  }                        \
  _Pragma("GCC pop_options")
#endif
#elif defined(HL_KERNELS_AVX2)
#define HL_ISA_NS avx2
#if defined(__clang__)
#define HL_KERNELS_ISA_BEGIN                                                                                          \
  _Pragma("clang attribute push(__attribute__((target(\"avx2,fma\"))), apply_to = function)") namespace hl::kernels:: \
      avx2 {
#define HL_KERNELS_ISA_END \
  }                        \
  _Pragma("clang attribute pop")
#else
#define HL_KERNELS_ISA_BEGIN \
  _Pragma("GCC push_options") _Pragma("GCC target(\"avx2,fma\")") namespace hl::kernels::avx2 {
#define HL_KERNELS_ISA_END \
  }                        \
  _Pragma("GCC pop_options")
#endif
#else
#define HL_ISA_NS baseline
#define HL_KERNELS_ISA_BEGIN namespace hl::kernels::baseline {
#define HL_KERNELS_ISA_END }
#endif
