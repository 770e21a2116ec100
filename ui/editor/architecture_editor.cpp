#include "ui/editor/architecture_editor.h"
#include "ui/plural.h"

#include <QAction>
#include <QClipboard>
#include <QGuiApplication>
#include <QComboBox>
#include <QEvent>
#include <QGraphicsView>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QKeyEvent>
#include <QWheelEvent>
#include <QLabel>
#include <QMimeData>
#include <QScrollArea>
#include <QSplitter>
#include <QTimer>
#include <QToolButton>
#include <QTreeWidget>
#include <QUndoStack>
#include <QVBoxLayout>

#include <map>
#include <memory>

#include "engine/spec/spec.h"
#include "ui/editor/block_catalog.h"
#include "ui/editor/editor_model.h"
#include "ui/editor/editor_scene.h"
#include "ui/editor/inspector.h"
#include "ui/editor/palette.h"

using json = nlohmann::json;

namespace hl::ui {

namespace {

// The canvas view: Del / Backspace delete the selection, Ctrl+D duplicates it. Handled as keys
// of the view (not window shortcuts) so that Del inside an inspector spin box edits the number.
class CanvasView : public QGraphicsView {
 public:
  CanvasView(QGraphicsScene* s, ArchitectureEditor* editor) : QGraphicsView(s), editor_(editor) {
    setRenderHints(QPainter::Antialiasing | QPainter::TextAntialiasing);
    setAlignment(Qt::AlignHCenter | Qt::AlignTop);
    setAcceptDrops(true);
    setFocusPolicy(Qt::StrongFocus);
    setToolTip(QString());
  }

 protected:
  static bool ours(const QKeyEvent* k) {
    return k->key() == Qt::Key_Delete || k->key() == Qt::Key_Backspace || k->matches(QKeySequence::Copy) ||
           k->matches(QKeySequence::Paste) || (k->key() == Qt::Key_D && (k->modifiers() & Qt::ControlModifier));
  }
  bool event(QEvent* e) override {
    if (e->type() == QEvent::ShortcutOverride && ours(static_cast<QKeyEvent*>(e))) {
      e->accept();  // we handle it as a key press, before any window shortcut
      return true;
    }
    return QGraphicsView::event(e);
  }
  void keyPressEvent(QKeyEvent* k) override {
    if (k->key() == Qt::Key_D && (k->modifiers() & Qt::ControlModifier)) {
      editor_->duplicateSelected();
      return k->accept();
    }
    if (k->key() == Qt::Key_Delete || k->key() == Qt::Key_Backspace) {
      editor_->deleteSelected();
      return k->accept();
    }
    if (k->matches(QKeySequence::Copy)) {
      editor_->copySelected();
      return k->accept();
    }
    if (k->matches(QKeySequence::Paste)) {
      editor_->paste();
      return k->accept();
    }
    if (k->key() == Qt::Key_Up || k->key() == Qt::Key_Down) {
      int step = k->key() == Qt::Key_Up ? -1 : 1;
      if (k->modifiers() & Qt::ControlModifier)
        editor_->moveSelected(step);
      else
        editor_->stepSelection(step);
      return k->accept();
    }
    QGraphicsView::keyPressEvent(k);
  }
  void wheelEvent(QWheelEvent* w) override {
    if (!(w->modifiers() & Qt::ControlModifier)) return QGraphicsView::wheelEvent(w);
    // Ctrl + wheel zooms, between 40 % and 250 %
    qreal f = w->angleDelta().y() > 0 ? 1.15 : 1 / 1.15;
    qreal now = transform().m11();
    if (now * f < 0.4 || now * f > 2.5) return w->accept();
    scale(f, f);
    w->accept();
  }

