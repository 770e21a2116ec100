// The Architecture editor (ui/editor): model edits and their undo, drops of palette MIME data onto
// the canvas, CMS levels into and out of a block, validation badges, parameter counts against
// describe(), inspector edits, and exact JSON round trips. Offscreen.
#include <QtTest>

#include <QCheckBox>
#include <QClipboard>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QGraphicsItem>
#include <QGraphicsView>
#include <QLabel>
#include <QMimeData>
#include <QSpinBox>
#include <QTreeWidget>
#include <QUndoStack>

#include "engine/spec/fields.h"
#include "engine/spec/spec.h"
#include "engine/train/experiment.h"
#include "ui/editor/architecture_editor.h"
#include "ui/editor/block_catalog.h"
#include "ui/editor/editor_model.h"
#include "ui/editor/editor_scene.h"
#include "ui/editor/inspector.h"
#include "ui/editor/palette.h"

using hl::ui::ArchitectureEditor;
using hl::ui::FixedNode;
using hl::ui::Selection;
using json = nlohmann::json;

namespace {

// Sends drag-enter, drag-move and drop for `mime` at `scenePos` to the canvas viewport, as a
// user's drag would arrive. Returns whether the drop was accepted.
bool dropAt(ArchitectureEditor& ed, const QMimeData* mime, const QPointF& scenePos) {
  QGraphicsView* v = ed.view();
  const QPoint p = v->mapFromScene(scenePos);
  const Qt::DropActions actions = Qt::CopyAction | Qt::MoveAction;
  QDragEnterEvent enter(p, actions, mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(v->viewport(), &enter);
  QDragMoveEvent move(p, actions, mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(v->viewport(), &move);
  QDropEvent drop(QPointF(p), actions, mime, Qt::LeftButton, Qt::NoModifier);
  QCoreApplication::sendEvent(v->viewport(), &drop);
  return drop.isAccepted();
}

std::unique_ptr<QMimeData> paletteMime(ArchitectureEditor& ed, const QString& kind, const QString& key) {
  QTreeWidgetItem* it = ed.palette()->findType(kind, key);
  return std::unique_ptr<QMimeData>(it ? ed.palette()->mimeFor(it) : nullptr);
}

// A point in the gap above block `slot` (or above Norm when slot == block count).
QPointF slotPoint(ArchitectureEditor& ed, int slot) {
  QRectF r = slot < ed.model()->blockCount() ? ed.scene()->blockRect(slot) : ed.scene()->nodeRect(FixedNode::Norm);
  return QPointF(r.center().x(), r.top() - 4);
}

json blocksOf(const ArchitectureEditor& ed) {
  return ed.spec()["model"]["blocks"];
}

std::vector<std::string> types(const ArchitectureEditor& ed) {
  std::vector<std::string> t;
  for (const auto& b : blocksOf(ed)) t.push_back(b["type"]);
  return t;
}

// The tooltip of the card (or level chip) drawn at a scene point.
QString tooltipAt(ArchitectureEditor& ed, const QPointF& p) {
  for (QGraphicsItem* it : ed.scene()->items(p))
    if (!it->toolTip().isEmpty()) return it->toolTip();
  return {};
}

json cmsSpec() {
  json s = hl::spec::preset("transformer");
  s["model"]["blocks"] = json::array({hl::spec::block_defaults("transformer"), hl::spec::block_defaults("cms")});
  return s;
}

}  // namespace

class TestEditor : public QObject {
  Q_OBJECT

 private slots:
  void roundTripIsExactForEveryPresetAndUnknownFields() {
    ArchitectureEditor ed;
    std::vector<json> specs;
    for (const auto& n : hl::spec::preset_names()) specs.push_back(hl::spec::preset(n));
    // partial spec relying on defaults, with fields the engine does not know
    specs.push_back(json::parse(R"({"name": "mine", "x_custom": {"a": [1, 2.5, "z"]},
        "model": {"blocks": [{"type": "cms"}, {"type": "mystery", "width": 3}], "x_note": "keep"},
        "experiment": {"dataset": "clinc150"}})"));
    specs.push_back(json::object());  // everything from the defaults
    for (const auto& s : specs) {
      ed.setSpec(s);
      QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(s.dump()));
      QCOMPARE(ed.undoStack()->count(), 0);
      // looking at every card in the inspector edits nothing
      auto* m = ed.model();
      for (int b = 0; b < m->blockCount(); ++b) {
        ed.scene()->setSelection(Selection::ofBlock(b));
        for (int l = 0; l < m->levelCount(b); ++l) ed.scene()->setSelection(Selection::ofLevel(b, l));
      }
      for (auto n : {FixedNode::Embedding, FixedNode::Norm, FixedNode::Pooling, FixedNode::Head})
        ed.scene()->setSelection(Selection::ofNode(n));
      QCoreApplication::processEvents();
      QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(s.dump()));
      QCOMPARE(ed.undoStack()->count(), 0);
    }
  }

