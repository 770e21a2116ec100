#include "engine/models/blocks.h"

#include "engine/memory/titans_memory.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace hl::models {

namespace {

// [B, L, H*dh] -> [B, H, L, dh]
torch::Tensor splitHeads(const torch::Tensor& x, int64_t heads) {
  const auto B = x.size(0), L = x.size(1), d = x.size(2);
  return x.view({B, L, heads, d / heads}).transpose(1, 2);
}

// [B, H, L, dh] -> [B, L, H*dh]
torch::Tensor mergeHeads(const torch::Tensor& y) {
  const auto B = y.size(0), H = y.size(1), L = y.size(2), dh = y.size(3);
  return y.transpose(1, 2).reshape({B, L, H * dh});
}

torch::nn::Linear linear(int64_t in, int64_t out, bool bias = true) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

// Multi-head softmax attention over the real tokens: a query sees the real keys; a row without
// any real token attends to all of its (padded) keys instead, so it stays finite (never pooled).
// attn_dropout > 0: dropout on the attention probabilities while training (transformer blocks).
torch::Tensor attend(torch::nn::Linear& qkv, torch::nn::Linear& out, int heads, const torch::Tensor& h,
                     const torch::Tensor& mask, double attn_dropout = 0, bool training = false) {
  const auto B = h.size(0), L = h.size(1);
  auto parts = qkv(h).chunk(3, -1);
  auto q = splitHeads(parts[0], heads), k = splitHeads(parts[1], heads), v = splitHeads(parts[2], heads);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  auto keys = mask | mask.any(1, /*keepdim=*/true).logical_not();
  scores = scores.masked_fill(keys.logical_not().view({B, 1, 1, L}), -std::numeric_limits<double>::infinity());
  auto probs = torch::softmax(scores, -1);
  if (attn_dropout > 0 && training) probs = torch::dropout(probs, attn_dropout, true);
  return out(mergeHeads(torch::matmul(probs, v)));
}

// Causal depthwise conv (window 4, left zero padding of 3) over channels-last [B, L, C]:
// position t sees t-3..t only, so right padding never reaches a real token.
torch::Tensor causalConv(torch::nn::Conv1d& conv, const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return conv(F::pad(x.transpose(1, 2), F::PadFuncOptions({3, 0}))).transpose(1, 2);
}

}  // namespace

// ---------------------------------------------------------------------------------------------
FeedForwardImpl::FeedForwardImpl(int d_model, int ffn_mult, double hidden_dropout) : hidden_dropout_(hidden_dropout) {
  fc1_ = register_module("fc1", linear(d_model, int64_t(ffn_mult) * d_model));
  fc2_ = register_module("fc2", linear(int64_t(ffn_mult) * d_model, d_model));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto a = torch::gelu(fc1_(x));
  if (hidden_dropout_ > 0 && is_training()) a = torch::dropout(a, hidden_dropout_, true);
  return fc2_(a);
}

// ---------------------------------------------------------------------------------------------
PreNormBlockImpl::PreNormBlockImpl(int d_model, int ffn_mult, double dropout, double ffn_dropout) {
  norm1_ = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  norm2_ = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  ffn_ = register_module("ffn", FeedForward(d_model, ffn_mult, ffn_dropout));
  drop_ = register_module("drop", torch::nn::Dropout(dropout));
}

torch::Tensor PreNormBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto y = x + drop_(mix(norm1_(x), mask));
  return y + drop_(ffn_(norm2_(y)));
}

// ---------------------------------------------------------------------------------------------
TransformerBlockImpl::TransformerBlockImpl(int d_model, int heads, int ffn_mult, double dropout,
                                           double attention_dropout, double ffn_dropout)
    : PreNormBlockImpl(d_model, ffn_mult, dropout, ffn_dropout), heads_(heads), attention_dropout_(attention_dropout) {
  qkv_ = register_module("qkv", linear(d_model, 3 * int64_t(d_model)));
  out_ = register_module("out", linear(d_model, d_model));
}

torch::Tensor TransformerBlockImpl::mix(const torch::Tensor& h, const torch::Tensor& mask) {
  return attend(qkv_, out_, heads_, h, mask, attention_dropout_, is_training());
}

AttentionMixerImpl::AttentionMixerImpl(int d_model, int heads) : heads_(heads) {
  qkv_ = register_module("qkv", linear(d_model, 3 * int64_t(d_model)));
  out_ = register_module("out", linear(d_model, d_model));
}

torch::Tensor AttentionMixerImpl::forward(const torch::Tensor& h, const torch::Tensor& mask) {
  return attend(qkv_, out_, heads_, h, mask);
}