 private:
  ArchitectureEditor* editor_;
};

QString q(const std::string& s) {
  return QString::fromStdString(s);
}

}  // namespace

ArchitectureEditor::ArchitectureEditor(QWidget* parent) : QWidget(parent) {
  model_ = new EditorModel(this);
  scene_ = new EditorScene(model_, this);
  view_ = new CanvasView(scene_, this);
  inspector_ = new Inspector(model_, this);
  palette_ = new BlockPalette(model_, this);

  // toolbar: presets, undo/redo, duplicate/delete
  presets_ = new QComboBox(this);
  presets_->addItem(tr("Load preset…"));
  for (const auto& n : hl::spec::preset_names()) {
    presets_->addItem(q(n), q(n));
    presets_->setItemData(presets_->count() - 1, q(hl::spec::preset_description(n)), Qt::ToolTipRole);
  }
  presets_->setToolTip(
      tr("Load a built-in preset as the CLI's --preset does: its model, name, description, optimizer and "
         "gradient clipping replace the current ones; the experiment (dataset, strategy, seeds) and the "
         "training protocol (epochs, batch size, limits) are kept. Undoable."));
  connect(presets_, &QComboBox::activated, this, [this](int i) {
    QString name = presets_->itemData(i).toString();
    if (!name.isEmpty()) loadPreset(name);
    presets_->setCurrentIndex(0);
  });
  auto tool = [this](QAction* a) {
    auto* b = new QToolButton(this);
    b->setDefaultAction(a);
    b->setToolButtonStyle(Qt::ToolButtonTextOnly);
    return b;
  };
  // short button texts; what would be undone is in the tooltip
  auto* undo = new QAction(tr("Undo"), this);
  auto* redo = new QAction(tr("Redo"), this);
  QUndoStack* stack = model_->undoStack();
  connect(undo, &QAction::triggered, stack, &QUndoStack::undo);
  connect(redo, &QAction::triggered, stack, &QUndoStack::redo);
  auto sync = [undo, redo, stack] {
    undo->setEnabled(stack->canUndo());
    redo->setEnabled(stack->canRedo());
    undo->setToolTip(stack->canUndo() ? tr("Undo: %1").arg(stack->undoText()) : tr("Nothing to undo"));
    redo->setToolTip(stack->canRedo() ? tr("Redo: %1").arg(stack->redoText()) : tr("Nothing to redo"));
  };
  connect(stack, &QUndoStack::indexChanged, this, sync);
  connect(stack, &QUndoStack::cleanChanged, this, sync);
  sync();
  auto* dup = new QAction(tr("Duplicate"), this);
  dup->setToolTip(tr("Duplicate the selected block (Ctrl+D on the canvas)"));
  connect(dup, &QAction::triggered, this, &ArchitectureEditor::duplicateSelected);
  auto* del = new QAction(tr("Delete"), this);
  del->setToolTip(tr("Delete the selected block or level (Del on the canvas)"));
  connect(del, &QAction::triggered, this, &ArchitectureEditor::deleteSelected);
  auto* bar = new QHBoxLayout;
  bar->addWidget(presets_);
  bar->addSpacing(12);
  for (QAction* a : {undo, redo, dup, del}) bar->addWidget(tool(a));
  bar->addStretch(1);
  message_ = new QLabel(this);
  message_->setForegroundRole(QPalette::PlaceholderText);
  bar->addWidget(message_);

  // left: palette + the hovered item's description
  auto* left = new QWidget(this);
  auto* lv = new QVBoxLayout(left);
  lv->setContentsMargins(0, 0, 0, 0);
  lv->addWidget(palette_, 1);
  paletteHelp_ =
      new QLabel(tr("Drag a block onto the canvas; drag Level into a CMS block; drop a head anywhere."), left);
  paletteHelp_->setWordWrap(true);
  paletteHelp_->setForegroundRole(QPalette::PlaceholderText);
  lv->addWidget(paletteHelp_);
  connect(palette_, &QTreeWidget::currentItemChanged, this, [this](QTreeWidgetItem* it) {
    if (it && !it->toolTip(0).isEmpty()) paletteHelp_->setText(it->toolTip(0));
  });
  connect(palette_, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* it) {
    // double click: add at the end of the pipeline (a level: into the selected block)
    std::unique_ptr<QMimeData> m(palette_->mimeFor(it));
    if (!m) return;
    QPointF p;
    Selection s = scene_->selection();
    if (m->hasFormat(mime::kNewLevel)) {
      int b = s.block;
      if (b < 0 || !model_->blockHasLevels(b)) return showMessage(tr("Select a block with CMS levels first"));
      QRectF r = scene_->blockRect(b);
      p = QPointF(r.center().x(), r.bottom() - 2);
    } else if (m->hasFormat(mime::kNewBlock)) {
      QRectF r = scene_->nodeRect(FixedNode::Norm);
      p = QPointF(r.center().x(), r.top() - 1);
    }
    scene_->dropMime(m.get(), p);
  });
  connect(palette_, &BlockPalette::message, this, &ArchitectureEditor::showMessage);
  palette_->setCurrentItem(nullptr);
  connect(palette_, &QTreeWidget::itemClicked, this, [this](QTreeWidgetItem* it) {
    // the fixed entries select their card
    static const std::map<QString, FixedNode> fixed = {
        {"embedding", FixedNode::Embedding}, {"norm", FixedNode::Norm}, {"pooling", FixedNode::Pooling}};
    for (const auto& [key, node] : fixed)
      if (palette_->findType("fixed", key) == it) {
        scene_->setSelection(Selection::ofNode(node));
        view_->ensureVisible(scene_->nodeRect(node));
      }
  });

