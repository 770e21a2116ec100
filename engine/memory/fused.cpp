// Autograd functions over kernels/ (engine/memory/fused.h). The kernels take raw pointers to
// contiguous arrays; this file makes the tensors contiguous, threads over rows with ATen's pool
// (at::parallel_for, so the kernels share torch's thread count) and wires the reverse pass.
#include "engine/memory/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <deque>
#include <mutex>
#include <stdexcept>

#include "hl_kernels/cpu_isa.h"
#include "hl_kernels/segment_write.h"
#include "hl_kernels/smt_segment.h"
#ifdef HL_HAVE_CUDA_KERNELS
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "hl_kernels/segment_write_cuda.h"
#endif

namespace hl::memory {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// A HOPELAB_KERNEL_ISA the kernels cannot honour stops the run with what to set, rather than
// running with another instruction set than the one asked for.
void checkIsaEnv() {
  const std::string e = kernels::cpu_isa_env_error();
  if (!e.empty()) throw std::runtime_error(e);
}

// Rows per parallel task: enough multiply-adds (≈ 32 K) that a task outweighs its scheduling.
int64_t rowGrain(int64_t n, int64_t O, int64_t I) {
  return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, n * O * I));
}

template <typename T>
kernels::SegmentWriteArgs<T> argsOf(const Tensor& W0, const Tensor& S0, const Tensor& U, const Tensor& G,
                                    const Tensor& eta, const Tensor& alpha, const Tensor& valid) {
  kernels::SegmentWriteArgs<T> a;
  a.W0 = W0.data_ptr<T>();
  a.S0 = S0.data_ptr<T>();
  a.U = U.data_ptr<T>();
  a.G = G.data_ptr<T>();
  a.eta = eta.data_ptr<T>();
  a.alpha = alpha.data_ptr<T>();
  a.valid = valid.data_ptr<T>();
  return a;
}

#ifdef HL_HAVE_CUDA_KERNELS
// A launch the CUDA runtime refused stops the run with the runtime's words.
void checkLaunch(int code, const char* what) {
  if (code != 0)
    throw std::runtime_error(std::string(what) + ": CUDA kernel launch failed: " + kernels::cuda_error_text(code));
}
#endif

