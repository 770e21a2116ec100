// Hope Lab optimizers: equations in optimizers.h and docs/OPTIMIZERS.md.
#include "engine/optim/optimizers.h"

#include <cmath>
#include <stdexcept>

namespace hl::optim {

namespace {

using torch::optim::OptimizerParamGroup;

// Runs the closure (if any) with grad enabled, as LibTorch's own optimizers do.
torch::Tensor run_closure(const torch::optim::Optimizer::LossClosure& closure) {
  torch::Tensor loss;
  if (closure != nullptr) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  return loss;
}

void decoupled_decay(torch::Tensor& p, double lr, double wd) {
  if (wd != 0.0) p.mul_(1.0 - lr * wd);
}

template <typename State>
State& state_for(torch::optim::Optimizer& opt, const torch::Tensor& p, bool& fresh) {
  auto& states = opt.state();
  auto it = states.find(p.unsafeGetTensorImpl());
  fresh = it == states.end();
  if (fresh) {
    auto s = std::make_unique<State>();
    auto* raw = s.get();
    states[p.unsafeGetTensorImpl()] = std::move(s);
    return *raw;
  }
  return static_cast<State&>(*it->second);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
DeltaMomentum::DeltaMomentum(const std::vector<OptimizerParamGroup>& groups, DeltaMomentumOptions defaults)
    : Optimizer(groups, std::make_unique<DeltaMomentumOptions>(defaults)) {
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.alpha() >= 0, "Invalid alpha: ", defaults.alpha());
  TORCH_CHECK(defaults.weight_decay() >= 0, "Invalid weight_decay: ", defaults.weight_decay());
}

torch::Tensor DeltaMomentum::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = run_closure(closure);
  for (auto& group : param_groups_) {
    auto& o = static_cast<DeltaMomentumOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto g = p.grad().detach().reshape({-1});
      bool fresh = false;
      auto& st = state_for<DeltaMomentumParamState>(*this, p, fresh);
      if (fresh) st.momentum(torch::zeros_like(g));
      st.step(st.step() + 1);
      auto& m = st.momentum();
      // m <- (alpha I - lambda k k^T) m - lr g    (HOPE.md §7, paper eq. 49 with P = I)
      const double gg = g.dot(g).item<double>();
      torch::Tensor key = g;
      double lambda = 1.0;
      if (o.normalize_key()) {
        if (gg > 0) key = g / std::sqrt(gg);
      } else if (o.clamp() && gg > 1.0) {
        lambda = 1.0 / gg;
        st.clamped(st.clamped() + 1);
      }
      const auto km = key.dot(m);  // k^T m_i (old m)
      m.mul_(o.alpha()).sub_(key * km * lambda).sub_(g, o.lr());
      decoupled_decay(p, o.lr(), o.weight_decay());
      p.add_(m.view(p.sizes()));
    }
  }
  return loss;
}

// ---------------------------------------------------------------------------------------------
DeepMomentumGD::DeepMomentumGD(const std::vector<OptimizerParamGroup>& groups, DeepMomentumOptions defaults)
    : Optimizer(groups, std::make_unique<DeepMomentumOptions>(defaults)) {
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.hidden() >= 1, "Invalid hidden: ", defaults.hidden());
  TORCH_CHECK(defaults.inner_lr() >= 0, "Invalid inner_lr: ", defaults.inner_lr());
  TORCH_CHECK(defaults.weight_decay() >= 0, "Invalid weight_decay: ", defaults.weight_decay());
}

