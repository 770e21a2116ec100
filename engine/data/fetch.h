// `hopelab-cli data fetch|import|verify`: getting the known dataset files into a data dir, each
// checked against its published sha256 (known_files.h). No Qt, no torch.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/data/known_files.h"

namespace hl::data {

// Downloads the known files of `dataset_or_all` (a known dataset name, or "all") into dest_dir,
// keeping the relative paths (e.g. DEST/banking77/train.csv). Files already present with the right
// checksum are kept. Without a mirror, files come from their upstream raw GitHub URLs at the pinned
// commits; the DBpedia-14 sample files are then rebuilt from the O-LoRA files, and the cl_splits
// task files (derived, not published upstream) are reported as needing `data import` or a mirror.
// With `mirror_base_url` (http(s)://, file://, or a local folder path), every file is fetched as
// MIRROR/<relative path>. Each download goes to FILE.part, is checked, then renamed; a checksum
// mismatch deletes it and throws hl::DataError. `log` (may be empty) gets one line per file.
void fetch(const std::string& dataset_or_all, const std::string& dest_dir, const std::string& mirror_base_url,
           std::function<void(std::string)> log);

// Copies the known files found in src_dir (laid out like the data dir) into dest_dir, checking
// each checksum; a file that differs is not copied and makes the call throw hl::DataError after
// the others are copied. Missing DBpedia-14 sample files are rebuilt when their sources are there.
void import_dir(const std::string& src_dir, const std::string& dest_dir, std::function<void(std::string)> log);

enum class FileState { Missing, Ok, Mismatch };
const char* to_string(FileState s);  // "missing", "ok", "mismatch"

struct FileStatus {
  std::string path;  // relative, as in known_files()
  FileState state = FileState::Missing;
  std::string expected_sha256;
  std::string actual_sha256;  // "" when missing
  bool present() const { return state != FileState::Missing; }
};

// One entry per known file, in known_files() order.
std::vector<FileStatus> verify(const std::string& data_dir);

}  // namespace hl::data