class SegmentWriteFunction : public torch::autograd::Function<SegmentWriteFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor W0, Tensor S0, Tensor U, Tensor G, Tensor eta, Tensor alpha,
                               Tensor valid, double beta, double damp, bool dgd) {
    W0 = W0.contiguous();
    S0 = S0.contiguous();
    U = U.contiguous();
    G = G.contiguous();
    eta = eta.contiguous();
    alpha = alpha.contiguous();
    valid = valid.contiguous();
    const kernels::SegmentWriteDims d{W0.size(0), U.size(1), W0.size(1), W0.size(2)};
    const kernels::SegmentWriteCoeffs c{beta, damp, dgd};
    Tensor W = torch::empty_like(W0), S = torch::empty_like(S0);
    AT_DISPATCH_FLOATING_TYPES(W0.scalar_type(), "segment_write_forward", [&] {
      const auto a = argsOf<scalar_t>(W0, S0, U, G, eta, alpha, valid);
      scalar_t *w = W.data_ptr<scalar_t>(), *s = S.data_ptr<scalar_t>();
#ifdef HL_HAVE_CUDA_KERNELS
      if (W0.is_cuda()) {
        const c10::cuda::CUDAGuard guard(W0.device());
        checkLaunch(
            kernels::segment_write_forward_cuda<scalar_t>(d, c, a, w, s, c10::cuda::getCurrentCUDAStream().stream()),
            "segment_write_fused");
        return;
      }
#endif
      at::parallel_for(0, d.N, rowGrain(d.n, d.O, d.I), [&](int64_t r0, int64_t r1) {
        kernels::segment_write_forward<scalar_t>(d, c, a, w, s, r0, r1);
      });
    });
    ctx->save_for_backward({W0, S0, U, G, eta, alpha, valid});
    ctx->saved_data["beta"] = beta;
    ctx->saved_data["damp"] = damp;
    ctx->saved_data["dgd"] = dgd;
    ctx->mark_non_differentiable({valid});
    return {W, S};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (torch::GradMode::is_enabled())
      throw std::runtime_error(
          "segment_write_fused: a second derivative through the fused segment write is not implemented; "
          "set training.kernels to \"reference\" (docs/KERNELS.md)");
    const auto saved = ctx->get_saved_variables();
    const Tensor &W0 = saved[0], &S0 = saved[1], &U = saved[2], &G = saved[3], &eta = saved[4], &alpha = saved[5],
                 &valid = saved[6];
    const kernels::SegmentWriteDims d{W0.size(0), U.size(1), W0.size(1), W0.size(2)};
    const kernels::SegmentWriteCoeffs c{ctx->saved_data["beta"].toDouble(), ctx->saved_data["damp"].toDouble(),
                                        ctx->saved_data["dgd"].toBool()};
    const Tensor dW = grads[0].defined() ? grads[0].contiguous() : Tensor();
    const Tensor dS = grads[1].defined() ? grads[1].contiguous() : Tensor();
    Tensor dW0 = torch::empty_like(W0), dS0 = torch::empty_like(S0), dU = torch::empty_like(U),
           dG = torch::empty_like(G), deta = torch::empty_like(eta), dalpha = torch::empty_like(alpha);
    AT_DISPATCH_FLOATING_TYPES(W0.scalar_type(), "segment_write_backward", [&] {
      const auto a = argsOf<scalar_t>(W0, S0, U, G, eta, alpha, valid);
      kernels::SegmentWriteGrads<scalar_t> o;
      o.dW0 = dW0.data_ptr<scalar_t>();
      o.dS0 = dS0.data_ptr<scalar_t>();
      o.dU = dU.data_ptr<scalar_t>();
      o.dG = dG.data_ptr<scalar_t>();
      o.deta = deta.data_ptr<scalar_t>();
      o.dalpha = dalpha.data_ptr<scalar_t>();
      const scalar_t* gw = dW.defined() ? dW.data_ptr<scalar_t>() : nullptr;
      const scalar_t* gs = dS.defined() ? dS.data_ptr<scalar_t>() : nullptr;
#ifdef HL_HAVE_CUDA_KERNELS
      if (W0.is_cuda()) {
        const c10::cuda::CUDAGuard guard(W0.device());
        Tensor scratch = torch::empty({kernels::segment_write_backward_cuda_scratch(d)}, W0.options());
        checkLaunch(kernels::segment_write_backward_cuda<scalar_t>(d, c, a, gw, gs, o, scratch.data_ptr<scalar_t>(),
                                                                   c10::cuda::getCurrentCUDAStream().stream()),
                    "segment_write_fused backward");
        return;
      }
#endif
      at::parallel_for(0, d.N, rowGrain(d.n, d.O, d.I), [&](int64_t r0, int64_t r1) {
        kernels::segment_write_backward<scalar_t>(d, c, a, gw, gs, o, r0, r1);
      });
    });
    return {dW0, dS0, dU, dG, deta, dalpha, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// Coefficients travel through saved_data as doubles and bools.
void saveCoeffs(AutogradContext* ctx, const kernels::SmtSegmentCoeffs& c) {
  ctx->saved_data["beta"] = c.beta;
  ctx->saved_data["damp"] = c.damp;
  ctx->saved_data["dgd2"] = c.dgd2;
  ctx->saved_data["dgd1"] = c.dgd1;
  ctx->saved_data["l2"] = c.l2;
  ctx->saved_data["clamp"] = c.clamp;
  ctx->saved_data["clamp_bound"] = c.clamp_bound;
  ctx->saved_data["eta_scale"] = c.eta_scale;
  ctx->saved_data["eta_max"] = c.eta_max;
}
kernels::SmtSegmentCoeffs loadCoeffs(AutogradContext* ctx) {
  kernels::SmtSegmentCoeffs c;
  c.beta = ctx->saved_data["beta"].toDouble();
  c.damp = ctx->saved_data["damp"].toDouble();
  c.dgd2 = ctx->saved_data["dgd2"].toBool();
  c.dgd1 = ctx->saved_data["dgd1"].toBool();
  c.l2 = ctx->saved_data["l2"].toBool();
  c.clamp = ctx->saved_data["clamp"].toBool();
  c.clamp_bound = ctx->saved_data["clamp_bound"].toDouble();
  c.eta_scale = ctx->saved_data["eta_scale"].toDouble();
  c.eta_max = ctx->saved_data["eta_max"].toDouble();
  return c;
}

kernels::SmtSegmentDims segDims(const Tensor& R1, const Tensor& x) {
  kernels::SmtSegmentDims d;
  d.B = x.size(0);
  d.X = x.size(1);
  d.H = x.size(2);
  d.n = x.size(3);
  d.D = x.size(4);
  d.F = R1.size(4);
  return d;
}

template <typename T>
kernels::SmtSegmentArgs<T> segArgs(const variable_list& v) {  // R1, R2, W1, W2, S1, S2, x, we, be, wa, ba, valid
  kernels::SmtSegmentArgs<T> a;
  a.R1 = v[0].data_ptr<T>();
  a.R2 = v[1].data_ptr<T>();
  a.W1 = v[2].data_ptr<T>();
  a.W2 = v[3].data_ptr<T>();
  a.S1 = v[4].data_ptr<T>();
  a.S2 = v[5].data_ptr<T>();
  a.x = v[6].data_ptr<T>();
  a.w_eta = v[7].data_ptr<T>();
  a.b_eta = v[8].data_ptr<T>();
  a.w_alpha = v[9].data_ptr<T>();
  a.b_alpha = v[10].data_ptr<T>();
  a.valid = v[11].data_ptr<T>();
  return a;
}

class SmtSegmentFunction : public torch::autograd::Function<SmtSegmentFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, Tensor R1, Tensor R2, Tensor W1, Tensor W2, Tensor S1, Tensor S2,
                               Tensor x, Tensor w_eta, Tensor b_eta, Tensor w_alpha, Tensor b_alpha, Tensor valid,
                               const kernels::SmtSegmentCoeffs& c) {
    variable_list in = {R1, R2, W1, W2, S1, S2, x, w_eta, b_eta, w_alpha, b_alpha, valid};
    for (auto& t : in) t = t.contiguous();
    const auto d = segDims(in[0], in[6]);
    Tensor W1o = torch::empty_like(in[2]), W2o = torch::empty_like(in[3]), S1o = torch::empty_like(in[4]),
           S2o = torch::empty_like(in[5]);
    Tensor loss = torch::empty({d.B, 5, d.H, d.n}, in[6].options());
    Tensor clamped = torch::zeros({d.B, d.H}, in[6].options().dtype(torch::kLong));
    AT_DISPATCH_FLOATING_TYPES(in[6].scalar_type(), "smt_segment_forward", [&] {
      const auto a = segArgs<scalar_t>(in);
      kernels::SmtSegmentOut<scalar_t> o;
      o.W1 = W1o.data_ptr<scalar_t>();
      o.W2 = W2o.data_ptr<scalar_t>();
      o.S1 = S1o.data_ptr<scalar_t>();
      o.S2 = S2o.data_ptr<scalar_t>();
      o.loss = loss.data_ptr<scalar_t>();
      o.clamped = clamped.data_ptr<int64_t>();
      at::parallel_for(0, d.B * d.H, 1,
                       [&](int64_t p0, int64_t p1) { kernels::smt_segment_forward<scalar_t>(d, c, a, o, p0, p1); });
    });
    ctx->save_for_backward(in);
    saveCoeffs(ctx, c);
    Tensor csum = clamped.sum();
    ctx->mark_non_differentiable({loss, csum});
    return {W1o, W2o, S1o, S2o, loss, csum};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (torch::GradMode::is_enabled())
      throw std::runtime_error(
          "smt_segment_fused: a second derivative through the fused segment is not implemented; "
          "set training.kernels to \"reference\" (docs/KERNELS.md)");
    const variable_list in = ctx->get_saved_variables();
    const auto c = loadCoeffs(ctx);
    const auto d = segDims(in[0], in[6]);
    auto gr = [&](int i) { return grads[i].defined() ? grads[i].contiguous() : Tensor(); };
    const Tensor dW1o = gr(0), dW2o = gr(1), dS1o = gr(2), dS2o = gr(3);
    Tensor dR1 = torch::empty_like(in[0]), dR2 = torch::empty_like(in[1]), dW1 = torch::empty_like(in[2]),
           dW2 = torch::empty_like(in[3]), dS1 = torch::empty_like(in[4]), dS2 = torch::empty_like(in[5]),
           dx = torch::empty_like(in[6]);
    Tensor dwe = torch::empty({d.B, d.H, d.D}, in[6].options()), dwa = torch::empty_like(dwe);
    Tensor dbe = torch::empty({d.B, d.H}, in[6].options()), dba = torch::empty_like(dbe);
    AT_DISPATCH_FLOATING_TYPES(in[6].scalar_type(), "smt_segment_backward", [&] {
      const auto a = segArgs<scalar_t>(in);
      kernels::SmtSegmentGrads<scalar_t> g;
      g.dR1 = dR1.data_ptr<scalar_t>();
      g.dR2 = dR2.data_ptr<scalar_t>();
      g.dW1 = dW1.data_ptr<scalar_t>();
      g.dW2 = dW2.data_ptr<scalar_t>();
      g.dS1 = dS1.data_ptr<scalar_t>();
      g.dS2 = dS2.data_ptr<scalar_t>();
      g.dx = dx.data_ptr<scalar_t>();
      g.dw_eta = dwe.data_ptr<scalar_t>();
      g.db_eta = dbe.data_ptr<scalar_t>();
      g.dw_alpha = dwa.data_ptr<scalar_t>();
      g.db_alpha = dba.data_ptr<scalar_t>();
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      const scalar_t *gw1 = ptr(dW1o), *gw2 = ptr(dW2o), *gs1 = ptr(dS1o), *gs2 = ptr(dS2o);
      at::parallel_for(0, d.B * d.H, 1, [&](int64_t p0, int64_t p1) {
        kernels::smt_segment_backward<scalar_t>(d, c, a, gw1, gs1, gw2, gs2, g, p0, p1);
      });
    });
    return {dR1, dR2, dW1, dW2, dS1, dS2, dx, dwe.sum(0), dbe.sum(0), dwa.sum(0), dba.sum(0), Tensor(), Tensor()};
  }
};

