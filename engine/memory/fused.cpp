// Autograd functions over kernels/ (engine/memory/fused.h). The kernels take raw pointers to
// contiguous arrays; this file makes the tensors contiguous, threads over rows with ATen's pool
// (at::parallel_for, so the kernels share torch's thread count) and wires the reverse pass.
#include "engine/memory/fused.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <stdexcept>

#include "hl_kernels/segment_write.h"

namespace hl::memory {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

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
      at::parallel_for(0, d.N, rowGrain(d.n, d.O, d.I), [&](int64_t r0, int64_t r1) {
        kernels::segment_write_backward<scalar_t>(d, c, a, gw, gs, o, r0, r1);
      });
    });
    return {dW0, dS0, dU, dG, deta, dalpha, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

bool segment_write_fused_applies(const torch::Tensor& W0) {
  return W0.device().is_cpu() && (W0.scalar_type() == torch::kFloat32 || W0.scalar_type() == torch::kFloat64);
}

std::pair<torch::Tensor, torch::Tensor> segment_write_fused(const torch::Tensor& W0, const torch::Tensor& S0,
                                                            const torch::Tensor& U, const torch::Tensor& G,
                                                            const torch::Tensor& eta, const torch::Tensor& alpha,
                                                            const torch::Tensor& valid, double beta, double damp,
                                                            bool dgd) {
  TORCH_CHECK(segment_write_fused_applies(W0), "segment_write_fused: CPU float32/float64 only");
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
