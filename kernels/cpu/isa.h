// Internal: the namespace (and, for AVX2 and AVX-512, the target) a kernel translation unit
// compiles its code in. A file is compiled once as itself (namespace hl::kernels::baseline, the
// build's ISA) and, on x86-64, once more through kernels/cpu/avx2/<file>.cpp, which defines
// HL_KERNELS_AVX2 first (namespace hl::kernels::avx2, everything between HL_KERNELS_ISA_BEGIN and
// _END compiled for AVX2 + FMA), and once through kernels/cpu/avx512/<file>.cpp (HL_KERNELS_AVX512:
// namespace hl::kernels::avx512, AVX-512 F/VL/BW/DQ on top of AVX2 + FMA, with 256-bit vectors
// preferred: 32 vector registers and masked tails, but no 512-bit loops, which measured slower on
// the kernels' 32-wide rows, docs/KERNELS.md "Instruction sets"). The target is a pragma after the standard headers,
// not a compiler flag, so that the inline functions those headers define (instantiated once per program, whichever
// object the linker keeps) stay baseline code: a CPU without AVX2 never runs an AVX2 instruction.
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
// prefer-vector-width=256: 512-bit loops measured slower here, 256-bit AVX-512VL code faster than
// the AVX2 build (docs/KERNELS.md "Instruction sets").
#define HL_KERNELS_ISA_BEGIN                                                                                        \
  _Pragma("GCC push_options")                                                                                       \
      _Pragma("GCC target(\"avx2,fma,avx512f,avx512vl,avx512bw,avx512dq,prefer-vector-width=256\")") namespace hl:: \
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