torch::Tensor DeepMomentumGD::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = run_closure(closure);
  for (auto& group : param_groups_) {
    auto& o = static_cast<DeepMomentumOptions&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto u = p.grad().detach().reshape({-1});  // [n]
      bool fresh = false;
      auto& st = state_for<DeepMomentumParamState>(*this, p, fresh);
      if (fresh) {
        const int64_t h = o.hidden();
        st.bias(torch::zeros_like(u));
        st.w1(torch::arange(1, h + 1, u.options()).mul_(o.init_scale() / double(h)));
        st.w2(torch::zeros({h}, u.options()));
      }
      st.step(st.step() + 1);
      auto& b = st.bias();
      auto& w1 = st.w1();
      auto& w2 = st.w2();
      // Inner gradients of L2(m; u) = <m(u), u> at the old memory (shared weights: mean over j).
      const auto hid = torch::tanh(torch::outer(u, w1));                       // [n, h]
      const auto gw2 = (hid * u.unsqueeze(1)).mean(0);                         // [h]
      const auto gw1 = w2 * ((1 - hid * hid) * (u * u).unsqueeze(1)).mean(0);  // [h]
      // One inner GD step with decay alpha (paper eq. 50: m <- alpha m - eta grad L2).
      b.mul_(o.alpha()).sub_(u, o.lr());
      w2.mul_(o.alpha()).sub_(gw2, o.inner_lr());
      w1.mul_(o.alpha()).sub_(gw1, o.inner_lr());
      // p <- p + m_{i+1}(u_i)
      const auto out = b + torch::tanh(torch::outer(u, w1)).mv(w2);
      decoupled_decay(p, o.lr(), o.weight_decay());
      p.add_(out.view(p.sizes()));
    }
  }
  return loss;
}

// ---------------------------------------------------------------------------------------------
torch::Tensor newton_schulz(const torch::Tensor& g, int64_t steps, NSVariant variant) {
  TORCH_CHECK(g.dim() == 2, "newton_schulz expects a 2-D tensor, got ", g.dim(), "-D");
  torch::NoGradGuard no_grad;
  auto x = g / (g.norm() + 1e-7);
  const bool transposed = g.size(0) > g.size(1);
  if (transposed) x = x.t();
  for (int64_t i = 0; i < steps; ++i) {
    const auto a = x.mm(x.t());
    if (variant == NSVariant::Quintic) {
      const auto bm = -4.7750 * a + 2.0315 * a.mm(a);
      x = 3.4445 * x + bm.mm(x);
    } else {
      x = 1.5 * x - 0.5 * a.mm(x);
    }
  }
  if (transposed) x = x.t();
  return x.contiguous();
}

namespace {
torch::Tensor orthogonalise(const torch::Tensor& m, const M3Options& o) {
  if (m.dim() < 2) return m.clone();
  auto flat = m.reshape({m.size(0), -1});
  return newton_schulz(flat, o.ns_steps(), o.ns_variant()).view(m.sizes());
}
}  // namespace

M3::M3(const std::vector<OptimizerParamGroup>& groups, M3Options defaults)
    : Optimizer(groups, std::make_unique<M3Options>(defaults)) {
  TORCH_CHECK(defaults.lr() >= 0, "Invalid learning rate: ", defaults.lr());
  TORCH_CHECK(defaults.slow_every() >= 1, "Invalid slow_every: ", defaults.slow_every());
  TORCH_CHECK(defaults.ns_steps() >= 0, "Invalid ns_steps: ", defaults.ns_steps());
  TORCH_CHECK(defaults.eps() >= 0, "Invalid eps: ", defaults.eps());
  TORCH_CHECK(defaults.weight_decay() >= 0, "Invalid weight_decay: ", defaults.weight_decay());
}

torch::Tensor M3::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss = run_closure(closure);
  for (auto& group : param_groups_) {
    auto& o = static_cast<M3Options&>(group.options());
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const auto g = p.grad().detach();
      bool fresh = false;
      auto& st = state_for<M3ParamState>(*this, p, fresh);
      if (fresh) {
        st.fast(torch::zeros_like(g, torch::MemoryFormat::Contiguous));
        st.slow(torch::zeros_like(g, torch::MemoryFormat::Contiguous));
        st.slow_o(torch::zeros_like(g, torch::MemoryFormat::Contiguous));
        st.window(torch::zeros_like(g, torch::MemoryFormat::Contiguous));
        st.v(torch::zeros_like(g, torch::MemoryFormat::Contiguous));
      }
      st.step(st.step() + 1);
      st.v().addcmul_(g, g, o.beta2());  // V += beta2 g^2
      if (o.accumulate())
        st.fast().add_(g, o.beta1());  // M1 += beta1 g
      else
        st.fast().mul_(o.beta1()).add_(g, 1.0 - o.beta1());  // M1 = b1 M1 + (1-b1) g
      const auto o1 = orthogonalise(st.fast(), o);
      const auto upd = (o1 + o.slow_weight() * st.slow_o()) / (st.v().sqrt() + o.eps());
      decoupled_decay(p, o.lr(), o.weight_decay());
      p.sub_(upd, o.lr());
      // Slow level: its own clock (CMS inside the optimizer); O2 serves the next f steps.
      st.window().add_(g);
      if (st.step() % o.slow_every() == 0) {
        if (o.accumulate())
          st.slow().add_(st.window(), o.beta3());  // M2 += beta3 sum g
        else
          st.slow().mul_(o.beta3()).add_(st.window(), (1.0 - o.beta3()) / double(o.slow_every()));
        st.slow_o(orthogonalise(st.slow(), o));
        st.window().zero_();
      }
    }
  }
  return loss;
}

