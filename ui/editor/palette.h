// The block palette: block types from the engine (hl::spec::block_types()), a CMS Level, the head
// types, and the fixed nodes (listed for reference, not draggable). Items drag out as the
// editor's MIME types as copies (the palette never loses an entry); dragging a block or level from
// the canvas back onto the palette removes it.
#pragma once
#include <QTreeWidget>

namespace hl::ui {

class EditorModel;

class BlockPalette : public QTreeWidget {
  Q_OBJECT

 public:
  BlockPalette(EditorModel* model, QWidget* parent = nullptr);
  // The MIME data an item drags out as (nullptr for group headers and fixed nodes).
  QMimeData* mimeFor(QTreeWidgetItem* item) const;
  QTreeWidgetItem* findType(const QString& kind, const QString& key) const;  // kind: block, level, head, fixed
  bool acceptRemoval(const QMimeData* mime);  // a canvas block/level dropped here: remove it

 Q_SIGNALS:
  void message(const QString& text);

 protected:
  QStringList mimeTypes() const override;
  QMimeData* mimeData(const QList<QTreeWidgetItem*>& items) const override;
  Qt::DropActions supportedDropActions() const override;  // Move: canvas items dropped here
  void startDrag(Qt::DropActions supported) override;     // drags out as Copy
  void dragEnterEvent(QDragEnterEvent* e) override;
  void dragMoveEvent(QDragMoveEvent* e) override;
  void dropEvent(QDropEvent* e) override;

 private:
  EditorModel* model_;
};

}  // namespace hl::ui
