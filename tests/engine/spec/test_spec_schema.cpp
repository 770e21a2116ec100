// Field metadata (engine/spec/schema.h) agrees with the spec: every default field has metadata,
// every default lies inside its range, and the validator accepts the range's ends and rejects
// the values just outside it.
#include <QtTest>
#include <regex>

#include <set>

#include "engine/spec/fields.h"
#include "engine/spec/schema.h"
#include "engine/spec/spec.h"

using hl::spec::FieldInfo;
using json = nlohmann::json;

namespace {

bool hasError(const hl::spec::Validation& v, const std::string& path) {
  for (const auto& i : v.issues)
    if (i.error && i.path == path) return true;
  return false;
}

// The choices the validator allows, read from its message for a bad value at `path`
// ("must be one of a, b, c, got ..."); empty when there is no such message.
std::set<std::string> allowedChoices(const hl::spec::Validation& v, const std::string& path) {
  std::set<std::string> out;
  for (const auto& i : v.issues) {
    if (i.path != path) continue;
    auto a = i.message.find("must be one of ");
    auto b = i.message.find(", got ");
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string list = i.message.substr(a + 15, b - a - 15);
    size_t start = 0;
    while (start <= list.size()) {
      size_t comma = list.find(", ", start);
      out.insert(list.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
      if (comma == std::string::npos) break;
      start = comma + 2;
    }
  }
  return out;
}

// Fails when the schema offers a different set of choices than the validator accepts.
void checkChoices(const FieldInfo& f, const hl::spec::Validation& bad, const std::string& path) {
  if (f.kind != "choice") return;
  std::set<std::string> mine(f.choices.begin(), f.choices.end());
  std::set<std::string> theirs = allowedChoices(bad, path);
  std::string a, b;
  for (const auto& c : mine) a += c + " ";
  for (const auto& c : theirs) b += c + " ";
  QVERIFY2(mine == theirs, (path + ": schema offers [ " + a + "], the validator accepts [ " + b + "]").c_str());
}

// A complete spec whose only block is `block`.
json withBlock(const json& block) {
  json s = hl::spec::defaults();
  s["model"]["blocks"] = json::array({block});
  return hl::spec::complete(s);
}

// Values the validator must accept and values it must reject for a field.
void probes(const FieldInfo& f, std::vector<json>& good, std::vector<json>& bad) {
  if (f.kind == "int") {
    good = {json(int64_t(f.max))};
    if (!f.min_open) good.push_back(json(int64_t(f.min)));
    bad = {json(int64_t(f.max) + 1), json(int64_t(f.min) - 1), json(1.5)};
  } else if (f.kind == "number") {
    double eps = (f.max - f.min) * 1e-3 + 1e-9;
    good = {json(f.max), json(f.min + (f.min_open ? eps : 0.0))};
    bad = {json(f.max + eps), json(f.min - eps), json("x")};
    if (f.min_open) bad.push_back(json(f.min));
  } else if (f.kind == "choice") {
    for (const auto& c : f.choices) good.push_back(json(c));
    bad = {json("no-such-choice"), json(3)};
  } else if (f.kind == "bool") {
    good = {json(true), json(false)};
    bad = {json("yes")};
  }
}

QString describeField(const std::string& where, const FieldInfo& f, const json& v) {
  return QString::fromStdString(where + "." + f.name + " = " + v.dump());
}

}  // namespace

class TestSpecSchema : public QObject {
  Q_OBJECT

 private slots:
  void everyDefaultBlockFieldHasMetadataAndLiesInRange() {
    for (const auto& type : hl::spec::block_types()) {
      json d = hl::spec::block_defaults(type);
      auto fields = hl::spec::block_fields(type);
      // every default field except type/levels has exactly one entry, in the defaults' order
      size_t expected = 0;
      for (auto it = d.begin(); it != d.end(); ++it)
        if (it.key() != "type" && it.key() != "levels") ++expected;
      QCOMPARE(fields.size(), expected);
      for (const auto& f : fields) {
        QVERIFY2(f.known, (type + "." + f.name + " has no metadata").c_str());
        QVERIFY2(!f.doc.empty(), (type + "." + f.name).c_str());
        const json& v = d.at(f.name);
        if (f.kind == "int" || f.kind == "number") {
          QVERIFY2(v.is_number(), (type + "." + f.name).c_str());
          if (f.kind == "int") QVERIFY2(v.is_number_integer(), (type + "." + f.name).c_str());
          double x = v.get<double>();
          QVERIFY2(x <= f.max && (f.min_open ? x > f.min : x >= f.min), (type + "." + f.name).c_str());
        } else if (f.kind == "choice") {
          QVERIFY(v.is_string());
          QVERIFY2(std::find(f.choices.begin(), f.choices.end(), v.get<std::string>()) != f.choices.end(),
                   (type + "." + f.name).c_str());
        } else {
          QCOMPARE(QString::fromStdString(f.kind), QStringLiteral("bool"));
          QVERIFY(v.is_boolean());
        }
      }
    }
  }

