// `hopelab-cli bench kernels` / `hopelab-bench kernels`: each fused kernel against the LibTorch path
// it replaces, forward + backward, timed in one process and interleaved, with the same run's
// torch::mm peak on the same threads (docs/KERNELS.md "Benchmark"). Include after
// engine/torch_wrap.h (TOOLCHAIN.md §4.1).
#pragma once

#include "engine/torch_wrap.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hl::memory {

struct KernelBenchCase {
  std::string kernel;  // "smt" (a self-modifying Titans memory, smt_chunked) or "segment_write"
  std::string device = "cpu";
  std::string isa;  // the fused side's CPU instruction set (hl_kernels/cpu_isa.h): "avx2-fma" or "baseline"
  int64_t batch = 0, length = 0, heads = 0, head_dim = 0;
  double reference_ms = 0;  // median forward + backward, LibTorch path
  double fused_ms = 0;      // median forward + backward, fused path
  double speedup = 0;       // reference_ms / fused_ms
  double gflops = 0;        // estimated flops of forward + backward / fused time (docs/KERNELS.md)
  double peak_gflops = 0;   // this run's torch::mm (512 × 512, float32) on the same threads
};

struct KernelBenchOptions {
  int repeats = 5;  // timed repetitions per side (interleaved), after one warm-up each
  // (batch, length) pairs; heads 4 × head_dim 32 (d 128, the presets' width), chunks 4 / 8.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{2, 64}, {32, 64}, {32, 128}};
};

// float32 on CPU. Throws c10::Error if a path fails.
std::vector<KernelBenchCase> bench_kernels(const KernelBenchOptions& opt);

}  // namespace hl::memory