// Checkpoint spacing of the whole-sequence kernel (docs/KERNELS.md "Whole sequence"): every
// segment start while a sequence has at most 32 segments (L ≤ 128 at chunk 4: there the memory is
// small and recomputing would cost time), else about √segments apart, so that a pair keeps
// O(√L) states instead of O(L) at the price of one more forward per segment in the reverse pass.
std::atomic<int64_t> gCheckpointEvery{0};
std::atomic<bool> gSkipPadTail{true};
int64_t checkpointEvery(int64_t segments) {
  const int64_t forced = gCheckpointEvery.load();
  if (forced > 0) return forced;
  return segments <= 32 ? 1 : std::max<int64_t>(1, std::llround(std::sqrt(double(segments))));
}

// The checkpoint buffers of the whole-sequence kernel are large (178 MB at batch 32, L = 64) and
// live from a forward to its backward. A fresh one per call costs its page faults every time: a
// quarter of a Hope training step's time on the 2-core machine (perf: exc_page_fault,
// clear_page_erms). This pool keeps released buffers for reuse: a buffer is free when the pool
// holds the only reference to its storage (the autograd node that saved it is gone). Free
// buffers beyond kPoolBytes in all are released to the allocator, oldest first.
constexpr int64_t kPoolBytes = int64_t(1) << 30;
std::mutex& poolMutex() {
  static std::mutex mu;
  return mu;
}
std::deque<Tensor>& pool() {
  static std::deque<Tensor> buffers;  // 1-d buffers
  return buffers;
}
bool isFree(const Tensor& t) {
  return t.storage().use_count() == 1;
}

