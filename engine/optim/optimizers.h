// Hope Lab optimizers: the paper's "optimizers as associative memory" family (HOPE.md §7) as
// LibTorch optimizers, plus a factory that also covers SGD, SGD + momentum and AdamW.
// Equations, HOPE.md references and approximations: docs/OPTIMIZERS.md.
//
// Each optimizer works on any list of tensors (a whole model or one CMS level's parameters).
// Weight decay is decoupled (AdamW style): p <- p * (1 - lr * weight_decay) before the update.
// A parameter whose grad is undefined is skipped (its state is neither created nor changed).
// save()/load() serialise options and per-parameter states the way LibTorch's SGD/AdamW do
// (torch::optim::serialize), so torch::save(optimizer, ...) / torch::load round-trip.
#pragma once

#include "engine/torch_wrap.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hl::optim {

// ---------------------------------------------------------------------------------------------
// Delta momentum (HOPE.md §7, paper eq. 49; NeurIPS eq. 22), P_i = I:
//   m_{i+1} = (alpha I - lambda g g^T) m_i - lr g,   p_{i+1} = p_i + m_{i+1}
// g and m are the flattened gradient and momentum of one parameter tensor. lambda = 1 is the
// paper's equation; if clamp is on, lambda = min(1, 1/||g||^2), i.e. a write never more than
// fully erases the g component of m (without it, ||g||^2 > 1 + alpha makes m diverge).
// normalize_key uses k = g/||g|| in the delta term: m <- alpha m - k (k^T m) - lr g.
struct DeltaMomentumOptions : public torch::optim::OptimizerCloneableOptions<DeltaMomentumOptions> {
  DeltaMomentumOptions(double lr = 1e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, alpha) = 0.9;  // decay of the memory (plain momentum's beta)
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(bool, normalize_key) = false;  // use k = g/||g|| in the delta term
  TORCH_ARG(bool, clamp) = true;           // stability clamp on lambda (see above)

 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

struct DeltaMomentumParamState : public torch::optim::OptimizerCloneableParamState<DeltaMomentumParamState> {
  TORCH_ARG(torch::Tensor, momentum);
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(int64_t, clamped) = 0;  // steps where the stability clamp changed lambda

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class DeltaMomentum : public torch::optim::Optimizer {
 public:
  DeltaMomentum(const std::vector<torch::optim::OptimizerParamGroup>& groups, DeltaMomentumOptions defaults);
  DeltaMomentum(std::vector<torch::Tensor> params, DeltaMomentumOptions defaults)
      : DeltaMomentum({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

// ---------------------------------------------------------------------------------------------
// Deep momentum gradient descent (HOPE.md §7, paper eq. 50). The momentum memory of one
// parameter tensor p (n elements) is a small MLP applied elementwise to the gradient u = grad:
//   m(u)_j = b_j + sum_k w2_k * tanh(w1_k * u_j)          (k = 1..hidden)
// b (shape of p) is the per-element output bias; w1, w2 (length hidden) are shared by all
// elements of the tensor. Inner objective ("dot-product similarity", eq. 50's L^(2)):
//   L2(m; u) = <m(u), u> = sum_j m(u)_j u_j ; the shared weights use its per-element mean.
// One inner GD step with decay alpha on every memory parameter, at the old memory:
//   b  <- alpha b  - lr * u
//   w2 <- alpha w2 - inner_lr * mean_j tanh(w1 u_j) u_j
//   w1 <- alpha w1 - inner_lr * mean_j w2 (1 - tanh^2(w1 u_j)) u_j^2     (old w2)
// then p <- p + m_{new}(u). With inner_lr = 0 and w2 = 0 this is exactly classical momentum.
// Init: w1_k = init_scale * (k+1)/hidden, w2 = 0, b = 0.
struct DeepMomentumOptions : public torch::optim::OptimizerCloneableOptions<DeepMomentumOptions> {
  DeepMomentumOptions(double lr = 1e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, alpha) = 0.9;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(int64_t, hidden) = 4;
  TORCH_ARG(double, inner_lr) = 1e-3;
  TORCH_ARG(double, init_scale) = 1.0;

 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

struct DeepMomentumParamState : public torch::optim::OptimizerCloneableParamState<DeepMomentumParamState> {
  TORCH_ARG(torch::Tensor, bias);  // b, shape of the parameter
  TORCH_ARG(torch::Tensor, w1);    // [hidden]
  TORCH_ARG(torch::Tensor, w2);    // [hidden]
  TORCH_ARG(int64_t, step) = 0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class DeepMomentumGD : public torch::optim::Optimizer {
 public:
  DeepMomentumGD(const std::vector<torch::optim::OptimizerParamGroup>& groups, DeepMomentumOptions defaults);
  DeepMomentumGD(std::vector<torch::Tensor> params, DeepMomentumOptions defaults)
      : DeepMomentumGD({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

// ---------------------------------------------------------------------------------------------
// M3, multi-scale momentum Muon (HOPE.md §7, paper Algorithm 1). Per parameter, step t = 1,2,..:
//   V  <- V + beta2 g^2                          (Algorithm 1, AdaGrad-style accumulation)
//   M1 <- beta1 M1 + (1-beta1) g                 (fast EMA; accumulate: M1 <- M1 + beta1 g)
//   O1 = NS_T(M1)
//   p  <- p - lr (O1 + alpha O2) / (sqrt(V) + eps)
//   G  <- G + g;  if t % slow_every == 0:
//      M2 <- beta3 M2 + (1-beta3) G/slow_every   (slow EMA; accumulate: M2 <- M2 + beta3 G)
//      O2 = NS_T(M2); G <- 0                     (O2 = 0 until the first slow update)
// NS_T: T Newton-Schulz iterations on the tensor viewed as 2-D [size(0), rest]; tensors with
// dim < 2 use O = M (no orthogonalisation).
enum class NSVariant { Quintic, Cubic };

struct M3Options : public torch::optim::OptimizerCloneableOptions<M3Options> {
  M3Options(double lr = 1e-3) : lr_(lr) {}
  TORCH_ARG(double, lr);
  TORCH_ARG(double, beta1) = 0.9;        // fast momentum
  TORCH_ARG(double, beta2) = 0.999;      // second-moment accumulation weight
  TORCH_ARG(double, beta3) = 0.9;        // slow momentum
  TORCH_ARG(double, slow_weight) = 1.0;  // Algorithm 1's alpha
  TORCH_ARG(double, eps) = 1e-8;
  TORCH_ARG(double, weight_decay) = 0.0;
  TORCH_ARG(int64_t, slow_every) = 10;  // Algorithm 1's frequency f
  TORCH_ARG(int64_t, ns_steps) = 5;     // Algorithm 1's T
  TORCH_ARG(NSVariant, ns_variant) = NSVariant::Quintic;
  TORCH_ARG(bool, accumulate) = false;  // true: literal Algorithm 1 momenta (M += beta g)

 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double lr) override { this->lr(lr); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

struct M3ParamState : public torch::optim::OptimizerCloneableParamState<M3ParamState> {
  TORCH_ARG(torch::Tensor, fast);    // M1
  TORCH_ARG(torch::Tensor, slow);    // M2
  TORCH_ARG(torch::Tensor, slow_o);  // O2 = NS(M2), cached between slow updates
  TORCH_ARG(torch::Tensor, window);  // G, gradient sum since the last slow update
  TORCH_ARG(torch::Tensor, v);       // V
  TORCH_ARG(int64_t, step) = 0;

 public:
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

class M3 : public torch::optim::Optimizer {
 public:
  M3(const std::vector<torch::optim::OptimizerParamGroup>& groups, M3Options defaults);
  M3(std::vector<torch::Tensor> params, M3Options defaults)
      : M3({torch::optim::OptimizerParamGroup(std::move(params))}, defaults) {}
  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
};

// Newton-Schulz orthogonalisation of a 2-D matrix G (no grad). X0 = G / (||G||_F + 1e-7);
// if rows > cols it works on the transpose. Per iteration, with A = X X^T:
//   Quintic (Muon's coefficients a,b,c = 3.4445, -4.7750, 2.0315): X <- a X + (b A + c A^2) X
//   Cubic (Newton-Schulz / paper eq. 44 with zeta = 1/2):          X <- 1.5 X - 0.5 A X
// The cubic converges to the orthogonal polar factor U V^T; the quintic only pushes singular
// values into roughly [0.7, 1.2] (faster, not exact).
torch::Tensor newton_schulz(const torch::Tensor& g, int64_t steps, NSVariant variant);

// ---------------------------------------------------------------------------------------------
struct OptimConfig {
  double lr = 1e-3, weight_decay = 0.01, beta1 = 0.9, beta2 = 0.999, momentum = 0.9;
  double eps = 1e-8;
  // delta_momentum (alpha = momentum)
  bool delta_normalize_key = false;
  bool delta_clamp = true;
  // deep_momentum (alpha = momentum)
  int64_t deep_hidden = 4;
  double deep_inner_lr = 1e-3;
  double deep_init_scale = 1.0;
  // m3 (beta1 fast, beta2 V accumulation)
  double m3_beta3 = 0.9;
  double m3_slow_weight = 1.0;
  int64_t m3_slow_every = 10;
  int64_t m3_ns_steps = 5;
  std::string m3_ns_variant = "quintic";  // "quintic" | "cubic"
  bool m3_accumulate = false;
};

// The types make_optimizer knows, in a stable order.
const std::vector<std::string>& optimizer_types();

// "sgd", "sgd_momentum", "adamw", "delta_momentum", "deep_momentum", "m3".
// Unknown type -> std::invalid_argument naming "optimizer.type" and the known types.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& type, std::vector<torch::Tensor> params,
                                                        const OptimConfig& cfg);

}  // namespace hl::optim
