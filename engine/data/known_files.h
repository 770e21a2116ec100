// The dataset files Hope Lab knows: path relative to the data dir, published sha256
// (shared/datasets/SHA256SUMS), upstream raw URL and the `data fetch` groups that include it.
#pragma once
#include <string>
#include <vector>

namespace hl::data {

struct KnownFile {
  std::string path;                 // relative to the data dir, '/'-separated, e.g. "banking77/train.csv"
  std::string sha256;               // expected hex digest
  std::string upstream;             // raw URL at the pinned commit; "" for derived files
  std::vector<std::string> groups;  // dataset names whose `data fetch NAME` includes the file
};

const std::vector<KnownFile>& known_files();
// nullptr when `relative_path` is not a known file.
const KnownFile* find_known_file(const std::string& relative_path);

}  // namespace hl::data
