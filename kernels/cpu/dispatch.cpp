// The public kernel functions (hl_kernels/segment_write.h, smt_segment.h): each forwards to the
// baseline, the AVX2 + FMA or the AVX-512 build of the same code (kernels/cpu/isa.h), chosen by
// cpu_isa().
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <optional>

#include "hl_kernels/cpu_isa.h"
#include "hl_kernels/lmm.h"
#include "hl_kernels/segment_write.h"
#include "hl_kernels/smt_segment.h"

#define HL_ISA_NS baseline
#include "isa_api.h"
#undef HL_ISA_NS
#if defined(HL_KERNELS_HAVE_AVX2)
#define HL_ISA_NS avx2
#include "isa_api.h"
#undef HL_ISA_NS
#define HL_ISA_NS avx512
#include "isa_api.h"
#undef HL_ISA_NS
#endif

namespace hl::kernels {

namespace {

bool cpuHasAvx2Fma() {
#if defined(HL_KERNELS_HAVE_AVX2)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

// AVX-512 F, VL, BW and DQ (the subsets the avx512 build is compiled for); libgcc's CPU check also
// asks the OS whether it saves the AVX-512 registers (XCR0), so a kernel that masks them off says no.
bool cpuHasAvx512() {
#if defined(HL_KERNELS_HAVE_AVX2)
  static const bool has = [] {
    __builtin_cpu_init();
    return cpuHasAvx2Fma() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq");
  }();
  return has;
#else
  return false;
#endif
}

// The environment's choice: kAuto when unset or "auto", kBad when not understood or unavailable,
// else the CpuIsa's value.
constexpr int kAuto = -2, kBad = -1;
int envChoice() {
  const char* v = std::getenv("HOPELAB_KERNEL_ISA");
  if (!v || !*v || std::strcmp(v, "auto") == 0) return kAuto;
  const auto isa = cpu_isa_from_name(v);
  return isa && cpu_isa_available(*isa) ? static_cast<int>(*isa) : kBad;
}

CpuIsa best() {
  return cpuHasAvx512() ? CpuIsa::Avx512 : cpuHasAvx2Fma() ? CpuIsa::Avx2Fma : CpuIsa::Baseline;
}

std::atomic<int> g_isa{-1};  // -1: not chosen yet; else the CpuIsa

CpuIsa current() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    const int e = envChoice();  // kBad runs the best too; cpu_isa_env_error() stops the engine first
    v = e >= 0 ? e : static_cast<int>(best());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<CpuIsa>(v);
}

}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  return isa == CpuIsa::Avx512 ? "avx512" : isa == CpuIsa::Avx2Fma ? "avx2-fma" : "baseline";
}

std::optional<CpuIsa> cpu_isa_from_name(const std::string& name) {
  for (CpuIsa isa : {CpuIsa::Baseline, CpuIsa::Avx2Fma, CpuIsa::Avx512})
    if (name == cpu_isa_name(isa)) return isa;
  return std::nullopt;
}

bool cpu_isa_available(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Baseline:
      return true;
    case CpuIsa::Avx2Fma:
      return cpuHasAvx2Fma();
    case CpuIsa::Avx512:
      return cpuHasAvx512();
  }
  return false;
}

CpuIsa cpu_isa() {
  return current();
}

bool set_cpu_isa(CpuIsa isa) {
  if (!cpu_isa_available(isa)) return false;
  g_isa.store(static_cast<int>(isa), std::memory_order_relaxed);
  return true;
}

std::string cpu_isa_env_error() {
  if (envChoice() != kBad) return "";
  const std::string v = std::getenv("HOPELAB_KERNEL_ISA");
  if (v == "avx2-fma")
    return "HOPELAB_KERNEL_ISA is \"avx2-fma\" but this CPU or build has no AVX2 + FMA kernels; unset it or set "
           "\"baseline\"";
  if (v == "avx512")
    return "HOPELAB_KERNEL_ISA is \"avx512\" but this CPU or build has no AVX-512 (F, VL, BW, DQ) kernels; unset it "
           "or set \"avx2-fma\" or \"baseline\"";
  return "HOPELAB_KERNEL_ISA is \"" + v + "\"; set \"auto\", \"baseline\", \"avx2-fma\" or \"avx512\" (or unset it)";
}

#if defined(HL_KERNELS_HAVE_AVX2)
// One read of the choice per call (every kernel function returns void).
#define HL_CALL(fn, ...)         \
  switch (current()) {           \
    case CpuIsa::Avx512:         \
      avx512::fn(__VA_ARGS__);   \
      break;                     \
    case CpuIsa::Avx2Fma:        \
      avx2::fn(__VA_ARGS__);     \
      break;                     \
    case CpuIsa::Baseline:       \
      baseline::fn(__VA_ARGS__); \
      break;                     \
  }
#else
#define HL_CALL(fn, ...) baseline::fn(__VA_ARGS__)
#endif

template <typename T>
void segment_write_forward(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in, T* W,
                           T* S, int64_t row0, int64_t row1) {
  HL_CALL(segment_write_forward<T>, d, c, in, W, S, row0, row1);
}