  void validatorAcceptsTheRangeAndRejectsOutside() {
    for (const auto& type : hl::spec::block_types()) {
      for (const auto& f : hl::spec::block_fields(type)) {
        std::vector<json> good, bad;
        probes(f, good, bad);
        QVERIFY2(!good.empty() && !bad.empty(), (type + "." + f.name).c_str());
        const std::string path = "model.blocks[0]." + f.name;
        for (const auto& v : good) {
          json b = hl::spec::block_defaults(type);
          b[f.name] = v;
          auto val = hl::spec::validate(withBlock(b));
          QVERIFY2(!hasError(val, path),
                   qPrintable(describeField(type, f, v) + ": " + QString::fromStdString(val.format())));
        }
        for (const auto& v : bad) {
          json b = hl::spec::block_defaults(type);
          b[f.name] = v;
          auto val = hl::spec::validate(withBlock(b));
          QVERIFY2(hasError(val, path), qPrintable(describeField(type, f, v) + " not rejected"));
          if (v == json("no-such-choice")) checkChoices(f, val, path);
        }
      }
    }
  }

  void levelFieldsMatchTheValidator() {
    json cms = hl::spec::block_defaults("cms");
    QVERIFY(cms.contains("levels"));
    for (const auto& f : hl::spec::level_fields()) {
      QVERIFY(f.known);
      for (const auto& L : cms["levels"]) {
        double x = L.at(f.name).get<double>();
        QVERIFY2(x >= f.min && x <= f.max, f.name.c_str());
      }
      std::vector<json> good, bad;
      probes(f, good, bad);
      // the clock of the last level: raising it keeps the clocks monotone, no warning interferes
      const std::string path = "model.blocks[0].levels[2]." + f.name;
      for (const auto& v : good) {
        json b = cms;
        b["levels"][2][f.name] = v;
        auto val = hl::spec::validate(withBlock(b));
        QVERIFY2(!hasError(val, path),
                 qPrintable(describeField("level", f, v) + ": " + QString::fromStdString(val.format())));
      }
      for (const auto& v : bad) {
        json b = cms;
        b["levels"][2][f.name] = v;
        QVERIFY2(hasError(hl::spec::validate(withBlock(b)), path),
                 qPrintable(describeField("level", f, v) + " not rejected"));
      }
    }
  }

  void modelFieldsMatchTheValidator() {
    std::vector<std::string> paths = {"d_model", "vocab_size", "max_len", "positions"};
    const json head = hl::spec::defaults()["model"]["head"];
    for (auto it = head.begin(); it != head.end(); ++it) paths.push_back("head." + it.key());
    QVERIFY(std::find(paths.begin(), paths.end(), "head.type") != paths.end());
    for (const std::string& p : paths) {
      FieldInfo f = hl::spec::model_field(p);
      QVERIFY2(f.known, p.c_str());
      std::vector<json> good, bad;
      probes(f, good, bad);
      json::json_pointer ptr("/model/" + (p.rfind("head.", 0) == 0 ? "head/" + p.substr(5) : p));
      QVERIFY2(hl::spec::defaults().contains(ptr), p.c_str());
      for (const auto& v : good) {
        json s = hl::spec::defaults();
        s[ptr] = v;
        auto val = hl::spec::validate(hl::spec::complete(s));
        QVERIFY2(!hasError(val, "model." + p),
                 qPrintable(describeField("model", f, v) + ": " + QString::fromStdString(val.format())));
      }
      for (const auto& v : bad) {
        json s = hl::spec::defaults();
        s[ptr] = v;
        auto val = hl::spec::validate(hl::spec::complete(s));
        QVERIFY2(hasError(val, "model." + p), qPrintable(describeField("model", f, v) + " not rejected"));
        if (v == json("no-such-choice")) checkChoices(f, val, "model." + p);
      }
    }
  }

  void unknownFieldsFallBackToTheirJsonType() {
    QVERIFY(hl::spec::block_fields("no-such-type").empty());
    FieldInfo i = hl::spec::block_field("my_width", json(7));
    QVERIFY(!i.known);
    QCOMPARE(QString::fromStdString(i.kind), QStringLiteral("int"));
    QCOMPARE(QString::fromStdString(hl::spec::block_field("alpha", json(0.5)).kind), QStringLiteral("number"));
    QCOMPARE(QString::fromStdString(hl::spec::block_field("flag", json(true)).kind), QStringLiteral("bool"));
    QCOMPARE(QString::fromStdString(hl::spec::block_field("mode", json("a")).kind), QStringLiteral("string"));
    QVERIFY(!hl::spec::model_field("head.other", json(1.0)).known);
    QCOMPARE(QString::fromStdString(hl::spec::model_field("head.other", json(1.0)).name), QStringLiteral("other"));
  }

