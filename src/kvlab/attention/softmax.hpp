#pragma once
// The attention softmax shared by the metrics, the score accumulator of the
// droppers and the model in the loop: computed in double from float logits,
// with the maximum subtracted.
#include <cstdint>
#include <vector>

namespace kvlab {

// p = softmax(logits·scale) over the n positions; positions with
// present[i] == 0 get probability 0 (present == nullptr: all present). All
// absent: p is all zeros.
void softmax(const float* logits, int n, double scale, const std::uint8_t* present, std::vector<double>& p);

}  // namespace kvlab
