#pragma once
// An estimate of what a job costs to replay, for ordering and balancing work
// across ranks and shards (not for reporting: timing.csv measures). Units are
// element operations of one block's cache:
//   layers × kv_heads × head_dim × ( f(method) × tokens                        compress + reconstruct
//                                   + (2 + group) × Σ_{evaluated steps s} (prompt + s)   attention metrics
//                                   + c × group × Σ_{every step s} (prompt + s) )         methods that score every step (H2O)
// f and c were fitted to replay_cpu_s measured on the bundled dumps, the
// attention term on 7B/8B/70B-shaped dumps (GQA groups 1, 4, 8; 4k-16k
// tokens): it predicts their cost ratios within 6 % (docs/cluster.md). An
// estimate within a factor of ~2 keeps dynamic scheduling near-optimal, since
// the largest jobs only need to start first.
#include "kvlab/io/dump_info.hpp"
#include "kvlab/runner/job.hpp"

namespace kvlab {

// Compression work per token-element relative to uniform quantization (≈ 1).
double method_cost_factor(const ResolvedSpec& spec);

// 0 for a job whose layer selection does not fit the dump (it fails at once).
double estimated_job_cost(const Job& job, const DumpInfo& info);

}  // namespace kvlab
