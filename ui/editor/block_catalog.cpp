#include "ui/editor/block_catalog.h"

#include <QCoreApplication>

#include <map>

namespace hl::ui {

BlockInfo blockInfo(const std::string& type) {
  auto tr = [](const char* s) { return QCoreApplication::translate("hl::ui::BlockCatalog", s); };
  struct Entry {
    const char* title;
    const char* description;
    int hue;
  };
  static const std::map<std::string, Entry> known = {
      {"transformer", {"Transformer", "Attention + MLP (pre-norm)", 210}},
      {"lstm", {"LSTM", "Recurrent LSTM layer, left to right", 30}},
      {"retnet", {"RetNet", "Multi-scale retention + MLP", 180}},
      {"cms", {"CMS", "Continuum Memory System: MLP levels, each updated at its own clock", 130}},
      {"titans", {"Titans", "Titans long-term memory (written in context) + MLP", 280}},
      {"hope", {"Hope", "Self-modifying Titans + CMS", 330}},
      {"hope_attention", {"Hope (attention)", "Attention + CMS", 300}},
      {"selfmod_titans", {"Self-modifying Titans", "Titans memory that also learns its own update", 260}},
      {"titans_memory", {"Titans memory", "Titans long-term memory alone (no MLP)", 250}},
      {"attention", {"Attention", "Multi-head self-attention alone", 200}},
      {"mlp", {"MLP", "Feed-forward MLP alone", 100}},
  };
  auto it = known.find(type);
  if (it == known.end())
    return {QString::fromStdString(type), tr("Block type from the engine (no description)"),
            QColor::fromHsv(0, 0, 140)};
  return {tr(it->second.title), tr(it->second.description), QColor::fromHsv(it->second.hue, 150, 200)};
}

}  // namespace hl::ui
