// The canvas: renders the EditorModel as a vertical pipeline of cards (Embedding → blocks → Norm
// → Pooling → Head), with CMS levels as chips inside their block, validation badges and
// parameter / FLOP counts. Drops from the palette and drags inside the canvas become model edits.
#pragma once
#include <QGraphicsScene>
#include <QPointF>

#include <optional>
#include <vector>

#include "ui/editor/editor_model.h"

class QMimeData;
class QGraphicsLineItem;

namespace hl::ui {

struct Selection {
  enum class Kind { None, Node, Block, Level };
  Kind kind = Kind::None;
  FixedNode node = FixedNode::Embedding;
  int block = -1;
  int level = -1;
  bool operator==(const Selection& o) const {
    return kind == o.kind && (kind != Kind::Node || node == o.node) && block == o.block && level == o.level;
  }
  static Selection ofNode(FixedNode n) { return {Kind::Node, n, -1, -1}; }
  static Selection ofBlock(int b) { return {Kind::Block, FixedNode::Embedding, b, -1}; }
  static Selection ofLevel(int b, int l) { return {Kind::Level, FixedNode::Embedding, b, l}; }
};

class CardItem;
class LevelItem;

class EditorScene : public QGraphicsScene {
  Q_OBJECT

 public:
  explicit EditorScene(EditorModel* model, QObject* parent = nullptr);

  Selection selection() const { return selection_; }
  void setSelection(const Selection& s);
  // Applies a drop of `mime` at `scenePos` (what dropEvent does); false when refused or not ours.
  bool dropMime(const QMimeData* mime, const QPointF& scenePos);
  // The block insertion index for a drop at `scenePos` (0..blockCount).
  int blockSlotAt(const QPointF& scenePos) const;
  // Where a card or level chip sits, for tests and for scrolling to it.
  QRectF blockRect(int block) const;
  QRectF levelRect(int block, int level) const;
  QRectF nodeRect(FixedNode node) const;
  bool canAcceptMime(const QMimeData* mime) const;
  // What a card shows, as text (title, fields, counts, level chips), for tests and accessibility.
  QString cardText(int block) const;
  QString cardText(FixedNode node) const;

 Q_SIGNALS:
  void selectionChanged(const hl::ui::Selection& s);
  void message(const QString& text);  // refusals and hints for a status line

 public Q_SLOTS:
  void rebuild();

 protected:
  void dragEnterEvent(QGraphicsSceneDragDropEvent* e) override;
  void dragMoveEvent(QGraphicsSceneDragDropEvent* e) override;
  void dragLeaveEvent(QGraphicsSceneDragDropEvent* e) override;
  void dropEvent(QGraphicsSceneDragDropEvent* e) override;
  void mousePressEvent(QGraphicsSceneMouseEvent* e) override;
  void mouseMoveEvent(QGraphicsSceneMouseEvent* e) override;
  void mouseReleaseEvent(QGraphicsSceneMouseEvent* e) override;
  void contextMenuEvent(QGraphicsSceneContextMenuEvent* e) override;

 private:
  Selection hitTest(const QPointF& p) const;
  int levelSlotAt(int block, const QPointF& p) const;
  int levelBlockAt(const QPointF& p) const;  // block with levels under p, or -1
  void showIndicator(const QMimeData* mime, const QPointF& p);
  void hideIndicator();
  void startDrag(QWidget* source);
  QString stats(const Stats& s, bool flops = true) const;  // flops: false for the embedding and norm (not estimated)

  EditorModel* model_;
  Selection selection_;
  std::vector<CardItem*> blockCards_;
  std::vector<std::vector<LevelItem*>> levelChips_;
  CardItem* nodes_[4] = {nullptr, nullptr, nullptr, nullptr};
  QGraphicsLineItem* indicator_ = nullptr;
  std::optional<QPointF> pressPos_;
  Selection pressed_;
};

QString formatCount(double n);  // 1234567 -> "1.23M"

}  // namespace hl::ui
