#include "kvlab/distributed/job_pieces.hpp"

namespace kvlab::distributed {

std::vector<int> piece_layers(const std::vector<int>& layers, int piece, int pieces) {
  const std::size_t n = layers.size(), i = static_cast<std::size_t>(piece), p = static_cast<std::size_t>(pieces);
  const std::size_t begin = n * i / p, end = n * (i + 1) / p;
  return {layers.begin() + static_cast<std::ptrdiff_t>(begin), layers.begin() + static_cast<std::ptrdiff_t>(end)};
}

void encode_piece(ByteWriter& w, const JobRecord& piece) {
  encode(w, piece.result);
  w.str(piece.error);
  w.f64(piece.timing.batch_wall_s);
  w.i32(piece.timing.batch_jobs);
  w.i32(piece.timing.threads);
}

JobRecord decode_piece(ByteReader& r) {
  JobRecord p;
  p.result = decode_job_result(r);
  p.error = r.str();
  p.timing.batch_wall_s = r.f64();
  p.timing.batch_jobs = r.i32();
  p.timing.threads = r.i32();
  return p;
}

JobRecord assemble_pieces(const JobIdentity& identity, std::vector<JobRecord>&& pieces) {
  JobRecord whole;
  whole.identity = identity;
  JobResult& result = whole.result;
  for (JobRecord& p : pieces) {
    result.compute_seconds += p.result.compute_seconds;
    if (!p.result.blocks.empty()) {
      result.prompt_len = p.result.prompt_len;
      result.decode_steps = p.result.decode_steps;
      result.attention = p.result.attention;
    }
    if (whole.error.empty() && !p.error.empty()) whole.error = p.error;
    if (p.timing.batch_wall_s >= whole.timing.batch_wall_s) {
      whole.timing.batch_wall_s = p.timing.batch_wall_s;
      whole.timing.batch_jobs = p.timing.batch_jobs;
      whole.timing.threads = p.timing.threads;
    }
    for (BlockResult& b : p.result.blocks) result.blocks.push_back(std::move(b));
  }
  whole.timing.replay_cpu_s = result.compute_seconds;
  result.error = whole.error;
  if (whole.ok()) {
    whole.summary = summarize(result);
    whole.steps = summarize_steps(result);
  } else {
    result.blocks.clear();
  }
  return whole;
}

}  // namespace kvlab::distributed
