// Text classifiers: embedding -> blocks -> final norm -> masked mean pooling -> head.
// Engine-internal (includes torch through torch_wrap.h); never include from a moc-read header.
#pragma once
#include "engine/torch_wrap.h"

#include "engine/common/kinds.h"

#include <memory>
#include <string>
#include <vector>

namespace hl::models {

// Level stacking: a CMS level initialised from level `level` of block `block` of a stored
// checkpoint (docs/MODELS.md "Level stacking"). An empty checkpoint = the level's own random init.
struct LevelInit {
  std::string checkpoint;
  int block = 0;
  int level = 0;
};

// One block of the pipeline as the spec describes it ({"type": "...", fields...}).
struct BlockConfig {
  BlockType type = BlockType::Transformer;
  int heads = 4;                 // transformer, retnet
  int ffn_mult = 2;              // transformer, retnet: FFN width = ffn_mult * d_model
  double dropout = 0.1;          // transformer, retnet
  double attention_dropout = 0;  // transformer: on the attention probabilities
  double ffn_dropout = 0;        // transformer: on the FFN hidden layer
  int hidden = 0;                // lstm: hidden size (0 = d_model); output projected back to d_model
  // cms (Continuum Memory System): one MLP per level (FFN width ffn_mult * d_model), each level
  // updated by the trainer every `clock` steps with its own learning rate (0 = the base lr).
  std::vector<int> cms_clocks;  // one entry per level, fastest first
  std::vector<double> cms_lrs;  // same length; 0 = optimizer.lr
  CmsVariant cms_variant = CmsVariant::Sequential;
  // Level clocks and transfer (docs/MODELS.md "CMS variants, clocks and transfer"); any block
  // with CMS levels carries these.
  ClockUnit cms_clock_unit = ClockUnit::Steps;
  Transfer cms_transfer = Transfer::Gradient;
  double cms_consolidate_rate = 0.5;  // β of θ_slow ← θ_slow + β(θ_fast − θ_slow)
  std::vector<LevelInit> cms_init;    // per level (may be shorter than cms_clocks)
  // titans (Titans long-term memory + MLP; also uses heads, ffn_mult, dropout). docs/MODELS.md.
  double inner_lr = 0.1;          // θ scale: θ_t = inner_lr · softplus(·)
  double momentum = 0.9;          // η scale: η_t = momentum · sigmoid(·)
  double retain = 0.99;           // forget α_t = (1 − retain) · sigmoid(·)
  int chunk = 4;                  // memory chunk (tokens per write)
  bool stop_grad_writes = false;  // memory writes are constants for the outer loss
  int persistent_tokens = 0;      // titans memory (titans, hope with mixer titans): learnable tokens prepended
  // hope, hope_attention (the mixer + CMS levels above) and self-modifying Titans fields; the
  // titans fields above mean for self-modifying Titans: inner_lr = η scale, momentum = DGD β,
  // retain = α at initialisation, chunk = the output memory's chunk.
  Mixer mixer = Mixer::Selfmod;  // hope: selfmod | titans; hope_attention: attention
  int chunk_other = 8;           // the k, v, η, α memories' chunk
  DgdLayers dgd_layers = DgdLayers::PerLayer;
  InnerObjective inner_objective = InnerObjective::L2;
  // Self-modifying Titans, schema 2 (docs/MEMORY.md "Active memory"); the values here are schema 1's.
  MemoryInputs memory_inputs = MemoryInputs::Shared;  // one projection for k, v, η, α, or one each
  double memory_init_scale = 0.1;                     // scale of the memories' initial second layer W1
  double eta_max = 0;                                 // η = eta_max · σ(·); 0 = inner_lr · softplus(·)
  bool momentum_dampening = false;                    // S ← β S − (1 − β) η G instead of β S − η G
  double state_bound = 0;     // ‖W‖_F ≤ state_bound · ‖W_0‖_F at segment ends (0 = none)
  bool memory_writes = true;  // false: the ablation with the in-context writes off (SmtConfig::writes)
  // In training, the probability that a sequence's in-context writes are dropped for one forward
  // (it reads the output memory at its initial state, as with memory_writes off); 0 = never.
  double memory_write_dropout = 0;
};

// Per-forward statistics of one in-context memory level of a block (the last forward; detached
// doubles): titans blocks have context.memory; self-modifying Titans also context.other.
struct ContextStats {
  int block = -1;  // block index in the pipeline
  std::string level = "context.memory";
  int chunk = 1;        // tokens per write (the level's clock)
  double loss = 0;      // mean associative loss before writes, over chunks with real tokens
  double drift = 0;     // mean ‖M_end − M_0‖ / ‖M_0‖ over sequences with real tokens
  int64_t clamped = 0;  // clamped writes: (token, head, layer), times memory for self-modifying Titans
  int64_t writes = 0;   // (sequence, chunk) pairs that wrote
};

// Diagnostics of one block's self-modifying Titans memory on a batch, at the model's current
// weights (docs/MEMORY.md "Diagnostics"); means over real tokens and heads.
struct MemoryDiagnostics {
  int block = -1;
  double cos_kv = 0;              // cos(k_t, v_t)
  double inner_loss = 0;          // output memory: ‖M(k_t) − v̂_t‖² at the read state, before the write
  double inner_loss_other = 0;    // the same, over the k, v, η, α memories
  double erase_over_assoc = 0;    // output memory, layer W1: ‖W1 a‖ / ‖e‖ (DGD erase ÷ association)
  double memory_share = 0;        // ‖o_t − q_t‖ / ‖o_t‖: the part of the read o = M(q) the weights make
  double context_effect_t8 = -1;  // ‖o_8 − o_8 with tokens 0–7 removed‖ / ‖o_8‖ (-1: no row has 9 tokens)
  int context_rows = 0;           // rows with a real token 8
  double eta_mean = 0, eta_p05 = 0, eta_p50 = 0, eta_p95 = 0;
  double alpha_mean = 0, alpha_p05 = 0, alpha_p50 = 0, alpha_p95 = 0;
  double clamp_rate = 0;  // clamped writes ÷ writes (real tokens × 5 memories × heads × 2 layers)
  bool writes = true;     // false (memory_writes off): the k, v, η, α and loss quantities are NaN
};

// The parameters of one CMS level: the trainer gives each level its own optimizer and clock.
struct LevelGroup {
  std::string name;  // "cms1", "cms2", ... (numbered within the block, fastest first)
  int block = -1;    // block index in the pipeline
  int clock = 1;
  double lr = 0;  // 0 = base lr
  std::vector<torch::Tensor> params;
  int index = 0;  // level index within its block (0 = fastest)
  ClockUnit clock_unit = ClockUnit::Steps;
  Transfer transfer = Transfer::Gradient;
  double consolidate_rate = 0.5;
  bool nested = false;  // a tick resets the next faster level (index − 1)
};

struct ModelConfig {
  int vocab_size = 2000;
  int max_len = 64;
  int d_model = 128;
  Positions positions = Positions::Learned;
  double embedding_dropout = 0;     // on token + position embeddings while training (0 = none)
  Pooling pooling = Pooling::Mean;  // mean over real tokens, or the last real token
  std::vector<BlockConfig> blocks;
  HeadType head = HeadType::Softmax;
  double ncm_scale = 16.0;  // cosine logits are multiplied by this (ncm head)
  // memory head (docs/MODELS.md "Memory head"): W [C, d] written by DGD every `memory_clock`
  // steps; logits = memory_scale · W û (û the L2-normalised pooled feature).
  int memory_clock = 1;
  double memory_inner_lr = 0.1;  // η
  double memory_retain = 1.0;    // α
  double memory_momentum = 0.9;  // β
  double memory_scale = 16.0;
  int num_classes = 2;
  int pad_id = 0;
};

// Base of every block: x [B, L, d] float, mask [B, L] bool (true = real token) -> [B, L, d].
// Padded positions must not influence real positions.
class CmsBlockImpl;
class BlockImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask) = 0;
  // The block's CMS levels (cms, hope, hope_attention), nullptr when it has none.
  virtual CmsBlockImpl* cmsPart() { return nullptr; }
  // Its in-context memory levels' statistics from the last forward (a self-modifying Titans mixer: the last in training
  // mode; block index left at -1).
  virtual std::vector<ContextStats> contextStats() const { return {}; }
  // Its self-modifying Titans memory's diagnostics for input x (no gradient; block left at -1).
  virtual std::vector<MemoryDiagnostics> diagnose(const torch::Tensor& /*x*/, const torch::Tensor& /*mask*/) {
    return {};
  }
};