// ---------------------------------------------------------------------------------------------
LstmBlockImpl::LstmBlockImpl(int d_model, int hidden) {
  if (hidden <= 0) hidden = d_model;
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  lstm_ = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(d_model, hidden).batch_first(true)));
  if (hidden != d_model) proj_ = register_module("proj", linear(hidden, d_model));
}

torch::Tensor LstmBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& /*mask*/) {
  // Causal: the output at t depends on inputs 0..t only, so right padding never reaches a real
  // position (tested). Padded positions' outputs are garbage-but-finite and are never pooled.
  auto out = std::get<0>(lstm_->forward(norm_(x)));
  if (proj_) out = proj_(out);
  return x + out;
}

// ---------------------------------------------------------------------------------------------
RetNetBlockImpl::RetNetBlockImpl(int d_model, int heads, int ffn_mult, double dropout)
    : PreNormBlockImpl(d_model, ffn_mult, dropout), heads_(heads) {
  wq_ = register_module("wq", linear(d_model, d_model, false));
  wk_ = register_module("wk", linear(d_model, d_model, false));
  wv_ = register_module("wv", linear(d_model, d_model, false));
  wg_ = register_module("wg", linear(d_model, d_model, false));
  wo_ = register_module("wo", linear(d_model, d_model, false));
  gn_ = register_module("gn", torch::nn::GroupNorm(torch::nn::GroupNormOptions(heads, d_model)));
}

std::vector<double> RetNetBlockImpl::decays(int heads) {
  std::vector<double> g(heads);
  for (int h = 0; h < heads; ++h) g[h] = 1.0 - std::ldexp(1.0, -5 - h);
  return g;
}

torch::Tensor RetNetBlockImpl::retentionParallel(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                                 const torch::Tensor& gamma) {
  const auto H = q.size(1), L = q.size(2);
  // D [H, L, L] built in float64, then cast: gamma^(n-m) for n >= m, 0 above the diagonal.
  auto idx = torch::arange(L, torch::TensorOptions().dtype(torch::kFloat64).device(q.device()));
  auto diff = idx.view({L, 1}) - idx.view({1, L});
  auto D = torch::pow(gamma.to(torch::kFloat64).view({H, 1, 1}), diff.clamp_min(0))
               .masked_fill(diff.lt(0), 0.0)
               .to(q.scalar_type());
  return torch::matmul(torch::matmul(q, k.transpose(-2, -1)) * D, v);
}

torch::Tensor RetNetBlockImpl::retentionRecurrent(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const torch::Tensor& gamma) {
  const auto B = q.size(0), H = q.size(1), L = q.size(2), dk = q.size(3), dv = v.size(3);
  auto g = gamma.to(q.scalar_type()).view({1, H, 1, 1});
  auto S = torch::zeros({B, H, dk, dv}, q.options());
  std::vector<torch::Tensor> outs;
  outs.reserve(L);
  for (int64_t n = 0; n < L; ++n) {
    S = g * S + k.select(2, n).unsqueeze(-1) * v.select(2, n).unsqueeze(-2);     // [B,H,dk,dv]
    outs.push_back(torch::matmul(q.select(2, n).unsqueeze(-2), S).squeeze(-2));  // [B,H,dv]
  }
  return torch::stack(outs, 2);
}

torch::Tensor RetNetBlockImpl::mix(const torch::Tensor& h, const torch::Tensor& mask) {
  const auto B = h.size(0), L = h.size(1), d = h.size(2);
  auto q = splitHeads(wq_(h), heads_);
  auto k = splitHeads(wk_(h), heads_) / std::sqrt(double(d / heads_));
  auto v = splitHeads(wv_(h), heads_);
  // Padded positions write nothing into the state.
  auto pad = mask.logical_not().view({B, 1, L, 1});
  k = k.masked_fill(pad, 0.0);
  v = v.masked_fill(pad, 0.0);
  auto gamma = torch::tensor(decays(heads_), torch::kFloat64).to(h.device(), h.scalar_type());
  auto y = recurrent_ ? retentionRecurrent(q, k, v, gamma) : retentionParallel(q, k, v, gamma);
  y = gn_(mergeHeads(y).reshape({B * L, d})).view({B, L, d});  // GroupNorm: one group per head
  return wo_(torch::silu(wg_(h)) * y);
}

