#include "ui/editor/editor_scene.h"

#include <QApplication>
#include <QDrag>
#include <QFontMetricsF>
#include <QGraphicsLineItem>
#include <QGraphicsSceneContextMenuEvent>
#include <QGraphicsSceneDragDropEvent>
#include <QGraphicsSceneMouseEvent>
#include <QGraphicsView>
#include <QMenu>
#include <QMimeData>
#include <QPainter>
#include <QPainterPath>
#include <QStyleOptionGraphicsItem>

#include <cmath>

#include "engine/common/kinds.h"
#include "engine/spec/schema.h"
#include "ui/editor/block_catalog.h"

using json = nlohmann::json;

namespace hl::ui {

namespace {
constexpr qreal kCardWidth = 340;
constexpr qreal kGap = 30;
constexpr qreal kPad = 8;
constexpr qreal kStripe = 6;

const QColor kErrorColor(211, 47, 47);     // red badge, white text: readable on light and dark cards
const QColor kWarningColor(240, 170, 20);  // amber badge, black text

QString numberText(const json& v) {
  if (v.is_number_float()) {
    double x = v.get<double>();
    return QString::number(x, 'g', 4);
  }
  if (v.is_string()) return QString::fromStdString(v.get<std::string>());
  return QString::fromStdString(v.dump());
}

// The key fields of a block as short phrases.
QStringList blockSummary(const json& b) {
  QStringList out;
  if (!b.is_object()) return out;
  // the most telling fields first, then the rest in key order
  static const std::vector<std::string> first = {"heads",    "chunk",    "hidden", "variant", "ffn_mult",
                                                 "inner_lr", "momentum", "retain", "dropout", "stop_grad_writes"};
  // (comparisons, not value(): a malformed field must not throw)
  auto kind = [&](const char* key) { return b.contains(key) && b[key].is_string() ? b[key].get<std::string>() : ""; };
  const bool selfmod = hl::try_parse<hl::BlockType>(kind("type")) == hl::BlockType::Hope &&
                       (!b.contains("mixer") || hl::try_parse<hl::Mixer>(kind("mixer")) == hl::Mixer::Selfmod);
  std::vector<std::string> keys;
  for (const auto& k : first)
    if (b.contains(k)) keys.push_back(k);
  for (auto it = b.begin(); it != b.end(); ++it)
    if (std::find(first.begin(), first.end(), it.key()) == first.end()) keys.push_back(it.key());
  for (const auto& k : keys) {
    const json& v = b[k];
    if (k == "type" || k == "levels") continue;
    if (k == "heads")
      out << QObject::tr("%1 heads").arg(numberText(v));
    else if (k == "ffn_mult")
      out << QObject::tr("FFN ×%1").arg(numberText(v));
    else if (k == "dropout")
      out << QObject::tr("dropout %1").arg(numberText(v));
    else if (k == "chunk")
      out << QObject::tr("chunk %1").arg(numberText(v));
    // The two papers' symbols (DECISIONS.md): Titans θ (step) and η (momentum); self-modifying
    // Titans η (step) and β (DGD momentum).
    else if (k == "inner_lr")
      out << (selfmod ? QObject::tr("η %1") : QObject::tr("θ %1")).arg(numberText(v));
    else if (k == "momentum")
      out << (selfmod ? QObject::tr("β %1") : QObject::tr("η %1")).arg(numberText(v));
    else if (k == "retain")
      out << QObject::tr("retain %1").arg(numberText(v));
    else if (k == "hidden")
      out << (v.is_number_integer() && v.get<long long>() == 0 ? QObject::tr("hidden = d_model")
                                                               : QObject::tr("hidden %1").arg(numberText(v)));
    else if (k == "variant")
      out << numberText(v);
    else if (k == "stop_grad_writes") {
      if (v.is_boolean() && v.get<bool>()) out << QObject::tr("stop-grad writes");
    } else
      out << QString::fromStdString(k) + " " + numberText(v);
  }
  return out;
}

QString issuesTooltip(const std::vector<hl::spec::Issue>& issues) {
  QStringList l;
  for (const auto& i : issues)
    l << QStringLiteral("%1: %2: %3")
             .arg(i.error ? QObject::tr("error") : QObject::tr("warning"), QString::fromStdString(i.path),
                  QString::fromStdString(i.message));
  return l.join('\n');
}

// Badges "● n" for errors and warnings, right-aligned ending at `right`.
void paintBadges(QPainter* p, qreal right, qreal top, int errors, int warnings, const QFont& font) {
  QFontMetricsF fm(font);
  qreal h = fm.height() + 2;
  qreal x = right;
  auto badge = [&](int n, const QColor& fill, const QColor& text, const QString& glyph) {
    QString s = glyph + QString::number(n);
    qreal w = fm.horizontalAdvance(s) + 10;
    x -= w;
    QRectF r(x, top, w, h);
    p->setPen(Qt::NoPen);
    p->setBrush(fill);
    p->drawRoundedRect(r, h / 2, h / 2);
    p->setPen(text);
    p->drawText(r, Qt::AlignCenter, s);
    x -= 4;
  };
  p->save();
  p->setFont(font);
  if (warnings > 0) badge(warnings, kWarningColor, Qt::black, QStringLiteral("! "));
  if (errors > 0) badge(errors, kErrorColor, Qt::white, QStringLiteral("✕ "));
  p->restore();
}

}  // namespace

QString formatCount(double n) {
  double a = std::fabs(n);
  if (a >= 1e9) return QString::number(n / 1e9, 'f', 2) + "G";
  if (a >= 1e6) return QString::number(n / 1e6, 'f', 2) + "M";
  if (a >= 1e3) return QString::number(n / 1e3, 'f', 1) + "k";
  return QString::number(n, 'f', 0);
}

// ---- items -----------------------------------------------------------------------------------

class CardItem : public QGraphicsItem {
 public:
  QString title, tag;
  QStringList lines;
  QString statsLine;
  QColor accent;
  bool fixed = false;
  bool selected = false;
  int errors = 0, warnings = 0;
  qreal levelsHeight = 0;  // room for level chips under the text

