#pragma once
// Self-describing compressor parameters and the spec-string grammar.
//
//   spec    := method [ ':' param ( ',' param )* ]
//   param   := name '=' value
//   value   := token | '(' spec ')'        (parenthesised: a nested compressor)
//
// e.g. `gear:bits=2,group=64,rank=4` or `h2o:heavy=0.1,inner=(kivi:bits=2)`.
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace kvlab {

enum class ParamType { Int, Float, Bool, Choice, Spec };

struct ParamSpec {
  std::string name;
  ParamType type = ParamType::Int;
  std::string default_value;  // canonical text; "" for an unset Spec
  std::string doc;
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  std::vector<std::string> choices = {};  // for Choice

  std::string range_text() const;  // "[1, 8]", "token|channel", ...
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
// canonical text form, with typed getters.
class ParamValues {
 public:
  ParamValues() = default;
  explicit ParamValues(std::map<std::string, std::string> values) : values_(std::move(values)) {}

  const std::string& text(const std::string& name) const;
  int get_int(const std::string& name) const;
  double get_float(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  const std::string& get_choice(const std::string& name) const { return text(name); }
  const std::string& get_spec(const std::string& name) const { return text(name); }  // "" if unset
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  const std::map<std::string, std::string>& all() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

// Checks `value` against `spec` and returns its canonical text, or throws
// kvlab::Error mentioning `where` (e.g. "compressor 'kivi:bits=x'").
std::string canonical_param_value(const ParamSpec& spec, const std::string& value, const std::string& where);

// The closest candidates to `word` (edit distance), for "did you mean" hints.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

}  // namespace kvlab
