#include "engine/data/text_io.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/common/error.h"
#include "engine/common/sha256.h"

namespace fs = std::filesystem;

namespace hl::data::detail {

std::string at(const std::string& file, size_t line) {
  return file + ":" + std::to_string(line);
}

std::string trim(std::string_view s) {
  const char* ws = " \t\r\n\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return std::string(s.substr(b, e - b + 1));
}

size_t line_of(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  return 1 + size_t(std::count(text.begin(), text.begin() + offset, '\n'));
}

size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;  // continuation byte, C0/C1 overlong lead, or > U+10FFFF lead
    }
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

TextFile read_text_file(const std::string& path, const std::string& missing_hint) {
  std::error_code ec;
  const auto st = fs::status(path, ec);
  if (!fs::exists(st)) throw DataError(path + ": file not found — " + missing_hint);
  if (fs::is_directory(st)) throw DataError(path + ": is a folder, expected a file — " + missing_hint);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open the file for reading — check its permissions");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw DataError(path + ": read error — check the disk and the file's permissions");
  return text_file(path, std::move(ss).str(), missing_hint);
}

TextFile text_file(const std::string& path, std::string bytes, const std::string& missing_hint) {
  TextFile f;
  f.path = path;
  f.text = std::move(bytes);
  f.sha256 = sha256_hex(f.text);
  size_t bom = 0;
  if (f.text.compare(0, 3, "\xEF\xBB\xBF") == 0) bom = 3;
  if (f.text.size() == bom) throw DataError(path + ": file is empty — " + missing_hint);
  const size_t bad = find_invalid_utf8(std::string_view(f.text).substr(bom));
  if (bad != std::string_view::npos)
    throw DataError(at(path, line_of(f.text, bom + bad)) + ": invalid UTF-8 at byte offset " +
                    std::to_string(bom + bad) + " of the file — save the file as UTF-8");
  f.text.erase(0, bom);
  return f;
}

namespace {
[[noreturn]] void record_too_long(const std::string& file, size_t line) {
  throw DataError(at(file, line) +
                  ": record too long (over 1 MiB) — a quoted field is probably not closed, or "
                  "this is not a text-classification file; check the quotes from this line on");
}
}  // namespace

bool CsvReader::next(CsvRecord* rec) {
  const size_t n = s_.size();
  constexpr auto npos = std::string_view::npos;
  while (pos_ < n && (s_[pos_] == '\n' || s_[pos_] == '\r')) {  // blank lines
    if (s_[pos_] == '\r' && pos_ + 1 < n && s_[pos_ + 1] == '\n') ++pos_;
    ++pos_;
    ++line_;
  }
  if (pos_ >= n) return false;
  rec->fields.clear();
  rec->line = line_;
  const size_t start = pos_;
  std::string field;
  for (;;) {
    field.clear();
    if (s_[pos_] == '"') {
      const size_t qline = line_;
      ++pos_;
      for (;;) {
        const size_t q = s_.find('"', pos_);
        const size_t stop = q == npos ? n : q;
        if (stop - start > kMaxRecordBytes) record_too_long(file_, rec->line);
        for (size_t i = pos_; i < stop; ++i)  // LF, CRLF and a lone CR each end a line, as between records
          if (s_[i] == '\n' || (s_[i] == '\r' && (i + 1 >= n || s_[i + 1] != '\n'))) ++line_;
        field.append(s_.substr(pos_, stop - pos_));
        if (q == npos)
          throw DataError(at(file_, qline) +
                          ": unterminated quoted field (end of file inside quotes) — the file is "
                          "truncated or a quote is not closed; fetch the file again or close the "
                          "quote");
        pos_ = q + 1;
        if (pos_ < n && s_[pos_] == '"') {  // "" inside quotes
          field += '"';
          ++pos_;
          continue;
        }
        break;
      }
      if (pos_ < n && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r')
        throw DataError(at(file_, line_) +
                        ": unexpected character after a closing quote — inside a quoted field "
                        "write a double quote as \"\"");
    } else {
      size_t stop = s_.find_first_of(",\r\n\"", pos_);
      if (stop == npos) stop = n;
      if (stop - start > kMaxRecordBytes) record_too_long(file_, rec->line);
      if (stop < n && s_[stop] == '"')
        throw DataError(at(file_, line_) +
                        ": double quote inside an unquoted field — quote the whole field and "
                        "write the inner quote as \"\"");
      field.assign(s_.substr(pos_, stop - pos_));
      pos_ = stop;
    }
    rec->fields.push_back(std::move(field));
    if (pos_ >= n) return true;
    if (s_[pos_] == ',') {
      ++pos_;
      if (pos_ >= n || s_[pos_] == '\n' || s_[pos_] == '\r') {  // trailing comma: empty field
        rec->fields.emplace_back();
      } else {
        continue;
      }
    }
    if (pos_ < n) {  // end of line
      if (s_[pos_] == '\r' && pos_ + 1 < n && s_[pos_ + 1] == '\n') ++pos_;
      ++pos_;
      ++line_;
    }
    return true;
  }
}

namespace {
std::string join(const std::vector<std::string>& v, const char* sep = ",") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}
}  // namespace

std::vector<size_t> find_columns(const std::string& file, const std::vector<std::string>& header,
                                 const std::vector<std::string>& wanted) {
  std::vector<size_t> cols;
  for (const auto& w : wanted) {
    size_t i = 0;
    while (i < header.size() && trim(header[i]) != w) ++i;
    if (i == header.size()) {
      std::string found = join(header);
      if (found.size() > 200) found = found.substr(0, 200) + "…";
      throw DataError(at(file, 1) + ": missing column '" + w + "' — the first line must be the " + "header " +
                      join(wanted) + " (found: " + found + ")");
    }
    cols.push_back(i);
  }
  return cols;
}