Tensor checkpointBuffer(int64_t rows, int64_t cols, const torch::TensorOptions& opt) {
  const int64_t need = rows * cols;
  std::lock_guard<std::mutex> lock(poolMutex());
  auto& pool = ::hl::memory::pool();
  Tensor buf;
  for (auto& t : pool)
    if (isFree(t) && t.dtype() == opt.dtype() && t.numel() >= need && (!buf.defined() || t.numel() < buf.numel()))
      buf = t;  // the smallest free buffer that fits
  if (!buf.defined()) {
    buf = torch::empty({need}, opt);
    pool.push_back(buf);
  }
  int64_t bytes = 0;
  for (const auto& t : pool) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  for (auto it = pool.begin(); it != pool.end() && bytes > kPoolBytes;) {
    if (isFree(*it) && !it->is_same(buf)) {
      bytes -= it->numel() * static_cast<int64_t>(it->element_size());
      it = pool.erase(it);
    } else {
      ++it;
    }
  }
  return buf.narrow(0, 0, need).view({rows, cols});
}

// The whole sequence: inputs W1, W2, x, q, w_eta, b_eta, w_alpha, b_alpha, valid; the checkpoints
// ride in saved_data.
class SmtSequenceFunction : public torch::autograd::Function<SmtSequenceFunction> {
 public:
  static kernels::SmtSequenceDims dims(const Tensor& W1, const Tensor& x, int64_t cm, int64_t co, int64_t every,
                                       bool skip) {
    kernels::SmtSequenceDims d;
    d.ck_every = every;
    d.skip_pad_tail = skip;
    d.B = x.size(0);
    d.X = x.size(1);
    d.H = x.size(2);
    d.L = x.size(3);
    d.D = x.size(4);
    d.F = W1.size(4);
    d.chunk_memory = cm;
    d.chunk_other = co;
    return d;
  }
  template <typename T>
  static kernels::SmtSequenceArgs<T> args(const variable_list& v, double bound) {
    kernels::SmtSequenceArgs<T> a;
    a.W1 = v[0].data_ptr<T>();
    a.W2 = v[1].data_ptr<T>();
    a.x = v[2].data_ptr<T>();
    a.q = v[3].data_ptr<T>();
    a.w_eta = v[4].data_ptr<T>();
    a.b_eta = v[5].data_ptr<T>();
    a.w_alpha = v[6].data_ptr<T>();
    a.b_alpha = v[7].data_ptr<T>();
    a.valid = v[8].data_ptr<T>();
    a.state_bound = bound;
    return a;
  }

