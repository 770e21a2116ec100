// PLACEHOLDER Architecture editor (see architecture_editor.h).
#include "ui/editor/architecture_editor.h"

#include <QLabel>
#include <QPlainTextEdit>
#include <QUndoStack>
#include <QVBoxLayout>

#include "engine/spec/spec.h"

namespace hl::ui {

ArchitectureEditor::ArchitectureEditor(QWidget* parent) : QWidget(parent) {
  undo_ = new QUndoStack(this);
  text_ = new QPlainTextEdit(this);
  text_->setObjectName("modelJson");
  status_ = new QLabel(this);
  auto* lay = new QVBoxLayout(this);
  lay->addWidget(new QLabel(tr("Model (JSON) — placeholder for the drag-and-drop editor"), this));
  lay->addWidget(text_, 1);
  lay->addWidget(status_);
  connect(text_, &QPlainTextEdit::textChanged, this, [this] {
    if (updating_) return;
    try {
      spec_["model"] = nlohmann::json::parse(text_->toPlainText().toStdString());
    } catch (const std::exception& e) {
      status_->setText(tr("JSON error: %1").arg(e.what()));
      emit validationChanged(1, 0);
      return;
    }
    revalidate();
    emit specChanged();
  });
  setSpec(hl::spec::preset("transformer"));
}

void ArchitectureEditor::setSpec(const nlohmann::json& spec) {
  spec_ = spec;
  updating_ = true;
  text_->setPlainText(QString::fromStdString(spec_.value("model", nlohmann::json::object()).dump(2)));
  updating_ = false;
  revalidate();
  emit specChanged();
}

nlohmann::json ArchitectureEditor::spec() const { return spec_; }
QUndoStack* ArchitectureEditor::undoStack() const { return undo_; }

void ArchitectureEditor::loadPreset(const QString& name) { setSpec(hl::spec::preset(name.toStdString())); }

void ArchitectureEditor::revalidate() {
  int errors = 0, warnings = 0;
  try {
    for (const auto& i : hl::spec::validate(hl::spec::complete(spec_)).issues) (i.error ? errors : warnings)++;
  } catch (const std::exception& e) {
    errors = 1;
  }
  status_->setText(tr("%1 error(s), %2 warning(s)").arg(errors).arg(warnings));
  emit validationChanged(errors, warnings);
}

}  // namespace hl::ui
