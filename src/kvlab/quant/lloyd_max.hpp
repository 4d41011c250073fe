#pragma once
// Lloyd–Max: the MSE-optimal scalar quantizer with a fixed number of levels for
// a known 1-D density (TurboQuant's rotated-coordinate codebooks, PolarQuant's
// angle codebooks), and nearest-centroid lookup.
//
// The density is sampled on a midpoint grid of `grid` equal cells over
// [lo, hi]; with prefix sums of w and w·x, one Lloyd iteration (boundaries =
// midpoints of neighbouring centroids, centroids = conditional means of their
// cells) costs O(levels · log grid). Initialisation: the (j + 0.5)/levels
// quantiles; iterations stop when no centroid moves by more than 1e-13·(hi − lo).
// A cell belongs to the interval that contains its midpoint. Everything is in
// double and deterministic.
#include <functional>
#include <vector>

namespace kvlab {

// Sorted centroids (levels ≥ 1). `density` need not be normalised; it must be
// finite and ≥ 0 at every cell midpoint with a positive total.
std::vector<double> lloyd_max(const std::function<double(double)>& density, double lo, double hi, int levels,
                              int grid = 1 << 18, int max_iterations = 2000);

// Index of the centroid nearest to x in sorted `centroids` (ties: the lower).
int nearest_centroid(const std::vector<float>& centroids, float x);

}  // namespace kvlab
