// The inspector: a form over the selected block, level or fixed node. One editor per field,
// chosen by the field's kind (engine/spec/schema.h): spin boxes with the validator's ranges and
// units, combo boxes for choices, check boxes for flags. Every change is one model edit
// (consecutive edits of a field merge into one undo step).
#pragma once
#include <QMap>
#include <QWidget>

#include "engine/spec/schema.h"
#include "ui/editor/editor_scene.h"

class QFormLayout;
class QLabel;
class QVBoxLayout;

namespace hl::ui {

class Inspector : public QWidget {
  Q_OBJECT

 public:
  Inspector(EditorModel* model, QWidget* parent = nullptr);
  void setSelection(const Selection& s);
  Selection selection() const { return selection_; }
  // The editor of a field ("heads", "clock", "d_model", "head.type"); nullptr when not shown.
  QWidget* editorFor(const QString& field) const { return editors_.value(field, nullptr); }
  bool focusField(const QString& field);
  QString title() const;
  QString issuesText() const;  // what the issue label under the form says (plain text)

 public Q_SLOTS:
  void refresh();  // after a model change: update values in place, or rebuild when the fields changed

 private:
  struct Field {
    hl::spec::FieldInfo info;
    QString key;           // "heads", "head.type"
    std::string pointer;   // JSON pointer into the spec
    nlohmann::json value;  // current (completed) value
    QString issue;         // first issue on this field, "" = none
    bool error = false;
  };
  std::vector<Field> collect() const;
  void rebuild();
  void updateHeader();
  void updateIssues();
  void updateLabels(const std::vector<Field>& fields);
  QWidget* makeEditor(const Field& f);
  // Ctrl+Z / Ctrl+Shift+Z in a field undo or redo the spec edit (the editor's undo stack), not the
  // field's own text: every committed field change is one step of that stack.
  bool eventFilter(QObject* watched, QEvent* event) override;
  void setEditorValue(QWidget* w, const Field& f);
  QString signature(const std::vector<Field>& fields) const;

  EditorModel* model_;
  Selection selection_;
  QVBoxLayout* outer_;
  QWidget* body_ = nullptr;
  QLabel* title_ = nullptr;
  QLabel* sub_ = nullptr;
  QLabel* issues_ = nullptr;  // the selection's validation issues, with their messages
  QMap<QString, QWidget*> editors_;
  QMap<QString, QLabel*> labels_;
  QString signature_;
};

}  // namespace hl::ui
