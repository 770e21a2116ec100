#include "engine/models/classifier.h"

#include "engine/models/blocks.h"
#include "hl_kernels/memory_head.h"

#include <cmath>
#include <sstream>
#include <stdexcept>

namespace hl::models {

namespace {

[[noreturn]] void fail(const std::string& field, const std::string& what) {
  throw std::invalid_argument("model." + field + ": " + what);
}

void requireAtLeast(const std::string& field, int value, int least) {
  if (value < least) fail(field, "must be at least " + std::to_string(least) + ", got " + std::to_string(value));
}

}  // namespace

void validate(const ModelConfig& cfg) {
  requireAtLeast("vocab_size", cfg.vocab_size, 1);
  requireAtLeast("max_len", cfg.max_len, 1);
  requireAtLeast("d_model", cfg.d_model, 1);
  requireAtLeast("num_classes", cfg.num_classes, 1);
  if (cfg.pad_id < 0 || cfg.pad_id >= cfg.vocab_size)
    fail("pad_id",
         std::to_string(cfg.pad_id) + " is outside the vocabulary [0, " + std::to_string(cfg.vocab_size) + ")");
  for (size_t i = 0; i < cfg.blocks.size(); ++i)
    validate_block(cfg.blocks[i], cfg.d_model, "model.blocks[" + std::to_string(i) + "]");
  if (cfg.head == HeadType::Memory) {
    requireAtLeast("head.clock", cfg.memory_clock, 1);
    auto inRange = [](const std::string& field, double v, double lo, double hi, bool lo_open) {
      if (!(std::isfinite(v) && v >= lo && v <= hi && !(lo_open && v == lo))) {
        std::ostringstream s;
        s << "must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << v;
        fail(field, s.str());
      }
    };
    inRange("head.inner_lr", cfg.memory_inner_lr, 0.0, 10.0, true);
    inRange("head.retain", cfg.memory_retain, 0.0, 1.0, false);
    inRange("head.momentum", cfg.memory_momentum, 0.0, 1.0, false);
    inRange("head.scale", cfg.memory_scale, 0.0, 1000.0, true);
  }
  if (cfg.head == HeadType::Ncm && !(std::isfinite(cfg.ncm_scale) && cfg.ncm_scale > 0)) {
    std::ostringstream s;
    s << "must be positive and finite, got " << cfg.ncm_scale;
    fail("ncm_scale", s.str());
  }
}

ClassifierImpl::ClassifierImpl(const ModelConfig& cfg) : cfg_((validate(cfg), cfg)) {
  const int d = cfg_.d_model;
  tok_ = register_module(
      "tok", torch::nn::Embedding(torch::nn::EmbeddingOptions(cfg_.vocab_size, d).padding_idx(cfg_.pad_id)));
  if (cfg_.positions == Positions::Learned) pos_ = register_module("pos", torch::nn::Embedding(cfg_.max_len, d));
  block_list_ = register_module("blocks", torch::nn::ModuleList());
  for (size_t i = 0; i < cfg_.blocks.size(); ++i) {
    blocks_.push_back(make_block(cfg_.blocks[i], d, "model.blocks[" + std::to_string(i) + "]"));
    block_list_->push_back(blocks_.back());
  }
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  if (cfg_.head == HeadType::Softmax) {
    head_ = register_module("head", torch::nn::Linear(d, cfg_.num_classes));
  } else if (cfg_.head == HeadType::Memory) {
    mem_w_ = register_buffer("memory_w", torch::zeros({cfg_.num_classes, d}));
    mem_s_ = register_buffer("memory_s", torch::zeros({cfg_.num_classes, d}));
  } else {
    ncm_sum_ = register_buffer("ncm_sum", torch::zeros({cfg_.num_classes, d}));
    ncm_count_ = register_buffer("ncm_count", torch::zeros({cfg_.num_classes}));
  }
}

torch::Tensor ClassifierImpl::features(const torch::Tensor& tokens) {
  if (tokens.dim() != 2)
    throw std::invalid_argument("Classifier::features: tokens must be [B, L], got " + std::to_string(tokens.dim()) +
                                " dims");
  const auto L = tokens.size(1);
  if (pos_ && L > cfg_.max_len)
    throw std::invalid_argument("Classifier::features: sequence length " + std::to_string(L) +
                                " exceeds model.max_len " + std::to_string(cfg_.max_len));
  auto mask = tokens.ne(cfg_.pad_id);  // [B, L] true = real token
  auto x = tok_(tokens);
  if (pos_) x = x + pos_->weight.narrow(0, 0, L).unsqueeze(0);
  if (cfg_.embedding_dropout > 0 && is_training()) x = torch::dropout(x, cfg_.embedding_dropout, true);
  for (auto& b : blocks_) x = b->forward(x, mask);
  x = norm_(x);
  if (cfg_.pooling == Pooling::Last) {
    // The last real token of each row (the largest real position, wherever padding sits); an
    // all-padding row pools to zeros, as below.
    const auto pos = torch::arange(L, mask.options().dtype(torch::kLong)).unsqueeze(0).expand({mask.size(0), L});
    const auto last = torch::where(mask, pos, torch::zeros({}, pos.options())).amax(1);  // [B]
    const auto picked = x.index({torch::arange(x.size(0), last.options()), last});       // [B, d]
    return torch::where(mask.any(1, /*keepdim=*/true), picked, torch::zeros({}, x.options()));
  }
  // Masked mean; where() rather than a product so nothing at a padded position can leak in
  // (not even a non-finite value). An all-padding row pools to zeros.
  auto m = mask.unsqueeze(-1);
  auto sum = torch::where(m, x, torch::zeros({}, x.options())).sum(1);
  auto count = mask.sum(1, /*keepdim=*/true).clamp_min(1).to(x.scalar_type());
  return sum / count;
}

std::vector<MemoryDiagnostics> ClassifierImpl::diagnose(const torch::Tensor& tokens) {
  torch::NoGradGuard ng;
  auto mask = tokens.ne(cfg_.pad_id);
  auto x = tok_(tokens);
  if (pos_) x = x + pos_->weight.narrow(0, 0, tokens.size(1)).unsqueeze(0);
  std::vector<MemoryDiagnostics> out;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    for (auto d : blocks_[i]->diagnose(x, mask)) {
      d.block = int(i);
      out.push_back(d);
    }
    x = blocks_[i]->forward(x, mask);
  }
  return out;
}

