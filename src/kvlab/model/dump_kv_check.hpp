#pragma once
// Is the dump from this model? The reference run's keys and values (after
// RoPE) are compared with the dump's, per layer and tensor, by the relative
// Frobenius norm over every kv head and every position checked so far:
//
//   rel(L, X) = ‖X_ref − X_dump‖_F / ‖X_dump‖_F,   X ∈ {keys, values},
//
// and the run fails as soon as max over (L, X) exceeds `rtol`. A dump
// recorded on a GPU in float16 from the same model differs at the float16
// level (rel ≈ 1e-4 – 1e-3); another model or other tokens give rel ≈ 1.
// The check runs as the reference proceeds (DumpKvChecker::check_until), so a
// wrong dump fails right after the prompt, not after the whole run.
#include <string>
#include <vector>

#include "kvlab/model/model_file.hpp"

namespace kvlab {

class DumpReader;
class LlamaForward;

struct KvCheckOptions {
  bool enabled = true;
  double rtol = 1e-2;  // bound on every layer's relative norm
};

struct KvCheck {
  bool done = false;
  int positions = 0;             // positions compared (prompt, plus decode positions in teacher mode)
  double rtol = 0.0;
  double max_rel = 0.0;          // max over layers and tensors
  int worst_layer = -1;
  std::string worst_tensor;      // "keys" | "values"
  std::vector<double> key_rel, value_rel;  // per layer
  bool ok() const { return max_rel <= rtol; }
};

// Checks a reference run against a dump incrementally.
class DumpKvChecker {
 public:
  // `limit`: the positions that will be fed the dump's own tokens (clamped to
  // the dump's length). Throws kvlab::Error when the shapes disagree.
  DumpKvChecker(const DumpReader& dump, const ModelConfig& config, double rtol, int limit);

  // Compares positions [checked(), min(upto, limit)) of every layer's
  // reference cache with the dump; throws kvlab::Error naming the dump, the
  // layer and the tensor when a relative norm exceeds rtol.
  void check_until(const LlamaForward& reference, int upto);
  // True when enough new positions have accumulated for another check
  // (geometric: at least max(64, checked) new ones, so the dump is read O(T) times).
  bool due(int fed) const;
  void finish(const LlamaForward& reference) { check_until(reference, limit_); }

  int checked() const { return result_.positions; }
  const KvCheck& result() const { return result_; }

 private:
  const DumpReader& dump_;
  ModelConfig config_;
  int limit_;
  KvCheck result_;
  std::vector<double> key_err_, key_norm_, value_err_, value_norm_;  // per layer, sums of squares
};

}  // namespace kvlab
