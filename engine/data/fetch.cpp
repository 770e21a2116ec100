#include "engine/data/fetch.h"

#if HL_HAVE_CURL
#include <curl/curl.h>
#endif

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/common/error.h"
#include "engine/common/sha256.h"
#include "engine/data/text_io.h"

namespace fs = std::filesystem;

namespace hl::data {
namespace {

using Log = std::function<void(std::string)>;

void say(const Log& log, const std::string& line) {
  if (log) log(line);
}

std::vector<const KnownFile*> select_files(const std::string& what) {
  std::vector<const KnownFile*> out;
  for (const auto& f : known_files())
    if (what == "all" || std::find(f.groups.begin(), f.groups.end(), what) != f.groups.end()) out.push_back(&f);
  if (out.empty())
    throw SpecError("data fetch: unknown dataset '" + what +
                    "' — use clinc150, banking77, dbpedia70, dbpedia14 or all");
  return out;
}

std::string digest_or_empty(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return {};
  return sha256_file(p.string());
}

bool present_and_ok(const fs::path& p, const KnownFile& f) {
  return digest_or_empty(p) == f.sha256;
}

// Percent-encodes a local path for a file:// URL.
std::string file_url(const fs::path& p) {
  static const char* hex = "0123456789ABCDEF";
  std::string out = "file://";
  for (unsigned char c : fs::absolute(p).generic_string()) {
    if (isalnum(c) || c == '/' || c == '-' || c == '_' || c == '.' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string mirror_url(const std::string& base, const std::string& rel) {
  if (base.find("://") == std::string::npos) return file_url(fs::path(base) / rel);
  std::string b = base;
  while (!b.empty() && b.back() == '/') b.pop_back();
  return b + "/" + rel;
}

void rename_into_place(const fs::path& part, const fs::path& dest) {
  std::error_code ec;
  fs::rename(part, dest, ec);
  if (ec) {
    fs::remove(part, ec);
    throw DataError(dest.string() + ": cannot move the download into place (" + ec.message() +
                    ") — check the folder's permissions");
  }
}

// Writes `content` (already checked) to DEST.part, then renames it to DEST.
void write_file(const fs::path& dest, const std::string& content) {
  fs::create_directories(dest.parent_path());
  const fs::path part = dest.string() + ".part";
  {
    std::ofstream out(part, std::ios::binary | std::ios::trunc);
    out << content;
    if (!out.flush()) throw DataError(part.string() + ": cannot write — check the disk space and permissions");
  }
  rename_into_place(part, dest);
}

// Deletes DEST.part and throws unless its checksum is the expected one.
void check_part(const fs::path& part, const std::string& origin, const KnownFile& f) {
  const std::string got = sha256_file(part.string());
  if (got != f.sha256) {
    std::error_code ec;
    fs::remove(part, ec);
    throw DataError(origin + ": sha256 " + got + " differs from the published " + f.sha256 + " for " + f.path +
                    " — the copy is corrupt or edited; nothing was installed. " +
                    "Try again, or use another mirror or a verified local copy");
  }
}

#if !HL_HAVE_CURL
// A build without libcurl (a headless build where its headers are missing, e.g. scripts/gpu-check
// on a machine without a package registry): everything but the download itself works.
void download(const std::string& url, const fs::path&, const KnownFile&) {
  throw DataError(url + ": this build of Hope Lab has no libcurl, so it cannot download — copy the files from a " +
                  "local copy with `hopelab-cli data import DIR`, or rebuild with libcurl (libcurl4-openssl-dev)");
}
#else
size_t write_cb(char* p, size_t size, size_t n, void* file) {
  return std::fwrite(p, size, n, static_cast<FILE*>(file)) * size;
}

void download(const std::string& url, const fs::path& dest, const KnownFile& f) {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  fs::create_directories(dest.parent_path());
  const fs::path part = dest.string() + ".part";
  std::unique_ptr<FILE, int (*)(FILE*)> out(std::fopen(part.string().c_str(), "wb"), &std::fclose);
  if (!out) throw DataError(part.string() + ": cannot write — check the disk space and permissions");
  std::unique_ptr<CURL, void (*)(CURL*)> c(curl_easy_init(), &curl_easy_cleanup);
  if (!c) throw DataError(url + ": cannot start libcurl");
  char err[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &write_cb);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, out.get());
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, err);
  curl_easy_setopt(c.get(), CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c.get(), CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 30L);
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_LIMIT, 1L);  // abort when stalled for a minute
  curl_easy_setopt(c.get(), CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_USERAGENT, "hopelab-data-fetch");
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https,file");
#endif
  const CURLcode rc = curl_easy_perform(c.get());
  const bool closed = std::fclose(out.release()) == 0;
  if (rc != CURLE_OK || !closed) {
    std::error_code ec;
    fs::remove(part, ec);
    const std::string why = rc != CURLE_OK ? (err[0] ? err : curl_easy_strerror(rc)) : "write error";
    throw DataError(url + ": download failed (" + why + ") — check the network or the mirror, or " +
                    "copy the files from a local copy with `hopelab-cli data import DIR`");
  }
  check_part(part, url, f);
  rename_into_place(part, dest);
}
#endif

// Rebuilds dbpedia14/test_sample_7600.csv or classes.txt from the O-LoRA files in `dir`, or
// returns "" when `rel` is not derivable or its sources are missing/different.
std::string derive(const fs::path& dir, const std::string& rel) {
  const KnownFile* test = find_known_file("dbpedia14/olora_test.json");
  const KnownFile* labels = find_known_file("dbpedia14/olora_labels.json");
  const bool want_csv = rel == "dbpedia14/test_sample_7600.csv";
  if (!want_csv && rel != "dbpedia14/classes.txt") return {};
  if (!present_and_ok(dir / labels->path, *labels)) return {};
  if (want_csv && !present_and_ok(dir / test->path, *test)) return {};
  const std::string fix = "fetch it again with `hopelab-cli data fetch dbpedia14`";
  using detail::parse_json;
  const auto names =
      parse_json(detail::read_text_file((dir / labels->path).string(), fix), fix).get<std::vector<std::string>>();
  std::string out;
  if (!want_csv) {  // "Mean of Transportation" -> "MeanOfTransportation"
    for (const auto& n : names) {
      bool start = true;
      for (char ch : n) {
        if (ch == ' ') {
          start = true;
          continue;
        }
        out += start ? char(toupper(static_cast<unsigned char>(ch))) : ch;
        start = false;
      }
      out += '\n';
    }
    return out;
  }
  // One row per {"label", "sentence": "Title: T\nText: C\n"} as  index,"T","C"  (dbpedia_csv).
  const auto rows = parse_json(detail::read_text_file((dir / test->path).string(), fix), fix);
  for (const auto& r : rows) {
    const std::string label = r.at("label").get<std::string>();
    const std::string s = r.at("sentence").get<std::string>();
    const size_t mid = s.find("\nText: ");
    size_t idx = 0;
    while (idx < names.size() && names[idx] != label) ++idx;
    if (s.rfind("Title: ", 0) != 0 || mid == std::string::npos || s.back() != '\n' || idx == names.size()) return {};
    out += std::to_string(idx + 1) + ",\"" + s.substr(7, mid - 7) + "\",\"" + s.substr(mid + 7, s.size() - mid - 8) +
           "\"\n";
  }
  return out;
}

// For each of `files` with no upstream URL that is not present and correct in `dir`: rebuild it
// when it is derivable from files there, else report it. Returns the files still missing.
std::vector<std::string> complete_derived(const fs::path& dir, const std::vector<const KnownFile*>& files,
                                          const Log& log) {
  std::vector<std::string> missing;
  for (const KnownFile* f : files) {
    if (!f->upstream.empty() || present_and_ok(dir / f->path, *f)) continue;
    std::string content;
    try {
      content = derive(dir, f->path);
    } catch (const nlohmann::json::exception&) {
      content.clear();
    }
    if (!content.empty() && sha256_hex(content) == f->sha256) {
      write_file(dir / f->path, content);
      say(log, "built  " + f->path + " (from the O-LoRA files)");
    } else {
      missing.push_back(f->path);
    }
  }
  return missing;
}

}  // namespace

void fetch(const std::string& dataset_or_all, const std::string& dest_dir, const std::string& mirror_base_url,
           std::function<void(std::string)> log) {
  const auto files = select_files(dataset_or_all);
  const fs::path dest(dest_dir);
  std::vector<const KnownFile*> derived;
  for (const KnownFile* f : files) {
    const fs::path target = dest / f->path;
    if (present_and_ok(target, *f)) {
      say(log, "ok     " + f->path + " (already present)");
      continue;
    }
    const std::string url = mirror_base_url.empty() ? f->upstream : mirror_url(mirror_base_url, f->path);
    if (url.empty()) {
      derived.push_back(f);
      continue;
    }
    say(log, "fetch  " + f->path + " <- " + url);
    download(url, target, *f);
    say(log, "ok     " + f->path);
  }
  const auto missing = complete_derived(dest, derived, log);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    throw DataError(list +
                    ": derived task files are not published upstream — copy them from a Hope "
                    "Lab datasets folder with `hopelab-cli data import DIR`, or fetch from a mirror "
                    "that has them (--mirror URL)");
  }
}

