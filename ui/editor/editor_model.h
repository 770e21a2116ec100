// The Architecture editor's model: holds the spec JSON, applies every edit as one undo command
// (a before/after snapshot of the spec), and after each change re-runs the engine validator and
// the parameter / FLOP estimate. No view code: testable headless.
#pragma once
#include <QObject>
#include <QString>
#include <QUndoStack>

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/spec/spec.h"

namespace hl::ui {

// What the canvas shows besides the block list.
enum class FixedNode { Embedding, Norm, Pooling, Head };

// Where a validation issue belongs.
struct IssueTarget {
  int block = -1;                 // model.blocks[i]; -1 = not a block
  int level = -1;                 // model.blocks[i].levels[l]; -1 = the block itself
  std::optional<FixedNode> node;  // model-level paths
  std::string field;              // the field inside the block / level / node ("" = the whole thing)
};
IssueTarget issueTarget(const std::string& path);

struct Stats {
  bool ok = false;  // false: describe() failed (shown as "—")
  long long params = 0;
  double flops = 0.0;  // per sample
};

class EditorModel : public QObject {
  Q_OBJECT

 public:
  explicit EditorModel(QObject* parent = nullptr);

  // Replaces the whole document and clears the undo history (File > Open).
  void setSpec(const nlohmann::json& spec);
  // Replaces the whole document as one undoable step named `text` (opening a stored run's spec).
  bool replaceSpec(const nlohmann::json& spec, const QString& text);
  const nlohmann::json& spec() const { return spec_; }
  // The spec completed with the defaults (what validate() and the inspector see).
  const nlohmann::json& completed() const { return completed_; }
  QUndoStack* undoStack() const { return undo_; }

  int blockCount() const;
  nlohmann::json block(int i) const;           // as stored (may be partial)
  nlohmann::json completedBlock(int i) const;  // with its type's defaults
  std::string blockType(int i) const;
  bool blockHasLevels(int i) const;  // cms and types whose defaults or JSON hold a "levels" array
  int levelCount(int i) const;
  nlohmann::json level(int block, int level) const;  // completed level

  // Edits. Each is one undoable command; false (and refused() with the reason) when not possible.
  bool insertBlock(int index, const std::string& type);  // with block_defaults(type)
  bool insertBlockJson(int index, const nlohmann::json& block, const QString& what);
  bool removeBlock(int i);
  bool moveBlock(int from, int to);  // `to` = the block's index afterwards
  bool duplicateBlock(int i);        // the copy goes right after the original
  // Turns block i into `type`: that type's defaults, keeping the values of the fields both share
  // (heads, ffn_mult, levels, ...); fields the new type does not have are dropped.
  bool changeBlockType(int i, const std::string& type);
  // Default level: {"clock": c, "lr": 0}, c the geometric mean of its neighbours' clocks, 4 x the
  // slowest when appended, a quarter of the fastest when first.
  bool insertLevel(int block, int index, const nlohmann::json& level = nlohmann::json());
  bool removeLevel(int block, int level);
  bool moveLevel(int fromBlock, int fromLevel, int toBlock, int toLevel);
  // Sets one value by JSON pointer inside the spec (e.g. "/model/blocks/0/heads"). Consecutive
  // edits of the same pointer merge into one undo step.
  bool setValue(const std::string& pointer, const nlohmann::json& value);
  bool setHeadType(const std::string& type);
  bool loadPreset(const std::string& name);  // replaces model, name and description; keeps the rest

  // Analysis of the current document (updated before changed() is emitted).
  const hl::spec::Validation& validation() const { return validation_; }
  int errorCount() const;
  int warningCount() const;
  std::vector<hl::spec::Issue> issuesFor(int block, int level = -1) const;  // level -1: the block's own + its levels'
  std::vector<hl::spec::Issue> issuesFor(FixedNode node) const;
  Stats totalStats() const { return total_; }
  Stats blockStats(int i) const;
  Stats nodeStats(FixedNode node) const;    // Embedding (token + position tables), Norm, Head; Pooling has none
  int vocabSize() const { return vocab_; }  // what describe() resolved (dataset default when 0); 0 unknown
  int seqLen() const { return seqLen_; }
  int numClasses() const { return classes_; }

  // describe() builds the model with LibTorch's global CPU generator. While a run trains in this
  // process, building a model here would draw from that run's random stream (its dropout, its
  // next initialisation), so the main window turns the estimates off for that time.
  void setEstimatesEnabled(bool on);
  bool estimatesEnabled() const { return estimates_; }

  static int maxLevels();
  static int minLevels();

 Q_SIGNALS:
  void changed();                       // after every change (edit, undo, redo, setSpec)
  void refused(const QString& reason);  // an edit that was not applied, and why

 private:
  friend class SnapshotCommand;
  void apply(const nlohmann::json& spec);  // used by the commands
  bool push(const nlohmann::json& after, const QString& text, const std::string& mergeKey = {});
  bool refuse(const QString& reason);
  void analyse();
  nlohmann::json& blocksOf(nlohmann::json& spec);
  nlohmann::json levelsOf(const nlohmann::json& spec, int block) const;  // completed levels array of a block

  nlohmann::json spec_ = nlohmann::json::object();
  nlohmann::json completed_ = nlohmann::json::object();
  QUndoStack* undo_;
  hl::spec::Validation validation_;
  Stats total_;
  std::vector<Stats> blocks_;
  Stats embedding_, norm_, head_;
  int vocab_ = 0, seqLen_ = 0, classes_ = 0;
  bool estimates_ = true;
  std::map<std::string, std::pair<Stats, nlohmann::json>> cache_;  // describe() results by input text
};

}  // namespace hl::ui
