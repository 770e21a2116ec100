// Generated at build time from resources/presets/*.json (cmake/embed_presets.cmake).
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace hl::spec {
// (name, JSON text) in file-name order.
const std::vector<std::pair<std::string, std::string>>& presets_data();
}  // namespace hl::spec
