#include "engine/train/inference.h"

#include <algorithm>
#include <filesystem>

#include "engine/common/error.h"
#include "engine/data/tokenizer.h"
#include "engine/models/classifier.h"
#include "engine/train/checkpoint_format.h"
#include "engine/train/model_config.h"
#include "engine/torch_wrap.h"

namespace hl::train {
namespace {

using json = nlohmann::json;

c10::IValue read(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  c10::IValue v;
  if (!ar.try_read(key, v)) throw RunError(path + ": no '" + key + "' (not a Hope Lab checkpoint?)");
  return v;
}

}  // namespace

struct Predictor::Impl {
  json spec;
  std::vector<std::string> labels;
  data::Tokenizer tok;
  models::Classifier model{nullptr};
  int max_len = 64;
  int64_t step = 0;
  int task = 0;
};

Predictor::Predictor() : d_(std::make_unique<Impl>()) {}
Predictor::~Predictor() = default;

std::unique_ptr<Predictor> Predictor::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw RunError(path + ": checkpoint not found (runs save best.pt and last.pt at the end of each task)");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const std::exception& e) {
    throw RunError(path + ": cannot read this checkpoint (" + std::string(e.what()).substr(0, 200) + ")");
  }
  check_checkpoint_format(ar, path);
  std::unique_ptr<Predictor> p(new Predictor);
  auto& d = *p->d_;
  try {
    auto sv = read(ar, "hopelab.spec", path);
    auto tv = read(ar, "hopelab.tokenizer", path);
    auto lv = read(ar, "hopelab.labels", path);
    if (!sv.isString() || !tv.isString() || !lv.isString()) throw RunError(path + ": malformed Hope Lab fields");
    d.spec = json::parse(sv.toStringRef());
    d.labels = json::parse(lv.toStringRef()).get<std::vector<std::string>>();
    d.tok = data::Tokenizer::fromProto(tv.toStringRef());
    c10::IValue v;
    if (ar.try_read("hopelab.step", v) && v.isInt()) d.step = v.toInt();
    if (ar.try_read("hopelab.phase", v) && v.isInt()) d.task = int(v.toInt());
  } catch (const hl::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw RunError(path + ": malformed Hope Lab fields (" + e.what() + ")");
  }
  const json& m = d.spec.at("model");
  d.max_len = m.value("max_len", 0) > 0 ? m.at("max_len").get<int>()
                                        : dataset_defaults(d.spec.at("experiment").value("dataset", ""),
                                                           d.spec.at("experiment").value("split", ""))
                                              .max_len;
  auto cfg = model_config(d.spec, d.tok.vocabSize(), d.max_len, int(d.labels.size()), d.tok.padId());
  d.model = models::build(cfg);
  try {
    d.model->load(ar);
  } catch (const std::exception& e) {
    throw RunError(path + ": the weights do not fit the spec saved with them (" + std::string(e.what()).substr(0, 300) +
                   ")");
  }
  d.model->eval();
  return p;
}

std::vector<Prediction> Predictor::predict(const std::string& text, int k) const {
  torch::NoGradGuard ng;
  auto ids = d_->tok.encode(text, d_->max_len);
  std::vector<int64_t> v(ids.begin(), ids.end());
  if (v.empty()) v.push_back(d_->tok.unkId());
  auto tokens = torch::tensor(v, torch::kLong).unsqueeze(0);
  auto probs = torch::softmax(d_->model->forward(tokens).to(torch::kFloat64), 1).squeeze(0);
  const int C = int(probs.size(0));
  k = std::clamp(k, 1, C);
  auto top = probs.topk(k);
  auto vals = std::get<0>(top), idx = std::get<1>(top);
  std::vector<Prediction> out;
  for (int i = 0; i < k; ++i) {
    Prediction p;
    p.index = int(idx[i].item<int64_t>());
    p.prob = vals[i].item<double>();
    p.label = p.index < int(d_->labels.size()) ? d_->labels[p.index] : std::to_string(p.index);
    out.push_back(p);
  }
  return out;
}

const nlohmann::json& Predictor::spec() const {
  return d_->spec;
}
const std::vector<std::string>& Predictor::labels() const {
  return d_->labels;
}
int64_t Predictor::step() const {
  return d_->step;
}
int Predictor::task() const {
  return d_->task;
}

}  // namespace hl::train