  void addMoveRemoveDuplicateUndoRestoreExactJson() {
    ArchitectureEditor ed;
    QSignalSpy changed(&ed, &ArchitectureEditor::specChanged);
    const json start = hl::spec::preset("transformer");
    ed.setSpec(start);
    auto* m = ed.model();
    std::vector<json> history{ed.spec()};

    QVERIFY(m->insertBlock(1, "titans"));
    history.push_back(ed.spec());
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "titans", "transformer"}));
    QCOMPARE(blocksOf(ed)[1], hl::spec::block_defaults("titans"));

    QVERIFY(m->moveBlock(1, 0));
    history.push_back(ed.spec());
    QCOMPARE(types(ed), (std::vector<std::string>{"titans", "transformer", "transformer"}));

    QVERIFY(m->setValue("/model/blocks/0/chunk", 8));
    QVERIFY(m->duplicateBlock(0));
    history.push_back(ed.spec());
    QCOMPARE(types(ed), (std::vector<std::string>{"titans", "titans", "transformer", "transformer"}));
    QCOMPARE(blocksOf(ed)[1]["chunk"].get<int>(), 8);

    QVERIFY(m->removeBlock(2));
    history.push_back(ed.spec());
    QCOMPARE(types(ed), (std::vector<std::string>{"titans", "titans", "transformer"}));

    // out of range edits are refused with a reason, and change nothing
    QSignalSpy refused(m, &hl::ui::EditorModel::refused);
    QVERIFY(!m->removeBlock(7));
    QVERIFY(!m->moveBlock(-1, 0));
    QCOMPARE(refused.count(), 2);
    QCOMPARE(ed.spec(), history.back());

    // undo walks back through every state exactly (the chunk edit is its own step)
    QCOMPARE(ed.undoStack()->count(), 5);
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), history[3]);
    ed.undoStack()->undo();
    ed.undoStack()->undo();  // duplicate, chunk
    QCOMPARE(ed.spec(), history[2]);
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), history[1]);
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), history[0]);
    QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(start.dump()));
    while (ed.undoStack()->canRedo()) ed.undoStack()->redo();
    QCOMPARE(ed.spec(), history.back());
    QVERIFY(changed.count() >= 10);  // every edit, undo and redo
  }

  void paletteDropsInsertAndCanvasDragsReorder() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    ed.setSpec(hl::spec::preset("transformer"));
    // a palette item carries the type's defaults
    auto titans = paletteMime(ed, "block", "titans");
    QVERIFY(titans);
    QVERIFY(dropAt(ed, titans.get(), slotPoint(ed, 1)));
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "titans", "transformer"}));
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(1));
    auto lstm = paletteMime(ed, "block", "lstm");
    QVERIFY(dropAt(ed, lstm.get(), slotPoint(ed, 3)));  // after the last block
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "titans", "transformer", "lstm"}));
    QVERIFY(dropAt(ed, lstm.get(), slotPoint(ed, 0)));  // first
    QCOMPARE(types(ed).front(), std::string("lstm"));

    // reorder: a block dragged from the canvas (its index) to the gap above block 0
    QMimeData move;
    move.setData(hl::ui::mime::kMoveBlock, "2");  // the titans block
    QVERIFY(dropAt(ed, &move, slotPoint(ed, 0)));
    QCOMPARE(types(ed), (std::vector<std::string>{"titans", "lstm", "transformer", "transformer", "lstm"}));
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(0));
    move.setData(hl::ui::mime::kMoveBlock, "0");  // ... and to the end
    QVERIFY(dropAt(ed, &move, slotPoint(ed, 5)));
    QCOMPARE(types(ed), (std::vector<std::string>{"lstm", "transformer", "transformer", "lstm", "titans"}));

    // a canvas block dropped on the palette is removed
    move.setData(hl::ui::mime::kMoveBlock, "0");
    QVERIFY(ed.palette()->acceptRemoval(&move));
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "transformer", "lstm", "titans"}));

    // foreign data is not accepted
    QMimeData text;
    text.setText("hello");
    QVERIFY(!dropAt(ed, &text, slotPoint(ed, 0)));
    QCOMPARE(int(blocksOf(ed).size()), 4);

    // a head dropped anywhere sets model.head.type
    auto ncm = paletteMime(ed, "head", "ncm");
    QVERIFY(ncm);
    QVERIFY(dropAt(ed, ncm.get(), slotPoint(ed, 2)));
    QCOMPARE(ed.spec()["model"]["head"]["type"].get<std::string>(), std::string("ncm"));
    QCOMPARE(ed.scene()->selection(), Selection::ofNode(FixedNode::Head));
    // fixed nodes are listed but do not drag
    QVERIFY(ed.palette()->findType("fixed", "pooling"));
    QVERIFY(!ed.palette()->mimeFor(ed.palette()->findType("fixed", "pooling")));

    // undo the whole session back to the preset
    while (ed.undoStack()->canUndo()) ed.undoStack()->undo();
    QCOMPARE(ed.spec(), hl::spec::preset("transformer"));
  }

  // Issue 8 item 3: the inspector shows every field of the field table where it applies.
  void inspectorShowsEveryTableField() {
    ArchitectureEditor ed;
    json s = hl::spec::preset("transformer");
    for (const auto& f : hl::spec::section_fields("block"))
      for (const auto& type : f.blocks) {
        s["model"]["blocks"] = json::array({hl::spec::block_defaults(type)});
        ed.setSpec(s);
        ed.scene()->setSelection(Selection::ofBlock(0));
        QVERIFY2(ed.inspector()->editorFor(QString::fromStdString(f.name)), (type + "." + f.name).c_str());
      }
    s["model"]["blocks"] = json::array({hl::spec::block_defaults("cms")});
    ed.setSpec(s);
    ed.scene()->setSelection(Selection::ofLevel(0, 0));
    for (const auto& f : hl::spec::section_fields("level"))
      QVERIFY2(ed.inspector()->editorFor(QString::fromStdString(f.name)), ("level." + f.name).c_str());
    for (const auto& f : hl::spec::section_fields("model")) {  // pooling on its own node, the rest on Embedding
      ed.scene()->setSelection(Selection::ofNode(f.name == "pooling" ? FixedNode::Pooling : FixedNode::Embedding));
      QVERIFY2(ed.inspector()->editorFor(QString::fromStdString(f.name)), ("model." + f.name).c_str());
    }
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Head));
    for (const auto& f : hl::spec::section_fields("model.head"))
      QVERIFY2(ed.inspector()->editorFor(QString::fromStdString("head." + f.name)), ("head." + f.name).c_str());
  }

  // Issue 12 item 8: Ctrl+Z typed in an inspector field undid the field's text, not the edit.
  void ctrlZInAnInspectorFieldUndoesTheSpecEdit() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    QVERIFY(QTest::qWaitForWindowExposed(&ed));
    ed.setSpec(hl::spec::preset("titans"));
    const json before = ed.spec();
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* heads = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QVERIFY(heads);
    heads->setFocus();
    heads->selectAll();
    const int was = heads->value(), now = was == 2 ? 1 : 2;
    QTest::keyClicks(heads, QString::number(now));
    QTest::keyClick(heads, Qt::Key_Return);
    QCOMPARE(blocksOf(ed)[0]["heads"].get<int>(), now);
    QCOMPARE(ed.undoStack()->count(), 1);
    auto* field = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QTest::keyClick(field, Qt::Key_Z, Qt::ControlModifier);
    QTRY_COMPARE(blocksOf(ed)[0]["heads"].get<int>(), was);
    QCOMPARE(ed.spec(), before);
    QTRY_COMPARE(qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"))->value(), was);
    field = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QTest::keyClick(field, Qt::Key_Z, Qt::ControlModifier | Qt::ShiftModifier);  // redo
    QTRY_COMPARE(blocksOf(ed)[0]["heads"].get<int>(), now);
  }

  void keyboardDeletesAndDuplicates() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    QVERIFY(QTest::qWaitForWindowExposed(&ed));
    ed.setSpec(hl::spec::preset("titans"));
    ed.scene()->setSelection(Selection::ofBlock(0));
    ed.view()->setFocus();
    QTest::keyClick(ed.view(), Qt::Key_D, Qt::ControlModifier);
    QCOMPARE(int(blocksOf(ed).size()), 3);
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(1));
    QTest::keyClick(ed.view(), Qt::Key_Delete);
    QCOMPARE(int(blocksOf(ed).size()), 2);
    QCOMPARE(ed.scene()->selection(), Selection());  // a second Del does not hit the neighbour
    QTest::keyClick(ed.view(), Qt::Key_Delete);
    QCOMPARE(int(blocksOf(ed).size()), 2);
    // fixed nodes cannot be deleted: a message says why
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Pooling));
    QTest::keyClick(ed.view(), Qt::Key_Delete);
    QCOMPARE(int(blocksOf(ed).size()), 2);
    QVERIFY(ed.messageLine()->text().contains("always part"));

    // clicks select cards and level chips; Del on a selected level removes that level
    ed.setSpec(cmsSpec());
    QGraphicsView* v = ed.view();
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, v->mapFromScene(ed.scene()->blockRect(0).center()));
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(0));
    QCOMPARE(ed.inspector()->selection(), Selection::ofBlock(0));
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, v->mapFromScene(ed.scene()->levelRect(1, 2).center()));
    QCOMPARE(ed.scene()->selection(), Selection::ofLevel(1, 2));
    QVERIFY(ed.inspector()->editorFor("clock"));
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {},
                      v->mapFromScene(ed.scene()->nodeRect(FixedNode::Head).center()));
    QCOMPARE(ed.scene()->selection(), Selection::ofNode(FixedNode::Head));
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, v->mapFromScene(ed.scene()->levelRect(1, 0).center()));
    v->setFocus();
    QTest::keyClick(v, Qt::Key_Delete);
    QCOMPARE(ed.model()->levelCount(1), 2);
    QCOMPARE(blocksOf(ed)[1]["levels"][0]["clock"].get<int>(), 4);
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(1));  // the level is gone: its block stays selected
    // Del typed in an inspector field edits the field, it does not delete the block
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {}, v->mapFromScene(ed.scene()->blockRect(0).center()));
    auto* heads = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QVERIFY(heads);
    heads->setFocus();
    QTest::keyClick(heads, Qt::Key_Delete);
    QCOMPARE(ed.model()->blockCount(), 2);
    // a canvas block dropped onto the palette (a real drop event) is removed
    QMimeData mv;
    mv.setData(hl::ui::mime::kMoveBlock, "0");
    QWidget* pv = ed.palette()->viewport();
    QPoint at = pv->rect().center();
    QDragEnterEvent enter(at, Qt::MoveAction, &mv, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(pv, &enter);
    QVERIFY(enter.isAccepted());
    QDropEvent drop(QPointF(at), Qt::MoveAction, &mv, Qt::LeftButton, Qt::NoModifier);
    QCoreApplication::sendEvent(pv, &drop);
    QVERIFY(drop.isAccepted());
    QCOMPARE(types(ed), std::vector<std::string>{"cms"});
    ed.undoStack()->undo();
    QCOMPARE(ed.model()->blockCount(), 2);
    // arrows walk the pipeline (levels included); Ctrl+arrows move the selected block or level
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Embedding));
    QTest::keyClick(v, Qt::Key_Down);
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(0));
    QTest::keyClick(v, Qt::Key_Down);
    QTest::keyClick(v, Qt::Key_Down);
    QCOMPARE(ed.scene()->selection(), Selection::ofLevel(1, 0));
    QTest::keyClick(v, Qt::Key_Down, Qt::ControlModifier);
    QCOMPARE(ed.scene()->selection(), Selection::ofLevel(1, 1));
    QCOMPARE(blocksOf(ed)[1]["levels"][1]["clock"].get<int>(), 4);  // the clock-4 level moved down
    QCOMPARE(blocksOf(ed)[1]["levels"][0]["clock"].get<int>(), 16);
    ed.undoStack()->undo();
    ed.scene()->setSelection(Selection::ofBlock(1));
    QTest::keyClick(v, Qt::Key_Up, Qt::ControlModifier);
    QCOMPARE(types(ed), (std::vector<std::string>{"cms", "transformer"}));
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(0));
    QTest::keyClick(v, Qt::Key_Up, Qt::ControlModifier);  // already first: nothing moves
    QCOMPARE(types(ed), (std::vector<std::string>{"cms", "transformer"}));
    ed.undoStack()->undo();
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Head));
    QTest::keyClick(v, Qt::Key_Down);
    QCOMPARE(ed.scene()->selection(), Selection::ofNode(FixedNode::Head));
    // empty canvas clears the selection
    QTest::mouseClick(v->viewport(), Qt::LeftButton, {},
                      v->mapFromScene(ed.scene()->blockRect(0).topRight() + QPointF(30, 0)));
    QCOMPARE(ed.scene()->selection(), Selection());
  }

  void editsStayInteractive() {
    // every edit re-validates and re-describes; an edit of one block must stay quick
    ArchitectureEditor ed;
    json s = hl::spec::preset("titans");
    for (int i = 0; i < 4; ++i) s["model"]["blocks"].push_back(hl::spec::block_defaults(i % 2 ? "cms" : "transformer"));
    ed.setSpec(s);
    QElapsedTimer t;
    t.start();
    for (int k = 0; k < 10; ++k) QVERIFY(ed.model()->setValue("/model/blocks/2/heads", k % 2 ? 4 : 8));
    qint64 perEdit = t.elapsed() / 10;
    t.restart();
    QVERIFY(ed.model()->setValue("/model/d_model", 192));  // changes every block: all re-described
    qint64 wide = t.elapsed();
    qInfo("one-block edit: %lld ms; d_model edit with 6 blocks: %lld ms", perEdit, wide);
    QVERIFY2(perEdit < 250, qPrintable(QString::number(perEdit)));
  }

  void levelsDragIntoAndOutOfACmsBlock() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    const json start = cmsSpec();
    ed.setSpec(start);
    auto* m = ed.model();
    QVERIFY(m->blockHasLevels(1));
    QVERIFY(!m->blockHasLevels(0));
    QCOMPARE(m->levelCount(1), 3);
    auto level = paletteMime(ed, "level", QString());
    QVERIFY(level);

    // onto a block without levels: refused, with a message
    QVERIFY(!dropAt(ed, level.get(), ed.scene()->blockRect(0).center()));
    QVERIFY(ed.messageLine()->text().contains("CMS"));
    QCOMPARE(ed.spec(), start);

    // at the end of the CMS block: a 4th level, clock 4 × the last
    auto endOfLevels = [&] {
      QRectF last = ed.scene()->levelRect(1, m->levelCount(1) - 1);
      return QPointF(last.center().x(), last.bottom() + 2);
    };
    QVERIFY(dropAt(ed, level.get(), endOfLevels()));
    QCOMPARE(m->levelCount(1), 4);
    QCOMPARE(blocksOf(ed)[1]["levels"][3], json({{"clock", 64}, {"lr", 0.0}}));
    QCOMPARE(ed.scene()->selection(), Selection::ofLevel(1, 3));
    // before the first level
    QVERIFY(dropAt(ed, level.get(), ed.scene()->levelRect(1, 0).topLeft() + QPointF(10, 1)));
    QCOMPARE(m->levelCount(1), 5);
    QVERIFY(dropAt(ed, level.get(), endOfLevels()));
    QCOMPARE(m->levelCount(1), 6);
    // a 7th is refused and the message says the limit
    QVERIFY(!dropAt(ed, level.get(), endOfLevels()));
    QCOMPARE(m->levelCount(1), 6);
    QVERIFY2(ed.messageLine()->text().contains("at most 6"), qPrintable(ed.messageLine()->text()));

    // reorder: level 6 (clock 256) dragged above level 2 (clock 1: the level dropped first)
    json before = blocksOf(ed)[1]["levels"];
    QMimeData mv;
    mv.setData(hl::ui::mime::kMoveLevel, "1,5");
    QVERIFY(dropAt(ed, &mv, ed.scene()->levelRect(1, 1).topLeft() + QPointF(10, 1)));
    json after = blocksOf(ed)[1]["levels"];
    QCOMPARE(after[1], before[5]);
    QCOMPARE(after[2], before[1]);
    QCOMPARE(ed.scene()->selection(), Selection::ofLevel(1, 1));
    // clocks are no longer monotone: the validator warns on that level
    QVERIFY(m->warningCount() > 0);
    ed.undoStack()->undo();
    QCOMPARE(blocksOf(ed)[1]["levels"], before);

    // dragged out onto empty canvas: removed, down to one level
    for (int n = 6; n > 1; --n) {
      QRectF card = ed.scene()->blockRect(1);
      mv.setData(hl::ui::mime::kMoveLevel, "1,0");
      QVERIFY(dropAt(ed, &mv, QPointF(card.right() + 25, card.center().y())));
      QCOMPARE(m->levelCount(1), n - 1);
    }
    QCOMPARE(blocksOf(ed)[1]["levels"], json::array({before[5]}));
    // the last level stays: refused with the reason
    QVERIFY(!dropAt(ed, &mv, QPointF(ed.scene()->blockRect(1).right() + 25, ed.scene()->blockRect(1).center().y())));
    QVERIFY(!ed.palette()->acceptRemoval(&mv));
    QCOMPARE(m->levelCount(1), 1);
    QVERIFY(ed.messageLine()->text().contains("at least 1"));

    // everything undoes back to the start, exactly
    while (ed.undoStack()->canUndo()) ed.undoStack()->undo();
    QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(start.dump()));
  }

  // Issue 12 item 8: a level dropped between clocks 4 and 16 got 64 (4 x the last) and a
  // non-monotone warning; it gets the geometric mean of its neighbours.
  void newLevelClockFitsWhereItLands() {
    ArchitectureEditor ed;
    ed.setSpec(cmsSpec());  // cms levels with clocks 1, 4, 16
    auto* m = ed.model();
    auto clocks = [&] {
      std::vector<int> c;
      const json levels = blocksOf(ed)[1]["levels"];  // a copy: the range must outlive the loop
      for (const auto& L : levels) c.push_back(L["clock"].get<int>());
      return c;
    };
    QVERIFY(m->insertLevel(1, 2));  // between 4 and 16
    QCOMPARE(clocks(), (std::vector<int>{1, 4, 8, 16}));
    QVERIFY(m->insertLevel(1, 4));  // after the slowest
    QCOMPARE(clocks(), (std::vector<int>{1, 4, 8, 16, 64}));
    QCOMPARE(m->warningCount(), 0);
    ed.undoStack()->undo();
    ed.undoStack()->undo();
    json s = cmsSpec();
    s["model"]["blocks"][1]["levels"] = json::array({{{"clock", 8}}, {{"clock", 32}}});
    ed.setSpec(s);
    QVERIFY(m->insertLevel(1, 0));  // before the fastest: a quarter of it
    QCOMPARE(clocks(), (std::vector<int>{2, 8, 32}));
  }

  void levelMovesBetweenBlocksAndOffThePalette() {
    ArchitectureEditor ed;
    json s = cmsSpec();
    s["model"]["blocks"].push_back(hl::spec::block_defaults("cms"));
    ed.setSpec(s);
    auto* m = ed.model();
    QVERIFY(m->moveLevel(1, 0, 2, 3));  // block 1's clock-1 level to the end of block 2
    QCOMPARE(m->levelCount(1), 2);
    QCOMPARE(m->levelCount(2), 4);
    QCOMPARE(blocksOf(ed)[2]["levels"][3]["clock"].get<int>(), 1);
    QMimeData mv;
    mv.setData(hl::ui::mime::kMoveLevel, "2,3");
    QVERIFY(ed.palette()->acceptRemoval(&mv));
    QCOMPARE(m->levelCount(2), 3);
    QVERIFY(!m->insertLevel(0, 0));  // a transformer has no levels
    ed.undoStack()->undo();
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), s);
  }

  void validationBadgeAppearsOnTheBadFieldAndGoesOnUndo() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    QVERIFY(QTest::qWaitForWindowExposed(&ed));
    QSignalSpy validation(&ed, &ArchitectureEditor::validationChanged);
    ed.setSpec(cmsSpec());
    QCOMPARE(validation.last().at(0).toInt(), 0);
    auto* m = ed.model();
    QVERIFY(!tooltipAt(ed, ed.scene()->blockRect(0).center()).contains("does not divide"));

    QVERIFY(m->setValue("/model/blocks/0/heads", 3));  // 3 does not divide d_model 128
    QCOMPARE(validation.last().at(0).toInt(), 1);
    auto issues = m->issuesFor(0);
    QCOMPARE(int(issues.size()), 1);
    QCOMPARE(QString::fromStdString(issues[0].path), QStringLiteral("model.blocks[0].heads"));
    QVERIFY(tooltipAt(ed, ed.scene()->blockRect(0).center()).contains("does not divide"));
    QVERIFY(m->issuesFor(1).empty());
    // the list entry names the field; clicking it selects the block and focuses the field
    QList<QTreeWidgetItem*> found = ed.issueList()->findItems("model.blocks[0].heads", Qt::MatchExactly, 1);
    QCOMPARE(found.size(), 1);
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Embedding));
    ed.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&ed));
    Q_EMIT ed.issueList()->itemClicked(found[0], 1);
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(0));
    QWidget* heads = ed.inspector()->editorFor("heads");
    QVERIFY(heads);
    QVERIFY(heads->hasFocus());
    QVERIFY2(ed.inspector()->issuesText().contains("3 does not divide model.d_model 128"),
             qPrintable(ed.inspector()->issuesText()));
    // the model cannot be built: counts show "—"
    QVERIFY(!m->totalStats().ok);
    QVERIFY(!m->blockStats(0).ok);
    QVERIFY(m->blockStats(1).ok);
    QVERIFY(ed.footer()->text().contains("—"));

    ed.undoStack()->undo();
    QCOMPARE(validation.last().at(0).toInt(), 0);
    QVERIFY(ed.inspector()->issuesText().isEmpty());
    QVERIFY(m->issuesFor(0).empty());
    QVERIFY(!tooltipAt(ed, ed.scene()->blockRect(0).center()).contains("does not divide"));
    QVERIFY(ed.issueList()->findItems("model.blocks[0].heads", Qt::MatchExactly, 1).isEmpty());

    // a negative clock: an error on the level chip (and counted on its block)
    QVERIFY(m->setValue("/model/blocks/1/levels/1/clock", -4));
    int levelErrors = 0;
    for (const auto& i : m->issuesFor(1, 1)) levelErrors += i.error && i.path == "model.blocks[1].levels[1].clock";
    QCOMPARE(levelErrors, 1);  // plus a warning: the clocks are no longer monotone
    QVERIFY(tooltipAt(ed, ed.scene()->levelRect(1, 1).center()).contains("levels[1].clock"));
    QVERIFY(m->errorCount() >= 1);
    ed.undoStack()->undo();
    QCOMPARE(m->errorCount(), 0);

    // model-level paths land on the fixed nodes
    QVERIFY(m->setValue("/model/d_model", 4));
    QVERIFY(!m->issuesFor(FixedNode::Embedding).empty());
    QVERIFY(tooltipAt(ed, ed.scene()->nodeRect(FixedNode::Embedding).center()).contains("model.d_model"));
  }

  void issuePathsMapToTheirTargets() {
    auto t = hl::ui::issueTarget("model.blocks[12].levels[3].clock");
    QCOMPARE(t.block, 12);
    QCOMPARE(t.level, 3);
    QCOMPARE(QString::fromStdString(t.field), QStringLiteral("clock"));
    t = hl::ui::issueTarget("model.blocks[2]");
    QCOMPARE(t.block, 2);
    QCOMPARE(t.level, -1);
    t = hl::ui::issueTarget("model.head.ncm_scale");
    QVERIFY(t.node && *t.node == FixedNode::Head);
    QCOMPARE(QString::fromStdString(t.field), QStringLiteral("ncm_scale"));
    t = hl::ui::issueTarget("model.max_len");
    QVERIFY(t.node && *t.node == FixedNode::Embedding);
    t = hl::ui::issueTarget("optimizer.lr");
    QCOMPARE(t.block, -1);
    QVERIFY(!t.node);
  }

  void parameterCountsMatchDescribe() {
    ArchitectureEditor ed;
    std::vector<json> specs;
    for (const auto& n : hl::spec::preset_names()) specs.push_back(hl::spec::preset(n));
    specs.push_back(cmsSpec());
    for (const auto& s : specs) {
      ed.setSpec(s);
      auto* m = ed.model();
      json d = hl::train::describe(s);
      auto t = m->totalStats();
      QVERIFY(t.ok);
      QCOMPARE(t.params, d["params"].get<long long>());
      QCOMPARE(t.flops, d["flops_per_sample"].get<double>());
      // the parts add up to the whole: embedding + blocks + norm + head
      long long sum = m->nodeStats(FixedNode::Embedding).params + m->nodeStats(FixedNode::Norm).params +
                      m->nodeStats(FixedNode::Head).params;
      double flops = m->nodeStats(FixedNode::Head).flops;
      for (int b = 0; b < m->blockCount(); ++b) {
        QVERIFY(m->blockStats(b).ok);
        QVERIFY(m->blockStats(b).params > 0);
        sum += m->blockStats(b).params;
        flops += m->blockStats(b).flops;
      }
      QCOMPARE(sum, t.params);
      QVERIFY(std::fabs(flops - t.flops) <= 1e-9 * t.flops);
      QVERIFY2(ed.footer()->text().contains(hl::ui::formatCount(double(t.params))), qPrintable(ed.footer()->text()));
    }
    // paused while a run trains: no model is built, and the footer says why
    QSignalSpy changed(&ed, &ArchitectureEditor::specChanged);
    ed.setEstimatesEnabled(false);
    QVERIFY(!ed.model()->totalStats().ok);
    QVERIFY(!ed.model()->blockStats(0).ok);
    QVERIFY(ed.footer()->text().contains("paused"));
    QVERIFY2(ed.scene()->cardText(0).contains("paused"), qPrintable(ed.scene()->cardText(0)));
    QCOMPARE(ed.undoStack()->count(), 0);  // not an edit
    ed.setEstimatesEnabled(true);
    QVERIFY(ed.model()->totalStats().ok);
    QVERIFY(changed.count() >= 2);
    QVERIFY(!ed.scene()->cardText(0).contains("paused"));
    QVERIFY(
        ed.scene()->cardText(0).contains(hl::ui::formatCount(double(ed.model()->blockStats(0).params)) + " params"));
    // two identical blocks count the same
    ed.setSpec(hl::spec::preset("titans"));
    QCOMPARE(ed.model()->blockStats(0).params, ed.model()->blockStats(1).params);
    QCOMPARE(hl::ui::formatCount(1234567), QStringLiteral("1.23M"));
    QCOMPARE(hl::ui::formatCount(4200), QStringLiteral("4.2k"));
  }

  void inspectorEditsChangeTheSpecAndUndo() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    const json start = cmsSpec();
    ed.setSpec(start);
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* heads = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QVERIFY(heads);
    QCOMPARE(heads->value(), 4);
    QCOMPARE(heads->minimum(), 1);  // the validator's range
    QCOMPARE(heads->maximum(), 64);
    heads->setValue(8);
    QCOMPARE(blocksOf(ed)[0]["heads"].get<int>(), 8);
    QCoreApplication::processEvents();
    heads = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"));
    QVERIFY(heads);
    QCOMPARE(heads->value(), 8);
    heads->setValue(16);  // the same field again: merged into one undo step
    QCOMPARE(ed.undoStack()->count(), 1);
    auto* dropout = qobject_cast<QDoubleSpinBox*>(ed.inspector()->editorFor("dropout"));
    QVERIFY(dropout);
    QCOMPARE(dropout->maximum(), 0.9);
    dropout->setValue(0.25);
    QCOMPARE(blocksOf(ed)[0]["dropout"].get<double>(), 0.25);
    QCOMPARE(ed.undoStack()->count(), 2);

    ed.scene()->setSelection(Selection::ofBlock(1));
    auto* variant = qobject_cast<QComboBox*>(ed.inspector()->editorFor("variant"));
    QVERIFY(variant);
    variant->setCurrentText("independent");
    QCOMPARE(blocksOf(ed)[1]["variant"].get<std::string>(), std::string("independent"));

    ed.scene()->setSelection(Selection::ofLevel(1, 2));
    auto* clock = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("clock"));
    QVERIFY(clock);
    clock->setValue(32);
    QCOMPARE(blocksOf(ed)[1]["levels"][2]["clock"].get<int>(), 32);

    ed.scene()->setSelection(Selection::ofNode(FixedNode::Head));
    auto* head = qobject_cast<QComboBox*>(ed.inspector()->editorFor("head.type"));
    QVERIFY(head);
    head->setCurrentText("ncm");
    QCOMPARE(ed.spec()["model"]["head"]["type"].get<std::string>(), std::string("ncm"));

    ed.scene()->setSelection(Selection::ofNode(FixedNode::Embedding));
    auto* d = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("d_model"));
    QVERIFY(d);
    d->setValue(256);
    QCOMPARE(ed.spec()["model"]["d_model"].get<int>(), 256);

    QCOMPARE(ed.undoStack()->count(), 6);
    // editing a field back to where it started leaves no undo step
    d = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("d_model"));
    d->setValue(128);
    QCOMPARE(ed.undoStack()->count(), 5);
    QCOMPARE(ed.spec()["model"]["d_model"].get<int>(), 128);

    // model.pooling is the Pooling card's field, and the card says which
    QVERIFY(ed.scene()->cardText(FixedNode::Pooling).contains("masked mean"));
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Pooling));
    auto* pooling = qobject_cast<QComboBox*>(ed.inspector()->editorFor("pooling"));
    QVERIFY(pooling);
    pooling->setCurrentText("last");
    QCOMPARE(ed.spec()["model"]["pooling"].get<std::string>(), std::string("last"));
    QVERIFY2(ed.scene()->cardText(FixedNode::Pooling).contains("last real token"),
             qPrintable(ed.scene()->cardText(FixedNode::Pooling)));

    QCOMPARE(ed.undoStack()->count(), 6);
    while (ed.undoStack()->canUndo()) ed.undoStack()->undo();
    QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(start.dump()));
    // the inspector shows the restored value
    ed.scene()->setSelection(Selection::ofBlock(0));
    QCOMPARE(qobject_cast<QSpinBox*>(ed.inspector()->editorFor("heads"))->value(), 4);
  }

  void partialBlocksGetOnlyWhatIsEdited() {
    ArchitectureEditor ed;
    const json s = json::parse(R"({"model": {"blocks": [{"type": "cms"}]}})");
    ed.setSpec(s);
    QCOMPARE(ed.model()->levelCount(0), 3);
    ed.scene()->setSelection(Selection::ofLevel(0, 1));
    auto* clock = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("clock"));
    QVERIFY(clock);
    QCOMPARE(clock->value(), 4);
    clock->setValue(5);
    json levels = hl::spec::block_defaults("cms")["levels"];
    levels[1]["clock"] = 5;
    QCOMPARE(ed.spec()["model"]["blocks"][0], json({{"type", "cms"}, {"levels", levels}}));
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* mult = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("ffn_mult"));
    QVERIFY(mult);
    mult->setValue(3);
    QCOMPARE(ed.spec()["model"]["blocks"][0]["ffn_mult"].get<int>(), 3);
    QVERIFY(!ed.spec()["model"]["blocks"][0].contains("variant"));  // untouched default stays implicit
    // a spec with no blocks at all: the first edit writes the default blocks out
    ed.setSpec(json::object());
    QCOMPARE(ed.model()->blockCount(), 2);
    QVERIFY(ed.model()->insertBlock(2, "lstm"));
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "transformer", "lstm"}));
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), json::object());
    // double click on a palette block appends it
    QTreeWidgetItem* retnet = ed.palette()->findType("block", "retnet");
    QVERIFY(retnet);
    Q_EMIT ed.palette()->itemDoubleClicked(retnet, 0);
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "transformer", "retnet"}));
  }

  void cardsShowTheKeyFields() {
    ArchitectureEditor ed;
    json s = cmsSpec();
    s["model"]["blocks"][0]["heads"] = 8;
    s["model"]["blocks"][1]["levels"][2]["lr"] = 0.01;
    ed.setSpec(s);
    QString t = ed.scene()->cardText(0);
    QVERIFY2(t.contains("Transformer") && t.contains("8 heads") && t.contains("FFN ×2"), qPrintable(t));
    QString c = ed.scene()->cardText(1);
    QVERIFY2(c.contains("CMS") && c.contains("sequential"), qPrintable(c));
    QVERIFY2(c.contains("L1 · clock 1 · base lr") && c.contains("L3 · clock 16 · lr 0.01"), qPrintable(c));
    QVERIFY(ed.scene()->cardText(FixedNode::Embedding).contains("d_model 128"));
    QVERIFY(ed.scene()->cardText(FixedNode::Head).contains("softmax"));
    QVERIFY(ed.scene()->cardText(7).isEmpty());
  }

  void theFieldBeingEditedKeepsItsWidget() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    ed.activateWindow();
    QVERIFY(QTest::qWaitForWindowActive(&ed));
    ed.setSpec(hl::spec::preset("titans"));
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* chunk = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("chunk"));
    QVERIFY(chunk);
    chunk->setFocus();
    QVERIFY(chunk->hasFocus());
    QTest::keyClick(chunk, Qt::Key_Up);  // one step: the spec changes, the form is not rebuilt
    QCoreApplication::processEvents();
    QCOMPARE(blocksOf(ed)[0]["chunk"].get<int>(), 5);
    QCOMPARE(ed.inspector()->editorFor("chunk"), static_cast<QWidget*>(chunk));
    QVERIFY(chunk->hasFocus());
    QTest::keyClick(chunk, Qt::Key_Up);
    QCOMPARE(blocksOf(ed)[0]["chunk"].get<int>(), 6);
    QCOMPARE(ed.undoStack()->count(), 1);  // merged
    // the other fields still follow the model (undo shows the old value)
    ed.undoStack()->undo();
    QCoreApplication::processEvents();
    QCOMPARE(qobject_cast<QSpinBox*>(ed.inspector()->editorFor("chunk"))->value(), 4);
    // the fixed palette entries select their card
    QTreeWidgetItem* norm = ed.palette()->findType("fixed", "norm");
    Q_EMIT ed.palette()->itemClicked(norm, 0);
    QCOMPARE(ed.scene()->selection(), Selection::ofNode(FixedNode::Norm));
  }

  void copyAndPasteBlocksAndLevels() {
    ArchitectureEditor ed;
    ed.resize(1300, 900);
    ed.show();
    ed.setSpec(cmsSpec());
    QVERIFY(ed.model()->setValue("/model/blocks/0/heads", 8));
    QGraphicsView* v = ed.view();
    ed.scene()->setSelection(Selection::ofBlock(0));
    QTest::keyClick(v, Qt::Key_C, Qt::ControlModifier);
    QVERIFY(QGuiApplication::clipboard()->text().contains("\"heads\": 8"));
    ed.scene()->setSelection(Selection::ofBlock(1));
    QTest::keyClick(v, Qt::Key_V, Qt::ControlModifier);
    QCOMPARE(types(ed), (std::vector<std::string>{"transformer", "cms", "transformer"}));
    QCOMPARE(blocksOf(ed)[2], blocksOf(ed)[0]);
    QCOMPARE(ed.scene()->selection(), Selection::ofBlock(2));
    // a level goes into the selected CMS block, after the selected level
    ed.scene()->setSelection(Selection::ofLevel(1, 2));
    QTest::keyClick(v, Qt::Key_C, Qt::ControlModifier);
    ed.scene()->setSelection(Selection::ofLevel(1, 0));
    QTest::keyClick(v, Qt::Key_V, Qt::ControlModifier);
    QCOMPARE(ed.model()->levelCount(1), 4);
    QCOMPARE(blocksOf(ed)[1]["levels"][1]["clock"].get<int>(), 16);
    ed.scene()->setSelection(Selection::ofBlock(0));  // not a CMS block: refused
    QVERIFY(!ed.paste());
    QVERIFY(ed.messageLine()->text().contains("CMS levels"));
    // JSON text from elsewhere pastes as a block; other text is refused with a message
    QGuiApplication::clipboard()->setText(R"({"type": "retnet", "heads": 2})");
    QVERIFY(ed.paste());
    QCOMPARE(blocksOf(ed)[1], json({{"type", "retnet"}, {"heads", 2}}));
    QGuiApplication::clipboard()->setText("hello");
    QVERIFY(!ed.paste());
    QVERIFY(ed.messageLine()->text().contains("no block"));
    ed.scene()->setSelection(Selection::ofNode(FixedNode::Norm));
    QVERIFY(!ed.copySelected());
  }

  void blockTypeChangesKeepSharedFields() {
    ArchitectureEditor ed;
    json s = hl::spec::preset("transformer");
    s["model"]["blocks"][0]["heads"] = 8;
    s["model"]["blocks"][0]["dropout"] = 0.2;
    ed.setSpec(s);
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* type = qobject_cast<QComboBox*>(ed.inspector()->editorFor("type"));
    QVERIFY(type);
    QCOMPARE(type->currentData().toString(), QStringLiteral("transformer"));
    int titans = type->findData("titans");
    QVERIFY(titans >= 0);
    type->setCurrentIndex(titans);
    Q_EMIT type->activated(titans);
    json expected = hl::spec::block_defaults("titans");
    expected["heads"] = 8;
    expected["dropout"] = 0.2;
    expected["ffn_mult"] = s["model"]["blocks"][0]["ffn_mult"];  // shared too (the preset's 4)
    QCOMPARE(blocksOf(ed)[0], expected);
    QVERIFY(ed.model()->changeBlockType(0, "lstm"));  // nothing shared but the type
    QCOMPARE(blocksOf(ed)[0], hl::spec::block_defaults("lstm"));
    QVERIFY(!ed.model()->changeBlockType(0, "no-such-type"));
    ed.undoStack()->undo();
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), s);
  }

  void malformedSpecsShowErrorsAndStayEditable() {
    ArchitectureEditor ed;
    QSignalSpy validation(&ed, &ArchitectureEditor::validationChanged);
    for (const char* text :
         {R"({"model": 5})", R"({"model": {"blocks": 7}})", R"({"model": {"head": "x"}})",
          R"({"model": {"blocks": [3, {"type": 4}, {"heads": 2}]}})",
          R"({"model": {"blocks": [{"type": "cms", "levels": "many"}]}})", R"({"model": {"d_model": "wide"}})"}) {
      const json s = json::parse(text);
      ed.setSpec(s);
      QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(s.dump()));
      QVERIFY2(validation.last().at(0).toInt() > 0, text);
      QVERIFY2(!ed.issueList()->findItems("error", Qt::MatchExactly, 0).isEmpty(), text);
      // every card can be looked at, and a block can still be added and undone
      for (int b = 0; b < ed.model()->blockCount(); ++b) ed.scene()->setSelection(Selection::ofBlock(b));
      ed.scene()->setSelection(Selection::ofNode(FixedNode::Head));
      QVERIFY2(ed.model()->insertBlock(0, "lstm"), text);
      QCOMPARE(QString::fromStdString(ed.spec()["model"]["blocks"][0]["type"].get<std::string>()),
               QStringLiteral("lstm"));
      ed.undoStack()->undo();
      QCOMPARE(QString::fromStdString(ed.spec().dump()), QString::fromStdString(s.dump()));
    }
    // a non-object spec is refused and the current one kept
    json before = ed.spec();
    ed.setSpec(json::array({1, 2}));
    QCOMPARE(ed.spec(), before);
    QVERIFY(ed.messageLine()->text().contains("JSON object"));
  }

  void titansBoolAndOutOfRangeValuesShowTheTruth() {
    ArchitectureEditor ed;
    json s = hl::spec::preset("titans");
    s["model"]["blocks"][0]["chunk"] = 9999;  // beyond the validator's 4096: an error, shown as is
    ed.setSpec(s);
    ed.scene()->setSelection(Selection::ofBlock(0));
    auto* chunk = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("chunk"));
    QVERIFY(chunk);
    QCOMPARE(chunk->value(), 9999);
    QVERIFY(!ed.model()->issuesFor(0).empty());
    auto* sg = qobject_cast<QCheckBox*>(ed.inspector()->editorFor("stop_grad_writes"));
    QVERIFY(sg);
    QVERIFY(!sg->isChecked());
    sg->setChecked(true);
    QCOMPARE(blocksOf(ed)[0]["stop_grad_writes"].get<bool>(), true);
    QCOMPARE(ed.spec()["model"]["blocks"][0]["chunk"].get<int>(), 9999);  // untouched fields stay
  }

  void unknownBlockTypesEditGenerically() {
    ArchitectureEditor ed;
    json s = hl::spec::preset("transformer");
    s["model"]["blocks"][1] = {{"type", "mystery"}, {"width", 3}, {"gain", 0.5}, {"on", true}};
    ed.setSpec(s);
    QCOMPARE(ed.spec(), s);
    auto issues = ed.model()->issuesFor(1);
    QVERIFY(!issues.empty());
    QCOMPARE(QString::fromStdString(issues[0].path), QStringLiteral("model.blocks[1].type"));
    QVERIFY(!ed.model()->blockStats(1).ok);  // describe() cannot build it
    ed.scene()->setSelection(Selection::ofBlock(1));
    auto* width = qobject_cast<QSpinBox*>(ed.inspector()->editorFor("width"));
    QVERIFY(width);
    width->setValue(5);
    QCOMPARE(blocksOf(ed)[1]["width"].get<int>(), 5);
    QVERIFY(qobject_cast<QDoubleSpinBox*>(ed.inspector()->editorFor("gain")));
    QVERIFY(qobject_cast<QCheckBox*>(ed.inspector()->editorFor("on")));
    QCOMPARE(hl::ui::blockInfo("mystery").title, QStringLiteral("mystery"));
    QCOMPARE(hl::ui::blockInfo("titans").title, QStringLiteral("Titans"));
  }

  void presetsLoadUndoablyAndKeepTheExperiment() {
    ArchitectureEditor ed;
    json s = hl::spec::preset("transformer");
    s["experiment"]["dataset"] = "clinc150";
    s["training"]["epochs"] = 2;
    ed.setSpec(s);
    QVERIFY(ed.presetBox()->count() == int(hl::spec::preset_names().size()) + 1);
    ed.loadPreset("titans");
    QCOMPARE(ed.spec()["model"], hl::spec::preset("titans")["model"]);
    QCOMPARE(ed.spec()["name"].get<std::string>(), std::string("titans"));
    QCOMPARE(ed.spec()["experiment"]["dataset"].get<std::string>(), std::string("clinc150"));
    QCOMPARE(ed.spec()["training"]["epochs"].get<int>(), 2);
    QCOMPARE(ed.undoStack()->count(), 1);
    ed.loadPreset("no-such-preset");
    QVERIFY(ed.messageLine()->text().contains("unknown preset"));
    QCOMPARE(ed.undoStack()->count(), 1);
    ed.undoStack()->undo();
    QCOMPARE(ed.spec(), s);
  }

  void screenshot() {
    const QByteArray path = qgetenv("HL_EDITOR_SCREENSHOT");
    if (path.isEmpty()) QSKIP("set HL_EDITOR_SCREENSHOT=/path.png to save a picture of the editor");
    if (qEnvironmentVariableIsSet("HL_EDITOR_DARK")) {  // a dark palette, to check the colours
      QPalette p;
      p.setColor(QPalette::Window, QColor(45, 45, 48));
      p.setColor(QPalette::WindowText, QColor(220, 220, 220));
      p.setColor(QPalette::Base, QColor(30, 30, 32));
      p.setColor(QPalette::AlternateBase, QColor(50, 50, 55));
      p.setColor(QPalette::Text, QColor(220, 220, 220));
      p.setColor(QPalette::Button, QColor(55, 55, 60));
      p.setColor(QPalette::ButtonText, QColor(220, 220, 220));
      p.setColor(QPalette::Mid, QColor(100, 100, 105));
      p.setColor(QPalette::PlaceholderText, QColor(150, 150, 155));
      p.setColor(QPalette::Highlight, QColor(60, 140, 230));
      QApplication::setPalette(p);
    }
    ArchitectureEditor ed;
    ed.resize(1400, 900);
    ed.show();
    QVERIFY(QTest::qWaitForWindowExposed(&ed));
    ed.setSpec(hl::spec::preset("titans"));
    auto cms = paletteMime(ed, "block", "cms");
    QVERIFY(dropAt(ed, cms.get(), slotPoint(ed, 2)));
    ed.model()->setValue("/model/blocks/0/heads", 3);
    // HL_EDITOR_SELECT=2 selects the CMS block instead of the first Titans block
    ed.scene()->setSelection(Selection::ofBlock(qEnvironmentVariableIntValue("HL_EDITOR_SELECT")));
    QCoreApplication::processEvents();
    QVERIFY(ed.grab().save(QString::fromLocal8Bit(path)));
  }
};

QTEST_MAIN(TestEditor)
#include "test_editor.moc"
