// A combo box of runs (label, id) whose selection survives a new list when the run shown is still
// offered: the run selector of the Compare tab's per-run views (attribution, ablation).
#pragma once
#include <QComboBox>
#include <QList>
#include <QPair>
#include <QString>

namespace hl::ui {

class RunPicker : public QComboBox {
 public:
  using QComboBox::QComboBox;
  void setRuns(const QList<QPair<qint64, QString>>& runs) {
    const qint64 was = selectedRun();
    clear();
    for (const auto& [id, label] : runs) addItem(label, id);
    selectRun(was);
  }
  qint64 selectedRun() const { return currentData().toLongLong(); }
  void selectRun(qint64 id) {
    const int i = findData(id);
    if (i >= 0) setCurrentIndex(i);
  }
};

}  // namespace hl::ui
