#pragma once
// Text from an untrusted file, made safe to put in a one-line message.
#include <fmt/format.h>

#include <string>
#include <string_view>

namespace kvlab::io {

// `text` on one line: backslashes and control characters escaped (\n, \t,
// \x01, ...), and `quote` too when given; cut after `max_chars` characters
// with "...".
inline std::string escaped(std::string_view text, std::size_t max_chars = 200, char quote = 0) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (i == max_chars) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\' || (quote != 0 && c == static_cast<unsigned char>(quote)))
      out += {'\\', static_cast<char>(c)};
    else if (c < 0x20 || c == 0x7f)
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  return out;
}

// escaped(text) in double quotes, for a value in a message: "kv\ndump".
inline std::string quoted(std::string_view text, std::size_t max_chars = 80) {
  std::string out(1, '"');
  out += escaped(text, max_chars, '"');
  out += '"';
  return out;
}

}  // namespace kvlab::io
