#pragma once
// Free-running `kvlab decode`: the reference and the compressed generation
// printed side by side as text (with the model's vocabulary), row by row over
// the same decode steps, the first divergent token marked with ».
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/model/vocabulary.hpp"

namespace kvlab::cli {

struct SideBySide {
  std::string left_label, right_label;
  int column_width = 48;  // display columns per side
  int max_tokens = 160;   // tokens shown per side
};

// The end of the prompt (about `width` display columns), then both
// generations. first_divergence < 0: never.
std::string side_by_side(const Vocabulary& vocab, const std::vector<std::int64_t>& prompt,
                         const std::vector<std::int64_t>& left, const std::vector<std::int64_t>& right,
                         int first_divergence, const SideBySide& layout);

}  // namespace kvlab::cli