std::string LabeledFile::where(const LabeledRow& r) const {
  if (json_key.empty()) return at(file, r.line);
  return file + ": " + json_key + "[" + std::to_string(r.line) + "]";
}

void check_text(const std::string& where, const std::string& text, const std::string& column) {
  if (trim(text).empty())
    throw DataError(where + ": empty text in '" + column +
                    "' — every row needs a non-empty text; fill it in or delete the row");
}

void check_label(const std::string& where, const std::string& label, const std::string& column) {
  if (trim(label).empty())
    throw DataError(where + ": empty label in '" + column +
                    "' — every row needs a label; fill it in or delete the row");
}

LabeledFile read_labeled_csv(const TextFile& f, const std::string& text_col, const std::string& label_col,
                             bool extra_columns_ok) {
  LabeledFile out;
  out.file = f.path;
  CsvReader reader(f.path, f.text);
  CsvRecord rec;
  const std::vector<std::string> wanted{text_col, label_col};
  if (!reader.next(&rec))
    throw DataError(f.path + ": no header line — the first line must be the header " + join(wanted));
  const std::vector<std::string> header = rec.fields;
  const auto cols = find_columns(f.path, header, wanted);
  if (!extra_columns_ok && header.size() != wanted.size())
    throw DataError(at(f.path, 1) + ": unexpected header '" + join(header) + "' — expected exactly " + join(wanted));
  while (reader.next(&rec)) {
    if (rec.fields.size() != header.size())
      throw DataError(at(f.path, rec.line) + ": expected " + std::to_string(header.size()) + " fields (header " +
                      join(header) + "), found " + std::to_string(rec.fields.size()) +
                      " — the row is truncated, or a field that contains a comma is not quoted");
    LabeledRow row{std::move(rec.fields[cols[0]]), std::move(rec.fields[cols[1]]), rec.line};
    check_text(at(f.path, row.line), row.text, text_col);
    check_label(at(f.path, row.line), row.label, label_col);
    out.rows.push_back(std::move(row));
  }
  if (out.rows.empty()) throw DataError(f.path + ": no data rows after the header — the file is truncated or empty");
  return out;
}

LabeledFile read_labeled_jsonl(const TextFile& f, const std::string& text_col, const std::string& label_col) {
  LabeledFile out;
  out.file = f.path;
  const std::string example = "{\"" + text_col + "\": \"...\", \"" + label_col + "\": \"...\"}";
  std::string_view s = f.text;
  size_t pos = 0, line = 0;
  while (pos < s.size()) {
    ++line;
    size_t eol = s.find('\n', pos);
    if (eol == std::string_view::npos) eol = s.size();
    std::string_view ln = s.substr(pos, eol - pos);
    pos = eol + 1;
    if (ln.size() > kMaxRecordBytes) record_too_long(f.path, line);
    if (!ln.empty() && ln.back() == '\r') ln.remove_suffix(1);
    if (trim(ln).empty()) continue;
    const std::string where = at(f.path, line);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(ln);
    } catch (const nlohmann::json::parse_error& e) {
      throw DataError(where + ": malformed JSON at column " + std::to_string(e.byte) + " (" + e.what() +
                      ") — each line must be one JSON object like " + example);
    } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double (1e999)
      throw DataError(where + ": unreadable JSON (" + e.what() + ") — each line must be one JSON object like " +
                      example);
    }
    if (!j.is_object()) throw DataError(where + ": expected a JSON object — each line must look like " + example);
    const auto t = j.find(text_col);
    const auto l = j.find(label_col);
    if (t == j.end() || l == j.end())
      throw DataError(where + ": missing key '" + (t == j.end() ? text_col : label_col) +
                      "' — each line must look like " + example);
    if (!t->is_string())
      throw DataError(where + ": '" + text_col + "' must be a string — each line must look like " + example);
    LabeledRow row;
    row.line = line;
    row.text = t->get<std::string>();
    if (l->is_string())
      row.label = l->get<std::string>();
    else if (l->is_number_integer())
      row.label = l->dump();
    else
      throw DataError(where + ": '" + label_col + "' must be a string or an integer");
    check_text(where, row.text, text_col);
    check_label(where, row.label, label_col);
    out.rows.push_back(std::move(row));
  }
  if (out.rows.empty()) throw DataError(f.path + ": no data lines — the file has only blank lines");
  return out;
}

nlohmann::json parse_json(const TextFile& f, const std::string& fix) {
  try {
    return nlohmann::json::parse(f.text);
  } catch (const nlohmann::json::parse_error& e) {
    const size_t off = e.byte ? e.byte - 1 : 0;
    throw DataError(at(f.path, line_of(f.text, off)) + ": malformed JSON (" + e.what() + ") — " + fix);
  } catch (const nlohmann::json::exception& e) {  // no position: e.g. a number too large for a double
    throw DataError(f.path + ": unreadable JSON (" + e.what() + ") — " + fix);
  }
}

std::vector<size_t> seeded_permutation(size_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  // Unbiased draw in [0, bound): reject the lowest 2^64 mod bound values.
  auto below = [&g](uint64_t bound) {
    const uint64_t threshold = (0 - bound) % bound;
    uint64_t x;
    do x = g();
    while (x < threshold);
    return x % bound;
  };
  std::vector<size_t> p(n);
  for (size_t i = 0; i < n; ++i) p[i] = i;
  for (size_t i = n; i > 1; --i) std::swap(p[i - 1], p[below(i)]);
  return p;
}

}  // namespace hl::data::detail