  QRectF boundingRect() const override { return QRectF(0, 0, kCardWidth, height()); }
  qreal lineHeight() const { return QFontMetricsF(font()).lineSpacing(); }
  qreal textHeight() const { return kPad + lineHeight() * (2 + lines.size()) + kPad; }
  qreal height() const { return textHeight() + levelsHeight + (levelsHeight > 0 ? kPad : 0); }
  QFont font() const { return scene() ? scene()->font() : QApplication::font(); }

  void paint(QPainter* p, const QStyleOptionGraphicsItem*, QWidget*) override {
    const QPalette pal = scene() ? scene()->palette() : QApplication::palette();
    QRectF r = boundingRect().adjusted(1, 1, -1, -1);
    p->setRenderHint(QPainter::Antialiasing);
    p->setPen(QPen(selected ? pal.color(QPalette::Highlight) : pal.color(QPalette::Mid), selected ? 3 : 1));
    p->setBrush(fixed ? pal.color(QPalette::AlternateBase) : pal.color(QPalette::Base));
    p->drawRoundedRect(r, 6, 6);
    // accent stripe
    QPainterPath stripe;
    stripe.addRoundedRect(QRectF(r.left(), r.top(), kStripe * 2, r.height()), 6, 6);
    QPainterPath clip;
    clip.addRect(QRectF(r.left(), r.top(), kStripe, r.height()));
    p->fillPath(stripe.intersected(clip), accent);

    QFont f = font();
    QFont bold = f;
    bold.setBold(true);
    QFont small = f;
    small.setPointSizeF(f.pointSizeF() > 0 ? f.pointSizeF() * 0.9 : 9);
    const qreal lh = lineHeight();
    qreal x = r.left() + kStripe + kPad, y = r.top() + kPad, w = r.right() - kPad - x;
    p->setPen(pal.color(QPalette::Text));
    p->setFont(bold);
    QFontMetricsF bfm(bold);
    p->drawText(QRectF(x, y, w, lh), Qt::AlignLeft | Qt::AlignVCenter, title);
    if (!tag.isEmpty()) {
      p->setFont(small);
      QColor dim = pal.color(QPalette::PlaceholderText);
      p->setPen(dim);
      p->drawText(QRectF(x + bfm.horizontalAdvance(title) + 8, y, w, lh), Qt::AlignLeft | Qt::AlignVCenter, tag);
    }
    paintBadges(p, r.right() - kPad, y, errors, warnings, small);
    y += lh;
    p->setFont(f);
    p->setPen(pal.color(QPalette::Text));
    QFontMetricsF fm(f);
    for (const auto& l : lines) {
      p->drawText(QRectF(x, y, w, lh), Qt::AlignLeft | Qt::AlignVCenter, fm.elidedText(l, Qt::ElideRight, w));
      y += lh;
    }
    p->setPen(pal.color(QPalette::PlaceholderText));
    p->drawText(QRectF(x, y, w, lh), Qt::AlignLeft | Qt::AlignVCenter, statsLine);
  }
};

class LevelItem : public QGraphicsItem {
 public:
  QString text;
  QColor accent;
  bool selected = false;
  int errors = 0, warnings = 0;
  qreal width = 0, h = 0;

