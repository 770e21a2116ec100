// The Architecture tab: palette | canvas + issue list | inspector, over the spec's "model".
// setSpec() / spec() round-trip exactly: only edits change the JSON.
#pragma once
#include <QWidget>

#include <nlohmann/json.hpp>

class QComboBox;
class QGraphicsView;
class QLabel;
class QTreeWidget;
class QTreeWidgetItem;
class QUndoStack;

namespace hl::ui {

class BlockPalette;
class EditorModel;
class EditorScene;
class Inspector;
struct Selection;

class ArchitectureEditor : public QWidget {
  Q_OBJECT

 public:
  explicit ArchitectureEditor(QWidget* parent = nullptr);
  void setSpec(const nlohmann::json& spec);  // a full spec; the editor edits "model" and keeps the rest
  nlohmann::json spec() const;               // the full spec with the edited model
  QUndoStack* undoStack() const;             // for Edit > Undo/Redo in the main window
  // hl::spec::with_preset: the preset's name, description, model, optimizer and grad_clip (as the
  // CLI's --preset); the experiment and training protocol stay. Undoable; emits presetLoaded.
  void loadPreset(const QString& name);

  // Parts, for tests and for the main window's status bar.
  EditorModel* model() const { return model_; }
  EditorScene* scene() const { return scene_; }
  QGraphicsView* view() const { return view_; }
  Inspector* inspector() const { return inspector_; }
  BlockPalette* palette() const { return palette_; }
  QTreeWidget* issueList() const { return issues_; }
  QLabel* footer() const { return footer_; }
  QLabel* messageLine() const { return message_; }
  QComboBox* presetBox() const { return presets_; }
  // Parameter / FLOP estimates build the model with LibTorch's global random generator: turn them
  // off while a run trains in this process (the counts then show "—" and say why).
  void setEstimatesEnabled(bool on);
  // Deletes / duplicates the selected block (or removes the selected level).
  bool deleteSelected();
  bool duplicateSelected();
  // Ctrl+C / Ctrl+V on the canvas: the selected block or level as JSON (the clipboard also holds
  // it as text); a paste goes after the selection (a level into the selected block).
  bool copySelected();
  bool paste();
  // Up / Down on the canvas: the previous / next card or level chip; Ctrl+Up / Ctrl+Down: move
  // the selected block or level one place.
  void stepSelection(int step);
  bool moveSelected(int step);

 Q_SIGNALS:
  void specChanged();                      // after every edit (including undo/redo)
  void presetLoaded(const QString& name);  // after loadPreset replaced the spec
  void validationChanged(int errors, int warnings);

 private:
  void onModelChanged();
  void onSelection(const Selection& s);
  void onIssueActivated(QTreeWidgetItem* item);
  void showMessage(const QString& text);

  EditorModel* model_;
  EditorScene* scene_;
  QGraphicsView* view_;
  Inspector* inspector_;
  BlockPalette* palette_;
  QTreeWidget* issues_;
  QLabel* footer_;
  QLabel* message_;
  QLabel* paletteHelp_;
  QComboBox* presets_;
};

}  // namespace hl::ui