// ---------------------------------------------------------------------------------------------
TitansMixerImpl::TitansMixerImpl(int d_model, const BlockConfig& cfg)
    : heads_(cfg.heads),
      inner_lr_(cfg.inner_lr),
      momentum_(cfg.momentum),
      retain_(cfg.retain),
      chunk_(cfg.chunk),
      state_bound_(cfg.state_bound),
      stop_grad_writes_(cfg.stop_grad_writes) {
  const int64_t d = d_model;
  wq_ = register_module("wq", linear(d, d, false));
  wk_ = register_module("wk", linear(d, d, false));
  wv_ = register_module("wv", linear(d, d, false));
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(3 * d, 3 * d, 4).groups(3 * d)));
  gates_ = register_module("gates", linear(d, 3 * int64_t(heads_)));  // θ, η, α logits per head
  wg_ = register_module("wg", linear(d, d));
  wo_ = register_module("wo", linear(d, d, false));
  hl::memory::LmmConfig mc;
  mc.heads = heads_;
  mc.head_dim = d / heads_;
  auto init = hl::memory::lmm_init_state(mc, torch::TensorOptions().dtype(torch::kFloat32));
  w1_ = register_parameter("mem_w1", init.W1);
  w2_ = register_parameter("mem_w2", init.W2);
  if (cfg.persistent_tokens > 0)  // Titans eq. 19: learnable tokens before every sequence
    persistent_ = register_parameter("persistent", torch::randn({int64_t(cfg.persistent_tokens), d}) * 0.02);
}

torch::Tensor TitansMixerImpl::forward(const torch::Tensor& h, const torch::Tensor& mask) {
  if (!persistent_.defined()) return mix(h, mask);
  // The persistent tokens are real tokens of every sequence (they are read and written like the
  // others); their outputs are dropped, so the block's output keeps the input's length.
  const auto B = h.size(0), P = persistent_.size(0);
  auto hp = torch::cat({persistent_.to(h.scalar_type()).unsqueeze(0).expand({B, P, h.size(2)}), h}, 1);
  auto mp = torch::cat({torch::ones({B, P}, mask.options()), mask}, 1);
  return mix(hp, mp).narrow(1, P, h.size(1));
}

torch::Tensor TitansMixerImpl::mix(const torch::Tensor& h, const torch::Tensor& mask) {
  namespace F = torch::nn::functional;
  const auto B = h.size(0), L = h.size(1), d = h.size(2);
  const auto pad = mask.logical_not().unsqueeze(-1);  // [B, L, 1]
  // Projections, padded positions zeroed, then a causal depthwise conv (left zero padding of 3):
  // position t sees t-3..t only, so right padding never reaches a real token.
  auto qkv = torch::cat({wq_(h), wk_(h), wv_(h)}, -1).masked_fill(pad, 0.0);  // [B, L, 3d]
  auto parts = torch::silu(causalConv(conv_, qkv)).chunk(3, -1);
  const auto nopts = F::NormalizeFuncOptions().dim(-1).eps(1e-6);
  auto q = F::normalize(splitHeads(parts[0], heads_), nopts);
  auto k = F::normalize(splitHeads(parts[1], heads_), nopts);
  auto v = splitHeads(parts[2], heads_);
  // Gates per token and head: [B, L, 3H] -> three [B, H, L].
  auto g = gates_(h).view({B, L, 3, heads_}).permute({2, 0, 3, 1});
  auto theta = inner_lr_ * F::softplus(g[0]);
  auto eta = momentum_ * torch::sigmoid(g[1]);
  auto alpha = (1.0 - retain_) * torch::sigmoid(g[2]);

  hl::memory::LmmConfig mc;
  mc.heads = heads_;
  mc.head_dim = d / heads_;
  mc.chunk = chunk_;
  mc.stop_grad_writes = stop_grad_writes_;
  mc.state_bound = state_bound_;
  hl::memory::LmmState init;
  init.W1 = w1_.to(h.scalar_type());
  init.W2 = w2_.to(h.scalar_type());
  auto r = fused_ ? hl::memory::lmm_fused(mc, init, q, k, v, theta, eta, alpha, mask)
                  : hl::memory::lmm_chunked(mc, init, q, k, v, theta, eta, alpha, mask);
  ++(r.fused ? fused_forwards_ : reference_forwards_);
  {
    torch::NoGradGuard ng;
    auto has = r.chunk_tokens.gt(0).to(r.loss_per_chunk.device());
    const double nch = has.sum().item<double>();
    stats_.loss =
        nch > 0 ? (r.loss_per_chunk.detach() * has.to(r.loss_per_chunk.scalar_type())).sum().item<double>() / nch : 0.0;
    auto seq = mask.any(1).to(r.drift.device());
    const double nseq = seq.sum().item<double>();
    stats_.drift = nseq > 0 ? (r.drift.detach() * seq.to(r.drift.scalar_type())).sum().item<double>() / nseq : 0.0;
    stats_.clamped = r.clamped;
    stats_.writes = r.writes;
    stats_.chunk = chunk_;
  }
  auto y = mergeHeads(r.y);  // [B, L, d]; 0 at padded tokens
  return wo_(torch::sigmoid(wg_(h)) * y);
}