  QRectF boundingRect() const override { return QRectF(0, 0, width, h); }
  void paint(QPainter* p, const QStyleOptionGraphicsItem*, QWidget*) override {
    const QPalette pal = scene() ? scene()->palette() : QApplication::palette();
    QRectF r = boundingRect().adjusted(1, 1, -1, -1);
    p->setRenderHint(QPainter::Antialiasing);
    QColor fill = pal.color(QPalette::AlternateBase);
    p->setPen(QPen(selected ? pal.color(QPalette::Highlight) : accent, selected ? 2.5 : 1.2));
    p->setBrush(fill);
    p->drawRoundedRect(r, 4, 4);
    QFont f = scene() ? scene()->font() : QApplication::font();
    p->setFont(f);
    p->setPen(pal.color(QPalette::Text));
    p->drawText(r.adjusted(8, 0, -8, 0), Qt::AlignLeft | Qt::AlignVCenter, text);
    paintBadges(p, r.right() - 4, r.top() + (r.height() - QFontMetricsF(f).height() - 2) / 2, errors, warnings, f);
  }
};

// ---- scene -----------------------------------------------------------------------------------

EditorScene::EditorScene(EditorModel* model, QObject* parent) : QGraphicsScene(parent), model_(model) {
  connect(model_, &EditorModel::changed, this, &EditorScene::rebuild);
  rebuild();
}

QString EditorScene::stats(const Stats& s, bool flops) const {
  if (!model_->estimatesEnabled()) return tr("estimates paused while a run trains");
  if (!s.ok) return flops ? tr("— params · — FLOPs") : tr("— params");
  if (!flops) return tr("%1 params").arg(formatCount(double(s.params)));
  return tr("%1 params · %2 FLOPs").arg(formatCount(double(s.params)), formatCount(s.flops));
}

void EditorScene::rebuild() {
  hideIndicator();
  clear();
  indicator_ = nullptr;
  blockCards_.clear();
  levelChips_.clear();
  for (auto& n : nodes_) n = nullptr;

  const json& c = model_->completed();
  const json m = c.contains("model") && c["model"].is_object() ? c["model"] : json::object();
  const QPalette pal = palette();
  qreal y = 0;
  QList<QPointF> joints;  // arrow from the bottom of one card to the top of the next
  auto place = [&](CardItem* card) {
    addItem(card);
    card->setPos(0, y);
    if (!joints.isEmpty() || y > 0) joints << QPointF(kCardWidth / 2, y);
    y += card->height();
    joints << QPointF(kCardWidth / 2, y);
    y += kGap;
  };
  auto nodeCard = [&](FixedNode n, const QString& title, const QString& tag, const QStringList& lines,
                      const QString& statsLine) {
    auto* card = new CardItem;
    card->fixed = true;
    card->title = title;
    card->tag = tag;
    card->lines = lines;
    card->statsLine = statsLine;
    card->accent = pal.color(QPalette::Mid);
    auto issues = model_->issuesFor(n);
    for (const auto& i : issues) (i.error ? card->errors : card->warnings)++;
    card->selected = selection_ == Selection::ofNode(n);
    card->setToolTip(issues.empty() ? title : issuesTooltip(issues));
    nodes_[int(n)] = card;
    return card;
  };

  // Embedding
  {
    int vocabSpec = m.value("vocab_size", 0);
    int lenSpec = m.value("max_len", 0);
    QString vocab = vocabSpec > 0
                        ? QString::number(vocabSpec)
                        : (model_->vocabSize() > 0 ? tr("%1 (dataset)").arg(model_->vocabSize()) : tr("dataset"));
    QString len = lenSpec > 0 ? QString::number(lenSpec)
                              : (model_->seqLen() > 0 ? tr("%1 (dataset)").arg(model_->seqLen()) : tr("dataset"));
    const std::string pos_text =
        m.contains("positions") && m["positions"].is_string() ? m["positions"].get<std::string>() : "";
    const auto positions = hl::try_parse<hl::Positions>(pos_text);
    QString pos = positions == hl::Positions::Learned ? tr("learned positions")
                  : positions == hl::Positions::None  ? tr("no positions")
                                                      : QString::fromStdString(pos_text);
    place(nodeCard(FixedNode::Embedding, tr("Embedding"), QString(),
                   {tr("d_model %1 · vocab %2").arg(numberText(m.value("d_model", json())), vocab),
                    tr("max length %1 · %2").arg(len, pos)},
                   stats(model_->nodeStats(FixedNode::Embedding), false)));
  }
  // Blocks
  for (int i = 0; i < model_->blockCount(); ++i) {
    json b = model_->completedBlock(i);
    std::string type = model_->blockType(i);
    BlockInfo info = blockInfo(type);
    auto* card = new CardItem;
    card->title = QStringLiteral("%1 · %2").arg(i + 1).arg(info.title);
    card->tag = QString::fromStdString(type);
    QStringList parts = blockSummary(b);
    // wrap the summary into lines that fit the card
    QFontMetricsF fm(font());
    QStringList lines;
    QString cur;
    for (const auto& part : parts) {
      QString next = cur.isEmpty() ? part : cur + " · " + part;
      if (!cur.isEmpty() && fm.horizontalAdvance(next) > kCardWidth - 2 * kPad - kStripe - 8) {
        lines << cur;
        cur = part;
      } else
        cur = next;
    }
    if (!cur.isEmpty()) lines << cur;
    if (lines.isEmpty()) lines << info.description;
    card->lines = lines;
    card->statsLine = stats(model_->blockStats(i));
    card->accent = info.accent;
    auto issues = model_->issuesFor(i);
    for (const auto& is : issues) (is.error ? card->errors : card->warnings)++;
    card->selected = selection_ == Selection::ofBlock(i);
    card->setToolTip(info.description + (issues.empty() ? QString() : "\n" + issuesTooltip(issues)));
    card->setCursor(Qt::OpenHandCursor);  // cards drag to reorder
    std::vector<LevelItem*> chips;
    if (model_->blockHasLevels(i)) {
      const qreal chipH = QFontMetricsF(font()).lineSpacing() + 10;
      int n = model_->levelCount(i);
      card->levelsHeight = n * (chipH + 4);
      for (int l = 0; l < n; ++l) {
        json L = model_->level(i, l);
        auto* chip = new LevelItem;
        chip->setParentItem(card);
        chip->setCursor(Qt::OpenHandCursor);
        chip->width = kCardWidth - 2 * kPad - kStripe - 8;
        chip->h = chipH;
        chip->accent = info.accent;
        QString clock = L.is_object() && L.contains("clock") ? numberText(L["clock"]) : QStringLiteral("?");
        QString lr = L.is_object() && L.contains("lr") ? numberText(L["lr"]) : QStringLiteral("0");
        bool baseLr = L.is_object() && L.contains("lr") && L["lr"].is_number() && L["lr"].get<double>() == 0.0;
        chip->text = tr("L%1 · clock %2 · %3").arg(l + 1).arg(clock, baseLr ? tr("base lr") : tr("lr %1").arg(lr));
        auto li = model_->issuesFor(i, l);
        for (const auto& is : li) (is.error ? chip->errors : chip->warnings)++;
        chip->selected = selection_ == Selection::ofLevel(i, l);
        chip->setToolTip(tr("CMS level %1: updates every %2 optimizer steps. Drag to reorder, drag out of the "
                            "block to remove.")
                             .arg(l + 1)
                             .arg(clock) +
                         (li.empty() ? QString() : "\n" + issuesTooltip(li)));
        chips.push_back(chip);
      }
    }
    place(card);
    qreal cy = card->textHeight();
    for (auto* chip : chips) {
      chip->setPos(kPad + kStripe + 4, cy);
      cy += chip->h + 4;
    }
    blockCards_.push_back(card);
    levelChips_.push_back(chips);
  }
  // Norm, pooling, head
  place(nodeCard(FixedNode::Norm, tr("Norm"), QString(), {tr("final LayerNorm over d_model")},
                 stats(model_->nodeStats(FixedNode::Norm), false)));
  place(nodeCard(FixedNode::Pooling, tr("Pooling"), QString(),
                 {m.contains("pooling") && m["pooling"] == "last" ? tr("the last real token only")
                                                                  : tr("masked mean over the real tokens")},
                 tr("no parameters")));
  {
    json h = m.contains("head") && m["head"].is_object() ? m["head"] : json::object();
    QString type = h.contains("type") ? numberText(h["type"]) : QStringLiteral("?");
    QString classes = model_->numClasses() > 0 ? tr("%1 classes (dataset)").arg(model_->numClasses())
                                               : tr("classes from the dataset");
    const auto head = h.contains("type") && h["type"].is_string()
                          ? hl::try_parse<hl::HeadType>(h["type"].get<std::string>())
                          : std::nullopt;
    QString line =
        head == hl::HeadType::Ncm
            ? tr("cosine nearest-class-mean, scale %1").arg(numberText(h.value("ncm_scale", json())))
        : head == hl::HeadType::Memory
            ? tr("associative memory written by DGD every %1 steps").arg(numberText(h.value("clock", json())))
            : tr("linear classifier");
    place(nodeCard(FixedNode::Head, tr("Head"), type, {line + " · " + classes},
                   stats(model_->nodeStats(FixedNode::Head))));
  }
  // arrows between consecutive cards
  QPen arrowPen(pal.color(QPalette::Mid), 1.5);
  // joints: bottom of card 0, top of card 1, bottom of card 1, ...
  for (int k = 0; k + 1 < joints.size(); k += 2) {
    QPointF a = joints[k], b = joints[k + 1];
    addLine(QLineF(a, b - QPointF(0, 3)), arrowPen)->setZValue(-1);
    QPolygonF head;
    head << b << b + QPointF(-5, -8) << b + QPointF(5, -8);
    addPolygon(head, arrowPen, pal.color(QPalette::Mid))->setZValue(-1);
  }
  setSceneRect(itemsBoundingRect().adjusted(-40, -20, 40, 20));
}

void EditorScene::setSelection(const Selection& s) {
  Selection v = s;
  if (v.kind == Selection::Kind::Block && (v.block < 0 || v.block >= model_->blockCount())) v = {};
  if (v.kind == Selection::Kind::Level &&
      (v.block < 0 || v.block >= model_->blockCount() || v.level < 0 || v.level >= model_->levelCount(v.block)))
    v = v.block >= 0 && v.block < model_->blockCount() ? Selection::ofBlock(v.block) : Selection{};
  if (v == selection_) return;
  selection_ = v;
  for (size_t i = 0; i < blockCards_.size(); ++i) {
    blockCards_[i]->selected = v == Selection::ofBlock(int(i));
    blockCards_[i]->update();
    for (size_t l = 0; l < levelChips_[i].size(); ++l) {
      levelChips_[i][l]->selected = v == Selection::ofLevel(int(i), int(l));
      levelChips_[i][l]->update();
    }
  }
  for (int n = 0; n < 4; ++n)
    if (nodes_[n]) {
      nodes_[n]->selected = v == Selection::ofNode(FixedNode(n));
      nodes_[n]->update();
    }
  Q_EMIT selectionChanged(selection_);
}

QRectF EditorScene::blockRect(int b) const {
  return b >= 0 && b < int(blockCards_.size()) ? blockCards_[b]->sceneBoundingRect() : QRectF();
}
QRectF EditorScene::levelRect(int b, int l) const {
  if (b < 0 || b >= int(levelChips_.size()) || l < 0 || l >= int(levelChips_[b].size())) return {};
  return levelChips_[b][l]->sceneBoundingRect();
}
QRectF EditorScene::nodeRect(FixedNode n) const {
  return nodes_[int(n)] ? nodes_[int(n)]->sceneBoundingRect() : QRectF();
}

QString EditorScene::cardText(int b) const {
  if (b < 0 || b >= int(blockCards_.size())) return {};
  const CardItem* c = blockCards_[b];
  QStringList out{c->title + " " + c->tag};
  out << c->lines << c->statsLine;
  for (const LevelItem* chip : levelChips_[b]) out << chip->text;
  return out.join('\n');
}

QString EditorScene::cardText(FixedNode n) const {
  const CardItem* c = nodes_[int(n)];
  if (!c) return {};
  QStringList out{c->title + " " + c->tag};
  out << c->lines << c->statsLine;
  return out.join('\n');
}

Selection EditorScene::hitTest(const QPointF& p) const {
  for (size_t i = 0; i < blockCards_.size(); ++i) {
    for (size_t l = 0; l < levelChips_[i].size(); ++l)
      if (levelChips_[i][l]->sceneBoundingRect().contains(p)) return Selection::ofLevel(int(i), int(l));
    if (blockCards_[i]->sceneBoundingRect().contains(p)) return Selection::ofBlock(int(i));
  }
  for (int n = 0; n < 4; ++n)
    if (nodes_[n] && nodes_[n]->sceneBoundingRect().contains(p)) return Selection::ofNode(FixedNode(n));
  return {};
}

int EditorScene::blockSlotAt(const QPointF& p) const {
  int slot = 0;
  for (auto* c : blockCards_)
    if (c->sceneBoundingRect().center().y() < p.y()) ++slot;
  return slot;
}

int EditorScene::levelBlockAt(const QPointF& p) const {
  for (size_t i = 0; i < blockCards_.size(); ++i)
    if (model_->blockHasLevels(int(i)) && blockCards_[i]->sceneBoundingRect().contains(p)) return int(i);
  return -1;
}

int EditorScene::levelSlotAt(int b, const QPointF& p) const {
  int slot = 0;
  if (b < 0 || b >= int(levelChips_.size())) return 0;
  for (auto* chip : levelChips_[b])
    if (chip->sceneBoundingRect().center().y() < p.y()) ++slot;
  return slot;
}

bool EditorScene::canAcceptMime(const QMimeData* mime) const {
  if (!mime) return false;
  for (const char* t : {mime::kNewBlock, mime::kMoveBlock, mime::kNewLevel, mime::kMoveLevel, mime::kHead})
    if (mime->hasFormat(t)) return true;
  return false;
}

bool EditorScene::dropMime(const QMimeData* mime, const QPointF& p) {
  if (!mime) return false;
  auto refuse = [this](const QString& why) {
    Q_EMIT message(why);
    return false;
  };
  if (mime->hasFormat(mime::kNewBlock)) {
    json b = json::parse(mime->data(mime::kNewBlock).toStdString(), nullptr, false);
    if (b.is_discarded() || !b.is_object()) return refuse(tr("Dropped block data is not a JSON object"));
    int slot = blockSlotAt(p);
    std::string type = b.value("type", "");
    if (!model_->insertBlockJson(slot, b, tr("Add %1 block").arg(blockInfo(type).title))) return false;
    setSelection(Selection::ofBlock(slot));
    return true;
  }
  if (mime->hasFormat(mime::kMoveBlock)) {
    bool ok = false;
    int from = QString::fromUtf8(mime->data(mime::kMoveBlock)).toInt(&ok);
    if (!ok) return refuse(tr("Dropped block index is not a number"));
    int slot = blockSlotAt(p);
    int to = slot > from ? slot - 1 : slot;
    if (!model_->moveBlock(from, to)) return false;
    setSelection(Selection::ofBlock(std::clamp(to, 0, model_->blockCount() - 1)));
    return true;
  }
  if (mime->hasFormat(mime::kNewLevel)) {
    int b = levelBlockAt(p);
    if (b < 0) return refuse(tr("Drop the Level on a block with CMS levels (cms)"));
    QByteArray raw = mime->data(mime::kNewLevel);
    json L = raw.isEmpty() ? json() : json::parse(raw.toStdString(), nullptr, false);
    if (L.is_discarded()) L = json();
    int slot = levelSlotAt(b, p);
    if (!model_->insertLevel(b, slot, L)) return false;
    setSelection(Selection::ofLevel(b, slot));
    return true;
  }
  if (mime->hasFormat(mime::kMoveLevel)) {
    QStringList parts = QString::fromUtf8(mime->data(mime::kMoveLevel)).split(',');
    if (parts.size() != 2) return refuse(tr("Dropped level reference is malformed"));
    int fb = parts[0].toInt(), fl = parts[1].toInt();
    int b = levelBlockAt(p);
    if (b < 0) {  // dragged out of every CMS block: remove it
      if (!model_->removeLevel(fb, fl)) return false;
      setSelection(Selection::ofBlock(fb));
      return true;
    }
    int slot = levelSlotAt(b, p);
    if (b == fb && slot > fl) --slot;
    if (!model_->moveLevel(fb, fl, b, slot)) return false;
    setSelection(Selection::ofLevel(b, slot));
    return true;
  }
  if (mime->hasFormat(mime::kHead)) {
    std::string t = QString::fromUtf8(mime->data(mime::kHead)).toStdString();
    if (!model_->setHeadType(t)) return false;
    setSelection(Selection::ofNode(FixedNode::Head));
    return true;
  }
  return false;
}

void EditorScene::showIndicator(const QMimeData* mime, const QPointF& p) {
  if (!indicator_) {
    indicator_ = addLine(QLineF(), QPen(palette().color(QPalette::Highlight), 3, Qt::SolidLine, Qt::RoundCap));
    indicator_->setZValue(10);
  }
  QLineF line;
  if (mime->hasFormat(mime::kNewBlock) || mime->hasFormat(mime::kMoveBlock)) {
    int slot = blockSlotAt(p);
    qreal y;
    if (slot < int(blockCards_.size()))
      y = blockCards_[slot]->sceneBoundingRect().top() - kGap / 2;
    else if (!blockCards_.empty())
      y = blockCards_.back()->sceneBoundingRect().bottom() + kGap / 2;
    else
      y = nodes_[0]->sceneBoundingRect().bottom() + kGap / 2;
    line = QLineF(-10, y, kCardWidth + 10, y);
  } else if (mime->hasFormat(mime::kNewLevel) || mime->hasFormat(mime::kMoveLevel)) {
    int b = levelBlockAt(p);
    if (b >= 0) {
      int slot = levelSlotAt(b, p);
      const auto& chips = levelChips_[b];
      QRectF card = blockCards_[b]->sceneBoundingRect();
      qreal y = chips.empty() ? card.bottom() - kPad
                              : (slot < int(chips.size()) ? chips[slot]->sceneBoundingRect().top() - 2
                                                          : chips.back()->sceneBoundingRect().bottom() + 2);
      line = QLineF(card.left() + kPad + kStripe, y, card.right() - kPad, y);
    }
  } else if (mime->hasFormat(mime::kHead) && nodes_[int(FixedNode::Head)]) {
    QRectF r = nodes_[int(FixedNode::Head)]->sceneBoundingRect();
    line = QLineF(r.left(), r.bottom() + 4, r.right(), r.bottom() + 4);
  }
  indicator_->setLine(line);
  indicator_->setVisible(!line.isNull());
}

void EditorScene::hideIndicator() {
  if (indicator_) indicator_->setVisible(false);
}

void EditorScene::dragEnterEvent(QGraphicsSceneDragDropEvent* e) {
  if (!canAcceptMime(e->mimeData())) return e->ignore();
  e->setDropAction(e->mimeData()->hasFormat(mime::kMoveBlock) || e->mimeData()->hasFormat(mime::kMoveLevel)
                       ? Qt::MoveAction
                       : Qt::CopyAction);
  e->accept();
  showIndicator(e->mimeData(), e->scenePos());
}

void EditorScene::dragMoveEvent(QGraphicsSceneDragDropEvent* e) {
  if (!canAcceptMime(e->mimeData())) return e->ignore();
  e->setDropAction(e->mimeData()->hasFormat(mime::kMoveBlock) || e->mimeData()->hasFormat(mime::kMoveLevel)
                       ? Qt::MoveAction
                       : Qt::CopyAction);
  e->accept();
  showIndicator(e->mimeData(), e->scenePos());
}

void EditorScene::dragLeaveEvent(QGraphicsSceneDragDropEvent* e) {
  hideIndicator();
  e->accept();
}

void EditorScene::dropEvent(QGraphicsSceneDragDropEvent* e) {
  hideIndicator();
  bool ok = dropMime(e->mimeData(), e->scenePos());
  if (ok) {
    e->setDropAction(e->mimeData()->hasFormat(mime::kMoveBlock) || e->mimeData()->hasFormat(mime::kMoveLevel)
                         ? Qt::MoveAction
                         : Qt::CopyAction);
    e->accept();
  } else {
    e->setDropAction(Qt::IgnoreAction);
    e->ignore();
  }
}

void EditorScene::mousePressEvent(QGraphicsSceneMouseEvent* e) {
  if (e->button() != Qt::LeftButton) return QGraphicsScene::mousePressEvent(e);
  Selection hit = hitTest(e->scenePos());
  setSelection(hit);
  pressed_ = hit;
  pressPos_ = e->screenPos();
  e->accept();
}

void EditorScene::mouseMoveEvent(QGraphicsSceneMouseEvent* e) {
  if (!pressPos_ || !(e->buttons() & Qt::LeftButton)) return QGraphicsScene::mouseMoveEvent(e);
  if ((e->screenPos() - pressPos_->toPoint()).manhattanLength() < QApplication::startDragDistance()) return;
  pressPos_.reset();
  if (pressed_.kind == Selection::Kind::Block || pressed_.kind == Selection::Kind::Level) startDrag(e->widget());
}

void EditorScene::mouseReleaseEvent(QGraphicsSceneMouseEvent* e) {
  pressPos_.reset();
  QGraphicsScene::mouseReleaseEvent(e);
}

void EditorScene::startDrag(QWidget* source) {
  auto* mimeData = new QMimeData;
  QRectF r;
  if (pressed_.kind == Selection::Kind::Block) {
    mimeData->setData(mime::kMoveBlock, QByteArray::number(pressed_.block));
    r = blockRect(pressed_.block);
  } else {
    mimeData->setData(mime::kMoveLevel, QStringLiteral("%1,%2").arg(pressed_.block).arg(pressed_.level).toUtf8());
    r = levelRect(pressed_.block, pressed_.level);
  }
  auto* drag = new QDrag(source ? static_cast<QObject*>(source) : static_cast<QObject*>(this));
  drag->setMimeData(mimeData);
  // a picture of the card under the cursor
  if (!r.isEmpty()) {
    qreal dpr = source ? source->devicePixelRatioF() : 1.0;
    QPixmap pm((r.size() * dpr).toSize());
    pm.setDevicePixelRatio(dpr);
    pm.fill(Qt::transparent);
    QPainter painter(&pm);
    painter.setOpacity(0.8);
    render(&painter, QRectF(QPointF(0, 0), r.size()), r);
    painter.end();
    drag->setPixmap(pm);
  }
  drag->exec(Qt::MoveAction);
}

void EditorScene::contextMenuEvent(QGraphicsSceneContextMenuEvent* e) {
  Selection hit = hitTest(e->scenePos());
  setSelection(hit);
  QMenu menu;
  if (hit.kind == Selection::Kind::Block) {
    int b = hit.block;
    menu.addAction(tr("Duplicate"), QKeySequence(tr("Ctrl+D")), [this, b] {
      model_->duplicateBlock(b);
      setSelection(Selection::ofBlock(b + 1));
    });
    menu.addAction(tr("Delete"), QKeySequence::Delete, [this, b] {
      if (model_->removeBlock(b)) setSelection({});
    });
    menu.addSeparator();
    menu.addAction(tr("Move up"),
                   [this, b] {
                     if (model_->moveBlock(b, b - 1)) setSelection(Selection::ofBlock(std::max(0, b - 1)));
                   })
        ->setEnabled(b > 0);
    menu.addAction(tr("Move down"),
                   [this, b] {
                     if (model_->moveBlock(b, b + 1)) setSelection(Selection::ofBlock(b + 1));
                   })
        ->setEnabled(b + 1 < model_->blockCount());
    if (model_->blockHasLevels(b)) {
      menu.addSeparator();
      menu.addAction(tr("Add level"),
                     [this, b] {
                       if (model_->insertLevel(b, model_->levelCount(b)))
                         setSelection(Selection::ofLevel(b, model_->levelCount(b) - 1));
                     })
          ->setEnabled(model_->levelCount(b) < EditorModel::maxLevels());
    }
  } else if (hit.kind == Selection::Kind::Level) {
    int b = hit.block, l = hit.level;
    menu.addAction(tr("Remove level"), QKeySequence::Delete,
                   [this, b, l] {
                     if (model_->removeLevel(b, l)) setSelection(Selection::ofBlock(b));
                   })
        ->setEnabled(model_->levelCount(b) > EditorModel::minLevels());
    menu.addAction(tr("Move up"),
                   [this, b, l] {
                     if (model_->moveLevel(b, l, b, l - 1)) setSelection(Selection::ofLevel(b, l - 1));
                   })
        ->setEnabled(l > 0);
    menu.addAction(tr("Move down"),
                   [this, b, l] {
                     if (model_->moveLevel(b, l, b, l + 1)) setSelection(Selection::ofLevel(b, l + 1));
                   })
        ->setEnabled(l + 1 < model_->levelCount(b));
  } else if (hit.kind == Selection::Kind::Node && hit.node == FixedNode::Head) {
    for (const auto& t : hl::spec::model_field("head.type").choices)
      menu.addAction(tr("Head: %1").arg(QString::fromStdString(t)), [this, t] { model_->setHeadType(t); });
  }
  if (!menu.isEmpty()) menu.exec(e->screenPos());
}

}  // namespace hl::ui
