#include "engine/spec/sweep.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "engine/common/error.h"
#include "engine/spec/spec.h"

namespace hl::spec {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr size_t kMaxRuns = 100000;

std::string value_text(const ojson& v) {
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

Sweep parse_sweep(const std::string& text, const std::string& path, const std::string& base_dir) {
  auto fail = [&](const std::string& field, const std::string& what) -> SpecError {
    return SpecError(path + ": " + (field.empty() ? "" : field + ": ") + what);
  };
  ojson f;
  try {
    f = ojson::parse(text);
  } catch (const std::exception& e) {
    throw fail("", std::string("not valid JSON (") + e.what() + ")");
  }
  if (!f.is_object())
    throw fail("", "a sweep file is a JSON object with \"preset\" or \"spec\", \"grid\" and \"seeds\"");
  for (auto it = f.begin(); it != f.end(); ++it)
    if (it.key() != "name" && it.key() != "preset" && it.key() != "spec" && it.key() != "set" && it.key() != "grid" &&
        it.key() != "seeds")
      throw fail(it.key(), "unknown field (known: name, preset, spec, set, grid, seeds)");
  Sweep sw;
  if (f.contains("name") && !f["name"].is_string()) throw fail("name", "must be a string");
  sw.name = f.value("name", std::filesystem::path(path).stem().string());
  if (f.contains("preset") && f.contains("spec")) throw fail("spec", "give \"preset\" or \"spec\", not both");
  // The grids (one object, or a list of them whose runs are concatenated), each with its axes in
  // file order; then the seeds.
  using Axes = std::vector<std::pair<std::string, std::vector<ojson>>>;
  std::vector<std::pair<std::string, Axes>> grids;  // (field name for messages, axes)
  auto parse_grid = [&](const ojson& g, const std::string& where) {
    if (!g.is_object()) throw fail(where, "must be an object of PATH: [values] (or a list of such objects)");
    Axes axes;
    for (auto it = g.begin(); it != g.end(); ++it) {
      if (it.key() == "experiment.seed")  // seeds are the sweep's own axis (below)
        throw fail(where + ".experiment.seed", "seeds are given by \"seeds\": [0, 1, 2]");
      if (!it.value().is_array() || it.value().empty())
        throw fail(where + "." + it.key(), "must be a non-empty list of values");
      axes.push_back({it.key(), std::vector<ojson>(it.value().begin(), it.value().end())});
    }
    grids.push_back({where, std::move(axes)});
  };
  if (!f.contains("grid")) {
    grids.push_back({"grid", {}});
  } else if (f["grid"].is_array()) {
    if (f["grid"].empty()) throw fail("grid", "must be a non-empty list of grid objects");
    for (size_t i = 0; i < f["grid"].size(); ++i) parse_grid(f["grid"][i], "grid[" + std::to_string(i) + "]");
  } else {
    parse_grid(f["grid"], "grid");
  }
  // The seed is the sweep's own axis: a grid or set over it would make runs that differ in
  // nothing but their label, and every run would take the `seeds` value anyway.
  if (f.contains("set") && f["set"].is_object() && f["set"].contains("experiment.seed"))
    throw fail("set.experiment.seed", "seeds are given by \"seeds\": [0, 1, 2]");
  std::vector<long long> seeds{-1};  // -1: the base spec's own seed
  if (f.contains("seeds")) {
    if (!f["seeds"].is_array() || f["seeds"].empty()) throw fail("seeds", "must be a non-empty list of integers");
    seeds.clear();
    for (const auto& s : f["seeds"]) {
      if (!s.is_number_integer() || s.get<long long>() < 0)
        throw fail("seeds", "must hold integers >= 0, got " + s.dump());
      seeds.push_back(s.get<long long>());
    }
  }
  if (f.contains("set") && !f["set"].is_object()) throw fail("set", "must be an object of PATH: value");
  size_t all = 0;
  for (const auto& [where, axes] : grids) {
    size_t n = seeds.size();
    for (const auto& [key, values] : axes) {
      n *= values.size();
      if (n > kMaxRuns) throw fail(where, "more than " + std::to_string(kMaxRuns) + " runs");
    }
    all += n;
    if (all > kMaxRuns) throw fail("grid", "more than " + std::to_string(kMaxRuns) + " runs");
  }

  // The base spec of a grid point: its preset (the grid's, else the file's) or the spec file.
  auto base = [&](const std::string& preset_name) -> json {
    if (!preset_name.empty()) return spec::preset(preset_name);
    if (f.contains("spec")) {
      if (!f["spec"].is_string()) throw fail("spec", "must be a path to a spec file");
      std::filesystem::path p = f["spec"].get<std::string>();
      if (p.is_relative()) p = std::filesystem::path(base_dir) / p;
      return spec::complete(spec::load_file(p.string()));
    }
    if (f.contains("preset")) {
      if (!f["preset"].is_string()) throw fail("preset", "must be a preset name");
      return spec::preset(f["preset"].get<std::string>());
    }
    return spec::defaults();
  };
  std::map<std::string, std::string> seen;  // config hash + seed -> the first run's label
  for (const auto& [where, axes] : grids) {
    size_t total = seeds.size();
    for (const auto& ax : axes) total *= ax.second.size();
    std::vector<size_t> at(axes.size(), 0);  // the odometer over the axes
    for (size_t point = 0; point < total / seeds.size(); ++point) {
      std::string preset_name, label;
      for (size_t a = 0; a < axes.size(); ++a) {
        const auto& v = axes[a].second[at[a]];
        if (axes[a].first == "preset") {
          if (!v.is_string()) throw fail(where + ".preset", "must list preset names");
          preset_name = v.get<std::string>();
        }
        label += (label.empty() ? "" : " ") + axes[a].first + "=" + value_text(v);
      }
      json s;
      try {
        s = base(preset_name);
        if (f.contains("set"))
          for (auto it = f["set"].begin(); it != f["set"].end(); ++it) spec::set_path(s, it.key(), it.value().dump());
        for (size_t a = 0; a < axes.size(); ++a)
          if (axes[a].first != "preset") spec::set_path(s, axes[a].first, axes[a].second[at[a]].dump());
        s = spec::complete(s);
      } catch (const SpecError& e) {
        throw fail(label.empty() ? "" : "grid point " + label, e.what());
      }
      for (long long seed : seeds) {
        SweepRun r;
        r.index = int(sw.runs.size());
        r.spec = s;
        if (seed >= 0) r.spec["experiment"]["seed"] = seed;
        const std::string at = (label.empty() ? "" : label + " ") + "seed=" + r.spec["experiment"]["seed"].dump();
        auto v = spec::validate(r.spec);  // with the seed set: every run is checked before any runs
        if (!v.ok()) throw fail("grid point " + at, "the spec has errors:\n" + v.format());
        // Two grids (or two values that complete alike) naming one run: the runner would skip the
        // second as finished, and a report would count it twice.
        const std::string key = spec::config_hash(r.spec) + "/" + r.spec["experiment"]["seed"].dump();
        if (auto [it, fresh] = seen.emplace(key, at); !fresh)
          throw fail("grid point " + at,
                     "the same run as " + it->second + " (same config hash and seed); list it once");
        r.label = at;
        sw.runs.push_back(std::move(r));
      }
      for (size_t a = axes.size(); a-- > 0;) {  // the last axis varies fastest
        if (++at[a] < axes[a].second.size()) break;
        at[a] = 0;
      }
    }
  }
  return sw;
}

Sweep load_sweep(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw SpecError(path + ": cannot read the sweep file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_sweep(ss.str(), path, std::filesystem::path(path).parent_path().string());
}

}  // namespace hl::spec
