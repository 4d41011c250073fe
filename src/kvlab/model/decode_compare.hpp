#pragma once
// Model in the loop: the same model decodes the same sequence twice, once with
// an uncompressed reference cache (fp16 states) and once with a compressed
// one, and the two runs are compared at every decode step
// (docs/model-in-the-loop.md has the exact definitions).
//
// Teacher mode: both runs are fed the recorded tokens; step s feeds position
// p = P + s and its logits predict the recorded token p + 1.
// Free mode: both runs generate greedily from the prompt, each feeding its own
// previous argmax; step s feeds the s-th generated token.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/model/model_file.hpp"

namespace kvlab {

class DumpReader;
class Progress;

struct DecodeOptions {
  int prompt_len = 0;  // P ≥ 1
  int steps = -1;      // teacher: default (−1) every recorded token after the prompt; free: default 64
  bool free_running = false;
  int threads = 1;
  std::uint64_t seed = 0;
  Progress* progress = nullptr;  // advanced once per decode step (optional)
};

struct DecodeStep {
  int step = 0, position = 0;
  std::int64_t token_ref = -1, token_comp = -1;  // the tokens fed at this step
  std::int64_t target = -1;                      // recorded next token (teacher; −1 when none)
  std::int64_t top1_ref = -1, top1_comp = -1;    // argmax of the next-token logits
  double kl = 0.0;                               // KL(p_ref ‖ p_comp), nats
  double hidden_rel = 0.0;                       // ‖h_comp − h_ref‖ / ‖h_ref‖ (final-norm hidden)
  double ce_ref = NAN, ce_comp = NAN;            // −log p(target), nats (teacher)
  double compression_ratio = 1.0;                // fp16 bits / compressed bits, all states
  std::vector<double> attn_rel;                  // per layer: mean over heads of ‖ô − o‖/‖o‖
  double attn_rel_mean() const;
};

struct KvCheck {
  bool done = false;
  int positions = 0;
  double max_abs_diff = 0.0;
  double worst_diff = 0.0;  // |Δ| where the excess is largest
  double max_excess = 0.0;  // max of |Δ| / (atol + rtol·|dump|); ≤ 1 passes
  int worst_layer = -1, worst_head = -1, worst_position = -1;
  std::string worst_tensor;  // "keys" | "values"
};

struct DecodeResult {
  std::string compressor;  // canonical spec
  bool free_running = false;
  int prompt_len = 0;
  std::vector<DecodeStep> steps;
  // Summary
  double mean_kl = 0.0, max_kl = 0.0, top1_agreement = 0.0, mean_hidden_rel = 0.0, final_hidden_rel = 0.0;
  double mean_ce_ref = NAN, mean_ce_comp = NAN, ppl_ref = NAN, ppl_comp = NAN, ppl_ratio = NAN;
  int first_divergence = -1;  // free mode: first step whose fed tokens differ (−1: never)
  double token_match_rate = NAN;  // free mode: fraction of steps with equal fed tokens
  double compression_ratio = 1.0;  // at the last step
  std::vector<double> mean_attn_rel;  // per layer, over steps
  std::vector<std::int64_t> generated_ref, generated_comp;  // free mode
  KvCheck kv_check;
};

// Runs both decodes. `tokens`: teacher mode needs at least P + 1 tokens; free
// mode needs only the prompt. Throws kvlab::Error on bad options or tokens.
DecodeResult decode_compare(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                            const Compressor& compressor, const DecodeOptions& options,
                            const DumpReader* dump = nullptr, double kv_rtol = 1.0 / 512, double kv_atol = 1e-3);

// KL(p ‖ q) of softmax(a) and softmax(b), in double.
double logits_kl(const RowVector& a, const RowVector& b);
// −log softmax(a)[target].
double cross_entropy(const RowVector& a, std::int64_t target);
std::int64_t argmax(const RowVector& a);

}  // namespace kvlab
