#pragma once
// Channel groups for per-token quantization: contiguous groups, or SKVQ's
// channel reordering — channels with similar value ranges clustered into the
// same group, so one outlier channel does not widen the range of ordinary ones.
//
// cluster_channels: Lloyd k-means on the 2-D points (min_c, max_c) of the d
// channels into k clusters. Deterministic start: channels ordered by range
// (max − min, ties by index), the j-th center at the channel of rank
// ⌊(j + 0.5)·d/k⌋; at most 100 iterations; each channel to its nearest center
// (squared Euclidean, ties to the lower cluster); an emptied cluster keeps its
// center. Groups are the non-empty clusters in cluster order, channel indices
// ascending within each (the order within a group does not change its min/max).
#include <vector>

namespace kvlab {

using ChannelGroups = std::vector<std::vector<int>>;

// [0, g), [g, 2g), ... (the last one partial); g ≥ d: one group.
ChannelGroups contiguous_groups(int d, int group);

// k = clusters (1 ≤ k ≤ d); mn, mx: per-channel minimum and maximum.
ChannelGroups cluster_channels(const std::vector<float>& mn, const std::vector<float>& mx, int clusters);

}  // namespace kvlab