void import_dir(const std::string& src_dir, const std::string& dest_dir, std::function<void(std::string)> log) {
  const fs::path src(src_dir), dest(dest_dir);
  std::error_code ec;
  if (!fs::is_directory(src, ec))
    throw DataError(src_dir +
                    ": not a folder — give a folder laid out like the data dir "
                    "(clinc150/, banking77/, cl_splits/, …)");
  size_t found = 0;
  std::vector<std::string> bad;
  std::vector<const KnownFile*> all;
  for (const auto& f : known_files()) {
    all.push_back(&f);
    const fs::path from = src / f.path, to = dest / f.path;
    const std::string got = digest_or_empty(from);
    if (got.empty()) continue;
    ++found;
    if (got != f.sha256) {
      bad.push_back(from.string() + " (sha256 " + got + ", expected " + f.sha256 + ")");
      continue;
    }
    if (fs::exists(to, ec) && fs::equivalent(from, to, ec)) {
      say(log, "ok     " + f.path + " (already in place)");
      continue;
    }
    fs::create_directories(to.parent_path());
    const fs::path part = to.string() + ".part";
    fs::copy_file(from, part, fs::copy_options::overwrite_existing, ec);
    if (ec)
      throw DataError(part.string() + ": cannot copy (" + ec.message() + ") — check the disk space and permissions");
    check_part(part, from.string(), f);
    rename_into_place(part, to);
    say(log, "copied " + f.path);
  }
  if (!found)
    throw DataError(src_dir +
                    ": no known dataset files found — give a folder laid out like the data "
                    "dir (clinc150/data_full.json, banking77/train.csv, …)");
  complete_derived(dest, all, log);
  if (!bad.empty()) {
    std::string list;
    for (const auto& b : bad) list += "\n  " + b;
    throw DataError(src_dir +
                    ": these files differ from the published ones and were not imported "
                    "— restore them, or copy edited data by hand (loads then warn):" +
                    list);
  }
}

const char* to_string(FileState s) {
  switch (s) {
    case FileState::Ok:
      return "ok";
    case FileState::Mismatch:
      return "mismatch";
    case FileState::Missing:
      break;
  }
  return "missing";
}

std::vector<FileStatus> verify(const std::string& data_dir) {
  std::vector<FileStatus> out;
  for (const auto& f : known_files()) {
    FileStatus s;
    s.path = f.path;
    s.expected_sha256 = f.sha256;
    s.actual_sha256 = digest_or_empty(fs::path(data_dir) / f.path);
    s.state = s.actual_sha256.empty()       ? FileState::Missing
              : s.actual_sha256 == f.sha256 ? FileState::Ok
                                            : FileState::Mismatch;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace hl::data
