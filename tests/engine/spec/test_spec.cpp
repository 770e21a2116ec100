// The spec: validation with JSON paths, canonical form and hashes, --set overrides, presets.
#include <QtTest>

#include <fstream>

#include "engine/common/error.h"
#include "engine/common/kinds.h"
#include "engine/spec/fields.h"
#include "engine/spec/spec.h"
#include "engine/spec/sweep.h"

using json = nlohmann::json;

class TestSpec : public QObject {
  Q_OBJECT

  static bool hasIssue(const hl::spec::Validation& v, const std::string& path, bool error) {
    for (const auto& i : v.issues)
      if (i.path == path && i.error == error) return true;
    return false;
  }

 private slots:
  // Kinds: each enum's names are the field table's choices (one list, not two), every name parses
  // back to its value, and an unknown value names the field, the value and what is accepted.
  void fieldChoicesAreTheKindsNames() {
    auto choices = [](const char* section, const char* field) { return hl::spec::find_field(section, field)->choices; };
    QVERIFY(choices("model", "positions") == hl::names<hl::Positions>());
    QVERIFY(choices("model.head", "type") == hl::names<hl::HeadType>());
    QVERIFY(choices("experiment", "protocol") == hl::names<hl::Protocol>());
    QVERIFY(choices("experiment.strategy", "type") == hl::names<hl::StrategyType>());
    QVERIFY(choices("block", "variant") == hl::names<hl::CmsVariant>());
    QVERIFY(choices("block", "clock_unit") == hl::names<hl::ClockUnit>());
    QVERIFY(choices("block", "transfer") == hl::names<hl::Transfer>());
    QVERIFY(choices("block", "dgd_layers") == hl::names<hl::DgdLayers>());
    QVERIFY(choices("block", "inner_objective") == hl::names<hl::InnerObjective>());
    QVERIFY((choices("block", "mixer") == std::vector<std::string>{"selfmod", "titans"}));  // attention: its own type
    QVERIFY(hl::spec::block_types() == hl::names<hl::BlockType>());
    for (const auto& n : hl::names<hl::BlockType>()) QCOMPARE(hl::name(hl::parse<hl::BlockType>(n, "x")), n);
    for (const auto& n : hl::names<hl::RunStatus>()) QCOMPARE(hl::name(*hl::try_parse<hl::RunStatus>(n)), n);
    QVERIFY(!hl::try_parse<hl::RunStatus>("Finished"));  // spellings are exact
    try {
      hl::parse<hl::BlockType>("gru", "model.blocks[0].type");
      QFAIL("gru parsed as a block type");
    } catch (const hl::SpecError& e) {
      QCOMPARE(QString(e.what()),
               QString("model.blocks[0].type: unknown block type \"gru\"; use transformer, lstm, retnet, cms, titans, "
                       "hope or hope_attention"));
    }
  }

  void defaultsAreValid() {
    auto v = hl::spec::validate(hl::spec::defaults());
    QVERIFY2(v.ok(), v.format().c_str());
    QCOMPARE(int(v.issues.size()), 0);
  }

  void everyPresetIsValidAndNamed() {
    auto names = hl::spec::preset_names();
    for (const char* required : {"transformer", "lstm", "retnet"})
      QVERIFY2(std::find(names.begin(), names.end(), required) != names.end(), required);
    for (const auto& n : names) {
      auto p = hl::spec::preset(n);
      auto v = hl::spec::validate(p);
      QVERIFY2(v.ok(), (n + ": " + v.format()).c_str());
      QCOMPARE(QString::fromStdString(p["name"].get<std::string>()), QString::fromStdString(n));
      QVERIFY(!hl::spec::preset_description(n).empty());
    }
  }

  // Lists (CLI `presets`, the editor's and the Experiment tab's boxes) show the presets by name:
  // "hope" before its variants "hope-*" (the resource files' order put it after them).
  void presetNamesAreSortedWithHopeBeforeItsVariants() {
    auto names = hl::spec::preset_names();
    QVERIFY(std::is_sorted(names.begin(), names.end()));
    auto hope = std::find(names.begin(), names.end(), "hope");
    auto attn = std::find(names.begin(), names.end(), "hope-attention");
    QVERIFY(hope != names.end() && attn != names.end());
    QVERIFY(hope < attn);
  }

  // A preset sets training fields only among those it owns; otherwise the app's Load preset
  // (with_preset, which keeps the user's protocol) and the CLI's --preset would train differently.
  void presetsSetOnlyTheTrainingFieldsTheyOwn() {
    const auto& owned = hl::spec::preset_training_fields();
    const auto defaults = hl::spec::defaults();
    for (const auto& n : hl::spec::preset_names()) {
      const auto p = hl::spec::preset(n);
      for (const auto& [k, v] : p["training"].items())
        if (std::find(owned.begin(), owned.end(), k) == owned.end())
          QVERIFY2(v == defaults["training"][k], (n + ": training." + k + " is not a preset field").c_str());
    }
  }

