// hopelab-cli bench kernels (docs/KERNELS.md "Benchmark").
#include "engine/torch_wrap.h"  // first: the engine's single torch include

#include <cstdio>
#include <iostream>

#include "commands.h"
#include "engine/memory/kernel_bench.h"

namespace hl::cli {

int Commands::benchKernels() {
  memory::KernelBenchOptions opt;
  opt.repeats = bench_repeats_;
  opt.device = bench_device_;
  if (!json_)
    std::fprintf(stderr, "timing %zu shapes x %d kernels, %d repeats each...\n", opt.shapes.size(),
                 opt.device == "cuda" ? 2 : 3, opt.repeats);
  const auto cases = memory::bench_kernels(opt);
  if (json_) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& c : cases)
      a.push_back({{"kernel", c.kernel},
                   {"device", c.device},
                   {"isa", c.isa},
                   {"batch", c.batch},
                   {"length", c.length},
                   {"heads", c.heads},
                   {"head_dim", c.head_dim},
                   {"reference_ms", c.reference_ms},
                   {"fused_ms", c.fused_ms},
                   {"speedup", c.speedup},
                   {"gflops", c.gflops},
                   {"peak_gflops", c.peak_gflops},
                   {"max_rel_diff", c.max_rel_diff},
                   {"threads", torch::get_num_threads()}});
    std::cout << a.dump(2) << "\n";
    return 0;
  }
  std::printf("%-14s %-6s %6s %6s %6s %9s %13s %10s %8s %8s %10s %9s\n", "kernel", "device", "batch", "length", "heads",
              "head_dim", "reference_ms", "fused_ms", "speedup", "GFLOP/s", "mm GFLOP/s", "rel.diff");
  for (const auto& c : cases)
    std::printf("%-14s %-6s %6lld %6lld %6lld %9lld %13.3f %10.3f %8.2f %8.2f %10.1f %9.1e\n", c.kernel.c_str(),
                c.device.c_str(), (long long)c.batch, (long long)c.length, (long long)c.heads, (long long)c.head_dim,
                c.reference_ms, c.fused_ms, c.speedup, c.gflops, c.peak_gflops, c.max_rel_diff);
  std::printf(
      "(forward + backward, float32, CPU threads %d, kernels' instruction set %s (HOPELAB_KERNEL_ISA), median of %d "
      "interleaved repeats; smt: the whole self-modifying Titans memory, lmm: the Titans long-term memory (chunk 4), "
      "segment_write: one 4-token segment of one "
      "layer; rel.diff: the largest max|fused - LibTorch| / max|LibTorch| over outputs and gradients)\n",
      torch::get_num_threads(), cases.empty() ? "-" : cases.front().isa.c_str(), opt.repeats);
  return 0;
}

}  // namespace hl::cli
