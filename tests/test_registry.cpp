// Spec grammar, validation messages, presets and round-trips.
#include <catch2/catch.hpp>
#include <yaml-cpp/yaml.h>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"

using namespace kvlab;

TEST_CASE("specs round-trip through their canonical form", "[registry]") {
  const Registry& r = Registry::global();
  for (const auto& m : r.methods()) {
    const std::string canonical = r.canonical(m.name);
    INFO(canonical);
    CHECK(r.canonical(canonical) == canonical);
    CHECK(r.build(canonical)->spec() == canonical);
  }
  for (const auto& p : r.presets()) {
    const std::string canonical = r.canonical(p.name);
    CHECK(r.canonical(canonical) == canonical);
    CHECK(canonical == r.canonical(p.spec));
  }
}

TEST_CASE("canonical spec lists every parameter in declared order", "[registry]") {
  CHECK(Registry::global().canonical("kivi:residual=64,bits=4") == "kivi:bits=4,group=32,residual=64");
  CHECK(Registry::global().canonical(" kivi : bits = 2 ") == "kivi:bits=2,group=32,residual=128");
}

TEST_CASE("presets expand and accept overrides", "[registry]") {
  CHECK(Registry::global().canonical("kivi-4bit") == "kivi:bits=4,group=32,residual=128");
  CHECK(Registry::global().canonical("kivi-2bit:residual=64") == "kivi:bits=2,group=32,residual=64");
}

TEST_CASE("YAML maps are specs too", "[registry]") {
  const YAML::Node node = YAML::Load("{method: kivi, bits: 4, residual: 64}");
  CHECK(Registry::global().resolve(node).canonical == "kivi:bits=4,group=32,residual=64");
  CHECK(Registry::global().resolve(YAML::Load("kivi-2bit")).canonical == "kivi:bits=2,group=32,residual=128");
}

TEST_CASE("bad specs give one clear message", "[registry]") {
  const Registry& r = Registry::global();
  CHECK_THROWS_WITH(r.build("kivvi"), Catch::Contains("unknown compressor 'kivvi'") &&
                                          Catch::Contains("did you mean 'kivi'"));
  CHECK_THROWS_WITH(r.build("kivi:bitz=2"), Catch::Contains("unknown parameter 'bitz' for kivi") &&
                                                Catch::Contains("did you mean 'bits'") &&
                                                Catch::Contains("valid: bits, group, residual"));
  CHECK_THROWS_WITH(r.build("kivi:bits=two"), Catch::Contains("expects an integer, got 'two'"));
  CHECK_THROWS_WITH(r.build("kivi:bits=9"), Catch::Contains("out of range [1, 8]"));
  CHECK_THROWS_WITH(r.build("uniform:axis=row"), Catch::Contains("expects one of token|channel"));
  CHECK_THROWS_WITH(r.build("kivi:bits"), Catch::Contains("has no '=value'"));
  CHECK_THROWS_WITH(r.build("kivi:bits=2,bits=3"), Catch::Contains("given twice"));
  CHECK_THROWS_WITH(r.build(""), Catch::Contains("empty compressor spec"));
  CHECK_THROWS_AS(r.build("kivi:inner=(uniform"), Error);
}

TEST_CASE("the registry rejects duplicate names", "[registry]") {
  Registry r;
  r.add({"a", "quant", "", {}, nullptr});
  CHECK_THROWS_WITH(r.add({"a", "quant", "", {}, nullptr}), Catch::Contains("registered twice"));
  CHECK_THROWS_WITH(r.add_preset("a", "a"), Catch::Contains("has the name of a method"));
}

TEST_CASE("spec text parsing handles nested specs in parentheses", "[registry]") {
  const SpecText t = parse_spec_text("h2o:heavy=0.1,inner=(uniform:bits=4,axis=token)");
  REQUIRE(t.params.size() == 2);
  CHECK(t.params[1].second == "uniform:bits=4,axis=token");
  CHECK(format_spec_text(t) == "h2o:heavy=0.1,inner=(uniform:bits=4,axis=token)");
}

TEST_CASE("a parameter set where it has no effect is rejected and left out of the canonical spec", "[registry]") {
  const Registry& r = Registry::global();
  CHECK_THROWS_WITH(r.build("gear:backbone=kcvt,group=32"),
                    Catch::Contains("parameter 'group' has no effect here") && Catch::Contains("backbone=kivi"));
  CHECK_THROWS_WITH(r.build("uniform:bits=2,axis=token,buffer=32"), Catch::Contains("'buffer' has no effect"));
  CHECK_THROWS_WITH(r.build("h2o:heavy=0.2,heavy_tokens=10"), Catch::Contains("'heavy' has no effect"));
  CHECK_THROWS_WITH(r.build("pyramidkv:base=h2o,capacity=64"), Catch::Contains("'capacity' has no effect"));
  // Two specs that run the same thing print the same.
  CHECK(r.canonical("gear:backbone=kcvt") == r.canonical("gear:backbone=kcvt,bits=2"));
  CHECK(r.canonical("gear:backbone=kcvt").find("group=") == std::string::npos);
  CHECK(r.canonical("uniform:axis=channel,group=0,buffer=32") == "uniform:bits=4,group=0,axis=channel,buffer=32");
  CHECK(r.canonical("uniform:axis=channel,group=32") == "uniform:bits=4,group=32,axis=channel");
  // A preset's own parameter that stops applying after an override is dropped, not an error.
  CHECK(r.canonical("gear-2bit:backbone=kcvt") == r.canonical("gear:backbone=kcvt"));
  const ResolvedSpec s = r.resolve("gear:backbone=kcvt");
  CHECK(s.values.inapplicable().count("group") == 1);
  CHECK(s.values.applicable().count("group") == 0);
  CHECK(s.values.applicable().count("bits") == 1);
}

TEST_CASE("every preset sets only parameters that have an effect", "[registry]") {
  // Presets are resolved strictly: a preset naming a parameter that has no
  // effect would hide it from the user.
  for (const auto& p : Registry::global().presets()) {
    INFO(p.name << " = " << p.spec);
    CHECK_NOTHROW(Registry::global().resolve(p.spec));
  }
}
