#pragma once
// Allocation of one layer's token budget across its kv heads, as pure
// functions (docs/methods/eviction.md): Ada-KV's score-driven allocation with a
// per-head safeguard, and CriticalKV's two-stage selection. adakv and
// criticalkv (head_adaptive.*) drive them; tests check them on their own.
#include <cstdint>
#include <vector>

namespace kvlab {

// scores[h][i]: score of position i in head h (higher = keep; +inf = always).
using HeadScores = std::vector<std::vector<double>>;

// Ada-KV: a layer of H heads keeps H·B positions in all. Each head first keeps
// its own top f = ⌊alpha·B⌋ (the safeguard); the remaining slots go to the
// highest scores over all heads. Ties: the lower position within a head, then
// the lower head across heads. Returns the kept positions of each head
// (sorted); everything when a layer has no more than H·B positions.
std::vector<std::vector<int>> adakv_select(const HeadScores& scores, int budget, double alpha);

// CriticalKV's two-stage selection of b_h = budgets[h] positions in head h:
// stage 1 keeps the top k1 = min(b_h, max(floor_h, ⌊b_h·first_stage⌋)) by
// score; stage 2 fills the remaining b_h − k1 with the highest
// (score + epsilon)·value_l1 (+inf stays first). Ties: the lower position.
std::vector<std::vector<int>> criticalkv_select(const HeadScores& scores, const HeadScores& value_l1,
                                                const std::vector<int>& budgets, const std::vector<int>& floors,
                                                double first_stage, double epsilon);

// CriticalKV's stage-2 score (score + epsilon)·norm; +inf stays +inf.
double critical_score(double score, double norm, double epsilon);

// Decode-time eviction across heads: among the positions i < end[h] present
// in head h (present[h] null: all) of heads holding more than `floor` tokens
// (kept[h]), the lowest score; ties: the higher head, then the higher
// position. {-1, -1} if there is none.
struct HeadPosition {
  int head = -1;
  int position = -1;
};
HeadPosition lowest_across_heads(const HeadScores& scores, const std::vector<const std::uint8_t*>& present,
                                 const std::vector<int>& end, const std::vector<int>& kept, int floor);

}  // namespace kvlab