  void presetLoadedIntoASpecKeepsTheProtocolAndLeavesNoTraceOfTheLastOne() {
    // Into the default spec: exactly the CLI's --preset.
    for (const auto& n : hl::spec::preset_names())
      QCOMPARE(hl::spec::config_hash(hl::spec::complete(hl::spec::with_preset(hl::spec::defaults(), n))),
               hl::spec::config_hash(hl::spec::preset(n)));
    // hope (grad_clip 1) then transformer (0); the user's epochs and dataset stay.
    auto s = hl::spec::defaults();
    s["training"]["epochs"] = 2;
    s["experiment"]["dataset"] = "clinc150";
    s = hl::spec::with_preset(hl::spec::with_preset(s, "hope"), "transformer");
    QCOMPARE(s["training"]["grad_clip"].get<double>(), 0.0);
    QCOMPARE(s["training"]["epochs"].get<int>(), 2);
    QCOMPARE(s["experiment"]["dataset"].get<std::string>(), std::string("clinc150"));
    QCOMPARE(s["model"], hl::spec::preset("transformer")["model"]);
    QCOMPARE(hl::spec::with_preset(s, "hope")["training"]["grad_clip"].get<double>(), 1.0);
    QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::with_preset(s, "nope"));
  }

  void unknownPresetListsTheKnownOnes() {
    try {
      hl::spec::preset("nope");
      QFAIL("expected SpecError");
    } catch (const hl::SpecError& e) {
      QVERIFY(std::string(e.what()).find("transformer") != std::string::npos);
      QCOMPARE(e.exitCode(), 2);
    }
  }

  void validationReportsEveryErrorWithItsPath() {
    json s = hl::spec::defaults();
    s["model"]["blocks"][1]["heads"] = 5;       // does not divide 128
    s["optimizer"]["lr"] = -1;                  // out of range
    s["experiment"]["protocol"] = "sometimes";  // not a choice
    s["training"]["batch_size"] = "big";        // wrong type
    s["model"]["blocks"].push_back({{"type", "mamba"}});
    auto v = hl::spec::validate(s);
    QVERIFY(!v.ok());
    QVERIFY(hasIssue(v, "model.blocks[1].heads", true));
    QVERIFY(hasIssue(v, "optimizer.lr", true));
    QVERIFY(hasIssue(v, "experiment.protocol", true));
    QVERIFY(hasIssue(v, "training.batch_size", true));
    QVERIFY(hasIssue(v, "model.blocks[2].type", true));
    int errors = 0;
    for (const auto& i : v.issues) errors += i.error;
    QCOMPARE(errors, 5);
    QVERIFY(v.format().find("error: model.blocks[1].heads: 5 does not divide model.d_model 128") != std::string::npos);
  }

  void wrongShapesAreIssuesNotCrashes() {
    json s = hl::spec::complete(json::parse(
        R"({"model": {"head": "ncm"}, "experiment": {"protocol": 5, "data": {"text_column": 3}},
            "optimizer": {"type": 7, "lr": 0.5}})"));
    auto v = hl::spec::validate(s);
    QVERIFY(!v.ok());
    QVERIFY(hasIssue(v, "model.head", true));
    QVERIFY(hasIssue(v, "experiment.protocol", true));
    QVERIFY(hasIssue(v, "experiment.data.text_column", true));
    QVERIFY(hasIssue(v, "optimizer.type", true));
  }

  // A section that is not an object ("experiment": 3) used to reach every reader of
  // experiment.seed as a number (the sweep fuzzer's crash): complete() refuses it, naming the
  // section, and a sweep that sets one says which grid point. Deeper wrong shapes stay validation
  // issues (wrongShapesAreIssuesNotCrashes).
  void sectionThatIsNotAnObjectIsRefusedNamingIt() {
    for (const auto& [text, field] :
         std::vector<std::pair<std::string, std::string>>{{R"({"experiment": 3})", "'experiment'"},
                                                          {R"({"training": [1]})", "'training'"},
                                                          {R"({"model": null})", "'model'"}}) {
      try {
        (void)hl::spec::complete(json::parse(text));
        QFAIL(("expected SpecError for " + text).c_str());
      } catch (const hl::SpecError& e) {
        const std::string m = e.what();
        QVERIFY2(m.find(field + " must be an object of fields") != std::string::npos, m.c_str());
      }
    }
    try {
      (void)hl::spec::parse_sweep(R"({"grid": {"experiment": [3]}})", "s.json", ".");
      QFAIL("expected SpecError");
    } catch (const hl::SpecError& e) {
      const std::string m = e.what();
      QVERIFY2(m.find("s.json: grid point experiment=3") == 0, m.c_str());
      QVERIFY2(m.find("'experiment' must be an object") != std::string::npos, m.c_str());
    }
  }

  // memory_writes (issue 9 item 4's ablation) at its default leaves a hope run's hashes as they
  // were before the field existed; off is another configuration.
  void memoryWritesOnKeepsTheHashesOffChangesThem() {
    json s = hl::spec::preset("hope");
    const std::string before = hl::spec::config_hash(s), run = hl::spec::run_hash(s);
    QCOMPARE(s["model"]["blocks"][0]["memory_writes"].get<bool>(), true);
    json without = s;
    for (auto& b : without["model"]["blocks"]) b.erase("memory_writes");
    QCOMPARE(hl::spec::config_hash(without), before);
    QCOMPARE(hl::spec::run_hash(without), run);
    s["model"]["blocks"][1]["memory_writes"] = false;
    QVERIFY(hl::spec::config_hash(s) != before);
    QVERIFY(hl::spec::validate(s).ok());
  }

  // model.pooling at its default (mean) leaves every run's hashes as they were before the field
  // existed (a completed spec carries it); last is another configuration.
  void meanPoolingKeepsTheHashesLastChangesThem() {
    json s = hl::spec::preset("hope");
    json without = s;
    without["model"].erase("pooling");
    const std::string before = hl::spec::config_hash(without), run = hl::spec::run_hash(without);
    s["model"]["pooling"] = "mean";
    QCOMPARE(hl::spec::config_hash(s), before);
    QCOMPARE(hl::spec::run_hash(s), run);
    QCOMPARE(hl::spec::config_hash(hl::spec::complete(without)), before);
    s["model"]["pooling"] = "last";
    QVERIFY(hl::spec::config_hash(s) != before);
    QVERIFY(hl::spec::validate(s).ok());
    s["model"]["pooling"] = "first";
    QVERIFY(hasIssue(hl::spec::validate(s), "model.pooling", true));
  }

  void unknownFieldsAreWarningsNotErrors() {
    json s = hl::spec::defaults();
    s["model"]["colour"] = "blue";
    auto v = hl::spec::validate(s);
    QVERIFY(v.ok());
    QVERIFY(hasIssue(v, "model.colour", false));
  }

  void newerSchemaIsRefused() {
    json s = hl::spec::defaults();
    s["schema_version"] = hl::spec::kSchemaVersion + 1;
    auto v = hl::spec::validate(s);
    QVERIFY(hasIssue(v, "schema_version", true));
  }

  void completeFillsBlockDefaults() {
    json user = {{"model", {{"blocks", json::array({{{"type", "retnet"}}})}}}};
    json s = hl::spec::complete(user);
    QCOMPARE(s["model"]["blocks"][0]["heads"].get<int>(), 4);
    QCOMPARE(s["model"]["d_model"].get<int>(), 128);
    QVERIFY(hl::spec::validate(s).ok());
  }

  void canonicalFormIgnoresKeyOrderAndHashesAreStable() {
    json a = json::parse(R"({"b": 1, "a": {"y": 2, "x": [3, 1]}})");
    json b = json::parse(R"({"a": {"x": [3, 1], "y": 2}, "b": 1})");
    QCOMPARE(hl::spec::canonical(a), hl::spec::canonical(b));
    QCOMPARE(QString::fromStdString(hl::spec::canonical(a)), QString(R"({"a":{"x":[3,1],"y":2},"b":1})"));
    json s = hl::spec::defaults();
    QCOMPARE(hl::spec::config_hash(s).size(), size_t(64));
    QCOMPARE(hl::spec::config_hash(s), hl::spec::config_hash(hl::spec::complete(s)));
  }

  void configHashIgnoresSeedRunHashDoesNot() {
    json a = hl::spec::defaults(), b = a;
    b["experiment"]["seed"] = 7;
    QCOMPARE(hl::spec::config_hash(a), hl::spec::config_hash(b));
    QVERIFY(hl::spec::run_hash(a) != hl::spec::run_hash(b));
    b["training"]["epochs"] = 2;
    QVERIFY(hl::spec::config_hash(a) != hl::spec::config_hash(b));
  }

  void setPathOverridesNestedFieldsAndArrayItems() {
    json s = hl::spec::defaults();
    hl::spec::set_path(s, "model.d_model", "256");
    hl::spec::set_path(s, "model.blocks[1].dropout", "0.25");
    hl::spec::set_path(s, "model.blocks.0.heads", "8");
    hl::spec::set_path(s, "experiment.dataset", "clinc150");  // a bare string
    QCOMPARE(s["model"]["d_model"].get<int>(), 256);
    QCOMPARE(s["model"]["blocks"][1]["dropout"].get<double>(), 0.25);
    QCOMPARE(s["model"]["blocks"][0]["heads"].get<int>(), 8);
    QCOMPARE(QString::fromStdString(s["experiment"]["dataset"].get<std::string>()), QString("clinc150"));
  }

  void setPathRejectsUnknownFieldsAndBadIndices() {
    json s = hl::spec::defaults();
    QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::set_path(s, "model.depth", "3"));
    QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::set_path(s, "model.blocks[9].heads", "3"));
    QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::set_path(s, "model.d_model.x", "3"));
  }

  void malformedSpecFileNamesFileLineAndColumn() {
    QTemporaryDir dir;
    std::string path = dir.filePath("bad.json").toStdString();
    std::ofstream(path) << "{\n  \"model\": {\n    \"d_model\": 128,,\n  }\n}\n";
    try {
      hl::spec::load_file(path);
      QFAIL("expected SpecError");
    } catch (const hl::SpecError& e) {
      std::string m = e.what();
      QVERIFY2(m.find(path + ":3:") == 0, m.c_str());
    }
    QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::load_file(dir.filePath("missing.json").toStdString()));
  }

  // Schema 2 changed four self-modifying Titans defaults: a schema-1 spec that leaves them out
  // keeps schema 1's values (so a stored run means what it meant); a schema-2 spec gets the new ones;
  // a value the spec sets wins either way.
  void schemaOneSpecsKeepTheirOldMemoryDefaults() {
    json user = {{"schema_version", 1}, {"model", {{"blocks", json::array({{{"type", "hope"}, {"eta_max", 2.0}}})}}}};
    json v1 = hl::spec::complete(user)["model"]["blocks"][0];
    QCOMPARE(QString::fromStdString(v1["memory_inputs"].get<std::string>()), QString("shared"));
    QCOMPARE(v1["memory_init_scale"].get<double>(), 0.1);
    QCOMPARE(v1["momentum_dampening"].get<bool>(), false);
    QCOMPARE(v1["eta_max"].get<double>(), 2.0);  // set by the spec
    user["schema_version"] = 2;
    json v2 = hl::spec::complete(user)["model"]["blocks"][0];
    QCOMPARE(QString::fromStdString(v2["memory_inputs"].get<std::string>()), QString("separate"));
    QCOMPARE(v2["momentum_dampening"].get<bool>(), true);
    QCOMPARE(v2["memory_init_scale"].get<double>(),
             hl::spec::find_field("block", "memory_init_scale")->def.get<double>());
    user.erase("schema_version");  // no version: the current one
    QCOMPARE(hl::spec::complete(user)["model"]["blocks"][0], v2);
  }

  void etaMaxMustExceedInnerLr() {
    json s = hl::spec::preset("hope");
    s["model"]["blocks"][0]["eta_max"] = 0.05;  // inner_lr 0.1 would start above the bound
    QVERIFY(hasIssue(hl::spec::validate(s), "model.blocks[0].eta_max", true));
    s["model"]["blocks"][0]["eta_max"] = 0.0;  // the unbounded link
    QVERIFY(hl::spec::validate(s).ok());
  }

  void stateBoundMustBeZeroOrAtLeastOne() {
    json s = hl::spec::preset("hope");
    QCOMPARE(hl::spec::complete(s)["model"]["blocks"][0]["state_bound"].get<double>(), 2.0);
    s["model"]["blocks"][0]["state_bound"] = 0.5;  // the initial state would lie outside the ball
    QVERIFY(hasIssue(hl::spec::validate(s), "model.blocks[0].state_bound", true));
    s["model"]["blocks"][0]["state_bound"] = 0.0;  // no bound
    QVERIFY(hl::spec::validate(s).ok());
    json old = s;
    old["schema_version"] = 1;
    old["model"]["blocks"][0].erase("state_bound");
    QCOMPARE(hl::spec::complete(old)["model"]["blocks"][0]["state_bound"].get<double>(), 0.0);
  }

  void topLevelMustBeAnObject() { QVERIFY_THROWS_EXCEPTION(hl::SpecError, hl::spec::complete(json::array())); }
};

QTEST_GUILESS_MAIN(TestSpec)
#include "test_spec.moc"