// ---------------------------------------------------------------------------------------------
// Serialisation, following LibTorch's SGD/AdamW (torch/optim/serialize.h).
#define HL_SER(name) _TORCH_OPTIM_SERIALIZE_TORCH_ARG(name)
#define HL_DESER(T, name) _TORCH_OPTIM_DESERIALIZE_TORCH_ARG(T, name)

// The serialisation macros take no semicolons: clang-format would re-flow them unstably.
// clang-format off
void DeltaMomentumOptions::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(lr) HL_SER(alpha) HL_SER(weight_decay) HL_SER(normalize_key) HL_SER(clamp)
}
void DeltaMomentumOptions::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(double, lr) HL_DESER(double, alpha) HL_DESER(double, weight_decay)
  HL_DESER(bool, normalize_key) HL_DESER(bool, clamp)
}
void DeltaMomentumParamState::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(momentum) HL_SER(step) HL_SER(clamped)
}
void DeltaMomentumParamState::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(torch::Tensor, momentum) HL_DESER(int64_t, step) HL_DESER(int64_t, clamped)
}
void DeltaMomentum::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<DeltaMomentumParamState, DeltaMomentumOptions>(archive, *this);
}
void DeltaMomentum::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<DeltaMomentumParamState, DeltaMomentumOptions>(archive, *this);
}

void DeepMomentumOptions::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(lr) HL_SER(alpha) HL_SER(weight_decay) HL_SER(hidden) HL_SER(inner_lr) HL_SER(init_scale)
}
void DeepMomentumOptions::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(double, lr) HL_DESER(double, alpha) HL_DESER(double, weight_decay)
  HL_DESER(int64_t, hidden) HL_DESER(double, inner_lr) HL_DESER(double, init_scale)
}
void DeepMomentumParamState::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(bias) HL_SER(w1) HL_SER(w2) HL_SER(step)
}
void DeepMomentumParamState::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(torch::Tensor, bias) HL_DESER(torch::Tensor, w1) HL_DESER(torch::Tensor, w2)
  HL_DESER(int64_t, step)
}
void DeepMomentumGD::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<DeepMomentumParamState, DeepMomentumOptions>(archive, *this);
}
void DeepMomentumGD::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<DeepMomentumParamState, DeepMomentumOptions>(archive, *this);
}

