// Inference from a stored run's checkpoint (<db>.checkpoints/run-<id>/{best,last}.pt): the spec,
// tokenizer and class names saved with the weights rebuild the classifier; a sentence gives its
// top-k classes with softmax probabilities. Torch-free header (pimpl), so the GUI can include it.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace hl::train {

struct Prediction {
  int index = -1;     // class index (the run's label order)
  std::string label;  // class name
  double prob = 0;    // softmax probability over the classes the run saw
};

class Predictor {
 public:
  // Throws hl::RunError naming the file when it is missing or not a Hope Lab checkpoint.
  static std::unique_ptr<Predictor> load(const std::string& checkpoint_path);
  ~Predictor();

  // The k most probable classes, most probable first. An empty text is one unknown token.
  std::vector<Prediction> predict(const std::string& text, int k = 5) const;
  const nlohmann::json& spec() const;
  const std::vector<std::string>& labels() const;
  int64_t step() const;  // training step at which the checkpoint was saved
  int task() const;      // 0-based task after which it was saved

 private:
  Predictor();
  struct Impl;
  std::unique_ptr<Impl> d_;
};

}  // namespace hl::train