  // centre: canvas over the issue list
  issues_ = new QTreeWidget(this);
  issues_->setColumnCount(3);
  issues_->setHeaderLabels({tr("Severity"), tr("Field"), tr("Message")});
  issues_->setRootIsDecorated(false);
  issues_->header()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
  issues_->header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
  issues_->header()->setStretchLastSection(true);
  connect(issues_, &QTreeWidget::itemClicked, this, [this](QTreeWidgetItem* it) { onIssueActivated(it); });
  connect(issues_, &QTreeWidget::itemActivated, this, [this](QTreeWidgetItem* it) { onIssueActivated(it); });
  auto* centre = new QSplitter(Qt::Vertical, this);
  centre->addWidget(view_);
  centre->addWidget(issues_);
  centre->setStretchFactor(0, 4);
  centre->setStretchFactor(1, 1);

  auto* scroll = new QScrollArea(this);
  scroll->setWidget(inspector_);
  scroll->setWidgetResizable(true);
  scroll->setMinimumWidth(260);

  auto* split = new QSplitter(Qt::Horizontal, this);
  split->addWidget(left);
  split->addWidget(centre);
  split->addWidget(scroll);
  split->setStretchFactor(0, 0);
  split->setStretchFactor(1, 1);
  split->setStretchFactor(2, 0);
  split->setSizes({200, 520, 300});

  footer_ = new QLabel(this);
  footer_->setTextInteractionFlags(Qt::TextSelectableByMouse);

  auto* v = new QVBoxLayout(this);
  v->setContentsMargins(6, 6, 6, 6);
  v->addLayout(bar);
  v->addWidget(split, 1);
  v->addWidget(footer_);

  connect(model_, &EditorModel::changed, this, &ArchitectureEditor::onModelChanged);
  connect(model_, &EditorModel::refused, this, &ArchitectureEditor::showMessage);
  connect(scene_, &EditorScene::message, this, &ArchitectureEditor::showMessage);
  connect(scene_, &EditorScene::selectionChanged, this, &ArchitectureEditor::onSelection);
  onModelChanged();
}

void ArchitectureEditor::setSpec(const nlohmann::json& spec) {
  model_->setSpec(spec);
}
nlohmann::json ArchitectureEditor::spec() const {
  return model_->spec();
}
QUndoStack* ArchitectureEditor::undoStack() const {
  return model_->undoStack();
}

void ArchitectureEditor::loadPreset(const QString& name) {
  if (model_->loadPreset(name.toStdString())) {
    showMessage(tr("Loaded preset %1").arg(name));
    Q_EMIT presetLoaded(name);
  }
}

void ArchitectureEditor::setEstimatesEnabled(bool on) {
  model_->setEstimatesEnabled(on);
}

bool ArchitectureEditor::deleteSelected() {
  Selection s = scene_->selection();
  // afterwards: the level's block, or nothing, so that a second Del does not hit a neighbour
  if (s.kind == Selection::Kind::Block) {
    if (!model_->removeBlock(s.block)) return false;
    scene_->setSelection({});
    return true;
  }
  if (s.kind == Selection::Kind::Level) {
    if (!model_->removeLevel(s.block, s.level)) return false;
    scene_->setSelection(Selection::ofBlock(s.block));
    return true;
  }
  if (s.kind == Selection::Kind::Node)
    showMessage(tr("Embedding, Norm, Pooling and Head are always part of the model"));
  return false;
}

namespace {
// Cards and level chips in the order the canvas shows them.
std::vector<Selection> pipelineOrder(const EditorModel* m) {
  std::vector<Selection> out{Selection::ofNode(FixedNode::Embedding)};
  for (int b = 0; b < m->blockCount(); ++b) {
    out.push_back(Selection::ofBlock(b));
    for (int l = 0; l < m->levelCount(b); ++l) out.push_back(Selection::ofLevel(b, l));
  }
  for (auto n : {FixedNode::Norm, FixedNode::Pooling, FixedNode::Head}) out.push_back(Selection::ofNode(n));
  return out;
}
}  // namespace