  // Issue 8 item 3: one field table. Every field is completed at its default, accepted at both
  // ends of its range (or each choice), refused just outside it, and nothing else limits it.
  void everyTableFieldIsCompletedAndValidatedAtBothEnds() {
    using hl::spec::FieldInfo;
    const json base =
        hl::spec::complete(json::object());  // every field at its default (the transformer preset sets dropout sites)
    int checked = 0;
    for (const auto& section : hl::spec::field_sections()) {
      for (const auto& f : hl::spec::section_fields(section)) {
        // Where the field lives, and a spec that holds it (blocks and levels: one block with it).
        std::vector<std::pair<json, std::string>> homes;  // (spec, path of the field)
        if (section == "block") {
          QVERIFY2(!f.blocks.empty(), f.name.c_str());
          for (const auto& type : f.blocks) {
            const json d = hl::spec::block_defaults(type);
            QVERIFY2(d.contains(f.name) && d[f.name] == hl::spec::block_field_default(type, f),
                     (type + "." + f.name).c_str());
            json s = base;
            s["model"]["blocks"] = json::array({d});
            homes.push_back({s, "model.blocks[0]." + f.name});
          }
        } else if (section == "level") {
          json s = base;
          s["model"]["blocks"] = json::array({hl::spec::block_defaults("cms")});
          s["model"]["blocks"][0]["levels"] = json::array({{{f.name, f.def}, {"clock", 1}}});
          homes.push_back({s, "model.blocks[0].levels[0]." + f.name});
        } else {
          json::json_pointer ptr("/" + std::regex_replace(section, std::regex("\\."), "/") + "/" + f.name);
          QVERIFY2(base.contains(ptr) && base[ptr] == f.def, (section + "." + f.name).c_str());
          QCOMPARE(hl::spec::complete(json::object())[ptr], f.def);
          homes.push_back({base, section + "." + f.name});
        }
        for (const auto& [spec, path] : homes) {
          auto errorsAt = [&](const json& v) {
            json s = spec;
            std::string p = path;
            json* node = &s;
            for (size_t a = 0, b; a < p.size(); a = b + 1) {  // walk "x.y[0].z"
              b = p.find('.', a);
              if (b == std::string::npos) b = p.size();
              std::string key = p.substr(a, b - a);
              auto br = key.find('[');
              if (br != std::string::npos) {
                node = &(*node)[key.substr(0, br)][std::stoi(key.substr(br + 1))];
              } else if (b == p.size()) {
                (*node)[key] = v;
              } else {
                node = &(*node)[key];
              }
            }
            int n = 0;
            for (const auto& i : hl::spec::validate(s).issues) n += i.error && i.path == path;
            return n;
          };
          const std::string what = path + " (" + f.kind + ")";
          QVERIFY2(errorsAt(f.def) == 0, (what + ": default refused").c_str());
          if (f.kind == "int" || f.kind == "number") {
            const double step = f.kind == "int" ? 1.0 : std::max(1e-9, (f.max - f.min) * 1e-6);
            auto val = [&](double x) { return f.kind == "int" ? json(int64_t(x)) : json(x); };
            if (!f.min_open) QVERIFY2(errorsAt(val(f.min)) == 0, (what + ": min refused").c_str());
            QVERIFY2(errorsAt(val(f.max)) == 0, (what + ": max refused").c_str());
            QVERIFY2(errorsAt(val(f.min_open ? f.min : f.min - step)) >= 1, (what + ": below min accepted").c_str());
            const json above = f.kind == "int" ? json(int64_t(f.max) + 1) : json(f.max + step);  // 2^53 + 1 exact
            QVERIFY2(errorsAt(above) >= 1, (what + ": above max accepted").c_str());
          } else if (f.kind == "choice") {
            QVERIFY(!f.choices.empty());
            for (const auto& c : f.choices) QVERIFY2(errorsAt(c) == 0, (what + ": " + c + " refused").c_str());
            QVERIFY2(errorsAt("no-such-choice") >= 1, (what + ": unknown choice accepted").c_str());
          } else if (f.kind == "bool") {
            QVERIFY(errorsAt(true) == 0 && errorsAt(false) == 0);
            QVERIFY2(errorsAt("yes") >= 1, what.c_str());
          } else {
            QVERIFY2(errorsAt(42) >= 1, (what + ": a number accepted").c_str());
            if (f.nonempty) QVERIFY2(errorsAt("") >= 1, (what + ": empty accepted").c_str());
          }
          ++checked;
        }
      }
    }
    qInfo("%d field placements checked", checked);
    QVERIFY(checked > 60);
    // Every default the spec completes is in the table (nothing defaulted outside it).
    const json d = hl::spec::defaults();
    for (const char* section : {"optimizer", "training"})
      for (auto it = d[section].begin(); it != d[section].end(); ++it)
        QVERIFY2(hl::spec::find_field(section, it.key()), it.key().c_str());
  }
};

QTEST_GUILESS_MAIN(TestSpecSchema)
#include "test_spec_schema.moc"
