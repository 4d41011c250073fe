#include "kvlab/model/reference_run.hpp"

#include <algorithm>
#include <optional>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/progress.hpp"
#include "kvlab/io/dump_reader.hpp"
#include "kvlab/model/dump_attention_check.hpp"
#include "kvlab/model/llama_forward.hpp"

namespace kvlab {

int resolve_decode_steps(const DecodeOptions& o, int num_tokens) {
  const int P = o.prompt_len;
  if (P < 1) fail("decode: the prompt length must be at least 1, found {}", P);
  if (P > num_tokens) fail("decode: prompt length {} exceeds the {} tokens given", P, num_tokens);
  if (o.free_running) return o.steps < 0 ? 64 : o.steps;
  const int available = num_tokens - P;
  if (available < 1) fail("decode: teacher mode needs tokens after the prompt ({} tokens, prompt {})", num_tokens, P);
  if (o.steps < 0) return available;
  if (o.steps > available)
    fail("decode: --steps {} exceeds the {} recorded tokens after the prompt (teacher mode)", o.steps, available);
  return o.steps;
}

namespace {

std::int64_t argmax_of(const RowVector& a) {
  Eigen::Index i = 0;
  a.maxCoeff(&i);
  return static_cast<std::int64_t>(i);
}

}  // namespace

ReferenceRun run_reference(const ModelWeights& model, const std::vector<std::int64_t>& tokens,
                           const DecodeOptions& o, const DumpReader* dump, const KvCheckOptions& kv) {
  const int N = static_cast<int>(tokens.size());
  const int steps = resolve_decode_steps(o, N);
  const int P = o.prompt_len;
  const ModelConfig& c = model.config;
  // Every id up front: a step's target enters the cross-entropy before any
  // step would feed (and check) it.
  for (std::size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i] < 0 || tokens[i] >= c.vocab_size)
      fail("{}token id {} out of range (the model's vocabulary has ids 0..{}) at position {}",
           dump ? dump->info().path + ": /tokens: " : std::string("decode: "), tokens[i], c.vocab_size - 1, i);

  if (dump) check_forward_attention(dump->info(), c, P + steps);
  std::optional<DumpKvChecker> checker;
  if (dump && kv.enabled)  // teacher mode fed the recorded tokens everywhere; free mode only the prompt
    checker.emplace(*dump, c, kv.rtol, o.free_running ? P : P + steps);

  const auto fp16 = Registry::global().build("fp16");
  ForwardOptions fo;
  fo.max_tokens = P + steps;
  fo.seed = o.seed;
  fo.threads = o.threads;
  LlamaForward ref(model, *fp16, fo);
  ReferenceRun run;
  run.free_running = o.free_running;
  run.prompt_len = P;
  run.prompt.assign(tokens.begin(), tokens.begin() + P);
  ref.prefill(run.prompt);
  run.prompt_logits = ref.logits();
  if (checker) checker->check_until(ref, P);

  std::int64_t next = argmax_of(ref.logits());
  run.steps.reserve(static_cast<std::size_t>(steps));
  for (int s = 0; s < steps; ++s) {
    ReferenceStep st;
    if (o.free_running) {
      st.token = next;
    } else {
      st.token = tokens[static_cast<std::size_t>(P + s)];
      if (P + s + 1 < N) st.target = tokens[static_cast<std::size_t>(P + s + 1)];
    }
    ref.step(st.token);
    next = argmax_of(ref.logits());
    st.logits = ref.logits();
    st.hidden = ref.hidden();
    st.attn.reserve(static_cast<std::size_t>(c.num_layers));
    for (int l = 0; l < c.num_layers; ++l) st.attn.push_back(ref.attention_output(l));
    st.fp16_bits = static_cast<double>(ref.bits().total());
    run.steps.push_back(std::move(st));
    if (checker && checker->due(ref.position())) checker->check_until(ref, ref.position());
    if (o.progress) o.progress->advance();
  }
  if (checker) {
    checker->finish(ref);
    run.kv_check = checker->result();
  }
  return run;
}

}  // namespace kvlab
