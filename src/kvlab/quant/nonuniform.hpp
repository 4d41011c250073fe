#pragma once
// Non-uniform (codebook) quantization, KVQuant-style.
//
// Levels: 1-D k-means (Lloyd) on normalised values u ∈ [0, 1], computed on a
// histogram of 2^14 bins (each bin represented by the mean of its values and its
// count, so the fit equals k-means on the data whenever no bin straddles a
// decision boundary). Init: the bin-weighted quantiles (j + 0.5)/K; a fixed
// number of Lloyd iterations; an empty cluster keeps its level. Levels are sorted
// and rounded to FP16 (the codebook is stored as FP16).
//
// Quantizer: per vector (whole row for PerToken, whole column for PerChannel),
// outliers excluded: zero = fp16(min), scale = fp16(max − min);
// u = (x − zero)/scale, code = nearest level, x̂ = zero + level·scale
// (scale == 0: x̂ = zero). Bits: b per element (2^b = levels) + 32 per vector.
#include <cstdint>
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/quant/group_quantizer.hpp"

namespace kvlab {

class LevelHistogram {
 public:
  static constexpr int kBins = 1 << 14;
  LevelHistogram() : sum_(kBins, 0.0), count_(kBins, 0.0) {}
  void add(float u);  // clamped to [0, 1]
  double total() const { return total_; }
  // k levels, sorted, FP16-rounded; uniform j/(k−1) if the histogram is empty.
  std::vector<float> kmeans(int k, int iterations = 50) const;

 private:
  std::vector<double> sum_, count_;
  double total_ = 0.0;
};

std::vector<float> uniform_levels(int k);  // j / (k − 1), FP16-rounded
std::vector<float> kmeans_levels(const std::vector<float>& values, int k, int iterations = 50);

// Adds the normalised values u of x's non-excluded entries (per vector, as the
// quantizer normalises) to h.
void add_normalised(ConstMatrixRef x, QuantAxis axis, const ElementMask* exclude, LevelHistogram& h);

// Codebook quantization; out may not alias x. Returns codes + metadata bits.
BitCount nuq_quantize(ConstMatrixRef x, QuantAxis axis, const std::vector<float>& levels, MatrixRef out,
                      const ElementMask* exclude = nullptr);

}  // namespace kvlab
