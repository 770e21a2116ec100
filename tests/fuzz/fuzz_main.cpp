// One libFuzzer executable per target: HL_FUZZ_TARGET names it (tests/fuzz/CMakeLists.txt).
// An exception that escapes the target (anything but the clean hl::Error it expects) aborts,
// which libFuzzer reports as a crash and saves the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "tests/fuzz/targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const hl::fuzz::TargetFn run = [] {
    const hl::fuzz::TargetFn fn = hl::fuzz::find_target(HL_FUZZ_TARGET);
    if (!fn) {
      std::fprintf(stderr, "no fuzz target '%s'\n", HL_FUZZ_TARGET);
      std::abort();
    }
    return fn;
  }();
  run(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