  // The kernel's forward over contiguous inputs `in`: {y, W1e, W2e, S1e, S2e, loss, clamp count}
  // and the state buffer (checkpoints `every` segments apart, or with `ring` two slots: no reverse
  // pass can follow). `shared`: in[0], in[1] hold one start state [1, 5, H, ...] for every sequence
  // (SmtSequenceArgs::shared_start). Without `finals` the final states are left undefined.
  static std::pair<variable_list, Tensor> run(const variable_list& in, const kernels::SmtSegmentCoeffs& c, int64_t cm,
                                              int64_t co, double bound, bool ring, int64_t every, bool skip,
                                              bool shared = false, bool finals = true, const Tensor& trace = Tensor()) {
    const int64_t nseg = kernels::smt_sequence_segments(in[2].size(3), cm, co);
    const auto d = dims(in[0], in[2], cm, co, every, skip);
    const int64_t CK = ring ? kernels::smt_sequence_ring_size(d) : kernels::smt_sequence_checkpoint_size(d);
    const auto opt = in[2].options();
    Tensor y = torch::empty({d.B, d.H, d.L, d.D}, opt);
    Tensor ck = checkpointBuffer(d.B * d.H, CK, opt);
    Tensor loss = torch::empty({d.B, 5, d.H, d.L}, opt);
    Tensor clamped = torch::zeros({d.B, d.H}, opt.dtype(torch::kLong));
    AT_DISPATCH_FLOATING_TYPES(in[2].scalar_type(), "smt_sequence_forward", [&] {
      auto a = args<scalar_t>(in, bound);
      a.shared_start = shared;
      kernels::SmtSequenceOut<scalar_t> o;
      o.y = y.data_ptr<scalar_t>();
      o.ck = ck.data_ptr<scalar_t>();
      o.loss = loss.data_ptr<scalar_t>();
      o.clamped = clamped.data_ptr<int64_t>();
      o.ring = ring;
      if (trace.defined()) o.trace = trace.data_ptr<scalar_t>();
      at::parallel_for(0, d.B * d.H, 1,
                       [&](int64_t p0, int64_t p1) { kernels::smt_sequence_forward<scalar_t>(d, c, a, o, p0, p1); });
    });
    if (!finals) return {{y, Tensor(), Tensor(), Tensor(), Tensor(), loss, clamped.sum()}, ck};
    // The final states: the last checkpoint (a ring's slot nseg % 2), [B, H, 4, 5, ...] -> four
    // [B, 5, H, ...] tensors.
    const int64_t lastSlot = ring ? nseg % 2 : kernels::smt_sequence_checkpoint_slots(d) - 1;
    const Tensor last = ck.narrow(1, lastSlot * 20 * d.D * d.F, 20 * d.D * d.F).reshape({d.B, d.H, 4, 5, d.D * d.F});
    auto state = [&](int64_t k, int64_t r, int64_t cdim) {
      return last.select(2, k)
          .reshape({d.B, d.H, 5, r, cdim})
          .permute({0, 2, 1, 3, 4})
          .clone(at::MemoryFormat::Contiguous);  // never a view of the pooled buffer
    };
    Tensor W1e = state(0, d.D, d.F), W2e = state(1, d.F, d.D), S1e = state(2, d.D, d.F), S2e = state(3, d.F, d.D);
    return {{y, W1e, W2e, S1e, S2e, loss, clamped.sum()}, ck};
  }

