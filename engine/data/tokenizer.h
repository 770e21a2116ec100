// SentencePiece unigram tokenizer, trained with one thread (deterministic) and cached.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace hl::data {

class Tokenizer {
 public:
  Tokenizer();
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Trains on `texts` (or loads from cache_dir when a model for the same texts+settings exists).
  // vocab_size is clamped down (with a warning in *warning) when SentencePiece rejects it.
  static Tokenizer train(const std::vector<std::string>& texts, int vocab_size, const std::string& cache_dir,
                         std::string* warning = nullptr);
  static Tokenizer fromProto(const std::string& serialized_model);

  // Token ids, truncated to max_len; never contains pad_id(). Empty text -> one unk token.
  std::vector<int> encode(const std::string& text, int max_len) const;
  int vocabSize() const;
  int padId() const;          // 0
  int unkId() const;          // 1
  std::string proto() const;  // serialized model, stored in checkpoints

 private:
  struct Impl;
  std::unique_ptr<Impl> d_;
};

}  // namespace hl::data
