// PLACEHOLDER Architecture editor: a JSON text view of the spec's "model" with the real editor's
// public contract, so the app builds before the drag-and-drop editor is merged.
#pragma once
#include <QWidget>
#include <nlohmann/json.hpp>

class QPlainTextEdit;
class QUndoStack;
class QLabel;

namespace hl::ui {

class ArchitectureEditor : public QWidget {
  Q_OBJECT
 public:
  explicit ArchitectureEditor(QWidget* parent = nullptr);
  void setSpec(const nlohmann::json& spec);  // full spec; edits "model"
  nlohmann::json spec() const;               // full spec with edited model
  QUndoStack* undoStack() const;
  void loadPreset(const QString& name);

 signals:
  void specChanged();
  void validationChanged(int errors, int warnings);

 private:
  void revalidate();
  nlohmann::json spec_;
  QPlainTextEdit* text_ = nullptr;
  QLabel* status_ = nullptr;
  QUndoStack* undo_ = nullptr;
  bool updating_ = false;
};

}  // namespace hl::ui