  static variable_list forward(AutogradContext* ctx, Tensor W1, Tensor W2, Tensor x, Tensor q, Tensor w_eta,
                               Tensor b_eta, Tensor w_alpha, Tensor b_alpha, Tensor valid,
                               const kernels::SmtSegmentCoeffs& c, int64_t cm, int64_t co, double bound) {
    variable_list in = {W1, W2, x, q, w_eta, b_eta, w_alpha, b_alpha, valid};
    for (auto& t : in) t = t.contiguous();
    const int64_t every = checkpointEvery(kernels::smt_sequence_segments(in[2].size(3), cm, co));
    const bool skip = gSkipPadTail.load();
    auto [out, ck] = run(in, c, cm, co, bound, /*ring=*/false, every, skip);
    ctx->save_for_backward(in);
    ctx->saved_data["ck"] = ck;
    ctx->saved_data["every"] = every;  // the spacing the forward used, for the reverse pass
    ctx->saved_data["skip"] = skip;    // and whether it skipped the pad tails
    saveCoeffs(ctx, c);
    ctx->saved_data["cm"] = cm;
    ctx->saved_data["co"] = co;
    ctx->saved_data["bound"] = bound;
    ctx->mark_non_differentiable({out[5], out[6]});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (torch::GradMode::is_enabled())
      throw std::runtime_error(
          "smt_sequence_fused: a second derivative through the fused sequence is not implemented; "
          "set training.kernels to \"reference\" (docs/KERNELS.md)");
    const variable_list in = ctx->get_saved_variables();
    const Tensor ck = ctx->saved_data["ck"].toTensor();
    const auto c = loadCoeffs(ctx);
    const int64_t cm = ctx->saved_data["cm"].toInt(), co = ctx->saved_data["co"].toInt();
    const double bound = ctx->saved_data["bound"].toDouble();
    const auto d = dims(in[0], in[2], cm, co, ctx->saved_data["every"].toInt(), ctx->saved_data["skip"].toBool());
    auto gr = [&](int i) { return grads[i].defined() ? grads[i].contiguous() : Tensor(); };
    const Tensor dy = grads[0].defined() ? grads[0].contiguous() : torch::zeros({d.B, d.H, d.L, d.D}, in[2].options());
    const Tensor dW1e = gr(1), dW2e = gr(2), dS1e = gr(3), dS2e = gr(4);
    Tensor dW1 = torch::empty_like(in[0]), dW2 = torch::empty_like(in[1]), dx = torch::empty_like(in[2]),
           dq = torch::empty_like(in[3]);
    Tensor dwe = torch::empty({d.B, d.H, d.D}, in[2].options()), dwa = torch::empty_like(dwe);
    Tensor dbe = torch::empty({d.B, d.H}, in[2].options()), dba = torch::empty_like(dbe);
    AT_DISPATCH_FLOATING_TYPES(in[2].scalar_type(), "smt_sequence_backward", [&] {
      const auto a = args<scalar_t>(in, bound);
      kernels::SmtSequenceGrads<scalar_t> g;
      g.dW1 = dW1.data_ptr<scalar_t>();
      g.dW2 = dW2.data_ptr<scalar_t>();
      g.dx = dx.data_ptr<scalar_t>();
      g.dq = dq.data_ptr<scalar_t>();
      g.dw_eta = dwe.data_ptr<scalar_t>();
      g.db_eta = dbe.data_ptr<scalar_t>();
      g.dw_alpha = dwa.data_ptr<scalar_t>();
      g.db_alpha = dba.data_ptr<scalar_t>();
      auto ptr = [](const Tensor& t) { return t.defined() ? t.data_ptr<scalar_t>() : nullptr; };
      const scalar_t* ckp = ck.data_ptr<scalar_t>();
      const scalar_t* dyp = dy.data_ptr<scalar_t>();
      at::parallel_for(0, d.B * d.H, 1, [&](int64_t p0, int64_t p1) {
        kernels::smt_sequence_backward<scalar_t>(d, c, a, ckp, dyp, ptr(dW1e), ptr(dW2e), ptr(dS1e), ptr(dS2e), g, p0,
                                                 p1);
      });
    });
    return {dW1,        dW2,      dx,       dq,       dwe.sum(0), dbe.sum(0), dwa.sum(0),
            dba.sum(0), Tensor(), Tensor(), Tensor(), Tensor(),   Tensor()};
  }
};

}  // namespace

void set_sequence_checkpoint_every(int64_t every) {
  gCheckpointEvery = std::max<int64_t>(0, every);
}

void set_sequence_skip_pad_tail(bool skip) {
  gSkipPadTail = skip;
}

void release_free_checkpoint_buffers() {
  std::lock_guard<std::mutex> lock(poolMutex());
  auto& buffers = pool();
  for (auto it = buffers.begin(); it != buffers.end();) it = isFree(*it) ? buffers.erase(it) : std::next(it);
}

int64_t checkpoint_pool_bytes_in_use() {
  std::lock_guard<std::mutex> lock(poolMutex());
  int64_t bytes = 0;
  for (const auto& t : pool())
    if (!isFree(t)) bytes += t.numel() * static_cast<int64_t>(t.element_size());
  return bytes;
}

bool cuda_kernels_built() {
#ifdef HL_HAVE_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool smt_fused_applies(const torch::Tensor& x) {
  return x.device().is_cpu() && (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kFloat64);
}

