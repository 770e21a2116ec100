#include "engine/common/kinds.h"

#include "engine/common/error.h"

namespace hl {

std::string choices_text(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

void throw_unknown_kind(const std::string& field, std::string_view value, const char* what,
                        const std::vector<std::string>& accepted) {
  throw SpecError(field + ": unknown " + what + " \"" + std::string(value) + "\"; use " + choices_text(accepted));
}

}  // namespace hl
