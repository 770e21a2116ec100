#include "ui/editor/editor_model.h"

#include <QUndoCommand>

#include <algorithm>
#include <cmath>
#include <regex>

#include "engine/spec/schema.h"
#include "engine/train/experiment.h"

using json = nlohmann::json;

namespace hl::ui {

// One edit: the spec before and after. Undo/redo restore the snapshot exactly, so no edit can
// leave the document in a state a user did not see.
class SnapshotCommand : public QUndoCommand {
 public:
  SnapshotCommand(EditorModel* m, json before, json after, const QString& text, std::string mergeKey)
      : QUndoCommand(text), m_(m), before_(std::move(before)), after_(std::move(after)), key_(std::move(mergeKey)) {}
  void redo() override { m_->apply(after_); }
  void undo() override { m_->apply(before_); }
  int id() const override { return key_.empty() ? -1 : 1; }
  bool mergeWith(const QUndoCommand* other) override {
    auto* o = dynamic_cast<const SnapshotCommand*>(other);
    if (!o || o->key_ != key_ || key_.empty()) return false;
    after_ = o->after_;
    setObsolete(after_ == before_);  // edited back to where it started: no undo step left
    return true;
  }

 private:
  EditorModel* m_;
  json before_, after_;
  std::string key_;
};

IssueTarget issueTarget(const std::string& path) {
  static const std::regex block(R"(^model\.blocks\[(\d+)\](?:\.levels\[(\d+)\])?(?:\.(.+))?$)");
  IssueTarget t;
  std::smatch m;
  if (std::regex_match(path, m, block)) {
    t.block = std::stoi(m[1].str());
    if (m[2].matched) t.level = std::stoi(m[2].str());
    if (m[3].matched) t.field = m[3].str();
    return t;
  }
  for (const char* f : {"d_model", "vocab_size", "max_len", "positions"}) {
    if (path == std::string("model.") + f) {
      t.node = FixedNode::Embedding;
      t.field = f;
      return t;
    }
  }
  if (path == "model.head" || path.rfind("model.head.", 0) == 0) {
    t.node = FixedNode::Head;
    if (path.size() > 11) t.field = path.substr(11);
  }
  return t;
}

EditorModel::EditorModel(QObject* parent) : QObject(parent), undo_(new QUndoStack(this)) {
  // The built-in `transformer` preset, so a run launched from a fresh editor has the same spec
  // (and config hash) as `hopelab-cli train --preset transformer` (the field table's transformer
  // block is narrower: ffn_mult 2).
  setSpec(hl::spec::complete(hl::spec::preset("transformer")));
}

int EditorModel::maxLevels() {
  return hl::spec::kMaxLevels;
}
int EditorModel::minLevels() {
  return hl::spec::kMinLevels;
}

void EditorModel::setEstimatesEnabled(bool on) {
  if (on == estimates_) return;
  estimates_ = on;
  apply(spec_);  // re-analyse; not an edit
}

void EditorModel::setSpec(const json& spec) {
  if (!spec.is_object()) {
    refuse(tr("The spec must be a JSON object; the editor keeps the current one"));
    return;
  }
  undo_->clear();
  apply(spec);
}

bool EditorModel::replaceSpec(const json& spec, const QString& text) {
  if (!spec.is_object()) return refuse(tr("The spec must be a JSON object; the editor keeps the current one"));
  return push(spec, text);
}

void EditorModel::apply(const json& spec) {
  spec_ = spec;
  analyse();
  Q_EMIT changed();
}

bool EditorModel::refuse(const QString& reason) {
  Q_EMIT refused(reason);
  return false;
}

bool EditorModel::push(const json& after, const QString& text, const std::string& mergeKey) {
  if (after == spec_) return true;  // nothing changes: no undo step
  undo_->push(new SnapshotCommand(this, spec_, after, text, mergeKey));
  return true;
}

// ---- reading ---------------------------------------------------------------------------------

namespace {
const json kEmptyArray = json::array();
const json& completedBlocks(const json& completed) {
  if (completed.contains("model") && completed["model"].is_object() && completed["model"].contains("blocks") &&
      completed["model"]["blocks"].is_array())
    return completed["model"]["blocks"];
  return kEmptyArray;
}
QString friendly(const std::string& type) {
  return QString::fromStdString(type);
}
}  // namespace

int EditorModel::blockCount() const {
  return int(completedBlocks(completed_).size());
}

json EditorModel::block(int i) const {
  if (spec_.contains("model") && spec_["model"].is_object() && spec_["model"].contains("blocks") &&
      spec_["model"]["blocks"].is_array() && i >= 0 && i < int(spec_["model"]["blocks"].size()))
    return spec_["model"]["blocks"][i];
  return completedBlock(i);
}

json EditorModel::completedBlock(int i) const {
  const json& b = completedBlocks(completed_);
  return i >= 0 && i < int(b.size()) ? b[i] : json();
}

std::string EditorModel::blockType(int i) const {
  json b = completedBlock(i);
  return b.is_object() && b.contains("type") && b["type"].is_string() ? b["type"].get<std::string>() : std::string();
}

bool EditorModel::blockHasLevels(int i) const {
  json b = completedBlock(i);
  if (b.is_object() && b.contains("levels") && b["levels"].is_array()) return true;
  json d = hl::spec::block_defaults(blockType(i));
  return d.contains("levels") && d["levels"].is_array();
}

json EditorModel::levelsOf(const json& spec, int block) const {
  json c;
  try {
    c = hl::spec::complete(spec);
  } catch (...) {
    return json::array();
  }
  const json& bl = completedBlocks(c);
  if (block < 0 || block >= int(bl.size())) return json::array();
  const json& b = bl[block];
  if (b.is_object() && b.contains("levels") && b["levels"].is_array()) return b["levels"];
  return json::array();
}

int EditorModel::levelCount(int i) const {
  return blockHasLevels(i) ? int(levelsOf(spec_, i).size()) : 0;
}

json EditorModel::level(int block, int level) const {
  json lv = levelsOf(spec_, block);
  return level >= 0 && level < int(lv.size()) ? lv[level] : json();
}

// The raw blocks array of `spec`, materialised from the completed spec when the file relied on
// the default blocks.
json& EditorModel::blocksOf(json& spec) {
  if (!spec.contains("model") || !spec["model"].is_object()) spec["model"] = json::object();
  json& m = spec["model"];
  if (!m.contains("blocks") || !m["blocks"].is_array()) m["blocks"] = completedBlocks(completed_);
  return m["blocks"];
}

// ---- edits -----------------------------------------------------------------------------------

bool EditorModel::insertBlock(int index, const std::string& type) {
  json d = hl::spec::block_defaults(type);
  if (d.empty()) d = {{"type", type}};
  return insertBlockJson(index, d, tr("Add %1 block").arg(friendly(type)));
}

bool EditorModel::insertBlockJson(int index, const json& block, const QString& what) {
  if (!block.is_object() || !block.contains("type") || !block["type"].is_string())
    return refuse(tr("A block needs a string \"type\""));
  json after = spec_;
  json& bl = blocksOf(after);
  index = std::clamp(index, 0, int(bl.size()));
  bl.insert(bl.begin() + index, block);
  return push(after, what);
}

bool EditorModel::removeBlock(int i) {
  if (i < 0 || i >= blockCount()) return refuse(tr("No block %1 to delete").arg(i));
  json after = spec_;
  json& bl = blocksOf(after);
  QString type = friendly(blockType(i));
  bl.erase(bl.begin() + i);
  return push(after, tr("Delete %1 block").arg(type));
}

bool EditorModel::moveBlock(int from, int to) {
  int n = blockCount();
  if (from < 0 || from >= n) return refuse(tr("No block %1 to move").arg(from));
  to = std::clamp(to, 0, n - 1);
  if (from == to) return true;
  json after = spec_;
  json& bl = blocksOf(after);
  json b = bl[from];
  bl.erase(bl.begin() + from);
  bl.insert(bl.begin() + to, b);
  return push(after, tr("Move %1 block").arg(friendly(blockType(from))));
}

bool EditorModel::duplicateBlock(int i) {
  if (i < 0 || i >= blockCount()) return refuse(tr("No block %1 to duplicate").arg(i));
  return insertBlockJson(i + 1, block(i), tr("Duplicate %1 block").arg(friendly(blockType(i))));
}

bool EditorModel::changeBlockType(int i, const std::string& type) {
  if (i < 0 || i >= blockCount()) return refuse(tr("No block %1 to change").arg(i + 1));
  json d = hl::spec::block_defaults(type);
  if (d.empty()) return refuse(tr("Unknown block type \"%1\"").arg(QString::fromStdString(type)));
  if (type == blockType(i)) return true;
  json old = block(i);
  json nb = d;
  if (old.is_object())
    for (auto it = old.begin(); it != old.end(); ++it)
      if (it.key() != "type" && d.contains(it.key())) nb[it.key()] = it.value();
  json after = spec_;
  blocksOf(after)[i] = nb;
  return push(after, tr("Change block %1 to %2").arg(i + 1).arg(friendly(type)));
}

bool EditorModel::insertLevel(int blk, int index, const json& level) {
  if (blk < 0 || blk >= blockCount()) return refuse(tr("No block %1 to add a level to").arg(blk));
  if (!blockHasLevels(blk))
    return refuse(tr("A %1 block has no CMS levels: drop levels on a cms block").arg(friendly(blockType(blk))));
  json lv = levelsOf(spec_, blk);
  if (int(lv.size()) >= maxLevels())
    return refuse(tr("A CMS block holds at most %1 levels; remove one first").arg(maxLevels()));
  index = std::clamp(index, 0, int(lv.size()));
  json L = level;
  if (!L.is_object()) {
    // A new level's clock fits where it lands (levels are listed fastest first): between clocks a
    // and b their geometric mean (4 and 16: 8), after the slowest 4x it, before the fastest 1/4.
    auto clockAt = [&](int i) -> long long {
      if (i < 0 || i >= int(lv.size()) || !lv[i].is_object() || !lv[i].contains("clock") ||
          !lv[i]["clock"].is_number_integer())
        return 0;
      return lv[i]["clock"].get<long long>();
    };
    const long long a = clockAt(index - 1), b = clockAt(index);
    long long clock = 1;
    if (a > 0 && b > 0)
      clock = std::clamp<long long>(std::llround(std::sqrt(double(a) * double(b))), a, b);
    else if (a > 0)
      clock = a * 4;
    else if (b > 0)
      clock = std::max<long long>(1, b / 4);
    L = {{"clock", clock}, {"lr", 0.0}};
  }
  lv.insert(lv.begin() + index, L);
  json after = spec_;
  blocksOf(after)[blk]["levels"] = lv;
  return push(after, tr("Add level to block %1").arg(blk + 1));
}

bool EditorModel::removeLevel(int blk, int level) {
  json lv = levelsOf(spec_, blk);
  if (level < 0 || level >= int(lv.size())) return refuse(tr("No level %1 in block %2").arg(level + 1).arg(blk + 1));
  if (int(lv.size()) <= minLevels())
    return refuse(tr("A CMS block needs at least %1 level; delete the block instead").arg(minLevels()));
  lv.erase(lv.begin() + level);
  json after = spec_;
  blocksOf(after)[blk]["levels"] = lv;
  return push(after, tr("Remove level %1 from block %2").arg(level + 1).arg(blk + 1));
}

bool EditorModel::moveLevel(int fromBlock, int fromLevel, int toBlock, int toLevel) {
  json src = levelsOf(spec_, fromBlock);
  if (fromLevel < 0 || fromLevel >= int(src.size()))
    return refuse(tr("No level %1 in block %2").arg(fromLevel + 1).arg(fromBlock + 1));
  if (toBlock < 0 || toBlock >= blockCount() || !blockHasLevels(toBlock))
    return refuse(tr("Levels can only be dropped on a block with CMS levels"));
  json after = spec_;
  json& bl = blocksOf(after);
  json L = src[fromLevel];
  if (toBlock == fromBlock) {
    toLevel = std::clamp(toLevel, 0, int(src.size()) - 1);
    if (toLevel == fromLevel) return true;
    src.erase(src.begin() + fromLevel);
    src.insert(src.begin() + toLevel, L);
    bl[fromBlock]["levels"] = src;
    return push(after, tr("Move level %1 of block %2").arg(fromLevel + 1).arg(fromBlock + 1));
  }
  json dst = levelsOf(spec_, toBlock);
  if (int(dst.size()) >= maxLevels())
    return refuse(tr("A CMS block holds at most %1 levels; remove one first").arg(maxLevels()));
  if (int(src.size()) <= minLevels())
    return refuse(tr("A CMS block needs at least %1 level; delete the block instead").arg(minLevels()));
  src.erase(src.begin() + fromLevel);
  dst.insert(dst.begin() + std::clamp(toLevel, 0, int(dst.size())), L);
  bl[fromBlock]["levels"] = src;
  bl[toBlock]["levels"] = dst;
  return push(after, tr("Move level to block %1").arg(toBlock + 1));
}

bool EditorModel::setValue(const std::string& pointer, const json& value) {
  json after = spec_;
  try {
    json::json_pointer ptr(pointer);
    if (pointer.rfind("/model/blocks/", 0) == 0) {
      json& bl = blocksOf(after);
      // a level of a block that relied on its type's default levels: write the levels out first
      static const std::regex levelPtr(R"(^/model/blocks/(\d+)/levels/.*)");
      std::smatch m;
      if (std::regex_match(pointer, m, levelPtr)) {
        int b = std::stoi(m[1].str());
        if (b < int(bl.size()) && bl[b].is_object() && !(bl[b].contains("levels") && bl[b]["levels"].is_array()))
          bl[b]["levels"] = levelsOf(spec_, b);
      }
    }
    if (pointer.rfind("/model/", 0) == 0 && (!after.contains("model") || !after["model"].is_object()))
      after["model"] = json::object();
    if (pointer.rfind("/model/head/", 0) == 0 &&
        (!after["model"].contains("head") || !after["model"]["head"].is_object()))
      after["model"]["head"] = json::object();
    if (!after.contains(ptr.parent_pointer()))
      return refuse(tr("No field %1 in the spec").arg(QString::fromStdString(pointer)));
    after[ptr] = value;
  } catch (const std::exception& e) {
    return refuse(tr("Cannot set %1: %2").arg(QString::fromStdString(pointer), e.what()));
  }
  // "/model/blocks/0/heads" -> "model.blocks[0].heads", as the validator names it
  QString shown;
  for (const auto& tok : QString::fromStdString(pointer).split('/', Qt::SkipEmptyParts)) {
    bool index = false;
    tok.toInt(&index);
    shown += index ? "[" + tok + "]" : (shown.isEmpty() ? tok : "." + tok);
  }
  return push(after, tr("Set %1 = %2").arg(shown, QString::fromStdString(value.dump())), "set:" + pointer);
}

bool EditorModel::setHeadType(const std::string& type) {
  return setValue("/model/head/type", type);
}

bool EditorModel::loadPreset(const std::string& name) {
  json after;
  try {
    // The preset's model, optimizer and grad_clip replace the current ones (as the CLI's
    // --preset trains); the experiment and the training protocol stay the user's.
    after = hl::spec::with_preset(spec_, name);
  } catch (const std::exception& e) {
    return refuse(QString::fromUtf8(e.what()));
  }
  return push(after, tr("Load preset %1").arg(QString::fromStdString(name)));
}

// ---- analysis --------------------------------------------------------------------------------

int EditorModel::errorCount() const {
  int n = 0;
  for (const auto& i : validation_.issues) n += i.error ? 1 : 0;
  return n;
}

int EditorModel::warningCount() const {
  return int(validation_.issues.size()) - errorCount();
}

std::vector<hl::spec::Issue> EditorModel::issuesFor(int block, int level) const {
  std::vector<hl::spec::Issue> out;
  for (const auto& i : validation_.issues) {
    IssueTarget t = issueTarget(i.path);
    if (t.block == block && (level < 0 || t.level == level)) out.push_back(i);
  }
  return out;
}

std::vector<hl::spec::Issue> EditorModel::issuesFor(FixedNode node) const {
  std::vector<hl::spec::Issue> out;
  for (const auto& i : validation_.issues) {
    IssueTarget t = issueTarget(i.path);
    if (t.node && *t.node == node) out.push_back(i);
  }
  return out;
}

Stats EditorModel::blockStats(int i) const {
  return i >= 0 && i < int(blocks_.size()) ? blocks_[i] : Stats{};
}

Stats EditorModel::nodeStats(FixedNode node) const {
  switch (node) {
    case FixedNode::Embedding:
      return embedding_;
    case FixedNode::Norm:
      return norm_;
    case FixedNode::Head:
      return head_;
    case FixedNode::Pooling:
      return Stats{embedding_.ok, 0, 0.0};
  }
  return {};
}

namespace {
// A rough upper bound of the parameter count, so that a typo like d_model 4096 with a 1M
// vocabulary does not allocate gigabytes in the GUI thread just to count them.
double roughParams(const json& c) {
  try {
    const json& m = c.at("model");
    double d = m.at("d_model").get<double>();
    double v = std::max(8000.0, m.at("vocab_size").get<double>());
    double l = std::max(128.0, m.at("max_len").get<double>());
    double p = (v + l) * d;
    for (const auto& b : m.at("blocks")) {
      double mult = b.value("ffn_mult", 4);
      double hidden = b.value("hidden", 0);
      p += d * d * (8 + 2 * mult) *
           std::max<size_t>(1, b.contains("levels") && b["levels"].is_array() ? b["levels"].size() : 1);
      p += 8 * std::max(hidden, d) * std::max(hidden, d);
    }
    return p;
  } catch (...) {
    return 0.0;
  }
}
constexpr double kMaxEstimatedParams = 200e6;
}  // namespace

void EditorModel::analyse() {
  try {
    completed_ = hl::spec::complete(spec_);
    validation_ = hl::spec::validate(completed_);
  } catch (const std::exception& e) {
    completed_ = spec_;
    validation_ = {};
    validation_.issues.push_back({"", e.what(), true});
  }
  // describe() builds the model: cache by input so an edit re-describes only what changed.
  auto describe = [this](const json& s) -> std::pair<Stats, json> {
    std::string key = s.dump();
    if (auto it = cache_.find(key); it != cache_.end()) return it->second;
    std::pair<Stats, json> r{Stats{}, json()};
    if (roughParams(s) <= kMaxEstimatedParams) {
      try {
        json d = hl::train::describe(s);
        r.first = {true, d.at("params").get<long long>(), d.at("flops_per_sample").get<double>()};
        r.second = d;
      } catch (const std::exception&) {
      }
    }
    if (cache_.size() > 512) cache_.clear();
    cache_[key] = r;
    return r;
  };
  total_ = {};
  blocks_.assign(blockCount(), Stats{});
  embedding_ = norm_ = head_ = Stats{};
  vocab_ = seqLen_ = classes_ = 0;
  if (!estimates_ || !completed_.is_object() || !completed_.contains("model") || !completed_["model"].is_object())
    return;
  total_ = describe(completed_).first;
  json base = completed_;
  base["model"]["blocks"] = json::array();
  auto [baseStats, info] = describe(base);
  if (baseStats.ok) {
    vocab_ = info.value("vocab_size", 0);
    seqLen_ = info.value("seq_len", 0);
    classes_ = info.value("num_classes", 0);
    long long tok = 0;
    for (const auto& m : info.value("modules", json::array())) {
      std::string n = m.value("name", "");
      long long p = m.value("params", 0LL);
      if (n == "tok" || n == "pos")
        tok += p;
      else if (n == "norm")
        norm_ = {true, p, 0.0};
      else if (n == "head")
        head_ = {true, p, 0.0};
    }
    embedding_ = {true, tok, 0.0};
    if (!head_.ok) head_ = {true, 0, 0.0};  // NCM: class means are buffers, not parameters
    head_.flops = baseStats.flops;          // with no blocks the estimate is the head's alone
    if (!norm_.ok) norm_ = {true, 0, 0.0};
  }
  const json& bl = completedBlocks(completed_);
  for (size_t i = 0; i < bl.size(); ++i) {
    if (!baseStats.ok) break;
    json one = completed_;
    one["model"]["blocks"] = json::array({bl[i]});
    auto s = describe(one).first;
    if (s.ok) blocks_[i] = {true, s.params - baseStats.params, s.flops - baseStats.flops};
  }
}

}  // namespace hl::ui
