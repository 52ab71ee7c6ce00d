// The declaration side: builder, declaration checks, the --schema JSON and
// the condition grammar. Oracles: the values declared in fake_schema(), and
// for conditions C++'s own boolean operators (same precedence as Python's
// not > and > or) over every combination of inputs.
#include <gtest/gtest.h>

#include <map>

#include <fmt/format.h>

#include "common/schema.hpp"
#include "fake_program.hpp"

namespace tessera::protocol {
namespace {

using test::fake_schema;

TEST(Schema, BuilderStoresTypedDefaultsAndBounds) {
  const Schema s = fake_schema();
  const Param* p = s.find_param("max_res_A");
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->type, ParamType::Float);
  ASSERT_TRUE(p->default_value);
  // An int literal given as a float default is stored as a double.
  EXPECT_EQ(std::get<double>(*p->default_value), 8.0);
  EXPECT_EQ(p->min, 0.5);
  EXPECT_EQ(p->max, 100.0);
  EXPECT_EQ(p->unit, "A");
  EXPECT_EQ(p->section, "Reconstruction");
  const Param* box = s.find_param("box_px");
  ASSERT_NE(box, nullptr);
  EXPECT_FALSE(box->default_value);
  EXPECT_EQ(std::get<bool>(*s.find_param("use_scale")->default_value), false);
  EXPECT_EQ(s.find_input("particles")->section, "Input");
  EXPECT_EQ(s.find_param("symmetry")->type, ParamType::String);
  EXPECT_EQ(s.find_output("fsc")->optional, true);
  EXPECT_EQ(s.find_param("nope"), nullptr);
  EXPECT_NO_THROW(s.check());
}

TEST(Schema, JsonHasDocumentedFields) {
  // Through run_program, as the Scipion plugin calls it.
  const test::FakeRunResult r = test::run_fake({"--schema"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_FALSE(r.work_called);
  const Json j = Json::parse(r.out);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["program"], "tessera_fake");
  EXPECT_EQ(j["version"], "0.1.0");
  EXPECT_EQ(j["scipion_base_class"], "ProtReconstruct3D");
  EXPECT_EQ(j["citations"][0], "10.1016/j.jsb.2012.09.006");
  EXPECT_EQ(j["supports"], Json({{"threads", true}, {"mpi", true}, {"gpu", true}, {"continue", true}}));
  EXPECT_EQ(j["sections"], Json({"Input", "Reconstruction", "Masking"}));

  const Json& particles = j["inputs"][0];
  EXPECT_EQ(particles["name"], "particles");
  EXPECT_EQ(particles["option"], "--particles");
  EXPECT_EQ(particles["kind"], "particles");
  EXPECT_EQ(particles["pointer_class"], "SetOfParticles");
  EXPECT_EQ(particles["pointer_condition"], "hasAlignmentProj");
  EXPECT_EQ(particles["required"], true);
  EXPECT_TRUE(particles["condition"].is_null());
  const Json& mask = j["inputs"][1];
  EXPECT_EQ(mask["pointer_class"], "VolumeMask");
  EXPECT_EQ(mask["condition"], "mask_mode == 'file'");
  EXPECT_EQ(mask["scipion_condition"], "mask_mode == 2");

  std::map<std::string, Json> params;
  for (const Json& p : j["parameters"]) params[p["name"].get<std::string>()] = p;
  ASSERT_EQ(params.size(), 8u);
  const Json& res = params["max_res_A"];
  EXPECT_EQ(res["option"], "--max-res-A");
  EXPECT_EQ(res["type"], "float");
  EXPECT_EQ(res["unit"], "A");
  EXPECT_TRUE(res["default"].is_number_float());
  EXPECT_EQ(res["default"], 8.0);
  EXPECT_EQ(res["min"], 0.5);
  EXPECT_EQ(res["max"], 100.0);
  EXPECT_EQ(res["min_exclusive"], false);
  EXPECT_EQ(res["level"], 0);
  EXPECT_EQ(res["section"], "Reconstruction");
  EXPECT_EQ(res["help"], "Highest resolution used.");
  EXPECT_TRUE(params["box_px"]["default"].is_null());
  EXPECT_TRUE(params["box_px"]["min"].is_number_integer());
  EXPECT_EQ(params["iterations"]["level"], 1);
  EXPECT_EQ(params["mask_mode"]["type"], "choice");
  EXPECT_EQ(params["mask_mode"]["choices"], Json({"none", "threshold", "file"}));
  EXPECT_EQ(params["mask_mode"]["default"], "none");
  EXPECT_EQ(params["mask_threshold"]["condition"], "mask_mode == 'threshold'");
  EXPECT_EQ(params["mask_threshold"]["scipion_condition"], "mask_mode == 1");
  EXPECT_EQ(params["scale_limit"]["condition"], "use_scale");
  EXPECT_EQ(params["scale_limit"]["min_exclusive"], true);
  EXPECT_EQ(params["use_scale"]["default"], false);

  std::vector<std::string> common;
  for (const Json& p : j["common_parameters"]) common.push_back(p["name"]);
  EXPECT_EQ(common,
            (std::vector<std::string>{"out", "threads", "gpu", "seed", "continue", "overwrite", "verbose", "quiet"}));
  EXPECT_EQ(j["common_parameters"][0]["required"], true);

  ASSERT_EQ(j["outputs"].size(), 2u);
  EXPECT_EQ(j["outputs"][0], Json({{"name", "volume"}, {"kind", "volume"}, {"label", "Reconstructed map"},
                                   {"help", ""}, {"optional", false}}));
  EXPECT_EQ(j["outputs"][1]["kind"], "fsc_json");
}

TEST(Schema, CommonOptionsFollowSupport) {
  Schema s{.name = "tessera_min", .version = "1", .support = {.threads = false}};
  std::vector<std::string> names;
  for (const Param& p : common_params(s)) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"out", "seed", "overwrite", "verbose", "quiet"}));
}