bool ArchitectureEditor::copySelected() {
  Selection s = scene_->selection();
  json item;
  auto* mime = new QMimeData;
  if (s.kind == Selection::Kind::Block) {
    item = model_->block(s.block);
    mime->setData(mime::kNewBlock, QByteArray::fromStdString(item.dump()));
  } else if (s.kind == Selection::Kind::Level) {
    item = model_->level(s.block, s.level);
    mime->setData(mime::kNewLevel, QByteArray::fromStdString(item.dump()));
  } else {
    delete mime;
    showMessage(tr("Select a block or a level to copy"));
    return false;
  }
  mime->setText(q(item.dump(2)));  // as JSON for a text editor
  QGuiApplication::clipboard()->setMimeData(mime);
  return true;
}

bool ArchitectureEditor::paste() {
  const QMimeData* m = QGuiApplication::clipboard()->mimeData();
  if (!m) return false;
  Selection s = scene_->selection();
  json item;
  bool level = m->hasFormat(mime::kNewLevel);
  if (m->hasFormat(mime::kNewBlock) || level) {
    item = json::parse(m->data(level ? mime::kNewLevel : mime::kNewBlock).toStdString(), nullptr, false);
  } else if (m->hasText()) {  // JSON text of a block, e.g. copied from a spec file
    item = json::parse(m->text().toStdString(), nullptr, false);
    level = item.is_object() && !item.contains("type") && item.contains("clock");
  }
  if (item.is_discarded() || !item.is_object()) {
    showMessage(tr("The clipboard holds no block or level"));
    return false;
  }
  if (level) {
    int b = s.block;
    if (b < 0 || !model_->blockHasLevels(b)) {
      showMessage(tr("Select a block with CMS levels to paste a level into"));
      return false;
    }
    int at = s.kind == Selection::Kind::Level ? s.level + 1 : model_->levelCount(b);
    if (!model_->insertLevel(b, at, item)) return false;
    scene_->setSelection(Selection::ofLevel(b, at));
    return true;
  }
  int at = s.kind == Selection::Kind::Block || s.kind == Selection::Kind::Level ? s.block + 1 : model_->blockCount();
  std::string type = item.value("type", "");
  if (!model_->insertBlockJson(at, item, tr("Paste %1 block").arg(blockInfo(type).title))) return false;
  scene_->setSelection(Selection::ofBlock(at));
  return true;
}

void ArchitectureEditor::stepSelection(int step) {
  auto order = pipelineOrder(model_);
  int at = -1;
  for (size_t i = 0; i < order.size(); ++i)
    if (order[i] == scene_->selection()) at = int(i);
  int next = at < 0 ? (step > 0 ? 0 : int(order.size()) - 1) : std::clamp(at + step, 0, int(order.size()) - 1);
  scene_->setSelection(order[next]);
  QRectF r = order[next].kind == Selection::Kind::Block   ? scene_->blockRect(order[next].block)
             : order[next].kind == Selection::Kind::Level ? scene_->levelRect(order[next].block, order[next].level)
                                                          : scene_->nodeRect(order[next].node);
  view_->ensureVisible(r);
}

bool ArchitectureEditor::moveSelected(int step) {
  Selection s = scene_->selection();
  if (s.kind == Selection::Kind::Block) {
    int to = s.block + step;
    if (to < 0 || to >= model_->blockCount() || !model_->moveBlock(s.block, to)) return false;
    scene_->setSelection(Selection::ofBlock(to));
    return true;
  }
  if (s.kind == Selection::Kind::Level) {
    int to = s.level + step;
    if (to < 0 || to >= model_->levelCount(s.block) || !model_->moveLevel(s.block, s.level, s.block, to)) return false;
    scene_->setSelection(Selection::ofLevel(s.block, to));
    return true;
  }
  return false;
}

bool ArchitectureEditor::duplicateSelected() {
  Selection s = scene_->selection();
  if (s.kind == Selection::Kind::Block) {
    if (!model_->duplicateBlock(s.block)) return false;
    scene_->setSelection(Selection::ofBlock(s.block + 1));
    return true;
  }
  if (s.kind == Selection::Kind::Level) {
    if (!model_->insertLevel(s.block, s.level + 1, model_->level(s.block, s.level))) return false;
    scene_->setSelection(Selection::ofLevel(s.block, s.level + 1));
    return true;
  }
  showMessage(tr("Select a block to duplicate"));
  return false;
}