TitansBlockImpl::TitansBlockImpl(int d_model, const BlockConfig& cfg)
    : PreNormBlockImpl(d_model, cfg.ffn_mult, cfg.dropout) {
  lmm_ = register_module("lmm", TitansMixer(d_model, cfg));
}

// ---------------------------------------------------------------------------------------------
SelfModMixerImpl::SelfModMixerImpl(int d_model, const BlockConfig& cfg) {
  const int64_t d = d_model;
  mc_.heads = cfg.heads;
  mc_.head_dim = d / cfg.heads;
  mc_.chunk_memory = cfg.chunk;
  mc_.chunk_other = cfg.chunk_other;
  mc_.momentum = cfg.momentum;
  mc_.eta_scale = cfg.inner_lr;
  mc_.dgd = cfg.dgd_layers;
  mc_.objective = cfg.inner_objective;
  mc_.stop_grad_writes = cfg.stop_grad_writes;
  mc_.eta_max = cfg.eta_max;
  mc_.dampen = cfg.momentum_dampening;
  mc_.state_bound = cfg.state_bound;
  mc_.writes = cfg.memory_writes;
  write_dropout_ = cfg.memory_write_dropout;
  inputs_ = cfg.memory_inputs == MemoryInputs::Separate ? 3 : 1;
  wx_ = register_module("wx", linear(d, inputs_ * d, false));
  wq_ = register_module("wq", linear(d, d, false));
  const int64_t ch = (inputs_ + 1) * d;
  conv_ = register_module("conv", torch::nn::Conv1d(torch::nn::Conv1dOptions(ch, ch, 4).groups(ch)));
  wg_ = register_module("wg", linear(d, d));
  wo_ = register_module("wo", linear(d, d, false));
  auto p = hl::memory::smt_init_params(mc_, cfg.retain, torch::TensorOptions().dtype(torch::kFloat32),
                                       cfg.memory_init_scale);
  w1_ = register_parameter("mem_w1", p.W1);
  w2_ = register_parameter("mem_w2", p.W2);
  w_eta_ = register_parameter("w_eta", p.w_eta);
  b_eta_ = register_parameter("b_eta", p.b_eta);
  w_alpha_ = register_parameter("w_alpha", p.w_alpha);
  b_alpha_ = register_parameter("b_alpha", p.b_alpha);
}

SelfModMixerImpl::Inputs SelfModMixerImpl::inputs(const torch::Tensor& h, const torch::Tensor& mask) {
  namespace F = torch::nn::functional;
  const auto pad = mask.logical_not().unsqueeze(-1);
  auto xq = torch::cat({wx_(h), wq_(h)}, -1).masked_fill(pad, 0.0);  // [B, L, 2d]
  auto parts = torch::silu(causalConv(conv_, xq)).chunk(inputs_ + 1, -1);
  const auto nopts = F::NormalizeFuncOptions().dim(-1).eps(1e-6);
  const auto dt = h.scalar_type();
  auto in = [&](int64_t i) { return F::normalize(splitHeads(parts[i], mc_.heads), nopts); };
  torch::Tensor x;
  if (inputs_ == 1) {
    x = in(0);  // [B, H, L, D], shared by the k, v, η, α memories
  } else {
    auto g = in(2);                             // the η and α memories share one input
    x = torch::stack({in(0), in(1), g, g}, 1);  // [B, 4, H, L, D]
  }
  return {x, in(inputs_), {w1_.to(dt), w2_.to(dt), w_eta_.to(dt), b_eta_.to(dt), w_alpha_.to(dt), b_alpha_.to(dt)}};
}

