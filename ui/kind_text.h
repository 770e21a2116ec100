// A kind (engine/common/kinds.h) as display text: its spec / store spelling.
#pragma once
#include <QString>

#include "engine/common/kinds.h"

namespace hl::ui {

template <class E>
QString kindText(E e) {
  return QString::fromStdString(hl::name(e));
}

}  // namespace hl::ui
