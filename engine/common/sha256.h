// SHA-256 (FIPS 180-4), for dataset checksums and spec hashes. Self-contained; no OpenSSL.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace hl {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  std::string hexDigest();  // finalises; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Hex digest of a file's bytes; throws hl::DataError naming the path if it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace hl
