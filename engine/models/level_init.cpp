#include "engine/models/level_init.h"

#include "engine/common/error.h"

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>

namespace hl::models {

namespace {

std::string shape_str(const torch::Tensor& t) {
  std::ostringstream s;
  s << "[";
  for (int64_t i = 0; i < t.dim(); ++i) s << (i ? ", " : "") << t.size(i);
  s << "]";
  return s.str();
}

// Follows a dotted module path (blocks.0.level1_mlp.fc1.weight) through nested archives.
bool read_path(torch::serialize::InputArchive& root, const std::string& name, torch::Tensor& out) {
  std::vector<std::string> parts;
  std::stringstream ss(name);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  if (parts.empty()) return false;
  std::vector<std::unique_ptr<torch::serialize::InputArchive>> chain;  // parents stay alive
  torch::serialize::InputArchive* at = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    chain.push_back(std::make_unique<torch::serialize::InputArchive>());
    if (!at->try_read(parts[i], *chain.back())) return false;
    at = chain.back().get();
  }
  return at->try_read(parts.back(), out);
}

}  // namespace

void init_levels_from_checkpoints(ClassifierImpl& model) {
  const auto& cfg = model.config();
  bool any = false;
  for (const auto& b : cfg.blocks)
    for (const auto& in : b.cms_init) any = any || !in.checkpoint.empty();
  if (!any) return;
  std::map<const void*, std::string> names;
  for (const auto& kv : model.named_parameters(/*recurse=*/true)) names[kv.value().unsafeGetTensorImpl()] = kv.key();
  torch::NoGradGuard no_grad;
  for (const auto& g : model.levels()) {
    const auto& bc = cfg.blocks[g.block];
    if (size_t(g.index) >= bc.cms_init.size() || bc.cms_init[g.index].checkpoint.empty()) continue;
    const auto& in = bc.cms_init[g.index];
    const std::string field =
        "model.blocks[" + std::to_string(g.block) + "].levels[" + std::to_string(g.index) + "].init_from";
    if (!std::filesystem::is_regular_file(in.checkpoint))
      throw SpecError(field + ".checkpoint: no such checkpoint file '" + in.checkpoint + "'");
    torch::serialize::InputArchive ar;
    try {
      ar.load_from(in.checkpoint);
    } catch (const std::exception& e) {
      throw SpecError(field + ".checkpoint: cannot read '" + in.checkpoint + "' as a Hope Lab checkpoint (" +
                      std::string(e.what()).substr(0, 200) + ")");
    }
    const std::string from_block = "blocks." + std::to_string(g.block) + ".";
    const std::string from_level = "level" + std::to_string(g.index) + "_";
    for (auto& p : g.params) {
      std::string name = names.at(p.unsafeGetTensorImpl());
      // blocks.<b>.<...>level<l>_<rest> -> blocks.<src b>.<...>level<src l>_<rest>
      if (name.rfind(from_block, 0) != 0 || name.find(from_level) == std::string::npos)
        throw SpecError(field + ": level stacking does not support the parameter '" + name + "'");
      // The same path in the source block, else the layouts of a cms block (levels at the top) and
      // of a hope block (levels under `cms.`), so levels stack across those block types.
      const std::string inner = name.substr(from_block.size());  // [cms.]level<l>_<rest>
      const auto at = inner.find(from_level);
      const std::string rest = inner.substr(at + from_level.size());  // norm.weight, mlp.fc1.weight, ...
      const std::string sb = "blocks." + std::to_string(in.block) + ".";
      const std::string sl = "level" + std::to_string(in.level) + "_";
      std::string src;
      torch::Tensor t;
      bool found = false;
      for (const std::string& cand : {sb + inner.substr(0, at) + sl + rest, sb + sl + rest, sb + "cms." + sl + rest}) {
        if (src.empty()) src = cand;
        if (read_path(ar, cand, t)) {
          src = cand;
          found = true;
          break;
        }
      }
      if (!found)
        throw SpecError(field + ": the checkpoint '" + in.checkpoint + "' has no '" + src + "' (block " +
                        std::to_string(in.block) + " level " + std::to_string(in.level) + " is not a CMS level there)");
      if (!t.sizes().equals(p.sizes()))
        throw SpecError(field + ": shape mismatch for '" + src + "': the checkpoint has " + shape_str(t) +
                        ", this level needs " + shape_str(p) + " (same d_model and ffn_mult required)");
      p.copy_(t.to(p.device(), p.scalar_type()));
    }
  }
}

}  // namespace hl::models
