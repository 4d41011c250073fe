#pragma once
// The outlier extractor (REFERENCE: "Outlier extraction (sparse S)").
//
// Per vector — a token row (QuantAxis::PerToken) or a channel column
// (QuantAxis::PerChannel) of an [n × d] block — keep the k largest and the k
// smallest entries exactly, k = ⌊s·m/2⌋ with m the vector's length (d for rows,
// n for columns), or an explicit per-vector count (GEAR-compat keys use
// k = ⌊H·d·s/2⌋ per channel). If 2k ≥ m every entry of the vector is kept.
// Ties are broken by the total order (value, position along the vector), so the
// selection is unique and deterministic.
//
// Storage (exact bits): each kept entry costs 16 bits of FP16 value plus a
// 32-bit position (flat index into the block) = 48 bits. The value is stored
// as FP16 (round_to_fp16), which is exact for FP16 dumps.
#include <cstdint>
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/quant/group_quantizer.hpp"

namespace kvlab {

inline constexpr std::uint64_t kOutlierBitsPerEntry = 16 + 32;

struct OutlierConfig {
  QuantAxis axis = QuantAxis::PerToken;  // which vectors: rows (token) or columns (channel)
  double sparsity = 0.0;                 // s: fraction of each vector's entries (k = ⌊s·m/2⌋ per side)
  int count = -1;                        // explicit k per side per vector (>= 0 overrides sparsity)
};

struct SparseEntry {
  int row = 0;
  int col = 0;
  float value = 0.0f;  // as stored (FP16-rounded)
};

struct OutlierSet {
  ElementMask mask;                  // [n × d], 1 = outlier (for fake_quantize's `exclude`)
  std::vector<SparseEntry> entries;  // grouped by vector; deterministic order within one
  std::uint64_t bits() const { return kOutlierBitsPerEntry * entries.size(); }
};

// k per side for a vector of length m.
int outlier_count_per_side(const OutlierConfig& cfg, int m);

// Extracts the outliers of x [n × d].
OutlierSet extract_outliers(ConstMatrixRef x, const OutlierConfig& cfg);

// out += S at the outlier positions (out is D̂ with zeros there).
void add_outliers(const OutlierSet& s, MatrixRef out);

}  // namespace kvlab
