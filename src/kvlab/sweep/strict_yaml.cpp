#include "kvlab/sweep/strict_yaml.hpp"

#include <yaml-cpp/eventhandler.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "kvlab/core/error.hpp"
#include "kvlab/io/quoted.hpp"

namespace kvlab {

namespace {

namespace fs = std::filesystem;

// Walks the parser's events once, before the tree is built: keeps, for every
// open map, the keys seen so far and where.
class StrictChecker : public YAML::EventHandler {
 public:
  explicit StrictChecker(const std::string& file) : file_(file) {}

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (++documents_ > 1) fail("{}: line {}: a second YAML document; a sweep file holds one", file_, line(mark));
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { node(mark, nullptr, "an empty (null) key"); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override {
    fail("{}: line {}: YAML aliases (*name) are not supported in sweep files; write the value out", file_,
         line(mark));
  }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t, const std::string& value) override {
    for (const char c : value)  // messages quote values and keys: keep them on one line
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
        fail("{}: line {}: control character in {}; sweep files hold printable text", file_, line(mark),
             io::quoted(value));
    node(mark, &value, "");
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    node(mark, nullptr, "a list as a key");
    open_.push_back({false, true, {}});
  }
  void OnSequenceEnd() override { open_.pop_back(); }
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {
    node(mark, nullptr, "a map as a key");
    open_.push_back({true, true, {}});
  }
  void OnMapEnd() override { open_.pop_back(); }

 private:
  struct Open {
    bool is_map;
    bool expecting_key;
    std::map<std::string, int> keys;  // key -> line
  };

  static int line(const YAML::Mark& mark) { return mark.line + 1; }

  // A node at `mark`: a scalar (`scalar` set) or anything else (`what`).
  void node(const YAML::Mark& mark, const std::string* scalar, const char* what) {
    if (open_.empty() || !open_.back().is_map) return;
    Open& map = open_.back();
    map.expecting_key = !map.expecting_key;
    if (map.expecting_key) return;  // this node was the value
    if (scalar == nullptr) fail("{}: line {}: {}; map keys must be plain names", file_, line(mark), what);
    const auto [it, inserted] = map.keys.emplace(*scalar, line(mark));
    if (!inserted)
      fail("{}: line {}: duplicate key '{}' (first at line {}); each key may appear once per map", file_,
           line(mark), *scalar, it->second);
  }

  const std::string& file_;
  int documents_ = 0;
  std::vector<Open> open_;
};

std::string read_small_file(const std::string& path) {
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) fail("{}: no such sweep file", path);
  if (!fs::is_regular_file(status)) fail("{}: not a regular file, expected a YAML sweep file", path);
  const std::uintmax_t size = fs::file_size(path, ec);
  if (ec || size > kMaxSweepFileBytes)
    fail("{}: {} bytes, larger than a sweep file may be ({} bytes)", path, size, kMaxSweepFileBytes);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("{}: cannot be read", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

YAML::Node load_strict_yaml(const std::string& path) {
  const std::string text = read_small_file(path);
  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    StrictChecker checker(path);
    while (parser.HandleNextDocument(checker)) {
    }
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    fail("{}: invalid YAML at line {}: {}", path, e.mark.line + 1, io::escaped(e.msg));
  }
}

}  // namespace kvlab