// One DGD write (DECISIONS.md) of a linear associative memory W [C, d] with momentum S [C, d],
// key u [d], target y [C], in place:
//   G = ∇_W ‖W u − y‖² = 2 (W u − y) uᵀ;  S ← β S − η G;  W ← W (α I − η u uᵀ) + S,
// with η clamped to 1.8 / (3 ‖u‖²) when 3 η ‖u‖² > 1.8. Returns the loss ‖W u − y‖² before the
// write; *clamped (if given) is set to whether η was clamped.
double dgd_write(torch::Tensor& W, torch::Tensor& S, const torch::Tensor& u, const torch::Tensor& y, double eta,
                 double alpha, double beta, bool* clamped = nullptr);
// The memory head's writes of n labelled keys [n, D] one after the other, each exactly dgd_write
// with y the one-hot row of its label, without a host sync per key: the clamp is chosen on the
// device (torch::where) and the loss and clamp count are read once at the end. For devices the CPU
// kernel (kernels/include/hl_kernels/memory_head.h) does not cover; labels must be in [0, C).
double dgd_write_rows(torch::Tensor& W, torch::Tensor& S, const torch::Tensor& keys, const torch::Tensor& labels,
                      double eta, double alpha, double beta, int64_t* clamped);

// NCM head: logit of a class that has no observed sample yet (finite, so no NaN in a softmax).
constexpr double kNcmUnseenLogit = -1e4;

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ModelConfig& cfg);

  // tokens [B, L] int64 (pad_id where padded) -> pooled features [B, d_model].
  torch::Tensor features(const torch::Tensor& tokens);
  // pooled [B, d] -> logits [B, num_classes]. softmax head: linear; ncm head: scale * cosine to
  // class means (classes with no observed sample get kNcmUnseenLogit).
  torch::Tensor logits(const torch::Tensor& pooled);
  // Every self-modifying Titans block's memory diagnostics on tokens (call under eval()).
  std::vector<MemoryDiagnostics> diagnose(const torch::Tensor& tokens);
  torch::Tensor forward(const torch::Tensor& tokens) { return logits(features(tokens)); }

  // NCM head: accumulate running class means from pooled features (no gradient).
  // pooled [B, d], labels [B] int64 in [0, num_classes). A no-op for other heads.
  void ncmObserve(const torch::Tensor& pooled, const torch::Tensor& labels);
  // NCM head: forget every class mean (sums and counts back to zero). A no-op for other heads.
  void ncmReset();
  // The network is trained by gradient with the softmax head and with the memory head (through
  // the memory's read-out; W itself is written by DGD only), not with the ncm head.
  bool headIsTrainable() const { return cfg_.head != HeadType::Ncm; }
  // Memory head: the keys it writes and reads with (L2-normalised pooled features, detached).
  torch::Tensor memoryKeys(const torch::Tensor& pooled) const;
  // Memory head: DGD-writes the rows (keys [N, d], labels [N]) in order; returns the summed
  // pre-write losses and counts clamped writes into *clamped. A no-op (0) for other heads.
  double memoryWrite(const torch::Tensor& keys, const torch::Tensor& labels, int64_t* clamped);
  // Memory head: its state W [C, d] and momentum S [C, d] (buffers, saved with the model).
  torch::Tensor memoryW() const { return mem_w_; }
  torch::Tensor memoryS() const { return mem_s_; }
  const ModelConfig& config() const { return cfg_; }

  // For EWC / per-level bookkeeping: the head's parameters vs the rest.
  std::vector<torch::Tensor> headParameters();
  // Every CMS level of every block; parameters in none of them belong to the outer level.
  std::vector<LevelGroup> levels();
  // The in-context memories' outer parameters: every parameter of a memory mixer (titans blocks'
  // and hope blocks' `lmm` / `smt` modules: projections, gates, initial states, η/α weights).
  std::vector<torch::Tensor> memoryParameters();
  // The blocks in pipeline order (registered as submodules "blocks.0", "blocks.1", ...).
  const std::vector<std::shared_ptr<BlockImpl>>& blocks() const { return blocks_; }
  // One entry per titans block (pipeline order): its memory statistics from the last forward.
  std::vector<ContextStats> contextStats() const;
  // training.kernels (docs/KERNELS.md): false sends every self-modifying Titans memory through the
  // LibTorch path; true lets it take the fused kernels where they apply.
  // The memory head's write takes the CPU kernel (or, off the CPU, dgd_write_rows) when on, the
  // per-key dgd_write loop when off.
  void setFusedKernels(bool on);
  // Which path the memory recurrences took in the forwards so far: "fused-cpu" (every
  // self-modifying Titans and Titans-memory forward through a CPU kernel), "fused-cuda" (through
  // the CUDA segment write, the model on a CUDA device), "reference" (none), "mixed", or "none"
  // (no in-context memory ran). The Titans memory has no CUDA kernel: on a GPU it is "reference".
  std::string kernelPath() const;

 private:
  bool fused_ = true;  // setFusedKernels
  ModelConfig cfg_;
  torch::nn::Embedding tok_{nullptr};
  torch::nn::Embedding pos_{nullptr};
  std::vector<std::shared_ptr<BlockImpl>> blocks_;
  torch::nn::ModuleList block_list_;  // registers blocks_ under "blocks"
  torch::nn::LayerNorm norm_{nullptr};
  torch::nn::Linear head_{nullptr};
  torch::Tensor ncm_sum_, ncm_count_;  // buffers for the ncm head
  torch::Tensor mem_w_, mem_s_;        // buffers for the memory head
};
TORCH_MODULE(Classifier);

// Throws std::invalid_argument naming the field ("model.blocks[1].heads: 5 does not divide
// d_model 128"). build() and the constructor call it.
void validate(const ModelConfig& cfg);
Classifier build(const ModelConfig& cfg);
int64_t count_params(torch::nn::Module& m);  // trainable + frozen parameters
// Multiply-adds x2 per sample of length seq_len, forward only (an estimate; see docs).
double flops_per_sample(const ModelConfig& cfg, int seq_len);

}  // namespace hl::models
