// Internal helpers of engine/data: reading text files with clean errors, an RFC-4180 CSV reader,
// a JSONL reader and seeded permutations. Messages follow "FILE:LINE: what is wrong — how to fix".
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace hl::data::detail {

constexpr size_t kMaxRecordBytes = size_t(1) << 20;  // one CSV record or JSONL line: 1 MiB

// "FILE:LINE" (LINE 1-based).
std::string at(const std::string& file, size_t line);

struct TextFile {
  std::string path;
  std::string text;    // contents, UTF-8 BOM removed
  std::string sha256;  // of the bytes on disk (BOM included)
};

// Reads a whole file. DataError when it is missing (message ends with `missing_hint`), unreadable,
// empty, or not valid UTF-8 (names line and byte offset).
TextFile read_text_file(const std::string& path, const std::string& missing_hint);
// The checks of read_text_file on bytes already read (`path` only names them in messages): empty,
// invalid UTF-8; removes the BOM.
TextFile text_file(const std::string& path, std::string bytes, const std::string& missing_hint);

// Byte offset of the first invalid UTF-8 sequence, or npos when `s` is valid (no overlongs,
// surrogates or code points above U+10FFFF).
size_t find_invalid_utf8(std::string_view s);

std::string trim(std::string_view s);

// 1-based line of byte `offset` in `text`.
size_t line_of(std::string_view text, size_t offset);

// RFC-4180 records: quoted fields, doubled quotes, embedded commas and newlines, CRLF/LF/CR line
// ends. Blank lines are skipped. `line` is where the record starts.
struct CsvRecord {
  std::vector<std::string> fields;
  size_t line = 0;
};

class CsvReader {
 public:
  CsvReader(std::string file, std::string_view text) : file_(std::move(file)), s_(text) {}
  bool next(CsvRecord* rec);  // false at end of file; DataError on malformed input

 private:
  std::string file_;
  std::string_view s_;
  size_t pos_ = 0;
  size_t line_ = 1;
};

// Header column positions of `wanted` (names compared after trimming spaces); DataError naming
// FILE:1 and the expected header when one is missing.
std::vector<size_t> find_columns(const std::string& file, const std::vector<std::string>& header,
                                 const std::vector<std::string>& wanted);

// One labelled row as read from a file: `line` is the 1-based line for CSV/JSONL, or the
// 0-based index into the JSON array named by LabeledFile::json_key.
struct LabeledRow {
  std::string text;
  std::string label;
  size_t line = 0;
};

struct LabeledFile {
  std::string file;
  std::string json_key;  // "" for line-based files
  std::vector<LabeledRow> rows;
  std::string where(const LabeledRow& r) const;  // "FILE:LINE" or "FILE: key[index]"
};

// CSV with a header naming `text_col` and `label_col` (other columns allowed when
// `extra_columns_ok`); every row must have the header's field count.
LabeledFile read_labeled_csv(const TextFile& f, const std::string& text_col, const std::string& label_col,
                             bool extra_columns_ok);
// JSONL: one object per line with a string `text_col` and a string or integer `label_col`.
LabeledFile read_labeled_jsonl(const TextFile& f, const std::string& text_col, const std::string& label_col);

// DataError unless text has a non-space character / label is non-empty.
void check_text(const std::string& where, const std::string& text, const std::string& column);
void check_label(const std::string& where, const std::string& label, const std::string& column);

// Parses a JSON document; a syntax error names FILE:LINE:COLUMN.
nlohmann::json parse_json(const TextFile& f, const std::string& fix);

// Deterministic across platforms: std::mt19937_64 output (fixed by the standard) and our own
// unbiased bounded draw + Fisher–Yates (std::shuffle/distributions are implementation-defined).
std::vector<size_t> seeded_permutation(size_t n, uint64_t seed);

}  // namespace hl::data::detail