bool segment_write_fused_applies(const torch::Tensor& W0) {
  const bool dtype = W0.scalar_type() == torch::kFloat32 || W0.scalar_type() == torch::kFloat64;
  if (!dtype) return false;
  if (W0.device().is_cpu()) return true;
#ifdef HL_HAVE_CUDA_KERNELS
  // The CUDA launchers: one block per row (N < 2^31), 7 · O values of shared memory, sm_80 or
  // later. W0: [..., O, I] (smt_chunked asks with a [B, 5, H, D, F] state, whose transpose is
  // written too: both trailing sizes count).
  if (W0.device().is_cuda() && W0.dim() >= 2) {
    const int64_t O = W0.size(-2), I = W0.size(-1);
    const int64_t rows = O * I > 0 ? W0.numel() / (O * I) : 0;
    return rows < (int64_t(1) << 31) && std::max(O, I) <= kernels::kSegmentWriteCudaMaxO &&
           kernels::cuda_compute_major(W0.device().index()) >= 8;
  }
#endif
  return false;
}

std::pair<torch::Tensor, torch::Tensor> segment_write_fused(const torch::Tensor& W0, const torch::Tensor& S0,
                                                            const torch::Tensor& U, const torch::Tensor& G,
                                                            const torch::Tensor& eta, const torch::Tensor& alpha,
                                                            const torch::Tensor& valid, double beta, double damp,
                                                            bool dgd) {
  TORCH_CHECK(segment_write_fused_applies(W0),
              "segment_write_fused: CPU (or, with the CUDA kernels built, CUDA) float32/float64 only");
  if (W0.device().is_cpu()) checkIsaEnv();  // the CPU kernels' instruction set
  TORCH_CHECK(W0.dim() == 3 && S0.sizes() == W0.sizes(), "segment_write_fused: W0, S0 must be [N, O, I]");
  const int64_t N = W0.size(0), O = W0.size(1), I = W0.size(2);
  TORCH_CHECK(U.dim() == 3 && U.size(0) == N && U.size(2) == I, "segment_write_fused: U must be [N, n, I]");
  const int64_t n = U.size(1);
  TORCH_CHECK(G.sizes() == torch::IntArrayRef({N, n, O}), "segment_write_fused: G must be [N, n, O]");
  for (const Tensor* t : {&eta, &alpha, &valid})
    TORCH_CHECK(t->sizes() == torch::IntArrayRef({N, n}), "segment_write_fused: eta, alpha, valid must be [N, n]");
  const auto dt = W0.scalar_type();
  for (const Tensor* t : {&S0, &U, &G, &eta, &alpha, &valid})
    TORCH_CHECK(t->scalar_type() == dt && t->device() == W0.device(), "segment_write_fused: mixed dtypes or devices");
  auto out = SegmentWriteFunction::apply(W0, S0, U, G, eta, alpha, valid, beta, damp, dgd);
  return {out[0], out[1]};
}

}  // namespace hl::memory

namespace hl::memory {

SmtSegmentFused smt_segment_fused(const hl::kernels::SmtSegmentCoeffs& c, const torch::Tensor& R1,
                                  const torch::Tensor& R2, const torch::Tensor& W1, const torch::Tensor& W2,
                                  const torch::Tensor& S1, const torch::Tensor& S2, const torch::Tensor& x,
                                  const torch::Tensor& valid, const torch::Tensor& w_eta, const torch::Tensor& b_eta,
                                  const torch::Tensor& w_alpha, const torch::Tensor& b_alpha) {
  TORCH_CHECK(smt_fused_applies(x), "smt_segment_fused: CPU float32/float64 only");
  checkIsaEnv();
  TORCH_CHECK(x.dim() == 5 && (x.size(1) == 1 || x.size(1) == 4), "smt_segment_fused: x must be [B, 1|4, H, n, D]");
  const int64_t B = x.size(0), H = x.size(2), n = x.size(3), D = x.size(4), F = R1.size(-1);
  for (const torch::Tensor* t : {&R1, &W1, &S1})
    TORCH_CHECK(t->sizes() == torch::IntArrayRef({B, 5, H, D, F}),
                "smt_segment_fused: R1, W1, S1 must be [B, 5, H, D, F]");
  for (const torch::Tensor* t : {&R2, &W2, &S2})
    TORCH_CHECK(t->sizes() == torch::IntArrayRef({B, 5, H, F, D}),
                "smt_segment_fused: R2, W2, S2 must be [B, 5, H, F, D]");
  TORCH_CHECK(valid.sizes() == torch::IntArrayRef({B, n}), "smt_segment_fused: valid must be [B, n]");
  const auto dt = x.scalar_type();
  for (const torch::Tensor* t : {&R1, &R2, &W1, &W2, &S1, &S2, &valid})
    TORCH_CHECK(t->scalar_type() == dt && t->device() == x.device(), "smt_segment_fused: mixed dtypes or devices");
  auto out = SmtSegmentFunction::apply(R1, R2, W1, W2, S1, S2, x, w_eta.to(dt), b_eta.to(dt), w_alpha.to(dt),
                                       b_alpha.to(dt), valid, c);
  return {out[0], out[1], out[2], out[3], out[4], out[5]};
}

}  // namespace hl::memory