void M3Options::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(lr) HL_SER(beta1) HL_SER(beta2) HL_SER(beta3) HL_SER(slow_weight) HL_SER(eps)
  HL_SER(weight_decay) HL_SER(slow_every) HL_SER(ns_steps) HL_SER(accumulate)
  archive.write("ns_variant", torch::IValue(static_cast<int64_t>(ns_variant())));
}
void M3Options::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(double, lr) HL_DESER(double, beta1) HL_DESER(double, beta2) HL_DESER(double, beta3)
  HL_DESER(double, slow_weight) HL_DESER(double, eps) HL_DESER(double, weight_decay)
  HL_DESER(int64_t, slow_every) HL_DESER(int64_t, ns_steps) HL_DESER(bool, accumulate)
  c10::IValue v;
  if (archive.try_read("ns_variant", v)) ns_variant(static_cast<NSVariant>(v.toInt()));
}
void M3ParamState::serialize(torch::serialize::OutputArchive& archive) const {
  HL_SER(fast) HL_SER(slow) HL_SER(slow_o) HL_SER(window) HL_SER(v) HL_SER(step)
}
void M3ParamState::serialize(torch::serialize::InputArchive& archive) {
  HL_DESER(torch::Tensor, fast) HL_DESER(torch::Tensor, slow) HL_DESER(torch::Tensor, slow_o)
  HL_DESER(torch::Tensor, window) HL_DESER(torch::Tensor, v) HL_DESER(int64_t, step)
}
// clang-format on
void M3::save(torch::serialize::OutputArchive& archive) const {
  torch::optim::serialize<M3ParamState, M3Options>(archive, *this);
}
void M3::load(torch::serialize::InputArchive& archive) {
  torch::optim::serialize<M3ParamState, M3Options>(archive, *this);
}
#undef HL_SER
#undef HL_DESER

// ---------------------------------------------------------------------------------------------
const std::vector<std::string>& optimizer_types() {
  static const std::vector<std::string> types = {"sgd", "sgd_momentum", "adamw", "delta_momentum", "deep_momentum",
                                                 "m3"};
  return types;
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const std::string& type, std::vector<torch::Tensor> params,
                                                        const OptimConfig& cfg) {
  namespace to = torch::optim;
  if (type == "sgd")
    return std::make_unique<to::SGD>(std::move(params), to::SGDOptions(cfg.lr).weight_decay(cfg.weight_decay));
  if (type == "sgd_momentum")
    return std::make_unique<to::SGD>(std::move(params),
                                     to::SGDOptions(cfg.lr).momentum(cfg.momentum).weight_decay(cfg.weight_decay));
  if (type == "adamw")
    return std::make_unique<to::AdamW>(
        std::move(params),
        to::AdamWOptions(cfg.lr).betas({cfg.beta1, cfg.beta2}).eps(cfg.eps).weight_decay(cfg.weight_decay));
  if (type == "delta_momentum")
    return std::make_unique<DeltaMomentum>(std::move(params), DeltaMomentumOptions(cfg.lr)
                                                                  .alpha(cfg.momentum)
                                                                  .weight_decay(cfg.weight_decay)
                                                                  .normalize_key(cfg.delta_normalize_key)
                                                                  .clamp(cfg.delta_clamp));
  if (type == "deep_momentum")
    return std::make_unique<DeepMomentumGD>(std::move(params), DeepMomentumOptions(cfg.lr)
                                                                   .alpha(cfg.momentum)
                                                                   .weight_decay(cfg.weight_decay)
                                                                   .hidden(cfg.deep_hidden)
                                                                   .inner_lr(cfg.deep_inner_lr)
                                                                   .init_scale(cfg.deep_init_scale));
  if (type == "m3") {
    NSVariant ns;
    if (cfg.m3_ns_variant == "quintic")
      ns = NSVariant::Quintic;
    else if (cfg.m3_ns_variant == "cubic")
      ns = NSVariant::Cubic;
    else
      throw std::invalid_argument("optimizer.m3_ns_variant: unknown value '" + cfg.m3_ns_variant +
                                  "' (known: quintic, cubic)");
    return std::make_unique<M3>(std::move(params), M3Options(cfg.lr)
                                                       .beta1(cfg.beta1)
                                                       .beta2(cfg.beta2)
                                                       .beta3(cfg.m3_beta3)
                                                       .slow_weight(cfg.m3_slow_weight)
                                                       .eps(cfg.eps)
                                                       .weight_decay(cfg.weight_decay)
                                                       .slow_every(cfg.m3_slow_every)
                                                       .ns_steps(cfg.m3_ns_steps)
                                                       .ns_variant(ns)
                                                       .accumulate(cfg.m3_accumulate));
  }
  std::string known;
  for (const auto& t : optimizer_types()) known += (known.empty() ? "" : ", ") + t;
  throw std::invalid_argument("optimizer.type: unknown optimizer '" + type + "' (known: " + known + ")");
}

}  // namespace hl::optim
