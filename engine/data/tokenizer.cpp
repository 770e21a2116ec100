#include "engine/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <unordered_map>

#include "engine/common/error.h"
#include "engine/common/sha256.h"

namespace fs = std::filesystem;

namespace hl::data {

struct Tokenizer::Impl {
  sentencepiece::SentencePieceProcessor sp;
  std::string proto;
};

namespace {

// Bump when the settings below change meaning, so old cache entries are not reused.
constexpr const char* kCacheFormat = "hopelab-spm-v1";

// Deterministic unigram settings: one thread (the model depends on the thread count), pad 0,
// unk 1, no bos/eos, SentencePiece's own logging silenced.
std::map<std::string, std::string> settings(int vocab_size) {
  return {{"model_type", "unigram"}, {"vocab_size", std::to_string(vocab_size)},
          {"num_threads", "1"},      {"pad_id", "0"},
          {"unk_id", "1"},           {"bos_id", "-1"},
          {"eos_id", "-1"},          {"max_sentence_length", "1048576"},
          {"minloglevel", "2"}};
}

class TextIterator : public sentencepiece::SentenceIterator {
 public:
  explicit TextIterator(const std::vector<std::string>& t) : t_(t) {}
  bool done() const override { return i_ >= t_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return t_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& t_;
  size_t i_ = 0;
};

// SentencePiece: "Vocabulary size too high (8000). Please set it to a value <= 2430."
int parse_vocab_limit(const std::string& msg) {
  const size_t p = msg.find("<= ");
  if (p == std::string::npos || msg.find("ocabulary size") == std::string::npos) return -1;
  size_t i = p + 3;
  int n = 0;
  bool any = false;
  while (i < msg.size() && msg[i] >= '0' && msg[i] <= '9' && n < 100000000) {
    n = n * 10 + (msg[i++] - '0');
    any = true;
  }
  return any ? n : -1;
}

// SentencePiece: "Vocabulary size is smaller than required_chars. 500 vs 625." -> 625 (the
// characters plus meta pieces it must keep; a smaller vocabulary cannot cover the texts).
int parse_vocab_minimum(const std::string& msg) {
  const size_t p = msg.find("smaller than required_chars");
  if (p == std::string::npos) return -1;
  const size_t vs = msg.find(" vs ", p);
  if (vs == std::string::npos) return -1;
  try {
    return std::stoi(msg.substr(vs + 4));
  } catch (...) {
    return -1;
  }
}

std::string cache_key(const std::vector<std::string>& texts, int vocab_size) {
  Sha256 h;
  h.update(std::string(kCacheFormat) + "\n");
  for (const auto& [k, v] : settings(vocab_size)) h.update(k + "=" + v + "\n");
  for (const auto& t : texts) {
    h.update(std::to_string(t.size()) + ":");
    h.update(t);
  }
  return h.hexDigest();
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return in ? std::move(ss).str() : std::string();
}

// Best effort: a cache that cannot be written only costs a retrain next time.
void write_cache(const fs::path& path, const std::string& proto) {
  static std::atomic<unsigned> counter{0};
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  const fs::path tmp = path.string() + ".tmp" + std::to_string(counter++) + "." +
                       std::to_string(std::hash<std::string>{}(path.string() + proto.substr(0, 64)));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << proto;
    if (!out.flush()) {
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) fs::remove(tmp, ec);
}

std::string clamp_warning(int requested, int got) {
  return "vocab_size " + std::to_string(requested) +
         " is more than SentencePiece can build from these texts; clamped to " + std::to_string(got);
}

void need(const void* d) {
  if (!d) throw DataError("tokenizer: not trained or loaded — call Tokenizer::train or fromProto first");
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

Tokenizer Tokenizer::fromProto(const std::string& serialized_model) {
  Tokenizer t;
  t.d_ = std::make_unique<Impl>();
  const auto st = t.d_->sp.LoadFromSerializedProto(serialized_model);
  if (!st.ok() || t.d_->sp.GetPieceSize() <= 0)
    throw DataError(std::string("tokenizer: the stored SentencePiece model is corrupt (") + st.ToString() +
                    ") — retrain the tokenizer or restore the checkpoint");
  t.d_->proto = serialized_model;
  return t;
}

Tokenizer Tokenizer::train(const std::vector<std::string>& texts, int vocab_size, const std::string& cache_dir,
                           std::string* warning) {
  if (warning) warning->clear();
  if (vocab_size < 3) throw SpecError("tokenizer: vocab_size must be at least 3 (pad, unk and one piece)");
  if (texts.empty()) throw DataError("tokenizer: no training texts — the train split is empty");
  fs::path cached;
  if (!cache_dir.empty()) {
    cached = fs::path(cache_dir) / ("spm-" + cache_key(texts, vocab_size) + ".model");
    const std::string proto = read_all(cached);
    if (!proto.empty()) {
      try {
        Tokenizer t = fromProto(proto);
        if (warning && t.vocabSize() != vocab_size)
          *warning = "vocab_size " + std::to_string(vocab_size) + " adjusted to " + std::to_string(t.vocabSize()) +
                     " (what SentencePiece can build from these texts)";
        return t;
      } catch (const DataError&) {
        // corrupt cache entry: retrain and overwrite it
      }
    }
  }
  int v = vocab_size;
  std::string proto;
  for (int attempt = 0;; ++attempt) {
    std::unordered_map<std::string, std::string> kw;
    for (const auto& [k, val] : settings(v)) kw[k] = val;
    TextIterator it(texts);
    proto.clear();
    const auto st = sentencepiece::SentencePieceTrainer::Train(kw, &it, &proto);
    if (st.ok()) break;
    const int limit = parse_vocab_limit(st.message());
    if (attempt < 3 && limit >= 3 && limit < v) {
      v = limit;
      continue;
    }
    const int minimum = parse_vocab_minimum(st.message());
    if (attempt < 3 && minimum > v && minimum < 1000000) {
      v = minimum;
      continue;
    }
    throw DataError(std::string("tokenizer: SentencePiece could not train (") + st.message() +
                    ") — change the vocabulary size or check the train texts");
  }
  Tokenizer t = fromProto(proto);
  if (warning && t.vocabSize() < vocab_size) *warning = clamp_warning(vocab_size, t.vocabSize());
  if (warning && t.vocabSize() > vocab_size)
    *warning = "vocab_size " + std::to_string(vocab_size) + " is smaller than the " + std::to_string(t.vocabSize()) +
               " characters and meta pieces of these texts; raised to " + std::to_string(t.vocabSize());
  if (!cached.empty()) write_cache(cached, proto);
  return t;
}

std::vector<int> Tokenizer::encode(const std::string& text, int max_len) const {
  need(d_.get());
  std::vector<int> ids;
  const auto st = d_->sp.Encode(text, &ids);
  if (!st.ok()) throw DataError(std::string("tokenizer: cannot encode a text (") + st.message() + ")");
  if (ids.empty()) ids.push_back(d_->sp.unk_id());
  if (max_len > 0 && ids.size() > size_t(max_len)) ids.resize(size_t(max_len));
  return ids;
}

int Tokenizer::vocabSize() const {
  need(d_.get());
  return d_->sp.GetPieceSize();
}

int Tokenizer::padId() const {
  need(d_.get());
  return d_->sp.pad_id();
}

int Tokenizer::unkId() const {
  need(d_.get());
  return d_->sp.unk_id();
}

std::string Tokenizer::proto() const {
  need(d_.get());
  return d_->proto;
}

}  // namespace hl::data
