// Which instruction set the CPU kernels run with. The self-modifying Titans kernels
// (segment_write, smt_segment) are compiled for the baseline x86-64 ISA (SSE2) and, on x86-64,
// for AVX2 + FMA and for AVX-512 (F, VL, BW, DQ); every call picks one at run time
// (docs/KERNELS.md "Instruction sets"). They differ in rounding (FMA contracts a·b + c into one
// rounding; another vector width sums in another order), so results agree within the tests'
// tolerances across ISAs and are bit-identical only within one.
#pragma once

#include <optional>
#include <string>

namespace hl::kernels {

enum class CpuIsa { Baseline, Avx2Fma, Avx512 };

/// "baseline", "avx2-fma" or "avx512".
const char* cpu_isa_name(CpuIsa isa);

/// The ISA cpu_isa_name() calls `name`, whether or not it is available here.
std::optional<CpuIsa> cpu_isa_from_name(const std::string& name);

/// Whether this build carries the ISA's code and this CPU can run it.
bool cpu_isa_available(CpuIsa isa);

/// The ISA the kernels use now: the one set_cpu_isa chose, else the environment variable
/// HOPELAB_KERNEL_ISA ("baseline", "avx2-fma", "avx512" or "auto"), else the best available.
CpuIsa cpu_isa();

/// Chooses the ISA for every later call in the process (tests, benchmarks). Returns false and
/// changes nothing when the ISA is not available.
bool set_cpu_isa(CpuIsa isa);

/// "" when HOPELAB_KERNEL_ISA is unset, "auto" or names an available ISA; otherwise the message
/// that says what is wrong and what to set (the engine refuses to run with it).
std::string cpu_isa_env_error();

}  // namespace hl::kernels