template <typename T>
void segment_write_backward(const SegmentWriteDims& d, const SegmentWriteCoeffs& c, const SegmentWriteArgs<T>& in,
                            const T* dW, const T* dS, const SegmentWriteGrads<T>& out, int64_t row0, int64_t row1) {
  HL_CALL(segment_write_backward<T>, d, c, in, dW, dS, out, row0, row1);
}

template <typename T>
void smt_segment_forward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                         const SmtSegmentOut<T>& out, int64_t p0, int64_t p1) {
  HL_CALL(smt_segment_forward<T>, d, c, in, out, p0, p1);
}

template <typename T>
void smt_segment_backward(const SmtSegmentDims& d, const SmtSegmentCoeffs& c, const SmtSegmentArgs<T>& in,
                          const T* dW1o, const T* dS1o, const T* dW2o, const T* dS2o, const SmtSegmentGrads<T>& g,
                          int64_t p0, int64_t p1) {
  HL_CALL(smt_segment_backward<T>, d, c, in, dW1o, dS1o, dW2o, dS2o, g, p0, p1);
}

int64_t smt_sequence_segments(int64_t L, int64_t chunk_memory, int64_t chunk_other) {
  return baseline::smt_sequence_segments(L, chunk_memory, chunk_other);
}

int64_t smt_sequence_checkpoint_slots(const SmtSequenceDims& d) {
  return baseline::smt_sequence_checkpoint_slots(d);
}

int64_t smt_sequence_checkpoint_size(const SmtSequenceDims& d) {
  return baseline::smt_sequence_checkpoint_size(d);
}

int64_t smt_sequence_ring_size(const SmtSequenceDims& d) {
  return baseline::smt_sequence_ring_size(d);
}

template <typename T>
void smt_sequence_forward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                          const SmtSequenceOut<T>& out, int64_t p0, int64_t p1) {
  HL_CALL(smt_sequence_forward<T>, d, c, in, out, p0, p1);
}

template <typename T>
void smt_sequence_backward(const SmtSequenceDims& d, const SmtSegmentCoeffs& c, const SmtSequenceArgs<T>& in,
                           const T* ck, const T* dy, const T* dW1e, const T* dW2e, const T* dS1e, const T* dS2e,
                           const SmtSequenceGrads<T>& g, int64_t p0, int64_t p1) {
  HL_CALL(smt_sequence_backward<T>, d, c, in, ck, dy, dW1e, dW2e, dS1e, dS2e, g, p0, p1);
}

template <typename T>
void lmm_forward(const LmmDims& d, const LmmArgs<T>& in, const LmmOut<T>& out, int64_t p0, int64_t p1) {
  HL_CALL(lmm_forward<T>, d, in, out, p0, p1);
}

template <typename T>
void lmm_backward(const LmmDims& d, const LmmArgs<T>& in, const T* ck, const T* dy, const LmmGrads<T>& g, int64_t p0,
                  int64_t p1) {
  HL_CALL(lmm_backward<T>, d, in, ck, dy, g, p0, p1);
}

#undef HL_CALL

#define HL_DISPATCH_INST(T)                                                                                            \
  template void segment_write_forward<T>(const SegmentWriteDims&, const SegmentWriteCoeffs&,                           \
                                         const SegmentWriteArgs<T>&, T*, T*, int64_t, int64_t);                        \
  template void segment_write_backward<T>(const SegmentWriteDims&, const SegmentWriteCoeffs&,                          \
                                          const SegmentWriteArgs<T>&, const T*, const T*, const SegmentWriteGrads<T>&, \
                                          int64_t, int64_t);                                                           \
  template void smt_segment_forward<T>(const SmtSegmentDims&, const SmtSegmentCoeffs&, const SmtSegmentArgs<T>&,       \
                                       const SmtSegmentOut<T>&, int64_t, int64_t);                                     \
  template void smt_segment_backward<T>(const SmtSegmentDims&, const SmtSegmentCoeffs&, const SmtSegmentArgs<T>&,      \
                                        const T*, const T*, const T*, const T*, const SmtSegmentGrads<T>&, int64_t,    \
                                        int64_t);                                                                      \
  template void smt_sequence_forward<T>(const SmtSequenceDims&, const SmtSegmentCoeffs&, const SmtSequenceArgs<T>&,    \
                                        const SmtSequenceOut<T>&, int64_t, int64_t);                                   \
  template void smt_sequence_backward<T>(const SmtSequenceDims&, const SmtSegmentCoeffs&, const SmtSequenceArgs<T>&,   \
                                         const T*, const T*, const T*, const T*, const T*, const T*,                   \
                                         const SmtSequenceGrads<T>&, int64_t, int64_t);                                \
  template void lmm_forward<T>(const LmmDims&, const LmmArgs<T>&, const LmmOut<T>&, int64_t, int64_t);                 \
  template void lmm_backward<T>(const LmmDims&, const LmmArgs<T>&, const T*, const T*, const LmmGrads<T>&, int64_t,    \
                                int64_t);
HL_DISPATCH_INST(float)
HL_DISPATCH_INST(double)
#undef HL_DISPATCH_INST

}  // namespace hl::kernels
