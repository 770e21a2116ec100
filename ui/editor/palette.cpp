#include "ui/editor/palette.h"

#include <QDrag>
#include <QDragEnterEvent>
#include <QHeaderView>
#include <QMimeData>

#include "engine/common/kinds.h"
#include "engine/spec/schema.h"
#include "engine/spec/spec.h"
#include "ui/editor/block_catalog.h"
#include "ui/editor/editor_model.h"

using json = nlohmann::json;

namespace hl::ui {

namespace {
constexpr int kKindRole = Qt::UserRole + 1;  // "block", "level", "head", "fixed"
constexpr int kKeyRole = Qt::UserRole + 2;   // type name
}  // namespace

BlockPalette::BlockPalette(EditorModel* model, QWidget* parent) : QTreeWidget(parent), model_(model) {
  setHeaderHidden(true);
  setColumnCount(1);
  setRootIsDecorated(false);
  setIndentation(12);
  setDragEnabled(true);
  setAcceptDrops(true);
  setDropIndicatorShown(false);
  setDragDropMode(QAbstractItemView::DragDrop);
  setSelectionMode(QAbstractItemView::SingleSelection);

  auto group = [this](const QString& title) {
    auto* g = new QTreeWidgetItem(this, {title});
    QFont f = g->font(0);
    f.setBold(true);
    g->setFont(0, f);
    g->setFlags(Qt::ItemIsEnabled);
    g->setExpanded(true);
    return g;
  };
  auto item = [](QTreeWidgetItem* g, const QString& text, const QString& tip, const QString& kind, const QString& key,
                 bool draggable) {
    auto* it = new QTreeWidgetItem(g, {text});
    it->setToolTip(0, tip);
    it->setStatusTip(0, tip);
    it->setData(0, kKindRole, kind);
    it->setData(0, kKeyRole, key);
    it->setFlags(draggable ? Qt::ItemIsEnabled | Qt::ItemIsSelectable | Qt::ItemIsDragEnabled
                           : Qt::ItemIsEnabled | Qt::ItemIsSelectable);
    return it;
  };

  auto* blocks = group(tr("Blocks"));
  for (const auto& t : hl::spec::block_types()) {
    BlockInfo info = blockInfo(t);
    auto* it = item(blocks, info.title,
                    info.description + "\n" + tr("type: %1 — drag onto the canvas").arg(QString::fromStdString(t)),
                    "block", QString::fromStdString(t), true);
    QPixmap swatch(10, 10);
    swatch.fill(info.accent);
    it->setIcon(0, QIcon(swatch));
  }
  bool anyLevels = false;
  for (const auto& t : hl::spec::block_types()) {
    json d = hl::spec::block_defaults(t);
    anyLevels = anyLevels || (d.contains("levels") && d["levels"].is_array());
  }
  if (anyLevels) {
    auto* cms = group(tr("CMS"));
    item(
        cms, tr("Level"),
        tr("A CMS level (clock and lr): drag into a block with levels; at most %1 per block").arg(hl::spec::kMaxLevels),
        "level", QString(), true);
  }
  auto* heads = group(tr("Head"));
  for (const auto& h : hl::spec::model_field("head.type").choices)
    item(heads, tr("Head: %1").arg(QString::fromStdString(h)),
         (hl::try_parse<hl::HeadType>(h) == hl::HeadType::Softmax ? tr("A trained linear classifier")
          : hl::try_parse<hl::HeadType>(h) == hl::HeadType::Ncm
              ? tr("Cosine nearest-class-mean (the network is not trained)")
          : hl::try_parse<hl::HeadType>(h) == hl::HeadType::Memory
              ? tr("A linear associative memory written by DGD on its own clock (the network still trains)")
              : QString()) +
             "\n" + tr("drop anywhere on the canvas to set model.head.type"),
         "head", QString::fromStdString(h), true);
  auto* fixed = group(tr("Fixed (always present)"));
  item(fixed, tr("Embedding"), tr("Token embedding + positions: always first; click it on the canvas to edit"), "fixed",
       "embedding", false);
  item(fixed, tr("Norm"), tr("Final LayerNorm: always after the blocks"), "fixed", "norm", false);
  item(fixed, tr("Pooling"),
       tr("Pooling (mean over the real tokens, or the last real token: model.pooling): always before the head"),
       "fixed", "pooling", false);
}

QTreeWidgetItem* BlockPalette::findType(const QString& kind, const QString& key) const {
  for (int g = 0; g < topLevelItemCount(); ++g)
    for (int i = 0; i < topLevelItem(g)->childCount(); ++i) {
      auto* it = topLevelItem(g)->child(i);
      if (it->data(0, kKindRole).toString() == kind && (key.isNull() || it->data(0, kKeyRole).toString() == key))
        return it;
    }
  return nullptr;
}

QMimeData* BlockPalette::mimeFor(QTreeWidgetItem* it) const {
  if (!it) return nullptr;
  const QString kind = it->data(0, kKindRole).toString();
  const std::string key = it->data(0, kKeyRole).toString().toStdString();
  auto* m = new QMimeData;
  if (kind == "block") {
    json d = hl::spec::block_defaults(key);
    if (d.empty()) d = {{"type", key}};
    m->setData(mime::kNewBlock, QByteArray::fromStdString(d.dump()));
  } else if (kind == "level") {
    m->setData(mime::kNewLevel, QByteArray());
  } else if (kind == "head") {
    m->setData(mime::kHead, QByteArray::fromStdString(key));
  } else {
    delete m;
    return nullptr;
  }
  m->setText(it->text(0));
  return m;
}

QStringList BlockPalette::mimeTypes() const {
  return {mime::kNewBlock, mime::kNewLevel, mime::kHead, mime::kMoveBlock, mime::kMoveLevel};
}

QMimeData* BlockPalette::mimeData(const QList<QTreeWidgetItem*>& items) const {
  return items.isEmpty() ? nullptr : mimeFor(items.first());
}

Qt::DropActions BlockPalette::supportedDropActions() const {
  return Qt::MoveAction;
}

// QAbstractItemView::startDrag offers the view's drop actions (Move) and removes the dragged item
// when the target accepts a move: the palette entry vanished after every drag onto the canvas.
// Entries are templates, so they drag out as copies and are never removed.
void BlockPalette::startDrag(Qt::DropActions) {
  QTreeWidgetItem* it = currentItem();
  QMimeData* m = mimeFor(it);
  if (!m) return;
  auto* drag = new QDrag(this);
  drag->setMimeData(m);
  if (!it->icon(0).isNull()) drag->setPixmap(it->icon(0).pixmap(16, 16));
  drag->exec(Qt::CopyAction, Qt::CopyAction);
}

void BlockPalette::dragEnterEvent(QDragEnterEvent* e) {
  if (e->mimeData()->hasFormat(mime::kMoveBlock) || e->mimeData()->hasFormat(mime::kMoveLevel)) {
    e->setDropAction(Qt::MoveAction);
    e->accept();
  } else
    e->ignore();
}

void BlockPalette::dragMoveEvent(QDragMoveEvent* e) {
  if (e->mimeData()->hasFormat(mime::kMoveBlock) || e->mimeData()->hasFormat(mime::kMoveLevel)) {
    e->setDropAction(Qt::MoveAction);
    e->accept();
  } else
    e->ignore();
}

bool BlockPalette::acceptRemoval(const QMimeData* m) {
  if (m->hasFormat(mime::kMoveBlock)) {
    bool ok = false;
    int b = QString::fromUtf8(m->data(mime::kMoveBlock)).toInt(&ok);
    return ok && model_->removeBlock(b);
  }
  if (m->hasFormat(mime::kMoveLevel)) {
    QStringList p = QString::fromUtf8(m->data(mime::kMoveLevel)).split(',');
    return p.size() == 2 && model_->removeLevel(p[0].toInt(), p[1].toInt());
  }
  return false;
}

void BlockPalette::dropEvent(QDropEvent* e) {
  if (acceptRemoval(e->mimeData())) {
    e->setDropAction(Qt::MoveAction);
    e->accept();
    Q_EMIT message(tr("Removed (Ctrl+Z restores it)"));
  } else
    e->ignore();
}

}  // namespace hl::ui
