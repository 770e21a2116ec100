// Kernel benchmark (engine/memory/kernel_bench.h).
#include "engine/memory/kernel_bench.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <stdexcept>

#include "engine/memory/fused.h"
#include "engine/memory/selfmod_titans.h"
#include "engine/memory/titans_memory.h"
#include "hl_kernels/cpu_isa.h"

namespace hl::memory {

namespace {

using torch::Tensor;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

bool gCuda = false;  // the run's device is CUDA: every timing waits for the device

double millis(const std::function<void()>& f) {
  if (gCuda) torch::cuda::synchronize();
  const auto t0 = Clock::now();
  f();
  if (gCuda) torch::cuda::synchronize();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// max |a − b| / max |b| over each pair, the largest.
double maxRelDiff(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!a[i].defined() || !b[i].defined()) continue;
    const Tensor x = a[i].detach().to(torch::kCPU, torch::kFloat64), y = b[i].detach().to(torch::kCPU, torch::kFloat64);
    const double scale = std::max(y.abs().max().item<double>(), 1e-30);
    worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
  }
  return worst;
}

// Median ms of `a` and `b`, interleaved so that drift hits both alike.
std::pair<double, double> timePair(const std::function<void()>& a, const std::function<void()>& b, int repeats) {
  a();
  b();
  std::vector<double> ta, tb;
  for (int r = 0; r < repeats; ++r) {
    ta.push_back(millis(a));
    tb.push_back(millis(b));
  }
  return {median(ta), median(tb)};
}

double mmPeakGflops(int repeats, const torch::Device& dev) {
  const int64_t n = dev.is_cuda() ? 4096 : 512;
  const Tensor a = torch::randn({n, n}, torch::device(dev)), b = torch::randn({n, n}, torch::device(dev));
  Tensor c = torch::mm(a, b);
  std::vector<double> t;
  for (int r = 0; r < std::max(repeats, 3); ++r) t.push_back(millis([&] { c = torch::mm(a, b); }));
  return 2.0 * n * n * n / (median(t) * 1e6);
}

}  // namespace

