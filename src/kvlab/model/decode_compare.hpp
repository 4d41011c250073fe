#pragma once
// Model in the loop: the same model decodes the same sequence twice, once with
// an uncompressed reference cache (fp16 states; reference_run.hpp, computed
// once and shared) and once with a compressed one, and the two runs are
// compared at every decode step (docs/model-in-the-loop.md has the exact
// definitions).
//
// Teacher mode: both runs are fed the recorded tokens; step s feeds position
// p = P + s and its logits predict the recorded token p + 1.
// Free mode: both runs generate greedily from the prompt, each feeding its own
// previous argmax; step s feeds the s-th generated token. Once the fed tokens
// differ the two runs continue different texts, so the summary's KL, top-1
// agreement and hidden error are means over the steps *before* the first
// divergence (the shared context), and the number of those steps is the
// headline.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/compressors/compressor.hpp"
#include "kvlab/model/model_file.hpp"
#include "kvlab/model/reference_run.hpp"

namespace kvlab {

struct DecodeStep {
  int step = 0, position = 0;
  std::int64_t token_ref = -1, token_comp = -1;  // the tokens fed at this step
  std::int64_t target = -1;                      // recorded next token (teacher; −1 when none)
  std::int64_t top1_ref = -1, top1_comp = -1;    // argmax of the next-token logits
  bool shared_context = true;                    // every token fed so far was the same in both runs
  double kl = 0.0;                               // KL(p_ref ‖ p_comp), nats
  double hidden_rel = 0.0;                       // ‖h_comp − h_ref‖ / ‖h_ref‖ (final-norm hidden)
  double ce_ref = NAN, ce_comp = NAN;            // −log p(target), nats (teacher)
  double compression_ratio = 1.0;                // fp16 bits / compressed bits, all states
  std::vector<double> attn_rel;                  // per layer: mean over heads of ‖ô − o‖/‖o‖
  double attn_rel_mean() const;
};

struct DecodeResult {
  std::string compressor;  // canonical spec
  std::uint64_t seed = 0;
  bool free_running = false;
  int prompt_len = 0;
  std::vector<DecodeStep> steps;
  // Summary: means over the steps with a shared context (teacher mode: all).
  int shared_steps = 0;
  double mean_kl = 0.0, max_kl = 0.0, top1_agreement = 0.0, mean_hidden_rel = 0.0, final_hidden_rel = 0.0;
  double mean_ce_ref = NAN, mean_ce_comp = NAN, ppl_ref = NAN, ppl_comp = NAN, ppl_ratio = NAN;
  int first_divergence = -1;      // free mode: first step whose fed tokens differ (−1: never)
  double token_match_rate = NAN;  // free mode: fraction of all steps with equal fed tokens
  double compression_ratio = 1.0;  // at the last step
  double mean_bits_per_element = NAN;  // compressed bits per cached element (16 / ratio), mean over all steps
  std::vector<double> mean_attn_rel;  // per layer, over the shared-context steps
  std::vector<std::int64_t> generated_ref, generated_comp;  // free mode
  KvCheck kv_check;  // the reference run's check against the dump

  // Free mode: steps before the first divergence (all steps when never).
  int steps_to_divergence() const { return first_divergence < 0 ? static_cast<int>(steps.size()) : first_divergence; }
};

// Runs the compressed model against a reference run (its tokens, prompt and
// mode). Uses options.seed, threads and progress only.
DecodeResult compare_to_reference(const ModelWeights& model, const ReferenceRun& reference,
                                  const Compressor& compressor, const DecodeOptions& options);

// Both runs in one call: run_reference then compare_to_reference.
DecodeResult decode_compare(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                            const Compressor& compressor, const DecodeOptions& options,
                            const DumpReader* dump = nullptr, const KvCheckOptions& kv = {});

// KL(p ‖ q) of softmax(a) and softmax(b), in double.
double logits_kl(const RowVector& a, const RowVector& b);
// −log softmax(a)[target].
double cross_entropy(const RowVector& a, std::int64_t target);
std::int64_t argmax(const RowVector& a);

}  // namespace kvlab