MemoryDiagnostics SelfModMixerImpl::diagnose(const torch::Tensor& h, const torch::Tensor& mask) {
  torch::NoGradGuard ng;
  namespace I = torch::indexing;
  const auto in = inputs(h, mask);
  hl::memory::SmtTrace tr;
  hl::memory::SmtConfig cfg = mc_;
  cfg.level_stats = false;  // read here: y, the per-token losses, the clamp count and the trace
  const auto r = hl::memory::smt_chunked(cfg, in.p, in.x, in.q, mask, &tr);
  MemoryDiagnostics d;
  const auto valid = mask.to(torch::kBool);
  const double tokens = valid.sum().item<double>();
  if (tokens == 0) return d;
  auto realMean = [](const std::vector<torch::Tensor>& per_seg, const std::vector<torch::Tensor>& valid_seg) {
    auto v = torch::cat(per_seg, -1), m = torch::cat(valid_seg, -1).unsqueeze(1).expand_as(v);  // [B, H, L]
    return v.masked_select(m).to(torch::kFloat64);
  };
  d.writes = mc_.writes;
  if (!d.writes) {  // nothing is written: only the read's share and the context effect (0) mean anything
    const double nan = std::numeric_limits<double>::quiet_NaN();
    d.cos_kv = d.erase_over_assoc = d.inner_loss = d.inner_loss_other = nan;
    d.eta_mean = d.eta_p05 = d.eta_p50 = d.eta_p95 = d.alpha_mean = d.alpha_p05 = d.alpha_p50 = d.alpha_p95 = nan;
  } else {
    d.cos_kv = realMean(tr.cos_kv, tr.valid).mean().item<double>();
    d.erase_over_assoc = realMean(tr.erase_over_assoc, tr.valid).mean().item<double>();
    auto quantiles = [](const torch::Tensor& v, double& mean, double& p05, double& p50, double& p95) {
      mean = v.mean().item<double>();
      auto q = torch::quantile(v, torch::tensor({0.05, 0.5, 0.95}, torch::kFloat64));
      p05 = q[0].item<double>(), p50 = q[1].item<double>(), p95 = q[2].item<double>();
    };
    quantiles(realMean(tr.eta, tr.valid), d.eta_mean, d.eta_p05, d.eta_p50, d.eta_p95);
    quantiles(realMean(tr.alpha, tr.valid), d.alpha_mean, d.alpha_p05, d.alpha_p50, d.alpha_p95);
    const auto v4 = valid.view({valid.size(0), 1, 1, valid.size(1)}).expand_as(r.loss_tokens);  // [B, 5, H, L]
    d.inner_loss = r.loss_tokens.select(1, hl::memory::kSmtOut)
                       .masked_select(v4.select(1, hl::memory::kSmtOut))
                       .to(torch::kFloat64)
                       .mean()
                       .item<double>();
    d.inner_loss_other = r.loss_tokens.narrow(1, 0, hl::memory::kSmtOut)
                             .masked_select(v4.narrow(1, 0, hl::memory::kSmtOut))
                             .to(torch::kFloat64)
                             .mean()
                             .item<double>();
  }
  const auto vm = valid.unsqueeze(1).expand({valid.size(0), mc_.heads, valid.size(1)});  // [B, H, L]
  d.memory_share = ((r.y - in.q).norm(2, -1) / r.y.norm(2, -1).clamp_min(1e-12))
                       .masked_select(vm)
                       .to(torch::kFloat64)
                       .mean()
                       .item<double>();
  d.clamp_rate = double(r.clamped) / (tokens * hl::memory::kSmtMemories * double(mc_.heads) * 2.0);
  // Context: the read at token 8 with and without tokens 0–7 (masked out: they never write).
  constexpr int64_t t = 8;
  if (valid.size(1) > t) {
    const auto rows = valid.index({I::Slice(), t});
    d.context_rows = int(rows.sum().item<int64_t>());
    if (d.context_rows > 0) {
      auto cut = valid.clone();
      cut.index_put_({I::Slice(), I::Slice(0, t)}, false);
      const auto r2 = hl::memory::smt_chunked(cfg, in.p, in.x, in.q, cut);
      const auto y8 = r.y.index({I::Slice(), I::Slice(), t}), y8c = r2.y.index({I::Slice(), I::Slice(), t});  // [B,H,D]
      const auto rel = (y8 - y8c).flatten(1).norm(2, -1) / y8.flatten(1).norm(2, -1).clamp_min(1e-12);        // [B]
      d.context_effect_t8 = rel.masked_select(rows).to(torch::kFloat64).mean().item<double>();
    }
  }
  return d;
}