TEST(Schema, CheckRejectsDeclarationMistakes) {
  auto expect_bad = [](const std::function<void(Schema&)>& edit, const std::string& needle) {
    Schema s = fake_schema();
    edit(s);
    try {
      s.check();
      ADD_FAILURE() << "no error for " << needle;
    } catch (const std::logic_error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_bad([](Schema& s) { s.add_int("box_px", "Again"); }, "box_px");
  expect_bad([](Schema& s) { s.add_int("threads", "Mine"); }, "threads");  // a common option
  expect_bad([](Schema& s) { s.add_int("max-res", "Dash"); }, "max-res");
  expect_bad([](Schema& s) { s.add_int("a__b", "Double"); }, "a__b");
  expect_bad([](Schema& s) { s.add_bool("lambda", "Python keyword"); }, "lambda");
  expect_bad([](Schema& s) { s.add_int("count", ""); }, "count");
  expect_bad([](Schema& s) { s.add_float("angle_deg", "Angle", {.default_value = 400, .max = 360}); },
             "angle_deg");
  expect_bad([](Schema& s) { s.add_choice("mode", "Mode", {"a", "b"}, {.default_value = "c"}); }, "mode");
  expect_bad([](Schema& s) { s.add_choice("mode", "Mode", {}); }, "mode");
  expect_bad([](Schema& s) { s.add_float("x", "X", {.min = 2, .max = 1}); }, "min is above max");
  expect_bad([](Schema& s) { s.add_float("x", "X", {.condition = "nothing"}); }, "'nothing'");
  expect_bad([](Schema& s) { s.add_bool("x", "X", {.condition = "x"}); }, "refers to itself");
  expect_bad([](Schema& s) { s.add_float("x", "X", {.condition = "mask_mode == 'thresh'"}); }, "thresh");
  expect_bad([](Schema& s) { s.add_float("x", "X", {.condition = "box_px"}); }, "not a bool");
  expect_bad([](Schema& s) { s.add_float("x", "X", {.condition = "box_px == 'big'"}); }, "int");
  expect_bad([](Schema& s) { s.add_output("volume", OutputKind::Mask, "Twice"); }, "volume");
  expect_bad([](Schema& s) { s.version.clear(); }, "version");
}

// Looks values up in a map; names missing from the map are unset.
ValueLookup lookup_in(const std::map<std::string, Value, std::less<>>& values) {
  return [&values](std::string_view name) -> std::optional<Value> {
    auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

// Three Bool parameters for truth tables.
Schema bool_schema() {
  Schema s{.name = "tessera_bools", .version = "1"};
  s.add_bool("a", "A");
  s.add_bool("b", "B");
  s.add_bool("c", "C");
  s.add_choice("mode", "Mode", {"x", "y", "z"}, {.default_value = "x"});
  s.add_int("n", "N");
  s.add_float("f", "F");
  s.add_input("mask", InputKind::Mask, "Mask", {.required = false});
  return s;
}

TEST(Condition, PrecedenceMatchesPythonOverEveryCombination) {
  const Schema s = bool_schema();
  for (int bits = 0; bits < 8; ++bits) {
    const bool a = bits & 1, b = bits & 2, c = bits & 4;
    const std::map<std::string, Value, std::less<>> values{{"a", a}, {"b", b}, {"c", c}};
    const ValueLookup look = lookup_in(values);
    SCOPED_TRACE(fmt::format("a={} b={} c={}", a, b, c));
    EXPECT_EQ(evaluate_condition(s, "a or b and c", look), a || (b && c));
    EXPECT_EQ(evaluate_condition(s, "(a or b) and c", look), (a || b) && c);
    EXPECT_EQ(evaluate_condition(s, "not a and b", look), !a && b);
    EXPECT_EQ(evaluate_condition(s, "not (a and b) or c", look), !(a && b) || c);
    EXPECT_EQ(evaluate_condition(s, "a and not not b", look), a && b);
    EXPECT_EQ(evaluate_condition(s, "a == True and b != False", look), a && b);
  }
}

TEST(Condition, ComparisonsAndUnsetValues) {
  const Schema s = bool_schema();
  const std::map<std::string, Value, std::less<>> values{
      {"mode", std::string("y")}, {"n", std::int64_t{3}}, {"f", 2.5}};
  const ValueLookup look = lookup_in(values);
  EXPECT_TRUE(evaluate_condition(s, "mode == 'y'", look));
  EXPECT_TRUE(evaluate_condition(s, "mode == \"y\"", look));
  EXPECT_FALSE(evaluate_condition(s, "mode != 'y'", look));
  EXPECT_TRUE(evaluate_condition(s, "mode != 'z'", look));
  EXPECT_TRUE(evaluate_condition(s, "n == 3", look));
  EXPECT_FALSE(evaluate_condition(s, "n == 4", look));
  EXPECT_TRUE(evaluate_condition(s, "f == 2.5", look));
  EXPECT_TRUE(evaluate_condition(s, "f != 2", look));
  // Unset: == is false, != is true, a bare Bool is false, an input not given is false.
  const std::map<std::string, Value, std::less<>> none;
  const ValueLookup empty = lookup_in(none);
  EXPECT_FALSE(evaluate_condition(s, "n == 3", empty));
  EXPECT_TRUE(evaluate_condition(s, "n != 3", empty));
  EXPECT_FALSE(evaluate_condition(s, "a", empty));
  EXPECT_FALSE(evaluate_condition(s, "mask", empty));
  EXPECT_TRUE(evaluate_condition(s, "not mask", empty));
  const std::map<std::string, Value, std::less<>> with_mask{{"mask", std::string("m.mrc")}};
  EXPECT_TRUE(evaluate_condition(s, "mask", lookup_in(with_mask)));
}

TEST(Condition, PrintsCanonicalAndScipionForms) {
  const Schema s = bool_schema();
  const std::string text = "(a  or b)and not(mode=='z' or n!=3) or mask";
  EXPECT_EQ(normalized_condition(s, text), "(a or b) and not (mode == 'z' or n != 3) or mask");
  EXPECT_EQ(scipion_condition(s, text), "(a or b) and not (mode == 2 or n != 3) or mask");
  EXPECT_EQ(normalized_condition(s, "a == true"), "a == True");
  // The canonical form parses back to itself.
  const std::string canonical = normalized_condition(s, text);
  EXPECT_EQ(normalized_condition(s, canonical), canonical);
}

TEST(Condition, RejectsBadSyntaxWithColumn) {
  const Schema s = bool_schema();
  const std::map<std::string, Value, std::less<>> none;
  const ValueLookup look = lookup_in(none);
  auto message = [&](const std::string& text) -> std::string {
    try {
      evaluate_condition(s, text, look);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(message("mode == 'x").find("unterminated string"), std::string::npos);
  EXPECT_NE(message("(a or b").find("expected ')'"), std::string::npos);
  EXPECT_NE(message("a and").find("expected a parameter name at column 6"), std::string::npos);
  EXPECT_NE(message("a b").find("unexpected 'b' at column 3"), std::string::npos);
  EXPECT_NE(message("mode == ").find("expected a value"), std::string::npos);
  EXPECT_NE(message("a & b").find("unexpected '&'"), std::string::npos);
  EXPECT_NE(message("mask == 'x'").find("presence"), std::string::npos);
  EXPECT_NE(message("n == 2.5").find("int parameter 'n'"), std::string::npos);
  EXPECT_NE(message("mode == 'w'").find("not one of: x, y, z"), std::string::npos);
}

}  // namespace
}  // namespace tessera::protocol
