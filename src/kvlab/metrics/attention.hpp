#pragma once
// Attention-output metrics (REFERENCE: Metrics), for one query position t of one
// query head over the cached positions it sees, [first, t] (first = 0, or
// t − W + 1 in a layer with a sliding window W):
//   p = softmax(s·q·Kᵀ), o = p·V           (recorded cache; s = the dump's
//                                           attn_scale, default 1/√d; with a
//                                           soft-cap c the logits are
//                                           c·tanh(s·q·k/c))
//   p̂ = softmax over present positions of the compressed logits, ô = p̂·V̂
//   out_rel      = ‖o − ô‖ / ‖o‖
//   kl           = KL(p' ‖ p̂), p' = p restricted to present positions and
//                  renormalised (no smoothing is added; evicted mass is
//                  reported separately, so KL measures distortion of the kept
//                  distribution and dropped_mass the loss of the evicted one)
//   kl_rev       = KL(p̂ ‖ p) over present positions (p̂ is 0 elsewhere): the
//                  reverse divergence, finite for droppers; for a dropper that
//                  keeps tokens exactly it equals −log(1 − dropped_mass), so
//                  it reflects dropped mass where kl (renormalised) cannot
//   dropped_mass = Σ p over absent positions
// Positions before `first` take no part: p = p̂ = 0 there, and an evicted
// token the query would not see anyway is not dropped mass.
//
// Computation, all in double with a fixed order of operations (so a result
// does not depend on the CPU, the thread or how steps were batched): p and p̂
// by softmax_into (maximum subtracted, a lane-wise exp within 2 ulp),
// o and ô by weighted_row_sum (attention_kernels.hpp). The logs in the KLs
// come from the log-sum-exp form, log p_i = (s·z_i − max) − log Σ, not from
// log(p_i): no log per position, and a probability that underflows to 0 keeps
// its finite logarithm. The recorded side depends only on the dump,
// so the replay computes it once (ReferenceAttention) and compares any number
// of compressed caches with it.
#include <cstdint>
#include <vector>

#include "kvlab/core/types.hpp"
#include "kvlab/metrics/softmax_kernels.hpp"

namespace kvlab {

struct AttentionError {
  double out_rel = 0.0;
  double kl = 0.0;
  double kl_rev = 0.0;
  double dropped_mass = 0.0;

  AttentionError& operator+=(const AttentionError& o) {
    out_rel += o.out_rel;
    kl += o.kl;
    kl_rev += o.kl_rev;
    dropped_mass += o.dropped_mass;
    return *this;
  }
};

// The recorded cache's attention for one query head at one position (a view;
// the storage belongs to whoever computed it).
struct ReferenceAttention {
  int tokens = 0;
  int first = 0;                  // the first visible position (sliding window); p = 0 before it
  double softcap = 0.0;           // > 0: `logits` are capped, c·tanh(scale·q·k/c), softmax scale 1
  const float* logits = nullptr;  // unscaled q·kᵀ [tokens] (capped logits when softcap > 0)
  const double* p = nullptr;      // softmax [tokens]
  SoftmaxNorm norm;
  const double* o = nullptr;      // p·V [d]
  double o_norm2 = 0.0;           // Σ o_c², in channel order
};

// Buffers of the compressed side, reused across calls.
struct AttentionScratch {
  std::vector<double> p, o;
  std::vector<float> capped;  // the compressed side's capped logits
};

// out[i] = c·tanh(scale·z[i]/c), in double, rounded to float.
void cap_logits(const float* z, int n, double scale, double softcap, float* out);

// The parts of compare_attention, for callers that form ô themselves:
// kl, kl_rev and dropped_mass (out_rel left 0), writing p̂ [n] into p_hat
// (0 before ref.first). `scale` is the attention scale (attn_scale); with
// ref.softcap the compressed logits are capped here (into capped).
AttentionError compare_scores(const ReferenceAttention& ref, const float* hat_logits, const std::uint8_t* present,
                              double scale, double* p_hat, std::vector<float>& capped);
// ‖o − ô‖ / ‖o‖ (‖o − ô‖ when o = 0), summed in channel order.
double output_error(const ReferenceAttention& ref, const double* o_hat, int d);

// Compares one query head of a compressed cache with its reference.
// hat_logits: unscaled q·K̂ᵀ [n]; values_hat [n × d]; present: null = all present.
AttentionError compare_attention(const ReferenceAttention& ref, const float* hat_logits, ConstMatrixRef values_hat,
                                 const std::uint8_t* present, double scale, AttentionScratch& scratch);

// One-off form (tests): computes the reference too.
AttentionError compare_attention(const float* ref_logits, const float* hat_logits, ConstMatrixRef values,
                                 ConstMatrixRef values_hat, const std::uint8_t* present, double scale);

}  // namespace kvlab