torch::Tensor ClassifierImpl::logits(const torch::Tensor& pooled) {
  if (head_) return head_(pooled);
  namespace F = torch::nn::functional;
  if (cfg_.head == HeadType::Memory) {  // read-out W û; W is a buffer: the gradient reaches û only
    auto u = F::normalize(pooled, F::NormalizeFuncOptions().dim(-1).eps(1e-12));
    return cfg_.memory_scale * torch::matmul(u, mem_w_.to(pooled.scalar_type()).t());
  }
  const auto opts = F::NormalizeFuncOptions().dim(-1).eps(1e-12);
  auto means = ncm_sum_ / ncm_count_.clamp_min(1).unsqueeze(-1);  // [C, d]
  auto cos = torch::matmul(F::normalize(pooled, opts), F::normalize(means.to(pooled.scalar_type()), opts).t());
  return (cfg_.ncm_scale * cos).masked_fill(ncm_count_.eq(0).unsqueeze(0), kNcmUnseenLogit);
}

void ClassifierImpl::ncmObserve(const torch::Tensor& pooled, const torch::Tensor& labels) {
  if (cfg_.head != HeadType::Ncm) return;
  torch::NoGradGuard no_grad;
  auto lab = labels.to(ncm_sum_.device(), torch::kLong).reshape({-1});
  if (pooled.dim() != 2 || pooled.size(0) != lab.size(0) || pooled.size(1) != cfg_.d_model)
    throw std::invalid_argument("Classifier::ncmObserve: pooled must be [B, d_model] with B labels");
  if (lab.numel() == 0) return;
  if (lab.min().item<int64_t>() < 0 || lab.max().item<int64_t>() >= cfg_.num_classes)
    throw std::invalid_argument("Classifier::ncmObserve: label outside [0, num_classes)");
  ncm_sum_.index_add_(0, lab, pooled.detach().to(ncm_sum_.device(), ncm_sum_.scalar_type()));
  ncm_count_.index_add_(0, lab, torch::ones({lab.size(0)}, ncm_count_.options()));
}

void ClassifierImpl::ncmReset() {
  if (cfg_.head != HeadType::Ncm) return;
  torch::NoGradGuard no_grad;
  ncm_sum_.zero_();
  ncm_count_.zero_();
}

