#include "kvlab/compressors/params.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

// Splits on `sep` at parenthesis depth 0.
std::vector<std::string> split_top_level(std::string_view s, char sep, std::string_view whole) {
  std::vector<std::string> parts;
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '(') ++depth;
    if (s[i] == ')' && --depth < 0) fail("compressor spec '{}': unbalanced ')'", whole);
    if (s[i] == sep && depth == 0) {
      parts.emplace_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (depth != 0) fail("compressor spec '{}': unbalanced '('", whole);
  parts.emplace_back(s.substr(start));
  return parts;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

bool parse_int(const std::string& s, long long& out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, out);
  return ec == std::errc() && ptr == end;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty()) return false;
  std::size_t used = 0;
  try {
    out = std::stod(s, &used);
  } catch (...) {
    return false;
  }
  return used == s.size() && std::isfinite(out);
}

}  // namespace

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::Int: return "int";
    case ParamType::Float: return "float";
    case ParamType::Bool: return "bool";
    case ParamType::Choice: return "choice";
    case ParamType::Spec: return "spec";
  }
  return "";
}

std::string ParamSpec::range_text() const {
  switch (type) {
    case ParamType::Bool: return "true|false";
    case ParamType::Choice: return fmt::format("{}", fmt::join(choices, "|"));
    case ParamType::Spec: return "(spec)";
    case ParamType::Int:
    case ParamType::Float: break;
  }
  auto bound = [&](double v) {
    if (std::isinf(v)) return std::string(v < 0 ? "-inf" : "inf");
    return type == ParamType::Int ? fmt::format("{}", static_cast<long long>(v)) : fmt::format("{}", v);
  };
  return fmt::format("[{}, {}]", bound(min), bound(max));
}

SpecText parse_spec_text(std::string_view spec) {
  const std::string text = trim(spec);
  if (text.empty()) fail("empty compressor spec");
  SpecText out;
  const auto colon = text.find(':');
  out.method = trim(std::string_view(text).substr(0, colon));
  if (out.method.empty() || out.method.find_first_of("=,()") != std::string::npos)
    fail("compressor spec '{}': expected 'method:name=value,...'", text);
  if (colon == std::string::npos) return out;
  const std::string rest = text.substr(colon + 1);
  if (trim(rest).empty()) return out;
  for (const std::string& part : split_top_level(rest, ',', text)) {
    const auto eq = part.find('=');
    if (eq == std::string::npos) fail("compressor spec '{}': parameter '{}' has no '=value'", text, trim(part));
    std::string name = trim(std::string_view(part).substr(0, eq));
    std::string value = trim(std::string_view(part).substr(eq + 1));
    if (name.empty() || value.empty()) fail("compressor spec '{}': empty name or value in '{}'", text, trim(part));
    if (value.front() == '(') {
      if (value.back() != ')') fail("compressor spec '{}': nested spec '{}' must end with ')'", text, value);
      value = trim(std::string_view(value).substr(1, value.size() - 2));
    }
    for (const auto& [seen, unused] : out.params)
      if (seen == name) fail("compressor spec '{}': parameter '{}' given twice", text, name);
    out.params.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

std::string format_spec_text(const SpecText& spec) {
  std::string out = spec.method;
  for (std::size_t i = 0; i < spec.params.size(); ++i) {
    const auto& [name, value] = spec.params[i];
    const bool nested = value.find_first_of(":,=") != std::string::npos;
    out += fmt::format("{}{}={}", i == 0 ? ":" : ",", name, nested ? "(" + value + ")" : value);
  }
  return out;
}

const std::string& ParamValues::text(const std::string& name) const {
  auto it = values_.find(name);
  KVLAB_ASSERT(it != values_.end());
  return it->second;
}

std::map<std::string, std::string> ParamValues::applicable() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, value] : values_)
    if (!inapplicable_.count(name)) out.emplace(name, value);
  return out;
}

