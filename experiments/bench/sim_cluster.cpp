// How kvlab's MPI sweep would spread a study too large for this machine over
// 64 and 1024 ranks. The scheduling is kvlab's own code (distributed/
// work_plan.hpp: the units and the dispatcher that real rank 0 uses;
// runner/job_schedule.hpp: partition_lpt for static shards) run on simulated
// time; the job durations are measured ones.
//
// Study: the gear-ablation settings (48 GEAR + 3 KIVI, eval_every 32) × 50
// dumps of mixed sizes: 20 Llama-2-7B-shaped (32 layers, 32 kv heads, 2k-6k
// tokens), 20 Llama-3-8B-shaped (32 layers, 8 kv heads, GQA 4, 4k-16k) and 10
// 70B-shaped (80 layers, 8 kv heads, GQA 8, 8k-32k). A job's duration is its
// replay_cpu_s measured on one layer of a dump of its shape
// (experiments/bench/cluster_costs/), scaled to the dump's depth and length by
// the cost model's ratio (runner/job_cost.hpp), with ±10 % seeded noise; the
// scheduler sees only the cost model's estimates.
//
// Reported per rank count and policy: time to the last job, load-balance
// efficiency = work / (ranks × time to last job), and the lower bound
// max(work / ranks, largest unit of work). Optionally with HDF5 reads (each
// batch reads its layers once: K, V and queries as float16) at a per-rank
// bandwidth capped by a shared file system's total, and rank 0's service
// time per request (receive, assemble pieces, append rows).
//   usage: sim_cluster [COSTS_DIR] [RANKS...]   (default: experiments/bench/cluster_costs 64 1024)
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <queue>
#include <string>
#include <vector>

#include "kvlab/compressors/registry.hpp"
#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"
#include "kvlab/core/rng.hpp"
#include "kvlab/distributed/work_plan.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/runner/job_cost.hpp"

using namespace kvlab;
using namespace kvlab::distributed;
namespace fs = std::filesystem;

