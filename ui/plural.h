// "1 error", "2 errors": English counts without a translation file (Qt's "%n error(s)" prints
// "1 error(s)" until one is loaded).
#pragma once
#include <QString>

namespace hl::ui {

inline QString countOf(int n, const QString& one, const QString& many) {
  return n == 1 ? QStringLiteral("1 %1").arg(one) : QStringLiteral("%1 %2").arg(n).arg(many);
}

}  // namespace hl::ui