ParamCondition when_equals(std::string param, std::vector<std::string> values) {
  std::string text = param + "=" + fmt::format("{}", fmt::join(values, "|"));
  return {[param, values](const ParamValues& v) {
            return std::find(values.begin(), values.end(), v.text(param)) != values.end();
          },
          std::move(text)};
}

ParamCondition when_zero(std::string param) {
  return {[param](const ParamValues& v) { return std::stod(v.text(param)) == 0.0; }, param + "=0"};
}

ParamCondition when_positive(std::string param) {
  return {[param](const ParamValues& v) { return std::stod(v.text(param)) > 0.0; }, param + ">0"};
}

ParamCondition all_of(std::vector<ParamCondition> conditions) {
  std::vector<std::string> texts;
  for (const auto& c : conditions) texts.push_back(c.text.find(' ') == std::string::npos ? c.text : "(" + c.text + ")");
  return {[conditions](const ParamValues& v) {
            return std::all_of(conditions.begin(), conditions.end(), [&](const auto& c) { return c.holds(v); });
          },
          fmt::format("{}", fmt::join(texts, " and "))};
}

ParamCondition any_of(std::vector<ParamCondition> conditions) {
  std::vector<std::string> texts;
  for (const auto& c : conditions) texts.push_back(c.text.find(' ') == std::string::npos ? c.text : "(" + c.text + ")");
  return {[conditions](const ParamValues& v) {
            return std::any_of(conditions.begin(), conditions.end(), [&](const auto& c) { return c.holds(v); });
          },
          fmt::format("{}", fmt::join(texts, " or "))};
}

int ParamValues::get_int(const std::string& name) const { return std::stoi(text(name)); }
double ParamValues::get_float(const std::string& name) const { return std::stod(text(name)); }
bool ParamValues::get_bool(const std::string& name) const { return text(name) == "true"; }

std::string canonical_param_value(const ParamSpec& spec, const std::string& value, const std::string& where) {
  auto out_of_range = [&](auto v) {
    fail("{}: parameter '{}' = {} is out of range {}", where, spec.name, v, spec.range_text());
  };
  switch (spec.type) {
    case ParamType::Int: {
      long long v = 0;
      if (!parse_int(value, v)) fail("{}: parameter '{}' expects an integer, got '{}'", where, spec.name, value);
      if (static_cast<double>(v) < spec.min || static_cast<double>(v) > spec.max) out_of_range(v);
      return fmt::format("{}", v);
    }
    case ParamType::Float: {
      double v = 0;
      if (!parse_double(value, v)) fail("{}: parameter '{}' expects a number, got '{}'", where, spec.name, value);
      if (v < spec.min || v > spec.max) out_of_range(v);
      return fmt::format("{}", v);
    }
    case ParamType::Bool: {
      if (value == "true" || value == "1" || value == "yes" || value == "on") return "true";
      if (value == "false" || value == "0" || value == "no" || value == "off") return "false";
      fail("{}: parameter '{}' expects true or false, got '{}'", where, spec.name, value);
    }
    case ParamType::Choice: {
      if (std::find(spec.choices.begin(), spec.choices.end(), value) != spec.choices.end()) return value;
      fail("{}: parameter '{}' expects one of {}, got '{}'{}", where, spec.name, spec.range_text(), value,
           did_you_mean(value, spec.choices));
    }
    case ParamType::Spec: return value;  // validated by the registry when the nested spec is built
  }
  return value;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  std::size_t best = std::string::npos;
  std::string best_word;
  for (const auto& c : candidates) {
    const std::size_t d = edit_distance(word, c);
    if (d < best) {
      best = d;
      best_word = c;
    }
  }
  if (best_word.empty() || best > std::max<std::size_t>(2, word.size() / 3)) return {};
  return fmt::format(" (did you mean '{}'?)", best_word);
}

}  // namespace kvlab