std::vector<KernelBenchCase> bench_kernels(const KernelBenchOptions& opt) {
  std::vector<KernelBenchCase> out;
  if (opt.device != "cpu" && opt.device != "cuda")
    throw std::runtime_error("bench kernels: unknown device '" + opt.device + "' (cpu or cuda)");
  const torch::Device dev(opt.device == "cuda" ? torch::kCUDA : torch::kCPU);
  if (dev.is_cuda() && !torch::cuda::is_available())
    throw std::runtime_error("bench kernels --device cuda: no CUDA device is visible to LibTorch");
  if (dev.is_cuda() && !cuda_kernels_built())
    throw std::runtime_error(
        "bench kernels --device cuda: this build has no CUDA kernels (configure with nvcc on PATH and a CUDA build "
        "of LibTorch; docs/KERNELS.md \"CUDA\")");
  gCuda = dev.is_cuda();
  const double peak = mmPeakGflops(opt.repeats, dev);
  const int64_t H = 4, D = 32;
  for (auto [B, L] : opt.shapes) {
    // The whole memory: smt_chunked forward + backward of every input, as a Hope block runs it.
    SmtConfig cfg;
    cfg.heads = H;
    cfg.head_dim = D;
    cfg.chunk_memory = 4;
    cfg.chunk_other = 8;
    cfg.momentum = 0.5;
    cfg.eta_scale = 0.5;
    cfg.eta_max = 1.0;
    cfg.dampen = true;
    cfg.state_bound = 2.0;  // the hope preset's memory (docs/MEMORY.md)
    torch::manual_seed(0);
    SmtParams p = smt_init_params(cfg, 0.95, torch::dtype(torch::kFloat32), 0.6);
    for (Tensor* t : {&p.W1, &p.W2, &p.w_eta, &p.b_eta, &p.w_alpha, &p.b_alpha}) *t = t->to(dev).requires_grad_(true);
    auto nrm = [](const Tensor& t) {
      return torch::nn::functional::normalize(t, torch::nn::functional::NormalizeFuncOptions().dim(-1));
    };
    const Tensor x = nrm(torch::randn({B, 4, H, L, D})).to(dev).requires_grad_(true);
    const Tensor q = nrm(torch::randn({B, H, L, D})).to(dev).requires_grad_(true);
    auto step = [&](bool fused) {
      return [&, fused] {
        SmtConfig c = cfg;
        c.fused = fused;
        const SmtResult r = smt_chunked(c, p, x, q);
        r.y.sum().backward();
      };
    };
    // The two paths' y and gradients of x, q, W1, W2, w_eta, from one untimed run each.
    auto outputs = [&](bool fused) {
      SmtConfig c = cfg;
      c.fused = fused;
      const SmtResult r = smt_chunked(c, p, x, q);
      const Tensor proj = torch::randn(r.y.sizes(), torch::TensorOptions().dtype(r.y.scalar_type()))
                              .to(dev);  // same draw on both sides: the seed is set below
      auto g = torch::autograd::grad({(r.y * proj).sum()}, {x, q, p.W1, p.W2, p.w_eta});
      g.insert(g.begin(), r.y);
      return g;
    };
    torch::manual_seed(1);
    const auto refOut = outputs(false);
    torch::manual_seed(1);
    const auto fusedOut = outputs(true);
    KernelBenchCase k;
    k.kernel = "smt";
    k.device = opt.device;
    k.max_rel_diff = maxRelDiff(fusedOut, refOut);
    k.isa = dev.is_cuda() ? "cuda" : kernels::cpu_isa_name(kernels::cpu_isa());
    k.batch = B;
    k.length = L;
    k.heads = H;
    k.head_dim = D;
    std::tie(k.reference_ms, k.fused_ms) = timePair(step(false), step(true), opt.repeats);
    k.speedup = k.reference_ms / k.fused_ms;
    // ≈ 600·D² flops per token and head for forward + backward (docs/KERNELS.md "Benchmark").
    k.gflops = 600.0 * D * D * B * L * H / (k.fused_ms * 1e6);
    k.peak_gflops = peak;
    out.push_back(k);

    // The Titans long-term memory (a titans / hope-no-selfmod block's mixer): lmm_fused against
    // lmm_chunked, forward + backward of q, k, v, θ, η, α and the start state. CPU only (no CUDA
    // kernel).
    if (!dev.is_cuda()) {
      LmmConfig lc;
      lc.heads = H;
      lc.head_dim = D;
      lc.chunk = 4;
      torch::manual_seed(2);
      LmmState init = lmm_init_state(lc, torch::dtype(torch::kFloat32));
      init.S1 = init.S2 = Tensor();
      init.W1.requires_grad_(true);
      init.W2.requires_grad_(true);
      std::vector<Tensor> li = {nrm(torch::randn({B, H, L, D})), nrm(torch::randn({B, H, L, D})),
                                torch::randn({B, H, L, D}),      0.1 * torch::rand({B, H, L}),
                                0.9 * torch::rand({B, H, L}),    0.01 * torch::rand({B, H, L})};
      for (auto& t : li) t.requires_grad_(true);
      auto lmm = [&](bool fused) {
        return fused ? lmm_fused(lc, init, li[0], li[1], li[2], li[3], li[4], li[5])
                     : lmm_chunked(lc, init, li[0], li[1], li[2], li[3], li[4], li[5]);
      };
      auto lmmStep = [&](bool fused) { return [&, fused] { lmm(fused).y.sum().backward(); }; };
      auto lmmOutputs = [&](bool fused) {
        const LmmResult r = lmm(fused);
        torch::manual_seed(3);
        const Tensor proj = torch::randn(r.y.sizes());
        std::vector<Tensor> wrt = li;
        wrt.push_back(init.W1);
        wrt.push_back(init.W2);
        auto g = torch::autograd::grad({(r.y * proj).sum()}, wrt);
        g.insert(g.begin(), r.y);
        return g;
      };
      KernelBenchCase m = k;
      m.kernel = "lmm";
      m.max_rel_diff = maxRelDiff(lmmOutputs(true), lmmOutputs(false));
      std::tie(m.reference_ms, m.fused_ms) = timePair(lmmStep(false), lmmStep(true), opt.repeats);
      m.speedup = m.reference_ms / m.fused_ms;
      // ≈ 75·D·F flops per token and head for forward + backward (counted from the kernel's loops:
      // docs/KERNELS.md "Titans long-term memory"); F = D here.
      m.gflops = 75.0 * D * D * B * L * H / (m.fused_ms * 1e6);
      out.push_back(m);
    }

    // The segment write alone: one 4-token segment of one layer, all rows of the batch (its shape
    // does not depend on the length, so once per batch size).
    bool seen = false;
    for (const auto& c : out) seen = seen || (c.kernel == "segment_write" && c.batch == B);
    if (seen) continue;
    const int64_t N = B * kSmtMemories * H, n = 4;
    const auto o = torch::dtype(torch::kFloat32);
    std::vector<Tensor> in = {torch::randn({N, D, D}, o) * 0.3, torch::randn({N, D, D}, o) * 0.05,
                              nrm(torch::randn({N, n, D}, o)),  torch::randn({N, n, D}, o),
                              torch::rand({N, n}, o) * 0.5,     0.9 + 0.1 * torch::rand({N, n}, o)};
    for (auto& t : in) t = t.to(dev).requires_grad_(true);
    const Tensor valid = torch::ones({N, n}, o.device(dev));
    auto torchWrite = [&] {  // today's LibTorch segment write (u_t as columns)
      auto [W, S] =
          segment_write_torch(in[0], in[1], in[2].transpose(1, 2), in[3], in[4], in[5], valid, 0.5, 0.5, true);
      (W.sum() + S.sum()).backward();
    };
    auto fusedWrite = [&] {
      auto [W, S] = segment_write_fused(in[0], in[1], in[2], in[3], in[4], in[5], valid, 0.5, 0.5, true);
      (W.sum() + S.sum()).backward();
    };
    auto writeOutputs = [&](bool fused) {
      auto [W, S] =
          fused ? segment_write_fused(in[0], in[1], in[2], in[3], in[4], in[5], valid, 0.5, 0.5, true)
                : segment_write_torch(in[0], in[1], in[2].transpose(1, 2), in[3], in[4], in[5], valid, 0.5, 0.5, true);
      auto g = torch::autograd::grad({(W * W).sum() + (S * S).sum()}, in);
      g.insert(g.begin(), {W, S});
      return g;
    };
    KernelBenchCase s = k;
    s.kernel = "segment_write";
    s.length = n;
    s.max_rel_diff = maxRelDiff(writeOutputs(true), writeOutputs(false));
    std::tie(s.reference_ms, s.fused_ms) = timePair(torchWrite, fusedWrite, opt.repeats);
    s.speedup = s.reference_ms / s.fused_ms;
    s.gflops = 40.0 * D * D * n * N / (s.fused_ms * 1e6);  // 10 O·I forward, 30 O·I backward per token
    out.push_back(s);
  }
  return out;
}

}  // namespace hl::memory
