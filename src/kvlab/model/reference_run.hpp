#pragma once
// The uncompressed reference run of the model in the loop, computed once and
// kept as a trace, so that any number of compressed runs (several
// compressors, several seeds) compare against it without recomputing it
// (decode_compare.hpp). The reference's cache is exact (fp16 CacheStates,
// which keep keys and values as computed), so the trace does not depend on
// the seed or the thread count.
//
// Teacher mode: the recorded tokens are fed; step s feeds position P + s.
// Free mode: the run generates greedily from the prompt (step 0 feeds the
// argmax of the prompt's last logits).
//
// Memory: per step the logits [vocab], the final-norm hidden state [hidden]
// and every layer's attention output [H × hd], float32.
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/model/dump_kv_check.hpp"
#include "kvlab/model/model_file.hpp"

namespace kvlab {

class DumpReader;
class Progress;

struct DecodeOptions {
  int prompt_len = 0;  // P ≥ 1
  int steps = -1;      // teacher: default (−1) every recorded token after the prompt; free: default 64
  bool free_running = false;
  int threads = 1;
  std::uint64_t seed = 0;        // the compressed run's random streams
  Progress* progress = nullptr;  // advanced once per decode step of each run (optional)
};

struct ReferenceStep {
  std::int64_t token = -1;   // fed at this step
  std::int64_t target = -1;  // recorded next token (teacher; −1 when none)
  RowVector logits, hidden;  // after this step
  std::vector<Matrix> attn;  // per layer: [H × hd] attention output before o_proj
  double fp16_bits = 0.0;    // bits of the whole (uncompressed) cache after this step
};

struct ReferenceRun {
  bool free_running = false;
  int prompt_len = 0;
  std::vector<std::int64_t> prompt;
  RowVector prompt_logits;  // after prefill: predicts the first decode token
  std::vector<ReferenceStep> steps;
  KvCheck kv_check;  // done = false when not checked
};

// Decode steps for `options` and `tokens` (resolves the −1 defaults); throws
// kvlab::Error on bad options or too few tokens.
int resolve_decode_steps(const DecodeOptions& options, int num_tokens);

// Runs the reference. With `dump` (and kv.enabled) the run's keys/values are
// checked against the dump's as it proceeds (dump_kv_check.hpp): after the
// prompt and then at geometrically spaced decode steps; a mismatch throws.
ReferenceRun run_reference(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                           const DecodeOptions& options, const DumpReader* dump = nullptr,
                           const KvCheckOptions& kv = {});

}  // namespace kvlab
