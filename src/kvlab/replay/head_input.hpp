#pragma once
#include <span>

#include "kvlab/core/types.hpp"

namespace kvlab {

// The recorded tensors of one kv head.
struct HeadInput {
  ConstMatrixRef keys;              // [T × d] recorded
  ConstMatrixRef values;            // [T × d]
  std::span<const Matrix> queries;  // the group's query heads, each [T × d]; empty = none
};

}  // namespace kvlab
