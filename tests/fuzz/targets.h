// Fuzz targets for the torch-free parsers (docs/RELIABILITY.md). Each takes arbitrary bytes and
// drives one parser the way the product does. A clean hl::Error whose message names the file is
// the expected outcome for bad input; anything else is a finding: a crash, a sanitizer report, an
// exception of another type, or a broken invariant (reported by throwing InvariantBroken).
// Used by the libFuzzer executables (fuzz_main.cpp, clang) and by test_fuzz_regressions, which
// replays tests/fuzz/regressions/ and tests/fuzz/seeds/ in the normal build.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace hl::fuzz {

struct InvariantBroken : std::logic_error {
  using std::logic_error::logic_error;
};

using TargetFn = void (*)(std::string_view bytes);

struct Target {
  const char* name;
  TargetFn run;
};

// csv, jsonl, clinc, folder, spec, sweep, store.
const std::vector<Target>& targets();
TargetFn find_target(std::string_view name);  // nullptr if unknown

// Multi-file inputs (clinc, folder): sections separated by this line.
constexpr std::string_view kSection = "\n--8<--\n";
std::vector<std::string_view> sections(std::string_view bytes);

// A private scratch folder for this process (created on first use, removed at exit).
const std::string& scratch_dir();

}  // namespace hl::fuzz