namespace {

struct Shape {
  const char* file;
  int heads, kv_heads, head_dim, tokens;  // of the measured one-layer dump (prompt = tokens / 2)
};

DumpInfo dump_info(const std::string& path, const Shape& s, int layers, int tokens) {
  DumpInfo d;
  d.path = path;
  d.num_layers = layers;
  d.num_heads = s.heads;
  d.num_kv_heads = s.kv_heads;
  d.head_dim = s.head_dim;
  d.seq_len = tokens;
  d.prompt_len = tokens / 2;
  d.has_queries = true;
  return d;
}

// spec → replay_cpu_s of one measured timing.csv.
std::map<std::string, double> read_costs(const fs::path& path) {
  std::ifstream in(path);
  if (!in) fail("{}: cannot read", path.string());
  std::string line;
  std::getline(in, line);
  const auto header = csv_split(line);
  const auto col = [&](const char* name) {
    const auto it = std::find(header.begin(), header.end(), name);
    if (it == header.end()) fail("{}: no column {}", path.string(), name);
    return static_cast<std::size_t>(it - header.begin());
  };
  const std::size_t spec = col("spec"), cpu = col("replay_cpu_s");
  std::map<std::string, double> out;
  while (std::getline(in, line)) {
    const auto f = csv_split(line);
    out[f.at(spec)] = std::stod(f.at(cpu));
  }
  return out;
}

struct Study {
  std::vector<Job> jobs;
  std::vector<JobEstimate> estimates;  // what the scheduler sees
  std::vector<double> truth;           // measured-based duration of each whole job (s)
  std::vector<double> layer_bytes;     // per job: bytes of one layer of its dump (K, V, Q as float16)
  std::size_t dumps = 0;
};

Study make_study(const fs::path& costs_dir) {
  const std::vector<Shape> shapes{{"llama2-7b-4k.csv", 32, 32, 128, 4096},
                                  {"llama3-8b-8k.csv", 32, 8, 128, 8192},
                                  {"llama-70b-16k.csv", 64, 8, 128, 16384}};
  struct StudyDump {
    int shape, layers, tokens;
  };
  std::vector<StudyDump> dumps;
  for (int i = 0; i < 20; ++i) dumps.push_back({0, 32, 2048 * (1 + i % 3)});
  for (int i = 0; i < 20; ++i) dumps.push_back({1, 32, 4096 * (1 + i % 4)});
  for (int i = 0; i < 10; ++i) dumps.push_back({2, 80, 8192 * (1 + i % 4)});

  Study st;
  st.dumps = dumps.size();
  ReplayOptions replay;
  replay.eval_every = 32;  // as gear-ablation.yaml
  Rng noise(2024);
  for (std::size_t d = 0; d < dumps.size(); ++d) {
    const Shape& shape = shapes[static_cast<std::size_t>(dumps[d].shape)];
    const std::map<std::string, double> measured = read_costs(costs_dir / shape.file);
    const std::string path = fmt::format("dump{:02}.h5", d);
    const DumpInfo info = dump_info(path, shape, dumps[d].layers, dumps[d].tokens);
    const DumpInfo one_layer = dump_info("measured.h5", shape, 1, shape.tokens);
    for (const auto& [spec, seconds] : measured) {
      Job job{path, Registry::global().resolve(spec), replay, {}};
      job.identity.job_id = fmt::format("{}:{}", d, spec);
      const double est = estimated_job_cost(job, info);
      const double scale = est / estimated_job_cost(Job{"measured.h5", job.spec, replay, {}}, one_layer);
      std::vector<int> layers(static_cast<std::size_t>(info.num_layers));
      for (int l = 0; l < info.num_layers; ++l) layers[static_cast<std::size_t>(l)] = l;
      st.estimates.push_back({est, static_cast<long long>(info.num_layers) * info.num_kv_heads, layers});
      st.truth.push_back(seconds * scale * (0.9 + 0.2 * noise.uniform()));
      st.layer_bytes.push_back(2.0 * info.seq_len * info.head_dim * (2.0 * info.num_kv_heads + info.num_heads));
      st.jobs.push_back(std::move(job));
    }
  }
  return st;
}

struct Storage {
  const char* name;
  double per_rank = 0, total = 0;  // bytes/s; 0: reads cost nothing
  double read_seconds(double bytes, int ranks) const {
    if (per_rank <= 0) return 0;
    return bytes / std::min(per_rank, total / ranks);  // every rank reading at once: the worst case
  }
};

struct Outcome {
  double last = 0;          // time to the last job
  double largest_unit = 0;  // the longest single unit of work
  double read = 0;          // summed read time over ranks
  double serving = 0;       // rank 0's time serving requests (MPI only)
  long long requests = 0;
};

// Rank 0's time to serve one request: receive and (for pieces) put a job
// back together, format and append its rows (~250 bytes per layers.csv row,
// two per block), at 500 MB/s.
double service_seconds(const Study& st, const Batch& b) {
  double s = 2e-4;
  for (std::size_t j : b.jobs) {
    const double blocks = static_cast<double>(st.estimates[j].blocks) / b.pieces;
    s += blocks * 2 * 250 / 500e6 + blocks * 2e-6;
  }
  return s;
}

// MPI: every rank (rank 0's worker thread too) asks for a batch when idle;
// rank 0 serves requests one at a time, in the order they arrive.
Outcome simulate_dynamic(const Study& st, int ranks, int max_batch, bool split, const Storage& io) {
  std::vector<std::size_t> todo(st.jobs.size());
  for (std::size_t i = 0; i < todo.size(); ++i) todo[i] = i;
  WorkPlan plan(st.jobs, todo, st.estimates, ranks, max_batch, split);
  using Ready = std::pair<double, int>;  // (time the rank asks, rank)
  std::priority_queue<Ready, std::vector<Ready>, std::greater<>> ready;
  std::vector<double> pending_service(static_cast<std::size_t>(ranks), 0.0);
  for (int r = 0; r < ranks; ++r) ready.push({0.0, r});
  Outcome out;
  double server_free = 0;
  while (!ready.empty()) {
    const auto [t, r] = ready.top();
    ready.pop();
    const double start = std::max(t, server_free) + pending_service[static_cast<std::size_t>(r)];
    out.serving += pending_service[static_cast<std::size_t>(r)];
    ++out.requests;
    server_free = start;
    const Batch b = plan.next();
    if (b.jobs.empty()) {
      out.last = std::max(out.last, start);  // its last rows are written
      continue;
    }
    double compute = 0;
    for (std::size_t j : b.jobs) {
      const double share = b.pieces > 1 ? plan.cost_of(j, b.piece) / st.estimates[j].cost : 1.0;
      compute += st.truth[j] * share;
      out.largest_unit = std::max(out.largest_unit, st.truth[j] * share);
    }
    const std::size_t layers = b.pieces > 1 ? b.layers.size() : st.estimates[b.jobs.front()].layers.size();
    const double read = io.read_seconds(st.layer_bytes[b.jobs.front()] * static_cast<double>(layers), ranks);
    out.read += read;
    pending_service[static_cast<std::size_t>(r)] = service_seconds(st, b);
    ready.push({start + read + compute, r});
  }
  return out;
}

// Static shards: LPT over the estimated costs; each shard runs its jobs in
// plan order, consecutive jobs of one dump sharing reads in chunks of
// `chunk` (as run_jobs does), each chunk reading the whole dump.
Outcome simulate_shards(const Study& st, int shards, int chunk, const Storage& io) {
  std::vector<double> est;
  for (const auto& e : st.estimates) est.push_back(e.cost);
  Outcome out;
  for (const auto& shard : partition_lpt(est, shards)) {
    double t = 0;
    std::size_t in_chunk = 0;
    for (std::size_t k = 0; k < shard.size(); ++k) {
      const std::size_t j = shard[k];
      const bool same = k > 0 && st.jobs[shard[k - 1]].dump_path == st.jobs[j].dump_path;
      if (!same || in_chunk == static_cast<std::size_t>(chunk)) {
        const double read = io.read_seconds(
            st.layer_bytes[j] * static_cast<double>(st.estimates[j].layers.size()), shards);
        t += read;
        out.read += read;
        in_chunk = 0;
      }
      ++in_chunk;
      t += st.truth[j];
      out.largest_unit = std::max(out.largest_unit, st.truth[j]);
    }
    out.last = std::max(out.last, t);
  }
  return out;
}

std::string duration(double s) {
  if (s >= 3600) return fmt::format("{:.1f} h", s / 3600);
  if (s >= 60) return fmt::format("{:.1f} min", s / 60);
  return fmt::format("{:.1f} s", s);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const fs::path costs = argc > 1 ? argv[1] : "experiments/bench/cluster_costs";
    std::vector<int> rank_counts;
    for (int i = 2; i < argc; ++i) rank_counts.push_back(std::stoi(argv[i]));
    if (rank_counts.empty()) rank_counts = {64, 1024};
    const Study st = make_study(costs);
    double work = 0, largest = 0;
    for (double t : st.truth) {
      work += t;
      largest = std::max(largest, t);
    }
    fmt::print("study: {} jobs (gear-ablation's {} settings x {} dumps), {:.0f} core-hours of replay; largest job {}\n",
               st.jobs.size(), st.jobs.size() / st.dumps, st.dumps, work / 3600, duration(largest));
    const std::vector<Storage> storages{{"no read cost", 0, 0},
                                        {"reads: 2 GB/s per rank, 200 GB/s in all (parallel FS)", 2e9, 200e9},
                                        {"reads: 1 GB/s per rank, 20 GB/s in all (busy NFS)", 1e9, 20e9}};
    constexpr int kBatch = 4;  // 4 × threads per rank, with -j 1
    for (const Storage& io : storages) {
      fmt::print("\n{}\n", io.name);
      fmt::print("{:>6}  {:<34} {:>16} {:>11} {:>15} {:>11} {:>18}\n", "ranks", "policy", "time to last job",
                 "efficiency", "bound", "read share", "rank 0 serving");
      for (int p : rank_counts) {
        struct Row {
          const char* name;
          Outcome o;
        };
        const std::vector<Row> rows{{"MPI, dynamic (kvlab sweep)", simulate_dynamic(st, p, kBatch, true, io)},
                                    {"MPI, dynamic, whole jobs only", simulate_dynamic(st, p, kBatch, false, io)},
                                    {"static shards (LPT, job arrays)", simulate_shards(st, p, kBatch, io)}};
        for (const Row& r : rows) {
          const double bound = std::max(work / p, r.o.largest_unit);
          const std::string serving =
              r.o.requests ? fmt::format("{:.2f}% ({} req.)", 100.0 * r.o.serving / r.o.last, r.o.requests) : "-";
          fmt::print("{:>6}  {:<34} {:>16} {:>10.1f}% {:>15} {:>10.1f}% {:>18}\n", p, r.name, duration(r.o.last),
                     100.0 * work / (p * r.o.last), duration(bound), 100.0 * r.o.read / (p * r.o.last), serving);
        }
      }
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "sim_cluster: {}\n", e.what());
    return 1;
  }
  return 0;
}
