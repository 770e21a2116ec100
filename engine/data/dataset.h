// Text-classification datasets and their class-incremental task splits. No Qt, no torch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace hl::data {

struct Example {
  std::string text;
  int label = -1;  // index into Dataset::class_names
};

struct Dataset {
  std::string name;                      // "banking77", … or the folder path for the generic format
  std::vector<std::string> class_names;  // every class id used by train/test/tasks
  std::vector<Example> train;            // only rows whose class belongs to some task
  std::vector<Example> test;
  std::vector<std::vector<int>> tasks;  // class ids per task, in training order (task_order applied)
  std::string data_hash;                // sha256 over the files read (hex)
  std::string split_hash;               // sha256 over the canonical task list (hex)
  std::vector<std::string> warnings;    // e.g. checksum mismatch of a known file
  int max_len = 64;                     // DECISIONS.md: 64 tokens, DBpedia 128
  int default_vocab = 2000;             // DECISIONS.md vocabulary default for this dataset
};

struct LoadOptions {
  std::string data_dir;          // resolved data directory (see resolve_data_dir)
  std::string split;             // "" = dataset default; banking77: "vag" (default) or "all77"
  int task_order = 0;            // index into the split's task orders (VAG files) or a seeded permutation
  int limit_per_class = 0;       // 0 = all train rows; else the first N train rows per class (seeded subsample)
  int eval_limit_per_class = 0;  // 0 = all test rows; else at most N per class
  uint64_t seed = 0;             // for subsampling and permutations
  // generic user format
  std::string text_column = "text";
  std::string label_column = "label";
  int classes_per_task = 10;
};

// Names: clinc150, banking77, dbpedia70, dbpedia14, or a folder path (generic format:
// train.csv|train.jsonl and test.csv|test.jsonl). Throws hl::DataError naming file, line and fix.
Dataset load(const std::string& name_or_path, const LoadOptions& opt);

// Known dataset names, for --help and `data list`.
std::vector<std::string> known_datasets();

// --data-dir flag if non-empty, else $HOPELAB_DATA_DIR, else $XDG_DATA_HOME/hopelab/datasets
// (~/.local/share/hopelab/datasets).
std::string resolve_data_dir(const std::string& flag);

// The user's Hope Lab data dir ($XDG_DATA_HOME/hopelab or ~/.local/share/hopelab); default DB lives here.
std::string user_data_dir();

}  // namespace hl::data
