#include "ui/editor/inspector.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFormLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSignalBlocker>
#include <QSpinBox>
#include <QTextDocument>
#include <QTimer>
#include <QUndoStack>
#include <QVBoxLayout>

#include <cmath>
#include <limits>

#include "ui/editor/block_catalog.h"

using json = nlohmann::json;

namespace hl::ui {

namespace {
QString q(const std::string& s) {
  return QString::fromStdString(s);
}

QString rangeText(const hl::spec::FieldInfo& f) {
  if (f.kind != "int" && f.kind != "number") return {};
  return QStringLiteral("%1%2, %3]").arg(f.min_open ? "(" : "[").arg(f.min, 0, 'g', 10).arg(f.max, 0, 'g', 10);
}

QString specialText(const std::string& key) {
  if (key == "vocab_size" || key == "max_len") return QObject::tr("dataset default");
  if (key == "hidden") return QObject::tr("= d_model");
  if (key == "lr") return QObject::tr("base lr");
  return {};
}

// Digits after the point needed to show x exactly (up to 10).
int decimalsFor(double x) {
  for (int d = 0; d <= 10; ++d) {
    double s = std::pow(10.0, d);
    if (std::fabs(std::round(x * s) / s - x) <= 1e-12 * std::max(1.0, std::fabs(x))) return d;
  }
  return 10;
}

// The validator's paths use "a.b[1].c"; ours are pointers "/a/b/1/c".
std::string pathOfPointer(const std::string& ptr) {
  std::string out;
  size_t i = 1;
  while (i <= ptr.size()) {
    size_t j = ptr.find('/', i);
    std::string tok = ptr.substr(i, j == std::string::npos ? std::string::npos : j - i);
    bool index = !tok.empty() && std::all_of(tok.begin(), tok.end(), ::isdigit);
    if (index)
      out += "[" + tok + "]";
    else
      out += (out.empty() ? "" : ".") + tok;
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}
}  // namespace

Inspector::Inspector(EditorModel* model, QWidget* parent) : QWidget(parent), model_(model) {
  outer_ = new QVBoxLayout(this);
  outer_->setContentsMargins(8, 8, 8, 8);
  rebuild();
}

void Inspector::setSelection(const Selection& s) {
  selection_ = s;
  rebuild();
}

QString Inspector::title() const {
  return title_ ? title_->text() : QString();
}

QString Inspector::issuesText() const {
  if (!issues_ || issues_->isHidden()) return {};
  QTextDocument doc;
  doc.setHtml(issues_->text());
  return doc.toPlainText();
}

std::vector<Inspector::Field> Inspector::collect() const {
  std::vector<Field> out;
  const json& c = model_->completed();
  auto add = [&](const hl::spec::FieldInfo& info, const QString& key, const std::string& ptr) {
    Field f{info, key, ptr, json(), QString(), false};
    json::json_pointer p(ptr);
    if (c.contains(p)) f.value = c[p];
    std::string path = pathOfPointer(ptr);
    for (const auto& i : model_->validation().issues) {
      if (i.path == path && (f.issue.isEmpty() || (i.error && !f.error))) {
        f.issue = q(i.message);
        f.error = i.error;
      }
    }
    out.push_back(f);
  };
  switch (selection_.kind) {
    case Selection::Kind::None:
      break;
    case Selection::Kind::Node:
      if (selection_.node == FixedNode::Embedding || selection_.node == FixedNode::Pooling) {
        // the field table's model section: pooling on its own node, the rest on Embedding
        const bool pooling = selection_.node == FixedNode::Pooling;
        for (const auto& f : hl::spec::section_fields("model"))
          if ((f.name == "pooling") == pooling) add(f, q(f.name), "/model/" + f.name);
      } else if (selection_.node == FixedNode::Head && c.contains("model") && c["model"].contains("head") &&
                 c["model"]["head"].is_object()) {
        // every field of the head, its type first
        const json& h = c["model"]["head"];
        if (h.contains("type")) add(hl::spec::model_field("head.type", h["type"]), "head.type", "/model/head/type");
        for (auto it = h.begin(); it != h.end(); ++it) {
          if (it.key() == "type" || it.value().is_object() || it.value().is_array()) continue;
          add(hl::spec::model_field("head." + it.key(), it.value()), q("head." + it.key()), "/model/head/" + it.key());
        }
      }
      break;
    case Selection::Kind::Block: {
      json b = model_->completedBlock(selection_.block);
      std::string base = "/model/blocks/" + std::to_string(selection_.block) + "/";
      std::vector<std::string> seen;
      for (const auto& info : hl::spec::block_fields(model_->blockType(selection_.block))) {
        add(info, q(info.name), base + info.name);
        seen.push_back(info.name);
      }
      if (b.is_object())  // fields the type's defaults do not list (unknown types, extra keys)
        for (auto it = b.begin(); it != b.end(); ++it) {
          if (it.key() == "type" || it.key() == "levels" || std::find(seen.begin(), seen.end(), it.key()) != seen.end())
            continue;
          if (it.value().is_object() || it.value().is_array()) continue;  // not editable as one field
          add(hl::spec::block_field(it.key(), it.value()), q(it.key()), base + it.key());
        }
      break;
    }
    case Selection::Kind::Level: {
      std::string base =
          "/model/blocks/" + std::to_string(selection_.block) + "/levels/" + std::to_string(selection_.level) + "/";
      for (const auto& info : hl::spec::level_fields()) add(info, q(info.name), base + info.name);
      break;
    }
  }
  return out;
}

QString Inspector::signature(const std::vector<Field>& fields) const {
  QString s = QStringLiteral("%1/%2/%3/%4|")
                  .arg(int(selection_.kind))
                  .arg(int(selection_.node))
                  .arg(selection_.block)
                  .arg(selection_.level);
  if (selection_.kind == Selection::Kind::Block) s += q(model_->blockType(selection_.block)) + "|";
  for (const auto& f : fields) s += f.key + ":" + q(f.info.kind) + ":" + q(f.value.type_name()) + ";";
  return s;
}

void Inspector::refresh() {
  rebuild();
}

void Inspector::updateLabels(const std::vector<Field>& fields) {
  for (const auto& f : fields)
    if (QLabel* l = labels_.value(f.key)) {
      l->setText(f.issue.isEmpty() ? f.key : f.key + (f.error ? QStringLiteral(" ✕") : QStringLiteral(" !")));
      l->setToolTip(f.issue);
      l->setStyleSheet(f.issue.isEmpty() ? QString() : (f.error ? "color: rgb(211,47,47)" : "color: rgb(200,130,0)"));
    }
}

void Inspector::updateIssues() {
  std::vector<hl::spec::Issue> issues;
  if (selection_.kind == Selection::Kind::Block)
    issues = model_->issuesFor(selection_.block);
  else if (selection_.kind == Selection::Kind::Level)
    issues = model_->issuesFor(selection_.block, selection_.level);
  else if (selection_.kind == Selection::Kind::Node)
    issues = model_->issuesFor(selection_.node);
  QStringList lines;
  for (const auto& i : issues)
    lines << QStringLiteral("<span style='color:%1'>%2</span> <i>%3</i>: %4")
                 .arg(i.error ? "#d32f2f" : "#c88200", i.error ? tr("error") : tr("warning"), q(i.path).toHtmlEscaped(),
                      q(i.message).toHtmlEscaped());
  issues_->setText(lines.join("<br>"));
  issues_->setVisible(!lines.isEmpty());
}

void Inspector::updateHeader() {
  auto statsText = [this](const Stats& s) {
    if (!model_->estimatesEnabled()) return tr("— parameters · — FLOPs (estimates paused while a run trains)");
    return s.ok ? tr("%1 parameters · %2 FLOPs per sample").arg(formatCount(double(s.params)), formatCount(s.flops))
                : tr("— parameters · — FLOPs (the model cannot be built as it is: see the issues)");
  };
  switch (selection_.kind) {
    case Selection::Kind::None:
      title_->setText(tr("Nothing selected"));
      sub_->setText(tr("Drag blocks from the palette onto the canvas; click a card to edit it here."));
      break;
    case Selection::Kind::Node: {
      static const char* names[] = {"Embedding", "Norm", "Pooling", "Head"};
      static const char* docs[] = {
          "Token embedding (+ learned positions); the vocabulary and length come from the dataset when 0.",
          "Final LayerNorm over d_model, before pooling.",
          "How the sequence reaches the head: the mean over the real (non-padding) tokens, or the last real token "
          "only (then all context must reach it through the blocks).",
          "Classifier head. Drop a head from the palette to change its type."};
      int n = int(selection_.node);
      title_->setText(tr(names[n]));
      QString stats;
      Stats st = model_->nodeStats(selection_.node);
      if (selection_.node == FixedNode::Pooling)
        stats = tr("no parameters");
      else if (selection_.node == FixedNode::Head || !model_->estimatesEnabled() || !st.ok)
        stats = statsText(st);
      else
        stats = tr("%1 parameters (not in the FLOP estimate)").arg(formatCount(double(st.params)));
      sub_->setText(tr(docs[n]) + "\n" + stats);
      break;
    }
    case Selection::Kind::Block: {
      BlockInfo info = blockInfo(model_->blockType(selection_.block));
      title_->setText(tr("Block %1 · %2").arg(selection_.block + 1).arg(info.title));
      sub_->setText(
          info.description + "\n" +
          tr("type: %1 · model.blocks[%2]").arg(q(model_->blockType(selection_.block))).arg(selection_.block) + "\n" +
          statsText(model_->blockStats(selection_.block)));
      break;
    }
    case Selection::Kind::Level:
      title_->setText(tr("Level %1 of block %2").arg(selection_.level + 1).arg(selection_.block + 1));
      sub_->setText(
          tr("A CMS level: an MLP updated once every `clock` optimizer steps (levels are listed fastest first)."));
      break;
  }
}

void Inspector::rebuild() {
  QWidget* focused = nullptr;
  QWidget* fw = QApplication::focusWidget();
  for (auto it = editors_.begin(); it != editors_.end(); ++it)
    if (it.value()->hasFocus() || (fw && it.value()->isAncestorOf(fw))) focused = it.value();
  if (focused) {
    // keep the editor the user is typing in: only refresh values and labels
    auto fields = collect();
    if (signature(fields) == signature_) {
      // values that differ (an undo, a drop) are shown, the focused editor included; the edit
      // that just came from it already matches and is left alone
      for (const auto& f : fields)
        if (QWidget* w = editors_.value(f.key)) setEditorValue(w, f);
      updateLabels(fields);
      updateHeader();
      updateIssues();
      return;
    }
  }
  if (body_) {
    body_->hide();
    body_->deleteLater();
  }
  editors_.clear();
  labels_.clear();
  body_ = new QWidget(this);
  auto* v = new QVBoxLayout(body_);
  v->setContentsMargins(0, 0, 0, 0);
  title_ = new QLabel(body_);
  QFont tf = title_->font();
  tf.setBold(true);
  tf.setPointSizeF(tf.pointSizeF() * 1.15);
  title_->setFont(tf);
  sub_ = new QLabel(body_);
  sub_->setWordWrap(true);
  sub_->setForegroundRole(QPalette::PlaceholderText);
  v->addWidget(title_);
  v->addWidget(sub_);
  updateHeader();

  auto fields = collect();
  auto* form = new QFormLayout;
  form->setFieldGrowthPolicy(QFormLayout::AllNonFixedFieldsGrow);
  if (selection_.kind == Selection::Kind::Block) {
    // the block's type: changing it keeps the fields both types share
    auto* type = new QComboBox(body_);
    std::string cur = model_->blockType(selection_.block);
    for (const auto& t : hl::spec::block_types()) type->addItem(blockInfo(t).title, q(t));
    int at = type->findData(q(cur));
    if (at < 0) {
      type->addItem(q(cur.empty() ? "?" : cur), q(cur));
      at = type->count() - 1;
    }
    type->setCurrentIndex(at);
    type->setToolTip(tr("Change the block's type; the fields both types have keep their values"));
    int b = selection_.block;
    connect(type, &QComboBox::activated, this,
            [this, type, b](int i) { model_->changeBlockType(b, type->itemData(i).toString().toStdString()); });
    editors_["type"] = type;
    form->addRow(new QLabel(tr("type"), body_), type);
  }
  for (const auto& f : fields) {
    QWidget* w = makeEditor(f);
    auto* label = new QLabel(f.key, body_);
    label->setBuddy(w);
    labels_[f.key] = label;
    editors_[f.key] = w;
    form->addRow(label, w);
  }
  updateLabels(fields);
  v->addLayout(form);
  issues_ = new QLabel(body_);
  issues_->setWordWrap(true);
  issues_->setTextFormat(Qt::RichText);
  v->addWidget(issues_);
  updateIssues();

  if (selection_.kind == Selection::Kind::Block && model_->blockHasLevels(selection_.block)) {
    int b = selection_.block;
    auto* hint = new QLabel(tr("%1 CMS levels (1 to %2). Drag the palette's Level into the block to add one, "
                               "drag a level out of the block to remove it, drag to reorder.")
                                .arg(model_->levelCount(b))
                                .arg(EditorModel::maxLevels()),
                            body_);
    hint->setWordWrap(true);
    v->addWidget(hint);
    auto* add = new QPushButton(tr("Add level"), body_);
    add->setEnabled(model_->levelCount(b) < EditorModel::maxLevels());
    connect(add, &QPushButton::clicked, this, [this, b] { model_->insertLevel(b, model_->levelCount(b)); });
    v->addWidget(add);
  }
  if (selection_.kind == Selection::Kind::Level) {
    int b = selection_.block, l = selection_.level;
    auto* rm = new QPushButton(tr("Remove level"), body_);
    rm->setEnabled(model_->levelCount(b) > EditorModel::minLevels());
    connect(rm, &QPushButton::clicked, this, [this, b, l] { model_->removeLevel(b, l); });
    v->addWidget(rm);
  }
  v->addStretch(1);
  outer_->addWidget(body_);
  signature_ = signature(fields);
}

void Inspector::setEditorValue(QWidget* w, const Field& f) {
  const QSignalBlocker block(w);
  const json& v = f.value;
  if (auto* s = qobject_cast<QSpinBox*>(w)) {
    if (v.is_number()) {
      long long x = v.get<long long>();
      if (x < s->minimum()) s->setMinimum(int(std::max<long long>(x, std::numeric_limits<int>::min())));
      if (x > s->maximum()) s->setMaximum(int(std::min<long long>(x, std::numeric_limits<int>::max())));
      if (s->value() != x) s->setValue(int(x));
    }
  } else if (auto* d = qobject_cast<QDoubleSpinBox*>(w)) {
    if (v.is_number()) {
      double x = v.get<double>();
      d->setDecimals(std::max({f.info.decimals, decimalsFor(x), d->decimals()}));
      if (x < d->minimum()) d->setMinimum(x);
      if (x > d->maximum()) d->setMaximum(x);
      if (d->value() != x) d->setValue(x);
    }
  } else if (auto* c = qobject_cast<QComboBox*>(w)) {
    QString t = v.is_string() ? q(v.get<std::string>()) : q(v.dump());
    int i = c->findText(t);
    if (i < 0) {
      c->addItem(t);
      i = c->count() - 1;
    }
    if (c->currentIndex() != i) c->setCurrentIndex(i);
  } else if (auto* b = qobject_cast<QCheckBox*>(w)) {
    if (v.is_boolean() && b->isChecked() != v.get<bool>()) b->setChecked(v.get<bool>());
  } else if (auto* e = qobject_cast<QLineEdit*>(w)) {
    QString t = v.is_string() ? q(v.get<std::string>()) : q(v.dump());
    if (e->text() != t) e->setText(t);
  }
}

QWidget* Inspector::makeEditor(const Field& f) {
  const auto& info = f.info;
  QString tip = q(info.doc);
  if (!rangeText(info).isEmpty())
    tip += "\n" + tr("range %1").arg(rangeText(info)) + (info.unit.empty() ? QString() : " " + q(info.unit));
  tip += "\n" + q(pathOfPointer(f.pointer));
  const std::string ptr = f.pointer;
  QWidget* w = nullptr;
  QString suffix = info.unit.empty() || info.unit == info.name ? QString() : " " + q(info.unit);
  if (info.kind == "int" && (f.value.is_number_integer() || f.value.is_null())) {
    auto* s = new QSpinBox(body_);
    s->setRange(int(std::max(info.min, double(std::numeric_limits<int>::min()))),
                int(std::min(info.max, double(std::numeric_limits<int>::max()))));
    s->setSuffix(suffix);
    s->setSpecialValueText(s->minimum() == 0 ? specialText(info.name) : QString());
    s->setKeyboardTracking(false);
    connect(s, &QSpinBox::valueChanged, this, [this, ptr](int x) { model_->setValue(ptr, json(x)); });
    w = s;
  } else if ((info.kind == "number" || info.kind == "int") && f.value.is_number()) {
    auto* d = new QDoubleSpinBox(body_);
    d->setDecimals(std::max(info.decimals, 1));
    d->setRange(info.min, info.max);
    d->setSingleStep(std::pow(10.0, 1 - std::max(info.decimals, 1)) / (info.decimals >= 3 ? 1 : 2));
    d->setSuffix(suffix);
    d->setSpecialValueText(info.min == 0 ? specialText(info.name) : QString());
    d->setKeyboardTracking(false);
    connect(d, &QDoubleSpinBox::valueChanged, this, [this, ptr](double x) { model_->setValue(ptr, json(x)); });
    w = d;
  } else if (info.kind == "choice") {
    auto* c = new QComboBox(body_);
    for (const auto& ch : info.choices) c->addItem(q(ch));
    connect(c, &QComboBox::currentTextChanged, this,
            [this, ptr](const QString& t) { model_->setValue(ptr, json(t.toStdString())); });
    w = c;
  } else if (info.kind == "bool" || f.value.is_boolean()) {
    auto* b = new QCheckBox(body_);
    connect(b, &QCheckBox::toggled, this, [this, ptr](bool x) { model_->setValue(ptr, json(x)); });
    w = b;
  } else {
    auto* e = new QLineEdit(body_);
    bool wasString = f.value.is_string();
    connect(e, &QLineEdit::editingFinished, this, [this, ptr, e, wasString] {
      std::string t = e->text().toStdString();
      json v = wasString ? json(t) : json::parse(t, nullptr, false);
      if (v.is_discarded()) v = json(t);
      model_->setValue(ptr, v);
    });
    w = e;
  }
  w->setToolTip(tip);
  w->setObjectName(f.key);
  setEditorValue(w, f);
  w->installEventFilter(this);
  for (auto* child : w->findChildren<QLineEdit*>()) child->installEventFilter(this);
  return w;
}

bool Inspector::focusField(const QString& field) {
  QWidget* w = editors_.value(field, nullptr);
  if (!w) return false;
  w->setFocus(Qt::OtherFocusReason);
  if (auto* s = qobject_cast<QAbstractSpinBox*>(w)) s->selectAll();
  return true;
}

bool Inspector::eventFilter(QObject* watched, QEvent* event) {
  if (event->type() != QEvent::ShortcutOverride && event->type() != QEvent::KeyPress)
    return QWidget::eventFilter(watched, event);
  auto* key = static_cast<QKeyEvent*>(event);
  const bool undo = key->matches(QKeySequence::Undo), redo = key->matches(QKeySequence::Redo);
  if (!undo && !redo) return QWidget::eventFilter(watched, event);
  if (event->type() == QEvent::ShortcutOverride) {  // the key is ours: not the field's, not a menu's
    event->accept();
    return true;
  }
  // After this event: the undo rebuilds the form when the fields change, deleting `watched`.
  QTimer::singleShot(0, this, [this, undo] { undo ? model_->undoStack()->undo() : model_->undoStack()->redo(); });
  return true;
}

}  // namespace hl::ui
