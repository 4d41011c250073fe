#include "kvlab/report/result_rows.hpp"

#include <filesystem>
#include <set>

#include "kvlab/core/csv.hpp"
#include "kvlab/core/hash.hpp"
#include "kvlab/model/decode_compare.hpp"

namespace kvlab {

JobIdentity make_identity(const ResolvedSpec& spec, const std::string& dump_label, const std::string& dump_path,
                          const ReplayOptions& opts) {
  JobIdentity id;
  id.dump = dump_label;
  id.method = spec.method->name;
  id.family = spec.method->family;
  id.spec = spec.canonical;
  id.params = spec.values.all();
  std::error_code ec;
  const auto size = std::filesystem::file_size(dump_path, ec);
  // The file name and size identify the dump without reading it; the absolute
  // path would make ids differ between clones.
  const std::string key = fmt::format("{}|{}|{}|layers={}|every={}|steps={}|attn={}|seed={}", spec.canonical,
                                      std::filesystem::path(dump_path).filename().string(), ec ? 0 : size,
                                      fmt::join(opts.layers, ","), opts.eval_every, opts.max_steps, opts.attention,
                                      opts.seed);
  id.job_id = hex_hash(key);
  return id;
}

std::vector<std::string> parameter_columns(const std::vector<const MethodInfo*>& methods) {
  std::set<std::string> names;
  for (const MethodInfo* m : methods)
    for (const auto& p : m->params) names.insert(p.name);
  return {names.begin(), names.end()};
}

namespace {

const std::vector<std::string> kMetricColumns = {
    "layers", "kv_heads", "tokens", "prompt_len", "decode_steps", "eval_points", "baseline_bits",
    "compressed_bits", "compression_ratio", "bits_per_element", "bits_codes", "bits_metadata", "bits_sparse",
    "bits_lowrank", "bits_fp16", "bits_index", "k_rel_err_mean", "k_rel_err_global", "k_max_abs_err",
    "v_rel_err_mean", "v_rel_err_global", "v_max_abs_err", "attn_out_rel", "attn_kl", "dropped_mass"};

std::vector<std::string> identity_fields(const JobIdentity& id, const std::vector<std::string>& param_names,
                                         const std::string& status, const std::string& error) {
  std::vector<std::string> row{id.job_id, status, error, id.dump, id.method, id.family, id.spec};
  for (const auto& name : param_names) {
    auto it = id.params.find(name);
    row.push_back(it == id.params.end() ? std::string() : it->second);
  }
  return row;
}

}  // namespace

std::vector<std::string> summary_header(const std::vector<std::string>& param_names, bool decode) {
  std::vector<std::string> h{"job_id", "status", "error", "dump", "method", "family", "spec"};
  for (const auto& p : param_names) h.push_back("param." + p);
  h.insert(h.end(), kMetricColumns.begin(), kMetricColumns.end());
  if (decode) h.insert(h.end(), decode_summary_columns().begin(), decode_summary_columns().end());
  return h;
}

const std::vector<std::string>& decode_summary_columns() {
  static const std::vector<std::string> columns = {
      "decode_mode", "decode_steps", "decode_mean_kl", "decode_max_kl", "decode_top1", "decode_hidden_rel_mean",
      "decode_hidden_rel_final", "decode_ppl_ratio", "decode_first_divergence", "decode_match_rate",
      "decode_compression_ratio"};
  return columns;
}

std::vector<std::string> decode_summary_fields(const DecodeResult& r) {
  return {r.free_running ? "free" : "teacher", csv_number(static_cast<int>(r.steps.size())), csv_number(r.mean_kl),
          csv_number(r.max_kl), csv_number(r.top1_agreement), csv_number(r.mean_hidden_rel),
          csv_number(r.final_hidden_rel), csv_number(r.ppl_ratio),
          r.free_running ? csv_number(r.first_divergence) : std::string(), csv_number(r.token_match_rate),
          csv_number(r.compression_ratio)};
}

std::vector<std::string> decode_steps_header(int num_layers) {
  std::vector<std::string> h{"job_id", "dump"};
  const std::vector<std::string> rest = csv_split(decode_csv_header(num_layers));
  h.insert(h.end(), rest.begin(), rest.end());
  return h;
}

std::vector<std::vector<std::string>> decode_steps_rows(const JobIdentity& id, const DecodeResult& r) {
  std::vector<std::vector<std::string>> rows;
  for (const DecodeStep& s : r.steps) {
    std::vector<std::string> row{id.job_id, id.dump};
    const std::vector<std::string> rest = csv_split(decode_csv_row(r, s));
    row.insert(row.end(), rest.begin(), rest.end());
    rows.push_back(std::move(row));
  }
  return rows;
}

std::vector<std::string> summary_row(const JobIdentity& id, const std::vector<std::string>& param_names,
                                     const JobSummary& s) {
  std::vector<std::string> row = identity_fields(id, param_names, "ok", "");
  const std::vector<std::string> metrics{
      csv_number(s.layers), csv_number(s.kv_heads), csv_number(s.tokens), csv_number(s.prompt_len),
      csv_number(s.decode_steps), csv_number(s.eval_points), csv_number(s.baseline_bits),
      csv_number(s.bits.total()), csv_number(s.compression_ratio), csv_number(s.bits_per_element),
      csv_number(s.bits.codes), csv_number(s.bits.metadata), csv_number(s.bits.sparse), csv_number(s.bits.lowrank),
      csv_number(s.bits.fp16_buffer), csv_number(s.bits.index), csv_number(s.k_rel_err_mean),
      csv_number(s.k_rel_err_global), csv_number(s.k_max_abs_err), csv_number(s.v_rel_err_mean),
      csv_number(s.v_rel_err_global), csv_number(s.v_max_abs_err), csv_number(s.attn_out_rel),
      csv_number(s.attn_kl), csv_number(s.dropped_mass)};
  row.insert(row.end(), metrics.begin(), metrics.end());
  return row;
}

std::vector<std::string> failed_summary_row(const JobIdentity& id, const std::vector<std::string>& param_names,
                                            const std::string& error) {
  std::vector<std::string> row = identity_fields(id, param_names, "failed", error);
  row.resize(row.size() + kMetricColumns.size());
  return row;
}

std::vector<std::string> layers_header() {
  return {"job_id", "method", "spec", "dump", "layer", "kv_head", "tensor", "rel_err", "max_abs_err",
          "sq_err", "sq_norm", "attn_out_rel", "attn_kl", "dropped_mass"};
}

std::vector<std::vector<std::string>> layers_rows(const JobIdentity& id, const JobResult& job) {
  std::vector<std::vector<std::string>> rows;
  for (const BlockResult& b : job.blocks) {
    const double evals = b.attn_evals > 0 ? static_cast<double>(b.attn_evals) : NAN;
    for (int t = 0; t < 2; ++t) {
      const TensorError& e = t == 0 ? b.keys : b.values;
      rows.push_back({id.job_id, id.method, id.spec, id.dump, csv_number(b.layer), csv_number(b.kv_head),
                      t == 0 ? "K" : "V", csv_number(e.rel()), csv_number(e.max_abs), csv_number(e.sq_err),
                      csv_number(e.sq_norm), csv_number(b.attn.out_rel / evals), csv_number(b.attn.kl / evals),
                      csv_number(b.attn.dropped_mass / evals)});
    }
  }
  return rows;
}

std::vector<std::string> steps_header() {
  return {"job_id", "method", "spec", "dump", "position", "decode_step", "tokens", "attn_out_rel", "attn_kl",
          "dropped_mass", "k_rel_err", "v_rel_err", "compression_ratio"};
}

std::vector<std::vector<std::string>> steps_rows(const JobIdentity& id, const std::vector<StepSummary>& steps) {
  std::vector<std::vector<std::string>> rows;
  for (const StepSummary& s : steps)
    rows.push_back({id.job_id, id.method, id.spec, id.dump, csv_number(s.position), csv_number(s.decode_step),
                    csv_number(s.tokens), csv_number(s.attn_out_rel), csv_number(s.attn_kl),
                    csv_number(s.dropped_mass), csv_number(s.k_rel_err), csv_number(s.v_rel_err),
                    csv_number(s.compression_ratio)});
  return rows;
}

}  // namespace kvlab
