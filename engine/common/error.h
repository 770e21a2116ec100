// Error types that carry the CLI exit code they map to. Messages name the file/field and the fix.
#pragma once
#include <stdexcept>
#include <string>

namespace hl {

enum class ErrorKind : int {
  Usage = 2,  // bad command line or spec
  Data = 3,   // dataset missing or malformed
  Run = 4,    // run failed or diverged
  Store = 5,  // run database corrupt, foreign or newer
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const { return kind_; }
  int exitCode() const { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
};

struct SpecError : Error {
  explicit SpecError(const std::string& w) : Error(ErrorKind::Usage, w) {}
};
struct DataError : Error {
  explicit DataError(const std::string& w) : Error(ErrorKind::Data, w) {}
};
struct RunError : Error {
  explicit RunError(const std::string& w) : Error(ErrorKind::Run, w) {}
};
struct StoreError : Error {
  explicit StoreError(const std::string& w) : Error(ErrorKind::Store, w) {}
};

}  // namespace hl
