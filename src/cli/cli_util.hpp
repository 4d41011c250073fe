#pragma once
// Small parsing and formatting helpers shared by the subcommands.
#include <string>
#include <vector>

namespace kvlab::cli {

// "0,2,5-7" → {0, 2, 5, 6, 7}; throws kvlab::Error naming `option` on bad text.
std::vector<int> parse_index_list(const std::string& text, const std::string& option);

// Renders rows as an aligned text table (first row = header).
std::string format_table(const std::vector<std::vector<std::string>>& rows);

// Formats a number for tables: fixed for ordinary magnitudes, scientific otherwise.
std::string pretty(double value);

}  // namespace kvlab::cli
