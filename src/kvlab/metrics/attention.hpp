#pragma once
// Attention-output metrics (REFERENCE: Metrics), for one query position t of one
// query head over cached positions [0, t]:
//   p = softmax(q·Kᵀ/√d), o = p·V          (recorded cache)
//   p̂ = softmax over present positions of the compressed logits, ô = p̂·V̂
//   out_rel      = ‖o − ô‖ / ‖o‖
//   kl           = KL(p' ‖ p̂), p' = p restricted to present positions and
//                  renormalised (no smoothing is added; evicted mass is
//                  reported separately, so KL measures distortion of the kept
//                  distribution and dropped_mass the loss of the evicted one)
//   dropped_mass = Σ p over absent positions
#include <vector>

#include "kvlab/core/types.hpp"

namespace kvlab {

struct AttentionError {
  double out_rel = 0.0;
  double kl = 0.0;
  double dropped_mass = 0.0;

  AttentionError& operator+=(const AttentionError& o) {
    out_rel += o.out_rel;
    kl += o.kl;
    dropped_mass += o.dropped_mass;
    return *this;
  }
};

// Numerically stable softmax of logits·scale in double; positions with
// present[i] == 0 get probability 0 (present == nullptr: all present).
void softmax(const float* logits, int n, double scale, const std::uint8_t* present, std::vector<double>& p);

// Compares one query head. ref_logits / hat_logits: unscaled q·kᵀ, [n];
// values / values_hat: [n × d]; present: null = all present.
AttentionError compare_attention(const float* ref_logits, const float* hat_logits, ConstMatrixRef values,
                                 ConstMatrixRef values_hat, const std::uint8_t* present, double scale);

}  // namespace kvlab