torch::Tensor SelfModMixerImpl::forward(const torch::Tensor& h, const torch::Tensor& mask) {
  const auto in = inputs(h, mask);
  // The level statistics are read after training forwards only (record_context, the divergence
  // advice): an evaluation forward skips them and leaves stats_ as the last training forward set it.
  hl::memory::SmtConfig cfg = mc_;
  cfg.level_stats = is_training();
  auto r = hl::memory::smt_chunked(cfg, in.p, in.x, in.q, mask);
  if (mc_.writes) ++(r.fused ? fused_forwards_ : reference_forwards_);  // writes off: no recurrence ran
  if (!cfg.level_stats) return wo_(torch::sigmoid(wg_(h)) * mergeHeads(r.y));
  ContextStats mem, other;
  mem.level = "context.memory";
  mem.chunk = int(mc_.chunk_memory);
  mem.loss = r.loss_memory;
  mem.drift = r.drift_memory;
  mem.clamped = r.clamped;  // every clamped write of the block is counted once, here
  mem.writes = r.writes_memory;
  other.level = "context.other";
  other.chunk = int(mc_.chunk_other);
  other.loss = r.loss_other;
  other.drift = r.drift_other;
  other.writes = r.writes_other;
  stats_ = {mem, other};
  if (is_training() && write_dropout_ > 0 && mc_.writes) {
    // Write dropout (docs/MEMORY.md "Write dropout"): each sequence, with probability
    // write_dropout_, reads the output memory at its initial state instead (the writes-off read,
    // exactly); its recurrence above ran and gets no gradient. The level statistics stay those of
    // the writes as they ran for every sequence.
    hl::memory::SmtConfig off = mc_;
    off.writes = false;
    const auto still = hl::memory::smt_chunked(off, in.p, in.x, in.q, mask);
    const auto drop = torch::rand({r.y.size(0), 1, 1, 1}, r.y.options()) < write_dropout_;
    r.y = torch::where(drop, still.y, r.y);
  }
  return wo_(torch::sigmoid(wg_(h)) * mergeHeads(r.y));
}

// ---------------------------------------------------------------------------------------------
HopeBlockImpl::HopeBlockImpl(int d_model, const BlockConfig& cfg)
    : mixer_(cfg.type == BlockType::HopeAttention ? Mixer::Attention : cfg.mixer) {
  norm_ = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  drop_ = register_module("drop", torch::nn::Dropout(cfg.dropout));
  if (mixer_ == Mixer::Selfmod)
    smt_ = register_module("smt", SelfModMixer(d_model, cfg));
  else if (mixer_ == Mixer::Titans)
    lmm_ = register_module("lmm", TitansMixer(d_model, cfg));
  else
    attn_ = register_module("attn", AttentionMixer(d_model, cfg.heads));
  cms_ = register_module("cms", std::make_shared<CmsBlockImpl>(d_model, cfg));
}

torch::Tensor HopeBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto h = norm_(x);
  auto m = smt_ ? smt_(h, mask) : lmm_ ? lmm_(h, mask) : attn_(h, mask);
  return cms_->forward(x + drop_(m), mask);
}

std::vector<MemoryDiagnostics> HopeBlockImpl::diagnose(const torch::Tensor& x, const torch::Tensor& mask) {
  if (!smt_) return {};
  return {smt_->diagnose(norm_(x), mask)};
}

std::vector<ContextStats> HopeBlockImpl::contextStats() const {
  if (smt_) return smt_->stats();
  if (lmm_) return {lmm_->stats()};
  return {};
}

// ---------------------------------------------------------------------------------------------
CmsBlockImpl::CmsBlockImpl(int d_model, const BlockConfig& cfg) : variant_(cfg.cms_variant) {
  for (size_t l = 0; l < cfg.cms_clocks.size(); ++l) {
    norms_.push_back(register_module("level" + std::to_string(l) + "_norm",
                                     torch::nn::LayerNorm(torch::nn::LayerNormOptions({d_model}))));
    mlps_.push_back(register_module("level" + std::to_string(l) + "_mlp", FeedForward(d_model, cfg.ffn_mult)));
  }
  if (variant_ == CmsVariant::Independent)
    mix_ = register_parameter("mix", torch::zeros({int64_t(cfg.cms_clocks.size())}));
}

torch::Tensor CmsBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& /*mask*/) {
  // Position-wise: padded positions never reach real ones.
  if (variant_ == CmsVariant::Independent) {
    auto w = torch::softmax(mix_, 0);
    auto out = x;
    for (size_t l = 0; l < mlps_.size(); ++l) out = out + w[int64_t(l)] * mlps_[l](norms_[l](x));
    return out;
  }
  auto y = x;
  for (size_t l = 0; l < mlps_.size(); ++l) y = y + mlps_[l](norms_[l](y));
  return y;
}

std::vector<torch::Tensor> CmsBlockImpl::levelParameters(size_t l) {
  auto p = norms_[l]->parameters();
  auto q = mlps_[l]->parameters();
  p.insert(p.end(), q.begin(), q.end());
  return p;
}