void ArchitectureEditor::showMessage(const QString& text) {
  message_->setText(text);
  message_->setToolTip(text);
  // a message is news for a while, then goes (unless another replaced it)
  QTimer::singleShot(8000, message_, [label = message_, text] {
    if (label->text() == text) label->clear();
  });
}

void ArchitectureEditor::onSelection(const Selection& s) {
  inspector_->setSelection(s);
  QRectF r = s.kind == Selection::Kind::Block   ? scene_->blockRect(s.block)
             : s.kind == Selection::Kind::Level ? scene_->levelRect(s.block, s.level)
             : s.kind == Selection::Kind::Node  ? scene_->nodeRect(s.node)
                                                : QRectF();
  if (!r.isEmpty()) view_->ensureVisible(r, 20, 20);
}

void ArchitectureEditor::onModelChanged() {
  // keep the selection when it still exists (the scene drops it otherwise)
  scene_->setSelection(scene_->selection());
  if (!(inspector_->selection() == scene_->selection()))
    inspector_->setSelection(scene_->selection());
  else
    inspector_->refresh();

  issues_->clear();
  const QColor err(211, 47, 47), warn(200, 130, 0);
  for (const auto& i : model_->validation().issues) {
    auto* it = new QTreeWidgetItem(
        issues_, {i.error ? tr("error") : tr("warning"), q(i.path.empty() ? "(spec)" : i.path), q(i.message)});
    it->setForeground(0, i.error ? err : warn);
    it->setData(0, Qt::UserRole, q(i.path));
    it->setToolTip(2, q(i.message));
  }
  int errors = model_->errorCount(), warnings = model_->warningCount();
  if (model_->validation().issues.empty()) {
    auto* it = new QTreeWidgetItem(issues_, {tr("ok"), QString(), tr("The spec is valid")});
    it->setFlags(Qt::ItemIsEnabled);
  }

  Stats t = model_->totalStats();
  QString total = !model_->estimatesEnabled()
                      ? tr("<b>—</b> parameters · <b>—</b> FLOPs (estimates paused while a run trains)")
                  : t.ok ? tr("<b>%1</b> parameters · <b>%2</b> FLOPs per sample")
                               .arg(formatCount(double(t.params)), formatCount(t.flops))
                         : tr("<b>—</b> parameters · <b>—</b> FLOPs (the model cannot be built as it is)");
  QString ctx;
  if (model_->seqLen() > 0)
    ctx = tr(" · length %1 · vocabulary %2 · %3 classes")
              .arg(model_->seqLen())
              .arg(model_->vocabSize())
              .arg(model_->numClasses());
  QString state =
      errors ? QStringLiteral("<span style='color:#d32f2f'>%1</span>").arg(countOf(errors, tr("error"), tr("errors")))
             : tr("no errors");
  footer_->setText(
      tr("Total: %1%2 &nbsp;|&nbsp; %3, %4").arg(total, ctx, state, countOf(warnings, tr("warning"), tr("warnings"))));
  Q_EMIT specChanged();
  Q_EMIT validationChanged(errors, warnings);
}

void ArchitectureEditor::onIssueActivated(QTreeWidgetItem* item) {
  if (!item) return;
  std::string path = item->data(0, Qt::UserRole).toString().toStdString();
  IssueTarget t = issueTarget(path);
  QString field = q(t.field);
  if (t.block >= 0) {
    if (t.level >= 0) {
      scene_->setSelection(Selection::ofLevel(t.block, t.level));
    } else {
      scene_->setSelection(Selection::ofBlock(t.block));
    }
    view_->ensureVisible(t.level >= 0 ? scene_->levelRect(t.block, t.level) : scene_->blockRect(t.block));
  } else if (t.node) {
    scene_->setSelection(Selection::ofNode(*t.node));
    if (*t.node == FixedNode::Head && !field.isEmpty()) field = "head." + field;
    view_->ensureVisible(scene_->nodeRect(*t.node));
  } else {
    return;
  }
  inspector_->setSelection(scene_->selection());
  if (!field.isEmpty()) inspector_->focusField(field);
}

}  // namespace hl::ui