double dgd_write(torch::Tensor& W, torch::Tensor& S, const torch::Tensor& u, const torch::Tensor& y, double eta,
                 double alpha, double beta, bool* clamped) {
  torch::NoGradGuard no_grad;
  const double uu = u.dot(u).item<double>();
  const bool clamp = 3.0 * eta * uu > 1.8;
  if (clamp) eta = 1.8 / (3.0 * uu);
  if (clamped) *clamped = clamp;
  auto err = torch::mv(W, u) - y;  // W u − y  [C]
  const double loss = err.dot(err).item<double>();
  auto G = 2.0 * torch::outer(err, u);  // ∇_W ‖W u − y‖²
  S.mul_(beta).sub_(eta * G);
  // W (α I − η u uᵀ) = α W − η (W u) uᵀ
  auto Wu = torch::mv(W, u);
  W.mul_(alpha).sub_(eta * torch::outer(Wu, u)).add_(S);
  return loss;
}

double dgd_write_rows(torch::Tensor& W, torch::Tensor& S, const torch::Tensor& keys, const torch::Tensor& labels,
                      double eta, double alpha, double beta, int64_t* clamped) {
  torch::NoGradGuard no_grad;
  const int64_t n = keys.size(0), C = W.size(0);
  auto Y = torch::one_hot(labels.to(W.device(), torch::kLong).reshape({-1}), C).to(W.scalar_type());  // [n, C]
  auto loss = torch::zeros({}, W.options());
  auto count = torch::zeros({}, W.options().dtype(torch::kLong));
  for (int64_t i = 0; i < n; ++i) {
    auto u = keys[i];
    auto uu = u.dot(u);
    auto clamp = (3.0 * eta) * uu > 1.8;
    auto e = torch::where(clamp, 1.8 / (3.0 * uu), torch::full({}, eta, W.options()));
    count += clamp.to(torch::kLong);
    auto Wu = torch::mv(W, u);
    auto err = Wu - Y[i];
    loss += err.dot(err);
    S.mul_(beta).sub_(2.0 * e * torch::outer(err, u));
    W.mul_(alpha).sub_(e * torch::outer(Wu, u)).add_(S);
  }
  if (clamped) *clamped += count.item<int64_t>();
  return loss.item<double>();
}

torch::Tensor ClassifierImpl::memoryKeys(const torch::Tensor& pooled) const {
  namespace F = torch::nn::functional;
  return F::normalize(pooled.detach(), F::NormalizeFuncOptions().dim(-1).eps(1e-12));
}

double ClassifierImpl::memoryWrite(const torch::Tensor& keys, const torch::Tensor& labels, int64_t* clamped) {
  if (cfg_.head != HeadType::Memory) return 0.0;
  torch::NoGradGuard no_grad;
  auto lab = labels.to(torch::kCPU, torch::kLong).reshape({-1});
  if (keys.dim() != 2 || keys.size(0) != lab.size(0) || keys.size(1) != cfg_.d_model)
    throw std::invalid_argument("Classifier::memoryWrite: keys must be [N, d_model] with N labels");
  auto k = keys.to(mem_w_.device(), mem_w_.scalar_type());
  const int64_t n = lab.size(0);
  if (fused_ && n > 0) {
    const char* bad_label = "Classifier::memoryWrite: label outside [0, num_classes)";
    const auto st = mem_w_.scalar_type();
    if (mem_w_.is_cpu() && mem_w_.is_contiguous() && mem_s_.is_contiguous() &&
        (st == torch::kFloat32 || st == torch::kFloat64)) {
      k = k.contiguous();
      lab = lab.contiguous();
      int64_t cl = 0;
      const int64_t C = mem_w_.size(0), D = mem_w_.size(1);
      const double eta = cfg_.memory_inner_lr, alpha = cfg_.memory_retain, beta = cfg_.memory_momentum;
      const double loss = st == torch::kFloat32
                              ? kernels::memory_head_write<float>(mem_w_.data_ptr<float>(), mem_s_.data_ptr<float>(),
                                                                  k.data_ptr<float>(), lab.data_ptr<int64_t>(), n, C, D,
                                                                  eta, alpha, beta, &cl)
                              : kernels::memory_head_write<double>(mem_w_.data_ptr<double>(), mem_s_.data_ptr<double>(),
                                                                   k.data_ptr<double>(), lab.data_ptr<int64_t>(), n, C,
                                                                   D, eta, alpha, beta, &cl);
      if (loss < 0) throw std::invalid_argument(bad_label);  // the kernel checked before writing
      if (clamped) *clamped += cl;
      return loss;
    }
    if (lab.min().item<int64_t>() < 0 || lab.max().item<int64_t>() >= cfg_.num_classes)
      throw std::invalid_argument(bad_label);
    return dgd_write_rows(mem_w_, mem_s_, k, lab, cfg_.memory_inner_lr, cfg_.memory_retain, cfg_.memory_momentum,
                          clamped);
  }
  // training.kernels = reference: the literal loop, one dgd_write per key.
  double loss = 0;
  for (int64_t i = 0; i < lab.size(0); ++i) {
    const int64_t c = lab[i].item<int64_t>();
    if (c < 0 || c >= cfg_.num_classes)
      throw std::invalid_argument("Classifier::memoryWrite: label outside [0, num_classes)");
    auto y = torch::zeros({cfg_.num_classes}, mem_w_.options());
    y[c] = 1.0;
    bool cl = false;
    loss += dgd_write(mem_w_, mem_s_, k[i], y, cfg_.memory_inner_lr, cfg_.memory_retain, cfg_.memory_momentum, &cl);
    if (cl && clamped) ++*clamped;
  }
  return loss;
}

