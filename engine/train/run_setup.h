// Internal to engine/train: everything a run needs before its first step, in the order the run
// makes it (the order fixes the random numbers): the spec (completed, or a stored run's own when
// resuming, with its checkpoint opened and its format checked), the data and its checks, the
// tokenizer and encoded rows, the model, the protocol's phases with their rows (and the dev
// hold-out), and the run record. Owns RunSetup. Touches the data dir, the tokenizer cache and the
// store (it creates or resumes the record and attaches the store observer to the Emitter); it
// does not train and holds no training state (trainer_state.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/data/dataset.h"
#include "engine/data/tokenizer.h"
#include "engine/models/classifier.h"
#include "engine/store/store.h"
#include "engine/torch_wrap.h"
#include "engine/train/batches.h"
#include "engine/train/emitter.h"
#include "engine/train/experiment.h"

namespace hl::train {

struct RunSetup {
  nlohmann::json spec;  // completed and valid
  const nlohmann::json& ex() const { return spec.at("experiment"); }
  const nlohmann::json& tr() const { return spec.at("training"); }
  std::string dataset_name, device_name;
  Protocol protocol = Protocol::ClassIncremental;
  StrategyType strategy = StrategyType::Finetune;
  uint64_t seed = 0;
  torch::Device device{torch::kCPU};
  bool joint = false;
  // Resuming: the stored run's record and its last checkpoint (format checked).
  std::unique_ptr<store::RunStore> db;
  std::unique_ptr<torch::serialize::InputArchive> resume_ar;
  std::string resume_data_hash, resume_split_hash;

  data::Dataset ds;
  data::Tokenizer tok;
  int64_t pad = 0;
  Encoded train, test, dev;  // dev: rows held out by training.dev_fraction (else empty)

  models::ModelConfig mcfg;
  models::Classifier model{nullptr};
  int64_t n_params = 0;
  bool trainable = true;  // false for the ncm head: the network is not trained
  int C = 0, T = 0;       // classes, tasks of the dataset

  std::vector<std::vector<int>> phases;          // class sets trained in each phase
  std::vector<std::vector<int64_t>> phase_rows;  // their train rows (dev rows removed)
  std::vector<int64_t> steps_of_phase;
  int64_t total_steps = 0;
  int batch_size = 32, epochs = 1;

  std::unique_ptr<StoreObserver> store_obs;  // null when the run is not stored
  int64_t run_id = 0;
  std::string ckpt_dir;  // "" = no checkpoints
  bool save_ckpt = false;
};

// Steps 1-5 of a run. Throws SpecError / DataError before anything is stored; once the record
// exists nothing here throws.
RunSetup set_up_run(const nlohmann::json& user_spec, const RunOptions& opt, Emitter& emit);
// Steps 1-3 only (spec, data and tokenizer, model; nothing stored), for diagnostics. A checkpoint
// (path, "" = none) supplies the spec, the tokenizer and the weights; its format is checked.
// `sets` ("PATH=VALUE", as --set) edit the checkpoint's spec before the model is built; weights
// that no longer fit the model (a changed shape) are a RunError naming the overrides.
RunSetup set_up_model(const nlohmann::json& user_spec, const RunOptions& opt, Emitter& emit,
                      const std::string& checkpoint, const std::vector<std::string>& sets = {});

}  // namespace hl::train
