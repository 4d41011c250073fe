#pragma once
// Self-describing compressor parameters and the spec-string grammar.
//
//   spec    := method [ ':' param ( ',' param )* ]
//   param   := name '=' value
//   value   := token | '(' spec ')'        (parenthesised: a nested compressor)
//
// e.g. `gear:bits=2,group=64,rank=4` or `h2o:heavy=0.1,inner=(kivi:bits=2)`.
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvlab {

enum class ParamType { Int, Float, Bool, Choice, Spec };

// "int", "float", "bool", "choice", "spec": the names `kvlab list --json` and Python use.
const char* param_type_name(ParamType t);

class ParamValues;

// When a parameter has an effect, as a function of the other parameters'
// values (e.g. GEAR's `group` only with backbone=kivi). A parameter that is set
// where it has no effect is rejected by the registry, and the canonical spec
// leaves it out, so two specs that run the same thing print the same.
struct ParamCondition {
  std::function<bool(const ParamValues&)> test;  // null: always applies
  std::string text;                              // "backbone=kivi", for messages and `kvlab list`

  bool always() const { return !test; }
  bool holds(const ParamValues& v) const { return !test || test(v); }
};

// `param` has one of `values` (canonical text).
ParamCondition when_equals(std::string param, std::vector<std::string> values);
// A numeric `param` is zero / positive.
ParamCondition when_zero(std::string param);
ParamCondition when_positive(std::string param);
// Every / any of the conditions.
ParamCondition all_of(std::vector<ParamCondition> conditions);
ParamCondition any_of(std::vector<ParamCondition> conditions);

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Int;
  std::string default_value;  // canonical text; "" for an unset Spec
  std::string doc;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices = {};  // for Choice
  ParamCondition applies = {};            // always, unless set with only_when
  // Left out of the canonical spec while at its default: a parameter added to
  // an existing method (e.g. `rotation` on kivi) keeps earlier specs unchanged.
  bool omit_default = false;

  std::string range_text() const;  // "[1, 8]", "token|channel", ...
  ParamSpec only_when(ParamCondition c) && {
    applies = std::move(c);
    return std::move(*this);
  }
  ParamSpec omitted_at_default() && {
    omit_default = true;
    return std::move(*this);
  }
};

// A parsed but unvalidated spec: the method name and params in given order.
struct SpecText {
  std::string method;
  std::vector<std::pair<std::string, std::string>> params;
};

// Throws kvlab::Error naming `spec` on malformed text.
SpecText parse_spec_text(std::string_view spec);
std::string format_spec_text(const SpecText& spec);

// Validated values of every declared parameter (defaults filled in), in
// canonical text form, with typed getters. Parameters that have no effect in
// this configuration keep their default here (factories may read them) but
// are listed in inapplicable() and left out of applicable().
class ParamValues {
 public:
  ParamValues() = default;
  explicit ParamValues(std::map<std::string, std::string> values, std::set<std::string> inapplicable = {})
      : values_(std::move(values)), inapplicable_(std::move(inapplicable)) {}

  const std::string& text(const std::string& name) const;
  int get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  const std::string& get_choice(const std::string& name) const { return text(name); }
  const std::string& get_spec(const std::string& name) const { return text(name); }  // "" if unset
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, std::string>& all() const { return values_; }
  bool applies(const std::string& name) const { return has(name) && inapplicable_.count(name) == 0; }
  std::map<std::string, std::string> applicable() const;  // name -> value of parameters that have an effect
  const std::set<std::string>& inapplicable() const { return inapplicable_; }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> inapplicable_;
};

// Checks `value` against `spec` and returns its canonical text, or throws
// kvlab::Error mentioning `where` (e.g. "compressor 'kivi:bits=x'").
std::string canonical_param_value(const ParamSpec& spec, const std::string& value, const std::string& where);

// The closest candidates to `word` (edit distance), for "did you mean" hints.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace kvlab