void validate_cms_levels(const BlockConfig& b, const std::string& field) {
  auto fail = [&](const std::string& member, const std::string& what) {
    throw std::invalid_argument(field + "." + member + ": " + what);
  };
  if (b.cms_clocks.empty() || b.cms_clocks.size() > 6)
    fail("levels", "must have 1 to 6 levels, got " + std::to_string(b.cms_clocks.size()));
  for (size_t l = 0; l < b.cms_clocks.size(); ++l)
    if (b.cms_clocks[l] < 1)
      fail("levels[" + std::to_string(l) + "].clock", "must be at least 1, got " + std::to_string(b.cms_clocks[l]));
  if (!(std::isfinite(b.cms_consolidate_rate) && b.cms_consolidate_rate > 0 && b.cms_consolidate_rate <= 1)) {
    std::ostringstream s;
    s << "must be in (0, 1], got " << b.cms_consolidate_rate;
    fail("consolidate_rate", s.str());
  }
  if (b.cms_init.size() > b.cms_clocks.size()) fail("levels", "more init_from entries than levels");
  for (size_t l = 0; l < b.cms_init.size(); ++l) {
    const auto& in = b.cms_init[l];
    if (in.checkpoint.empty()) continue;
    const std::string f = "levels[" + std::to_string(l) + "].init_from";
    if (in.block < 0) fail(f + ".block", "must be at least 0, got " + std::to_string(in.block));
    if (in.level < 0) fail(f + ".level", "must be at least 0, got " + std::to_string(in.level));
  }
}

void validate_block(const BlockConfig& b, int d_model, const std::string& field) {
  auto fail = [&](const std::string& member, const std::string& what) {
    throw std::invalid_argument(field + "." + member + ": " + what);
  };
  // heads, ffn_mult and dropout of the attention / memory blocks
  auto widths = [&] {
    if (b.heads < 1) fail("heads", "must be at least 1, got " + std::to_string(b.heads));
    if (d_model % b.heads != 0)
      fail("heads", std::to_string(b.heads) + " does not divide d_model " + std::to_string(d_model));
    if (b.ffn_mult < 1) fail("ffn_mult", "must be at least 1, got " + std::to_string(b.ffn_mult));
    for (auto [name, p] : {std::pair{"dropout", b.dropout}, std::pair{"attention_dropout", b.attention_dropout},
                           std::pair{"ffn_dropout", b.ffn_dropout}})
      if (!(p >= 0.0 && p < 1.0)) {
        std::ostringstream s;
        s << "must be in [0, 1), got " << p;
        fail(name, s.str());
      }
  };
  if (b.type == BlockType::Transformer || b.type == BlockType::Retnet) {
    widths();
  } else if (b.type == BlockType::Lstm) {
    if (b.hidden < 0) fail("hidden", "must be 0 (= d_model) or positive, got " + std::to_string(b.hidden));
  } else if (b.type == BlockType::Cms) {
    validate_cms_levels(b, field);
    if (b.ffn_mult < 1) fail("ffn_mult", "must be at least 1, got " + std::to_string(b.ffn_mult));
  } else if (b.type == BlockType::Titans || is_hope(b.type)) {
    auto num = [&](const std::string& member, double v, double lo, double hi, bool lo_open) {
      if (!(std::isfinite(v) && v >= lo && v <= hi && !(lo_open && v == lo))) {
        std::ostringstream s;
        s << "must be in " << (lo_open ? "(" : "[") << lo << ", " << hi << "], got " << v;
        fail(member, s.str());
      }
    };
    widths();
    num("inner_lr", b.inner_lr, 0.0, 10.0, true);
    num("momentum", b.momentum, 0.0, 1.0, false);
    num("retain", b.retain, 0.0, 1.0, false);
    if (b.chunk < 1) fail("chunk", "must be at least 1, got " + std::to_string(b.chunk));
    if (b.persistent_tokens < 0 || b.persistent_tokens > 64)
      fail("persistent_tokens", "must be in [0, 64], got " + std::to_string(b.persistent_tokens));
    if (b.state_bound != 0 && !(b.state_bound >= 1 && b.state_bound <= 1000))
      fail("state_bound", "must be 0 (no bound) or in [1, 1000] (times the initial state's norm), got " +
                              std::to_string(b.state_bound));
    if (b.type != BlockType::Titans) {
      validate_cms_levels(b, field);
      if (b.type == BlockType::Hope && b.mixer == Mixer::Attention)
        fail("mixer", "must be selfmod or titans, got attention (use type hope_attention)");
      if (b.chunk_other < 1) fail("chunk_other", "must be at least 1, got " + std::to_string(b.chunk_other));
      num("memory_init_scale", b.memory_init_scale, 0.0, 10.0, false);
      if (b.eta_max != 0) {
        num("eta_max", b.eta_max, 0.0, 100.0, true);
        if (b.eta_max <= b.inner_lr)
          fail("eta_max", "must be 0 (unbounded) or above inner_lr (η starts at inner_lr), got " +
                              std::to_string(b.eta_max) + " with inner_lr " + std::to_string(b.inner_lr));
      }
    }
  }
}