std::vector<torch::Tensor> ClassifierImpl::headParameters() {
  return head_ ? head_->parameters() : std::vector<torch::Tensor>{};
}

std::vector<torch::Tensor> ClassifierImpl::memoryParameters() {
  std::vector<torch::Tensor> out;
  for (const auto& item : named_parameters()) {  // names: blocks.<i>.<module>.<...>
    const std::string& n = item.key();
    if (n.find(".smt.") != std::string::npos || n.find(".lmm.") != std::string::npos) out.push_back(item.value());
  }
  return out;
}

std::vector<LevelGroup> ClassifierImpl::levels() {
  std::vector<LevelGroup> out;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    auto* cms = blocks_[i]->cmsPart();
    if (!cms) continue;
    const auto& bc = cfg_.blocks[i];
    for (size_t l = 0; l < cms->numLevels(); ++l) {
      LevelGroup g;
      g.name = "cms" + std::to_string(l + 1);
      g.block = int(i);
      g.clock = bc.cms_clocks[l];
      g.lr = l < bc.cms_lrs.size() ? bc.cms_lrs[l] : 0.0;
      g.params = cms->levelParameters(l);
      g.index = int(l);
      g.clock_unit = bc.cms_clock_unit;
      g.transfer = bc.cms_transfer;
      g.consolidate_rate = bc.cms_consolidate_rate;
      g.nested = bc.cms_variant == CmsVariant::Nested;
      out.push_back(std::move(g));
    }
  }
  return out;
}

void ClassifierImpl::setFusedKernels(bool on) {
  fused_ = on;
  for (const auto& m : modules(/*include_self=*/false))
    if (auto* s = m->as<SelfModMixerImpl>())
      s->setFused(on);
    else if (auto* t = m->as<TitansMixerImpl>())
      t->setFused(on);
}

std::string ClassifierImpl::kernelPath() const {
  int64_t fused = 0, ref = 0;
  for (const auto& m : modules(/*include_self=*/false))
    if (const auto* s = m->as<SelfModMixerImpl>()) {
      fused += s->fusedForwards();
      ref += s->referenceForwards();
    } else if (const auto* t = m->as<TitansMixerImpl>()) {
      fused += t->fusedForwards();
      ref += t->referenceForwards();
    }
  if (fused + ref == 0) return "none";
  // On CUDA the fused path is the CUDA segment write inside the per-op recurrence (docs/KERNELS.md).
  const auto ps = parameters();
  const bool cuda = !ps.empty() && ps.front().is_cuda();
  return ref == 0 ? (cuda ? "fused-cuda" : "fused-cpu") : fused == 0 ? "reference" : "mixed";
}

std::vector<ContextStats> ClassifierImpl::contextStats() const {
  std::vector<ContextStats> out;
  for (size_t i = 0; i < blocks_.size(); ++i)
    for (ContextStats s : blocks_[i]->contextStats()) {
      s.block = int(i);
      out.push_back(s);
    }
  return out;
}

Classifier build(const ModelConfig& cfg) {
  return Classifier(cfg);
}

int64_t count_params(torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

double flops_per_sample(const ModelConfig& cfg, int seq_len) {
  validate(cfg);
  double flops = 2.0 * cfg.d_model * cfg.num_classes;  // head (linear or cosine to C means)
  for (const auto& b : cfg.blocks) flops += block_flops(b, cfg.d_model, seq_len);
  return flops;
}

}  // namespace hl::models
