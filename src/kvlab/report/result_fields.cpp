#include "kvlab/report/result_fields.hpp"

#include <cmath>
#include <limits>

#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/json.hpp"

namespace kvlab {

const char* field_type_name(FieldType t) {
  switch (t) {
    case FieldType::String: return "string";
    case FieldType::Int: return "int";
    case FieldType::Float: return "float";
  }
  return "string";
}

std::string format_field(const FieldValue& v) {
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return fmt::format("{}", *i);
  if (const auto* d = std::get_if<double>(&v)) return csv_number(*d);
  return {};
}

double field_number(const FieldValue& v) {
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  return std::numeric_limits<double>::quiet_NaN();
}

namespace {

FieldValue num(double v) { return std::isnan(v) ? FieldValue{} : FieldValue{v}; }
FieldValue integer(std::int64_t v) { return FieldValue{v}; }
FieldValue bits(std::uint64_t v) { return FieldValue{static_cast<std::int64_t>(v)}; }
FieldValue text(const std::string& s) { return FieldValue{s}; }

// A metric of a successful job's summary; empty on a failed row.
template <class Get>
std::function<FieldValue(const RowContext&)> summary_metric(Get get) {
  return [get](const RowContext& r) -> FieldValue { return r.job->ok() ? get(r.job->summary) : FieldValue{}; };
}

// Identity columns shared by every table.
Field job_id() {
  return {"job_id", FieldType::String, "", "stable hash of the canonical spec, the dump (file name and size), the replay settings and (with a model) the decode settings",
          [](const RowContext& r) { return text(r.job->identity.job_id); }};
}
Field dump() {
  return {"dump", FieldType::String, "", "the dump as the sweep file or command line names it (file name)",
          [](const RowContext& r) { return text(r.job->identity.dump); }};
}
Field method() {
  return {"method", FieldType::String, "", "the method's registry name",
          [](const RowContext& r) { return text(r.job->identity.method); }};
}
Field spec() {
  return {"spec", FieldType::String, "", "canonical spec: method and every parameter that applies, in declared order",
          [](const RowContext& r) { return text(r.job->identity.spec); }};
}

ResultTable summary_table() {
  ResultTable t{"summary.csv", "job", "One row per job: identity, parameters, size and error means.", false, {}};
  auto& c = t.columns;
  c.push_back(job_id());
  c.push_back(Field{"status", FieldType::String, "", "ok, or failed (see error)",
                    [](const RowContext& r) { return text(r.job->ok() ? "ok" : "failed"); }});
  c.push_back(Field{"error", FieldType::String, "", "why the job failed (one line); empty when ok",
                    [](const RowContext& r) { return text(r.job->error); }});
  c.push_back(dump());
  c.push_back(method());
  c.push_back(Field{"family", FieldType::String, "", "baseline, quant, gear, drop, ...",
                    [](const RowContext& r) { return text(r.job->identity.family); }});
  c.push_back(Field{"preset", FieldType::String, "", "the preset whose canonical spec equals spec, or empty",
                    [](const RowContext& r) { return text(r.job->identity.preset); }});
  c.push_back(spec());
  c.push_back(FieldGroup{"param.<name>", "param.", FieldType::String,
                         "one column per parameter of the folder's methods: the value when it applies to this job's "
                         "method and configuration, else empty"});
  auto metric = [&](std::string name, FieldType type, std::string unit, std::string meaning, auto get,
                    bool regress = false) {
    c.push_back(Field{std::move(name), type, std::move(unit), std::move(meaning), summary_metric(get), regress});
  };
  using S = JobSummary;
  metric("layers", FieldType::Int, "", "layers replayed", [](const S& s) { return integer(s.layers); });
  metric("kv_heads", FieldType::Int, "", "kv heads per layer", [](const S& s) { return integer(s.kv_heads); });
  metric("tokens", FieldType::Int, "tokens", "cache length at the end (prompt + decode steps)",
         [](const S& s) { return integer(s.tokens); });
  metric("prompt_len", FieldType::Int, "tokens", "tokens given at prefill", [](const S& s) { return integer(s.prompt_len); });
  metric("decode_steps", FieldType::Int, "tokens", "decode tokens replayed one at a time after the prompt",
         [](const S& s) { return integer(s.decode_steps); });
  metric("eval_points", FieldType::Int, "", "evaluated steps per block (after prefill, every eval_every-th, the last)",
         [](const S& s) { return integer(s.eval_points); });
  metric("baseline_bits", FieldType::Int, "bits", "FP16 size of the final cache: 16·2·T·d per block, summed",
         [](const S& s) { return bits(s.baseline_bits); });
  metric("compressed_bits", FieldType::Int, "bits", "exact compressed size of the final cache, all blocks (sum of the bits_* columns)",
         [](const S& s) { return bits(s.bits.total()); }, true);
  metric("compression_ratio", FieldType::Float, "", "baseline_bits / compressed_bits",
         [](const S& s) { return num(s.compression_ratio); }, true);
  metric("bits_per_element", FieldType::Float, "bits", "compressed_bits / (2·T·d) summed over blocks",
         [](const S& s) { return num(s.bits_per_element); });
  metric("bits_codes", FieldType::Int, "bits", "quantization codes", [](const S& s) { return bits(s.bits.codes); }, true);
  metric("bits_metadata", FieldType::Int, "bits", "scales, zero points, norms, codebooks",
         [](const S& s) { return bits(s.bits.metadata); }, true);
  metric("bits_sparse", FieldType::Int, "bits", "sparse outliers: values and their indices",
         [](const S& s) { return bits(s.bits.sparse); }, true);
  metric("bits_lowrank", FieldType::Int, "bits", "low-rank factors", [](const S& s) { return bits(s.bits.lowrank); }, true);
  metric("bits_fp16", FieldType::Int, "bits", "tokens kept in FP16 (windows, buffers, kept tokens of droppers)",
         [](const S& s) { return bits(s.bits.fp16_buffer); }, true);
  metric("bits_index", FieldType::Int, "bits", "kept-set bitmaps or indices of droppers",
         [](const S& s) { return bits(s.bits.index); }, true);
  metric("k_rel_err_mean", FieldType::Float, "", "mean over blocks of ‖K − K̂‖_F / ‖K‖_F of the final cache (evicted rows count as 0); empty when keys are not reconstructible",
         [](const S& s) { return num(s.k_rel_err_mean); });
  metric("k_rel_err_global", FieldType::Float, "", "sqrt(Σ‖K − K̂‖² / Σ‖K‖²) over all blocks of the final cache",
         [](const S& s) { return num(s.k_rel_err_global); }, true);
  metric("k_max_abs_err", FieldType::Float, "", "max |K − K̂| over all blocks", [](const S& s) { return num(s.k_max_abs_err); }, true);
  metric("v_rel_err_mean", FieldType::Float, "", "as k_rel_err_mean, for values", [](const S& s) { return num(s.v_rel_err_mean); });
  metric("v_rel_err_global", FieldType::Float, "", "as k_rel_err_global, for values",
         [](const S& s) { return num(s.v_rel_err_global); }, true);
  metric("v_max_abs_err", FieldType::Float, "", "max |V − V̂| over all blocks", [](const S& s) { return num(s.v_max_abs_err); }, true);
  metric("attn_out_rel", FieldType::Float, "", "‖o − ô‖ / ‖o‖ of the attention output, mean over query heads and evaluated steps",
         [](const S& s) { return num(s.attn_out_rel); }, true);
  metric("attn_kl", FieldType::Float, "nats", "KL(p′ ‖ p̂), p′ the reference attention over kept tokens renormalised; mean over query heads and evaluated steps",
         [](const S& s) { return num(s.attn_kl); }, true);
  metric("attn_kl_rev", FieldType::Float, "nats", "KL(p̂ ‖ p), the reverse divergence: includes dropped mass (−log kept mass for an exact dropper); same means",
         [](const S& s) { return num(s.attn_kl_rev); }, true);
  metric("dropped_mass", FieldType::Float, "", "reference attention mass on evicted tokens; same means",
         [](const S& s) { return num(s.dropped_mass); }, true);
  // Model in the loop (with `model:`).
  auto model = [&](std::string name, FieldType type, std::string meaning, auto get) {
    Field f{std::move(name), type, "", std::move(meaning),
            [get](const RowContext& r) -> FieldValue { return r.job->ok() && r.job->decode ? get(*r.job->decode) : FieldValue{}; }};
    f.model_only = true;
    c.push_back(std::move(f));
  };
  using D = DecodeResult;
  model("decode_mode", FieldType::String, "teacher (recorded tokens fed) or free (each run feeds its own argmax)",
        [](const D& d) { return text(d.free_running ? "free" : "teacher"); });
  model("decode_loop_steps", FieldType::Int, "decode steps the model ran in the loop", [](const D& d) { return integer(static_cast<std::int64_t>(d.steps.size())); });
  model("decode_shared_steps", FieldType::Int, "steps the summary means are over: all (teacher), or those before the first divergence (free)",
        [](const D& d) { return integer(d.shared_steps); });
  model("decode_mean_kl", FieldType::Float, "mean over those steps of KL(p_ref ‖ p_comp) of next-token distributions (nats)",
        [](const D& d) { return num(d.mean_kl); });
  model("decode_max_kl", FieldType::Float, "max over those steps of that KL (nats)", [](const D& d) { return num(d.max_kl); });
  model("decode_top1", FieldType::Float, "fraction of those steps whose argmax agrees", [](const D& d) { return num(d.top1_agreement); });
  model("decode_hidden_rel_mean", FieldType::Float, "mean over those steps of ‖h_comp − h_ref‖/‖h_ref‖ of the final-norm hidden state",
        [](const D& d) { return num(d.mean_hidden_rel); });
  model("decode_hidden_rel_final", FieldType::Float, "that error at the last step", [](const D& d) { return num(d.final_hidden_rel); });
  model("decode_ppl_ratio", FieldType::Float, "perplexity of the recorded tokens, compressed / reference (teacher mode)",
        [](const D& d) { return num(d.ppl_ratio); });
  model("decode_first_divergence", FieldType::Int, "free mode: first step whose generated tokens differ (−1: never)",
        [](const D& d) { return d.free_running ? integer(d.first_divergence) : FieldValue{}; });
  model("decode_match_rate", FieldType::Float, "free mode: fraction of all steps with equal generated tokens",
        [](const D& d) { return num(d.token_match_rate); });
  model("decode_compression_ratio", FieldType::Float, "FP16 bits / compressed bits of the model's whole cache at the last step",
        [](const D& d) { return num(d.compression_ratio); });
  model("decode_bits_per_element", FieldType::Float, "compressed bits per cached element (16 / ratio), mean over all decode steps: the size as the run saw it, not only at the end",
        [](const D& d) { return num(d.mean_bits_per_element); });
  model("decode_kv_rel_max", FieldType::Float, "the reference's keys/values vs the dump: max over layers and K/V of the relative norm (empty: not checked)",
        [](const D& d) { return d.kv_check.done ? num(d.kv_check.max_rel) : FieldValue{}; });
  return t;
}

ResultTable layers_table() {
  ResultTable t{"layers.csv", "(job, layer, kv head, tensor)", "Per-block errors of the final cache and per-block attention means.", false, {}};
  auto& c = t.columns;
  c.push_back(job_id());
  c.push_back(method());
  c.push_back(spec());
  c.push_back(dump());
  c.push_back(Field{"layer", FieldType::Int, "", "layer index", [](const RowContext& r) { return integer(r.block->layer); }});
  c.push_back(Field{"kv_head", FieldType::Int, "", "kv head index", [](const RowContext& r) { return integer(r.block->kv_head); }});
  c.push_back(Field{"tensor", FieldType::String, "", "K or V", [](const RowContext& r) { return text(r.tensor == 0 ? "K" : "V"); }});
  auto err = [](const RowContext& r) -> const TensorError& { return r.tensor == 0 ? r.block->keys : r.block->values; };
  c.push_back(Field{"rel_err", FieldType::Float, "", "‖X − X̂‖_F / ‖X‖_F of the final cache (empty: not reconstructible)",
                    [err](const RowContext& r) {
                      // Not reconstructible: the errors are NaN, and rel() of NaN is 0.
                      if (r.tensor == 0 && !r.block->keys_reconstructible) return FieldValue{};
                      return num(err(r).rel());
                    }});
  c.push_back(Field{"max_abs_err", FieldType::Float, "", "max |X − X̂|", [err](const RowContext& r) { return num(err(r).max_abs); }});
  c.push_back(Field{"sq_err", FieldType::Float, "", "‖X − X̂‖_F²", [err](const RowContext& r) { return num(err(r).sq_err); }});
  c.push_back(Field{"sq_norm", FieldType::Float, "", "‖X‖_F²", [err](const RowContext& r) { return num(err(r).sq_norm); }});
  auto attn = [](double AttentionError::*m) {
    return [m](const RowContext& r) {
      return r.block->attn_evals > 0 ? num(r.block->attn.*m / static_cast<double>(r.block->attn_evals)) : FieldValue{};
    };
  };
  c.push_back(Field{"attn_out_rel", FieldType::Float, "", "the block's attention output error, mean over its query heads and evaluated steps", attn(&AttentionError::out_rel)});
  c.push_back(Field{"attn_kl", FieldType::Float, "nats", "as summary attn_kl, for this block", attn(&AttentionError::kl)});
  c.push_back(Field{"attn_kl_rev", FieldType::Float, "nats", "as summary attn_kl_rev, for this block", attn(&AttentionError::kl_rev)});
  c.push_back(Field{"dropped_mass", FieldType::Float, "", "as summary dropped_mass, for this block", attn(&AttentionError::dropped_mass)});
  return t;
}

ResultTable steps_table() {
  ResultTable t{"steps.csv", "(job, evaluated decode step)", "Error accumulation: metrics at each evaluated step, over all blocks.", false, {}};
  auto& c = t.columns;
  c.push_back(job_id());
  c.push_back(method());
  c.push_back(spec());
  c.push_back(dump());
  auto step = [&](std::string name, FieldType type, std::string unit, std::string meaning, auto get) {
    c.push_back(Field{std::move(name), type, std::move(unit), std::move(meaning),
                      [get](const RowContext& r) { return get(*r.step); }});
  };
  using S = StepSummary;
  step("position", FieldType::Int, "", "query position (prompt_len − 1 + decode_step)", [](const S& s) { return integer(s.position); });
  step("decode_step", FieldType::Int, "", "0 = right after prefill", [](const S& s) { return integer(s.decode_step); });
  step("tokens", FieldType::Int, "tokens", "cache length (position + 1)", [](const S& s) { return integer(s.tokens); });
  step("attn_out_rel", FieldType::Float, "", "attention output error of this step's query, mean over query heads", [](const S& s) { return num(s.attn_out_rel); });
  step("attn_kl", FieldType::Float, "nats", "as summary attn_kl, at this step", [](const S& s) { return num(s.attn_kl); });
  step("attn_kl_rev", FieldType::Float, "nats", "as summary attn_kl_rev, at this step", [](const S& s) { return num(s.attn_kl_rev); });
  step("dropped_mass", FieldType::Float, "", "as summary dropped_mass, at this step", [](const S& s) { return num(s.dropped_mass); });
  step("k_rel_err", FieldType::Float, "", "sqrt(Σ‖K − K̂‖² / Σ‖K‖²) over blocks, of the cache at this step", [](const S& s) { return num(s.k_rel_err); });
  step("v_rel_err", FieldType::Float, "", "the same for values", [](const S& s) { return num(s.v_rel_err); });
  step("compression_ratio", FieldType::Float, "", "FP16 bits / compressed bits of the cache at this step", [](const S& s) { return num(s.compression_ratio); });
  return t;
}

ResultTable timing_table() {
  ResultTable t{"timing.csv", "job", "How long each job took (differs between identical runs, so kept apart from the other files).", false, {}};
  auto& c = t.columns;
  c.push_back(job_id());
  c.push_back(spec());
  c.push_back(dump());
  auto timing = [&](std::string name, FieldType type, std::string unit, std::string meaning, auto get) {
    c.push_back(Field{std::move(name), type, std::move(unit), std::move(meaning),
                      [get](const RowContext& r) { return get(r.job->timing); }});
  };
  using T = JobTiming;
  timing("replay_cpu_s", FieldType::Float, "s", "replay time of the job's blocks, summed over threads (thread-seconds)",
         [](const T& x) { return num(x.replay_cpu_s); });
  timing("batch_wall_s", FieldType::Float, "s", "wall time of the batch of jobs that shared this job's layer reads",
         [](const T& x) { return num(x.batch_wall_s); });
  timing("batch_jobs", FieldType::Int, "", "jobs in that batch", [](const T& x) { return integer(x.batch_jobs); });
  timing("model_s", FieldType::Float, "s", "wall time of the model in the loop; empty without a model",
         [](const T& x) { return x.model_s < 0 ? FieldValue{} : num(x.model_s); });
  timing("threads", FieldType::Int, "", "worker threads", [](const T& x) { return integer(x.threads); });
  return t;
}

ResultTable decode_steps_table() {
  ResultTable t{"decode_steps.csv", "(job, model decode step)", "Model in the loop: the compressed run against the reference at every decode step.", true, {}};
  auto& c = t.columns;
  c.push_back(job_id());
  c.push_back(dump());
  c.push_back(Field{"compressor", FieldType::String, "", "canonical spec", [](const RowContext& r) { return text(r.job->decode->compressor); }});
  c.push_back(Field{"mode", FieldType::String, "", "teacher or free", [](const RowContext& r) { return text(r.job->decode->free_running ? "free" : "teacher"); }});
  c.push_back(Field{"seed", FieldType::Int, "", "seed of the compressed run's random streams", [](const RowContext& r) { return integer(static_cast<std::int64_t>(r.job->decode->seed)); }});
  auto step = [&](std::string name, FieldType type, std::string unit, std::string meaning, auto get) {
    c.push_back(Field{std::move(name), type, std::move(unit), std::move(meaning),
                      [get](const RowContext& r) { return get(*r.decode_step); }});
  };
  using S = DecodeStep;
  auto token = [](std::int64_t id) { return id < 0 ? FieldValue{} : integer(id); };
  step("step", FieldType::Int, "", "decode step (0 = first token after the prompt)", [](const S& s) { return integer(s.step); });
  step("position", FieldType::Int, "", "position of the token fed", [](const S& s) { return integer(s.position); });
  step("token_ref", FieldType::Int, "", "token fed to the reference run", [token](const S& s) { return token(s.token_ref); });
  step("token_comp", FieldType::Int, "", "token fed to the compressed run", [token](const S& s) { return token(s.token_comp); });
  step("target", FieldType::Int, "", "recorded next token (teacher mode)", [token](const S& s) { return token(s.target); });
  step("top1_ref", FieldType::Int, "", "argmax of the reference's next-token logits", [token](const S& s) { return token(s.top1_ref); });
  step("top1_comp", FieldType::Int, "", "argmax of the compressed run's logits", [token](const S& s) { return token(s.top1_comp); });
  step("shared_context", FieldType::Int, "", "1 while every token fed so far was the same in both runs (teacher mode: always)", [](const S& s) { return integer(s.shared_context ? 1 : 0); });
  step("top1_agree", FieldType::Int, "", "1 when the two argmaxes agree", [](const S& s) { return integer(s.top1_ref == s.top1_comp ? 1 : 0); });
  step("kl", FieldType::Float, "nats", "KL(p_ref ‖ p_comp) of the next-token distributions", [](const S& s) { return num(s.kl); });
  step("hidden_rel", FieldType::Float, "", "‖h_comp − h_ref‖ / ‖h_ref‖, final-norm hidden state", [](const S& s) { return num(s.hidden_rel); });
  step("ce_ref", FieldType::Float, "nats", "−log p_ref(target)", [](const S& s) { return num(s.ce_ref); });
  step("ce_comp", FieldType::Float, "nats", "−log p_comp(target)", [](const S& s) { return num(s.ce_comp); });
  step("attn_rel_mean", FieldType::Float, "", "attention output error, mean over layers and heads", [](const S& s) { return num(s.attn_rel_mean()); });
  step("compression_ratio", FieldType::Float, "", "FP16 bits / compressed bits of every state", [](const S& s) { return num(s.compression_ratio); });
  c.push_back(FieldGroup{"attn_rel_layer<L>", "attn_rel_layer", FieldType::Float, "layer L's attention output error, mean over its heads", true});
  return t;
}

}  // namespace

std::vector<Field> ResultTable::fields(const TableLayout& layout) const {
  std::vector<Field> out;
  for (const auto& column : columns) {
    if (const Field* f = std::get_if<Field>(&column)) {
      if (!f->model_only || layout.model()) out.push_back(*f);
      continue;
    }
    const FieldGroup& g = std::get<FieldGroup>(column);
    if (g.prefix == "param.") {
      for (const std::string& name : layout.param_names)
        out.push_back(Field{g.prefix + name, g.type, "", g.meaning, [name](const RowContext& r) -> FieldValue {
                              const auto& params = r.job->identity.params;
                              const auto it = params.find(name);
                              return it == params.end() ? FieldValue{} : text(it->second);
                            }});
    } else if (g.prefix == "attn_rel_layer") {
      for (int l = 0; l < layout.model_layers; ++l)
        out.push_back(Field{fmt::format("{}{}", g.prefix, l), g.type, "", g.meaning, [l](const RowContext& r) -> FieldValue {
                              const auto& v = r.decode_step->attn_rel;
                              return static_cast<std::size_t>(l) < v.size() ? num(v[static_cast<std::size_t>(l)]) : FieldValue{};
                            }});
    } else {
      KVLAB_ASSERT(false && "a field group needs an expansion");
    }
  }
  return out;
}

std::vector<std::string> ResultTable::header(const TableLayout& layout) const {
  std::vector<std::string> h;
  for (const Field& f : fields(layout)) h.push_back(f.name);
  return h;
}

const std::vector<ResultTable>& result_tables() {
  static const std::vector<ResultTable> tables = [] {
    std::vector<ResultTable> t{summary_table(), layers_table(), steps_table(), timing_table(), decode_steps_table()};
    // Column names are unique per table (with any parameter or layer names,
    // since generated names carry their prefix).
    for (const auto& table : t) {
      const auto names = table.header(TableLayout{{}, 1});
      for (std::size_t i = 0; i < names.size(); ++i)
        for (std::size_t j = i + 1; j < names.size(); ++j) KVLAB_ASSERT(names[i] != names[j]);
    }
    return t;
  }();
  return tables;
}

const ResultTable& result_table(std::string_view file) {
  for (const auto& t : result_tables())
    if (t.file == file) return t;
  fail("no results table named '{}'", file);
}

std::vector<std::vector<FieldValue>> table_values(const ResultTable& table, const TableLayout& layout,
                                                  const JobRecord& record) {
  const std::vector<Field> fields = table.fields(layout);
  std::vector<std::vector<FieldValue>> rows;
  auto emit = [&](const RowContext& ctx) {
    std::vector<FieldValue> row;
    row.reserve(fields.size());
    for (const Field& f : fields) row.push_back(f.get(ctx));
    rows.push_back(std::move(row));
  };
  RowContext ctx;
  ctx.job = &record;
  if (table.file == "summary.csv") {
    emit(ctx);
  } else if (!record.ok()) {
    // A failed job has its summary row only.
  } else if (table.file == "layers.csv") {
    for (const BlockResult& b : record.result.blocks) {
      ctx.block = &b;
      for (ctx.tensor = 0; ctx.tensor < 2; ++ctx.tensor) emit(ctx);
    }
  } else if (table.file == "steps.csv") {
    for (const StepSummary& s : record.steps) {
      ctx.step = &s;
      emit(ctx);
    }
  } else if (table.file == "timing.csv") {
    emit(ctx);
  } else if (table.file == "decode_steps.csv") {
    if (record.decode)
      for (const DecodeStep& s : record.decode->steps) {
        ctx.decode_step = &s;
        emit(ctx);
      }
  } else {
    KVLAB_ASSERT(false && "unknown table");
  }
  return rows;
}

std::vector<std::vector<std::string>> table_rows(const ResultTable& table, const TableLayout& layout,
                                                 const JobRecord& record) {
  std::vector<std::vector<std::string>> rows;
  for (const std::vector<FieldValue>& values : table_values(table, layout, record)) {
    std::vector<std::string>& row = rows.emplace_back();
    row.reserve(values.size());
    for (const FieldValue& v : values) row.push_back(format_field(v));
  }
  return rows;
}

std::string schema_json() {
  std::string out = "{\n  \"schema_version\": 1,\n  \"tables\": {\n";
  const auto& tables = result_tables();
  for (std::size_t ti = 0; ti < tables.size(); ++ti) {
    const ResultTable& t = tables[ti];
    out += fmt::format("    {}: {{\n      \"row\": {},\n      \"description\": {},\n      \"model_only\": {},\n      \"columns\": [\n",
                       json_string(t.file), json_string(t.row), json_string(t.description), json_bool(t.model_only));
    std::vector<std::string> cols, groups, prefixes;
    for (const auto& column : t.columns) {
      if (const Field* f = std::get_if<Field>(&column)) {
        cols.push_back(fmt::format("        {{\"name\": {}, \"type\": {}, \"unit\": {}, \"meaning\": {}, \"regress\": {}, \"model_only\": {}}}",
                                   json_string(f->name), json_string(field_type_name(f->type)), json_string(f->unit),
                                   json_string(f->meaning), json_bool(f->regress), json_bool(f->model_only)));
      } else {
        const FieldGroup& g = std::get<FieldGroup>(column);
        groups.push_back(fmt::format("        {{\"pattern\": {}, \"prefix\": {}, \"type\": {}, \"meaning\": {}, \"model_only\": {}}}",
                                     json_string(g.pattern), json_string(g.prefix), json_string(field_type_name(g.type)),
                                     json_string(g.meaning), json_bool(g.model_only)));
        prefixes.push_back(json_string(g.prefix));
      }
    }
    out += fmt::format("{}\n      ],\n      \"dynamic\": [\n{}{}      ],\n      \"dynamic_prefixes\": [{}]\n    }}{}\n",
                       fmt::join(cols, ",\n"), fmt::join(groups, ",\n"), groups.empty() ? "" : "\n",
                       fmt::join(prefixes, ", "), ti + 1 < tables.size() ? "," : "");
  }
  return out + "  }\n}\n";
}

std::string schema_markdown() {
  std::string out;
  for (const ResultTable& t : result_tables()) {
    out += fmt::format("### `{}`\n\n{} One row per {}{}.\n\n| column | type | unit | meaning |\n|---|---|---|---|\n",
                       t.file, t.description, t.row, t.model_only ? "; written only with a model in the loop" : "");
    for (const auto& column : t.columns) {
      if (const Field* f = std::get_if<Field>(&column)) {
        std::string meaning = f->meaning;
        if (f->model_only) meaning += " (with a model in the loop)";
        if (f->regress) meaning += " [regress]";
        out += fmt::format("| `{}` | {} | {} | {} |\n", f->name, field_type_name(f->type), f->unit, meaning);
      } else {
        const FieldGroup& g = std::get<FieldGroup>(column);
        out += fmt::format("| `{}` | {} |  | {} |\n", g.pattern, field_type_name(g.type), g.meaning);
      }
    }
    out += "\n";
  }
  return out;
}

}  // namespace kvlab