namespace hl::memory {

SmtSequenceFused smt_sequence_fused(const hl::kernels::SmtSegmentCoeffs& c, int64_t chunk_memory, int64_t chunk_other,
                                    double state_bound, const torch::Tensor& W1, const torch::Tensor& W2,
                                    const torch::Tensor& x, const torch::Tensor& q, const torch::Tensor& valid,
                                    const torch::Tensor& w_eta, const torch::Tensor& b_eta,
                                    const torch::Tensor& w_alpha, const torch::Tensor& b_alpha, bool final_states,
                                    torch::Tensor* trace) {
  TORCH_CHECK(smt_fused_applies(x), "smt_sequence_fused: CPU float32/float64 only");
  checkIsaEnv();
  TORCH_CHECK(x.dim() == 5 && (x.size(1) == 1 || x.size(1) == 4), "smt_sequence_fused: x must be [B, 1|4, H, L, D]");
  const int64_t B = x.size(0), H = x.size(2), L = x.size(3), D = x.size(4), F = W1.size(-1);
  TORCH_CHECK(chunk_memory >= 1 && chunk_other >= 1, "smt_sequence_fused: chunks must be >= 1");
  TORCH_CHECK(W1.sizes() == torch::IntArrayRef({B, 5, H, D, F}), "smt_sequence_fused: W1 must be [B, 5, H, D, F]");
  TORCH_CHECK(W2.sizes() == torch::IntArrayRef({B, 5, H, F, D}), "smt_sequence_fused: W2 must be [B, 5, H, F, D]");
  TORCH_CHECK(q.sizes() == torch::IntArrayRef({B, H, L, D}), "smt_sequence_fused: q must be [B, H, L, D]");
  TORCH_CHECK(valid.sizes() == torch::IntArrayRef({B, L}), "smt_sequence_fused: valid must be [B, L]");
  const auto dt = x.scalar_type();
  for (const torch::Tensor* t : {&W1, &W2, &q, &valid})
    TORCH_CHECK(t->scalar_type() == dt && t->device() == x.device(), "smt_sequence_fused: mixed dtypes or devices");
  const Tensor we = w_eta.to(dt), be = b_eta.to(dt), wa = w_alpha.to(dt), ba = b_alpha.to(dt);
  bool grad = false;  // does any reverse pass need this forward's checkpoints?
  if (torch::GradMode::is_enabled())
    for (const Tensor* t : {&W1, &W2, &x, &q, &we, &be, &wa, &ba}) grad = grad || t->requires_grad();
  TORCH_CHECK(trace == nullptr || !grad, "smt_sequence_fused: a trace only without a gradient");
  if (!grad) {  // evaluation: two state slots instead of a checkpoint per segment (same arithmetic)
    // Start states broadcast over the batch (smt_chunked's are: the layer's parameters) are read
    // from one copy instead of being copied out per sequence (80 KB each in float32 at D = F = 32).
    const bool shared = B > 1 && W1.stride(0) == 0 && W2.stride(0) == 0;
    variable_list in = {
        shared ? W1.narrow(0, 0, 1) : W1, shared ? W2.narrow(0, 0, 1) : W2, x, q, we, be, wa, ba, valid};
    for (auto& t : in) t = t.contiguous();
    if (trace) *trace = torch::empty({B, H, L, 4}, x.options());
    const variable_list o =
        SmtSequenceFunction::run(in, c, chunk_memory, chunk_other, state_bound, /*ring=*/true,
                                 /*every=*/1, gSkipPadTail.load(), shared, final_states, trace ? *trace : Tensor())
            .first;
    return {o[0], o[1], o[2], o[3], o[4], o[5], o[6]};
  }
  auto o = SmtSequenceFunction::apply(W1, W2, x, q, we, be, wa, ba, valid, c, chunk_memory, chunk_other, state_bound);
  return {o[0], o[1], o[2], o[3], o[4], o[5], o[6]};
}

}  // namespace hl::memory