std::shared_ptr<BlockImpl> make_block(const BlockConfig& b, int d_model, const std::string& field) {
  validate_block(b, d_model, field);
  if (b.type == BlockType::Transformer)
    return std::make_shared<TransformerBlockImpl>(d_model, b.heads, b.ffn_mult, b.dropout, b.attention_dropout,
                                                  b.ffn_dropout);
  if (b.type == BlockType::Retnet) return std::make_shared<RetNetBlockImpl>(d_model, b.heads, b.ffn_mult, b.dropout);
  if (b.type == BlockType::Cms) return std::make_shared<CmsBlockImpl>(d_model, b);
  if (b.type == BlockType::Titans) return std::make_shared<TitansBlockImpl>(d_model, b);
  if (is_hope(b.type)) return std::make_shared<HopeBlockImpl>(d_model, b);
  return std::make_shared<LstmBlockImpl>(d_model, b.hidden);
}

double block_flops(const BlockConfig& b, int d_model, int seq_len) {
  const double L = seq_len, d = d_model, f = b.ffn_mult;
  double macs = 0;
  if (b.type == BlockType::Transformer || b.type == BlockType::Retnet) {
    const double projections = b.type == BlockType::Transformer ? 4 : 5;  // qkv+out | q,k,v,gate,out
    macs = projections * L * d * d                                        // projections
           + 2 * L * L * d                                                // scores Q K^T and mix (scores) V, all heads
           + 2 * f * L * d * d;                                           // FFN
  } else if (b.type == BlockType::Cms) {
    macs = double(b.cms_clocks.size()) * 2 * f * L * d * d;  // one FFN per level
  } else if (b.type == BlockType::Titans) {
    // Projections q, k, v, output gate, out (5 L d²), gate logits (3 H L d), conv (4 · 3 L d),
    // memory per token and head with F = D = d / H: read M(q) 2 D F, M(k) at the chunk start
    // 2 D F, closed-form gradients 4 D F, chunk-weighted write sums 2 D F (10 D F total, so
    // 10 L d D over the heads; the O(C²) recurrence weights are ignored), FFN.
    const double D = d / b.heads;
    macs = 5 * L * d * d + 3 * b.heads * L * d + 12 * L * d + 10 * L * d * D + 2 * f * L * d * d;
  } else if (is_hope(b.type)) {
    const double D = d / b.heads, K = double(b.cms_clocks.size());
    double mixer = 0;
    if (b.type == BlockType::HopeAttention) {
      mixer = 4 * L * d * d + 2 * L * L * d;  // qkv + out, scores and mix
    } else if (b.mixer == Mixer::Titans) {
      mixer = 5 * L * d * d + 3 * b.heads * L * d + 12 * L * d + 10 * L * d * D;  // as titans
    } else {
      // Projections x_m (X of them), q, gate, out ((3 + X) L d²), conv (4 · (1 + X) L d); per token and head, with
      // F = D: reads of the k, v, η, α memories (4 · 2 D²) and the output memory (2 D²), targets
      // M(v) for 5 memories (10 D²), M(k) with its hidden layer (10 D²), backprop e through W1
      // (5 D²), gain and clamp terms (5 D²), and the write of two maps per memory with momentum
      // and the DGD factor (5 · 2 · 3 D²): 70 D² per token and head, so 70 L d D.
      // Separate memory inputs (k, v, η/α) add 2 projections and their conv channels.
      const double X = b.memory_inputs == MemoryInputs::Separate ? 3 : 1;
      mixer = (3 + X) * L * d * d + 4 * (1 + X) * L * d + 70 * L * d * D;
    }
    macs = mixer + K * 2 * f * L * d * d;  // + one FFN per CMS level
  } else if (b.type == BlockType::Lstm) {
    const double h = b.hidden > 0 ? b.hidden : d_model;
    macs = L * 4 * h * (d + h) + (h != d ? L * h * d : 0.0);
  }
  return 2 * macs;
}

}  // namespace hl::models
