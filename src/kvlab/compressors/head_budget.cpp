#include "kvlab/compressors/head_budget.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kvlab/compressors/token_dropper.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

namespace {

std::vector<int> iota_of(std::size_t n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

std::vector<std::vector<int>> adakv_select(const HeadScores& scores, int budget, double alpha) {
  const std::size_t heads = scores.size();
  KVLAB_ASSERT(heads >= 1 && budget >= 0 && alpha >= 0 && alpha <= 1);
  const std::size_t n = scores.front().size();
  std::vector<std::vector<int>> kept(heads);
  if (n <= static_cast<std::size_t>(budget)) {
    for (auto& k : kept) k = iota_of(n);
    return kept;
  }
  const int safeguard = std::min(budget_count(alpha, 0, budget), budget);
  std::vector<std::vector<char>> chosen(heads, std::vector<char>(n, 0));
  for (std::size_t h = 0; h < heads; ++h)
    for (int i : top_positions(iota_of(n), scores[h], safeguard)) chosen[h][static_cast<std::size_t>(i)] = 1;
  // The rest: a global ranking of the unchosen (head, position) pairs.
  std::vector<std::pair<int, int>> rest;
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t i = 0; i < n; ++i)
      if (!chosen[h][i]) rest.emplace_back(static_cast<int>(h), static_cast<int>(i));
  const auto slots = static_cast<std::size_t>(budget) * heads - static_cast<std::size_t>(safeguard) * heads;
  std::partial_sort(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(slots), rest.end(),
                    [&](const auto& a, const auto& b) {
                      const double sa = scores[static_cast<std::size_t>(a.first)][static_cast<std::size_t>(a.second)];
                      const double sb = scores[static_cast<std::size_t>(b.first)][static_cast<std::size_t>(b.second)];
                      if (sa != sb) return sa > sb;
                      return a < b;  // lower head, then lower position
                    });
  for (std::size_t k = 0; k < slots; ++k)
    chosen[static_cast<std::size_t>(rest[k].first)][static_cast<std::size_t>(rest[k].second)] = 1;
  for (std::size_t h = 0; h < heads; ++h)
    for (std::size_t i = 0; i < n; ++i)
      if (chosen[h][i]) kept[h].push_back(static_cast<int>(i));
  return kept;
}

double critical_score(double score, double norm, double epsilon) {
  if (std::isinf(score) && score > 0) return score;
  return (score + epsilon) * norm;
}

std::vector<std::vector<int>> criticalkv_select(const HeadScores& scores, const HeadScores& value_l1,
                                                const std::vector<int>& budgets, const std::vector<int>& floors,
                                                double first_stage, double epsilon) {
  std::vector<std::vector<int>> kept(scores.size());
  for (std::size_t h = 0; h < scores.size(); ++h) {
    const std::size_t n = scores[h].size();
    const int b = std::min(budgets[h], static_cast<int>(n));
    const int k1 = std::min(b, std::max(floors[h], static_cast<int>(std::floor(b * first_stage + 1e-9))));
    std::vector<int> stage1 = top_positions(iota_of(n), scores[h], k1);
    std::vector<char> in1(n, 0);
    for (int i : stage1) in1[static_cast<std::size_t>(i)] = 1;
    std::vector<int> rest;
    std::vector<double> s2(n, 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      if (in1[i]) continue;
      rest.push_back(static_cast<int>(i));
      s2[i] = critical_score(scores[h][i], value_l1[h][i], epsilon);
    }
    for (int i : top_positions(rest, s2, b - k1)) stage1.push_back(i);
    std::sort(stage1.begin(), stage1.end());
    kept[h] = std::move(stage1);
  }
  return kept;
}

HeadPosition lowest_across_heads(const HeadScores& scores, const std::vector<const std::uint8_t*>& present,
                                 const std::vector<int>& end, const std::vector<int>& kept, int floor) {
  HeadPosition best;
  double low = 0;
  for (std::size_t h = 0; h < scores.size(); ++h) {
    if (kept[h] <= floor) continue;
    for (int i = 0; i < end[h]; ++i) {
      if (present[h] != nullptr && present[h][i] == 0) continue;
      const double s = scores[h][static_cast<std::size_t>(i)];
      // Scanning in (head, position) order, an equal score replaces: the later wins.
      if (best.head < 0 || s <= low) {
        best = {static_cast<int>(h), i};
        low = s;
      }
    }
  }
  return best;
}

}  // namespace kvlab
