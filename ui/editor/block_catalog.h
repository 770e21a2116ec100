// Friendly names, one-line descriptions and accent colours of block types, and the MIME types of
// the editor's drags. Unknown types get their type name and a generic line.
#pragma once
#include <QColor>
#include <QString>

#include <string>

namespace hl::ui {

struct BlockInfo {
  QString title;        // "Titans"
  QString description;  // "Titans long-term memory + MLP"
  QColor accent;        // a mid-tone hue readable on light and dark cards
};
BlockInfo blockInfo(const std::string& type);

namespace mime {
inline constexpr char kNewBlock[] = "application/x-hopelab-block";        // block JSON
inline constexpr char kMoveBlock[] = "application/x-hopelab-move-block";  // "index"
inline constexpr char kNewLevel[] = "application/x-hopelab-level";        // level JSON or empty
inline constexpr char kMoveLevel[] = "application/x-hopelab-move-level";  // "block,level"
inline constexpr char kHead[] = "application/x-hopelab-head";             // head type
}  // namespace mime

}  // namespace hl::ui
