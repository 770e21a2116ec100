// `hopelab-cli bench kernels` / `hopelab-bench kernels`: each fused kernel against the LibTorch path
// it replaces, forward + backward, timed in one process and interleaved, with the same run's
// torch::mm peak on the same threads (or device), and how far the two paths' outputs and gradients
// lie apart (docs/KERNELS.md "Benchmark"). Include after
// engine/torch_wrap.h (TOOLCHAIN.md §4.1).
#pragma once

#include "engine/torch_wrap.h"

#include <cstdint>
#include <string>
#include <vector>

namespace hl::memory {

struct KernelBenchCase {
  // "smt" (a self-modifying Titans memory, smt_chunked), "lmm" (the Titans long-term memory,
  // lmm_chunked; CPU only) or "segment_write"
  std::string kernel;
  std::string device = "cpu";
  std::string isa;  // the fused side's CPU instruction set (hl_kernels/cpu_isa.h): "avx512", "avx2-fma" or "baseline"
  int64_t batch = 0, length = 0, heads = 0, head_dim = 0;
  double reference_ms = 0;  // median forward + backward, LibTorch path
  double fused_ms = 0;      // median forward + backward, fused path
  double speedup = 0;       // reference_ms / fused_ms
  double gflops = 0;        // estimated flops of forward + backward / fused time (docs/KERNELS.md)
  double peak_gflops = 0;   // this run's torch::mm (512 × 512 on CPU, 4096 × 4096 on CUDA, float32)
  // The largest relative difference between the two paths over the outputs and the gradients of
  // the inputs (max |fused − reference| / max |reference|, per tensor), from one untimed run.
  double max_rel_diff = 0;
};

struct KernelBenchOptions {
  int repeats = 5;  // timed repetitions per side (interleaved), after one warm-up each
  // (batch, length) pairs; heads 4 × head_dim 32 (d 128, the presets' width), chunks 4 / 8.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{2, 64}, {32, 64}, {32, 128}};
  std::string device = "cpu";  // "cpu" or "cuda" (the CUDA segment write: needs cuda_kernels_built())
};

// float32. Throws c10::Error if a path fails, std::runtime_error if the device cannot run it.
std::vector<KernelBenchCase> bench_kernels(const KernelBenchOptions& opt);

}  // namespace hl::memory
