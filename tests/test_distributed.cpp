// What runs beyond one process, tested without MPI: the wire encoding of
// results, the dynamic and static schedules, shard ids, plan-order rows,
// shards merged in-process, and the layer split of `kvlab run`. The MPI runs
// themselves are tests/cli/mpi_*.sh.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "kvlab/distributed/distribute_jobs.hpp"
#include "kvlab/distributed/job_pieces.hpp"
#include "kvlab/distributed/wire.hpp"
#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/job_identity.hpp"
#include "kvlab/runner/job_cost.hpp"
#include "kvlab/runner/job_schedule.hpp"
#include "kvlab/sweep/merge.hpp"
#include "kvlab/sweep/shard.hpp"
#include "kvlab/sweep/sweep_runner.hpp"
#include "test_support.hpp"

using namespace kvlab;
using namespace kvlab::distributed;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A block with every field set to a distinct value, NaN, -0.0 and infinity included.
BlockResult full_block(int seed) {
  BlockResult b;
  b.layer = 7 + seed;
  b.kv_head = 3;
  b.tokens = 1024;
  b.head_dim = 128;
  b.keys_reconstructible = seed % 2 == 0;
  b.keys = {1.5 + seed, std::numeric_limits<double>::quiet_NaN(), -0.0};
  b.values = {std::numeric_limits<double>::infinity(), 1e-300, 3.25};
  b.bits = {1, 2, 3, 4, 5, std::uint64_t{1} << 60};
  b.attn = {0.1, 0.2, 0.3, 0.4 + seed};
  b.attn_evals = 41;
  for (int s = 0; s < 3; ++s) {
    StepPoint p;
    p.decode_step = s * 8;
    p.position = 383 + s * 8;
    p.tokens = 384 + s * 8;
    p.attn = {s + 0.5, -1.0, std::numeric_limits<double>::denorm_min(), 2.0};
    p.heads = 4;
    p.keys = {s * 1.0, 2.0, 3.0};
    p.values = {4.0, std::numeric_limits<double>::quiet_NaN(), 6.0};
    p.bits = 1000u + static_cast<unsigned>(s);
    b.steps.push_back(p);
  }
  return b;
}

bool same_bits(double a, double b) { return std::bit_cast<std::uint64_t>(a) == std::bit_cast<std::uint64_t>(b); }
bool same(const TensorError& a, const TensorError& b) {
  return same_bits(a.sq_err, b.sq_err) && same_bits(a.sq_norm, b.sq_norm) && same_bits(a.max_abs, b.max_abs);
}
bool same(const AttentionError& a, const AttentionError& b) {
  return same_bits(a.out_rel, b.out_rel) && same_bits(a.kl, b.kl) && same_bits(a.kl_rev, b.kl_rev) &&
         same_bits(a.dropped_mass, b.dropped_mass);
}
bool same(const BlockResult& a, const BlockResult& b) {
  if (a.layer != b.layer || a.kv_head != b.kv_head || a.tokens != b.tokens || a.head_dim != b.head_dim ||
      a.keys_reconstructible != b.keys_reconstructible || !same(a.keys, b.keys) || !same(a.values, b.values) ||
      !(a.bits == b.bits) || !same(a.attn, b.attn) || a.attn_evals != b.attn_evals || a.steps.size() != b.steps.size())
    return false;
  for (std::size_t i = 0; i < a.steps.size(); ++i) {
    const StepPoint &p = a.steps[i], &q = b.steps[i];
    if (p.decode_step != q.decode_step || p.position != q.position || p.tokens != q.tokens || !same(p.attn, q.attn) ||
        p.heads != q.heads || !same(p.keys, q.keys) || !same(p.values, q.values) || p.bits != q.bits)
      return false;
  }
  return true;
}

std::string encoded_job(const JobResult& j) {
  ByteWriter w;
  encode(w, j);
  return w.take();
}

}  // namespace

TEST_CASE("wire: a job's blocks survive encoding bit for bit", "[distributed]") {
  JobResult j;
  j.prompt_len = 384;
  j.decode_steps = 640;
  j.attention = true;
  j.error = "layer 3: \"quoted\", with\nnewline";
  j.compute_seconds = 12.5;
  j.blocks = {full_block(0), full_block(1), BlockResult{}};
  const std::string bytes = encoded_job(j);
  ByteReader r(bytes);
  const JobResult back = decode_job_result(r);
  r.expect_done();
  CHECK(back.prompt_len == 384);
  CHECK(back.decode_steps == 640);
  CHECK(back.attention);
  CHECK(back.error == j.error);
  CHECK(back.compute_seconds == 12.5);
  REQUIRE(back.blocks.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) CHECK(same(back.blocks[i], j.blocks[i]));
  // A changed field is seen (the comparison can fail).
  JobResult other = j;
  other.blocks[1].steps[2].values.max_abs = 6.5;
  const std::string other_bytes = encoded_job(other);
  ByteReader r2(other_bytes);
  CHECK_FALSE(same(decode_job_result(r2).blocks[1], j.blocks[1]));
  // Compact: one step point is 104 bytes.
  JobResult one;
  one.blocks = {full_block(0)};
  JobResult one_more = one;
  one_more.blocks[0].steps.push_back(one.blocks[0].steps[0]);
  CHECK(encoded_job(one_more).size() - encoded_job(one).size() == 104);
}

TEST_CASE("wire: every truncation and a bogus count fail cleanly", "[distributed]") {
  JobResult j;
  j.blocks = {full_block(0), full_block(1)};
  j.error = "e";
  const std::string bytes = encoded_job(j);
  for (std::size_t n = 0; n < bytes.size(); ++n) {
    ByteReader r(std::string_view(bytes).substr(0, n));
    CHECK_THROWS_AS(decode_job_result(r), Error);
  }
  std::string extra = bytes + "x";
  ByteReader r(extra);
  decode_job_result(r);
  CHECK_THROWS_WITH(r.expect_done(), Catch::Contains("1 bytes left over"));
  ByteWriter w;
  w.u64(std::uint64_t{1} << 62);  // a count no message can hold: refused before allocating
  CHECK_THROWS_WITH(decode_indices(w.take()), Catch::Contains("cannot fit"));
}

TEST_CASE("wire: finished jobs and indices round-trip", "[distributed]") {
  std::vector<FinishedJob> jobs{{3, "abc", true, {{"layers.csv", "abc,1\nabc,2\n"}, {"summary.csv", "abc,ok\n"}}},
                                {0, "def", false, {{"summary.csv", "def,failed,\"a, b\"\n"}}},
                                {9, "ghi", true, {}}};
  const auto back = decode_finished_jobs(encode_finished_jobs(jobs));
  REQUIRE(back.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(back[i].index == jobs[i].index);
    CHECK(back[i].job_id == jobs[i].job_id);
    CHECK(back[i].ok == jobs[i].ok);
    CHECK(back[i].rows == jobs[i].rows);
  }
  CHECK(decode_finished_jobs(encode_finished_jobs({})).empty());
  const std::vector<std::size_t> idx{5, 0, 123456789012ULL};
  CHECK(decode_indices(encode_indices(idx)) == idx);
  CHECK(decode_indices(encode_indices({})).empty());
}

TEST_CASE("dispatcher: every job once, largest first, one group per batch", "[distributed][schedule]") {
  // 3 groups (dumps) of jobs with costs spread over two orders of magnitude.
  std::vector<ScheduledJob> jobs;
  for (std::size_t i = 0; i < 60; ++i) jobs.push_back({i, 1.0 + static_cast<double>((i * 37) % 100), i / 20});
  std::map<std::size_t, ScheduledJob> by_index;
  for (const auto& j : jobs) by_index[j.index] = j;
  JobDispatcher d(jobs, 2, 5);
  std::set<std::size_t> seen;
  std::vector<std::vector<std::size_t>> batches;
  while (!d.empty()) {
    const auto batch = d.next();
    REQUIRE(!batch.empty());
    REQUIRE(batch.size() <= 5);
    for (std::size_t i : batch) {
      CHECK(by_index[i].group == by_index[batch.front()].group);  // one dump per batch: shared reads
      CHECK(seen.insert(i).second);                               // never twice
    }
    for (std::size_t k = 1; k < batch.size(); ++k) CHECK(by_index[batch[k]].cost <= by_index[batch[k - 1]].cost);
    batches.push_back(batch);
  }
  CHECK(seen.size() == 60);
  CHECK(d.next().empty());
  CHECK(d.remaining_cost() == 0);
  // The first batch starts with the most expensive job of all; batches start
  // in non-increasing cost order.
  double most = 0;
  for (const auto& j : jobs) most = std::max(most, j.cost);
  CHECK(by_index[batches.front().front()].cost == most);
  for (std::size_t b = 1; b < batches.size(); ++b)
    CHECK(by_index[batches[b].front()].cost <= by_index[batches[b - 1].front()].cost);
  // Full batches while much is left; single jobs at the end (guided).
  CHECK(batches.front().size() == 5);
  CHECK(batches.back().size() == 1);
}

TEST_CASE("dispatcher: deterministic, ties by index, a job larger than the rest alone", "[distributed][schedule]") {
  std::vector<ScheduledJob> jobs{{0, 1, 0}, {1, 1, 0}, {2, 1, 0}, {3, 100, 1}, {4, 1, 1}};
  JobDispatcher a(jobs, 2, 8), b(jobs, 2, 8);
  CHECK(a.next() == std::vector<std::size_t>{3});  // limit = max(100, 104 / 4): the small ones wait
  CHECK(a.next() == std::vector<std::size_t>{0});  // remaining 4 over 2 workers → one job per batch
  std::vector<std::vector<std::size_t>> seq_a, seq_b;
  while (!b.empty()) seq_b.push_back(b.next());
  JobDispatcher c(jobs, 2, 8);
  while (!c.empty()) seq_a.push_back(c.next());
  CHECK(seq_a == seq_b);
  JobDispatcher none({}, 3, 4);
  CHECK(none.empty());
  CHECK(none.next().empty());
}

TEST_CASE("LPT partition: deterministic, balanced, every job once", "[distributed][schedule]") {
  std::vector<double> costs;
  for (int i = 0; i < 200; ++i) costs.push_back(1.0 + (i * 7919) % 97);
  const auto parts = partition_lpt(costs, 8);
  REQUIRE(parts.size() == 8);
  CHECK(parts == partition_lpt(costs, 8));
  std::vector<int> count(costs.size(), 0);
  double total = 0, largest = 0;
  for (const auto& p : parts) {
    CHECK(std::is_sorted(p.begin(), p.end()));  // plan order within a shard
    double load = 0;
    for (std::size_t i : p) {
      ++count[i];
      load += costs[i];
    }
    total += load;
    largest = std::max(largest, load);
  }
  CHECK(std::all_of(count.begin(), count.end(), [](int c) { return c == 1; }));
  CHECK(largest <= total / 8 + 97);  // LPT: within one job of the mean
  // Ties: equal costs go round the shards in index order.
  CHECK(partition_lpt({1, 1, 1, 1}, 2) == std::vector<std::vector<std::size_t>>{{0, 2}, {1, 3}});
  CHECK(partition_lpt({5, 1, 1}, 3) == std::vector<std::vector<std::size_t>>{{0}, {1}, {2}});
  CHECK(partition_lpt({}, 2) == std::vector<std::vector<std::size_t>>{{}, {}});
  CHECK_THROWS_AS(partition_lpt({1}, 0), Error);
}

TEST_CASE("shard ids: I/N, and Slurm array tasks", "[distributed][shard]") {
  const auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  CHECK(parse_shard("2/8", no_env).index == 2);
  CHECK(parse_shard("2/8", no_env).count == 8);
  CHECK(parse_shard("1/1", no_env).text() == "1/1");
  for (const char* bad : {"0/3", "4/3", "3", "a/3", "1/0", "-1/3", "1/3x", ""})
    CHECK_THROWS_AS(parse_shard(bad, no_env), Error);
  auto env_of = [](std::map<std::string, std::string> vars) {
    return [vars](const std::string& name) -> std::optional<std::string> {
      const auto it = vars.find(name);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
  };
  // --array=0-9, --array=1-10, --array=5-14: task ids map to shards 1..10
  CHECK(parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "0"}, {"SLURM_ARRAY_TASK_MIN", "0"},
                                    {"SLURM_ARRAY_TASK_COUNT", "10"}})).text() == "1/10");
  CHECK(parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "10"}, {"SLURM_ARRAY_TASK_MIN", "1"},
                                    {"SLURM_ARRAY_TASK_COUNT", "10"}})).text() == "10/10");
  CHECK(parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "5"},
                                    {"SLURM_ARRAY_TASK_COUNT", "10"}})).text() == "3/10");
  // --array=0-20:4 → 6 tasks
  CHECK(parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "8"}, {"SLURM_ARRAY_TASK_MIN", "0"},
                                    {"SLURM_ARRAY_TASK_STEP", "4"}, {"SLURM_ARRAY_TASK_COUNT", "6"}})).text() == "3/6");
  CHECK_THROWS_WITH(parse_shard("auto", no_env), Catch::Contains("SLURM_ARRAY_TASK_ID is not set"));
  // --array=1,3,7 (a list): not a range of shards
  CHECK_THROWS_WITH(parse_shard("auto", env_of({{"SLURM_ARRAY_TASK_ID", "7"}, {"SLURM_ARRAY_TASK_MIN", "1"},
                                                {"SLURM_ARRAY_TASK_COUNT", "3"}})),
                    Catch::Contains("is not one of 3 tasks"));
}

TEST_CASE("layer ranges of ranks: contiguous, in order, sizes within one", "[distributed]") {
  const std::vector<int> layers{0, 2, 3, 5, 8, 9, 11};
  for (int ranks : {1, 2, 3, 7, 10}) {
    std::vector<int> joined;
    std::size_t lo = layers.size(), hi = 0;
    for (int r = 0; r < ranks; ++r) {
      const auto part = piece_layers(layers, r, ranks);
      joined.insert(joined.end(), part.begin(), part.end());
      lo = std::min(lo, part.size());
      hi = std::max(hi, part.size());
    }
    CHECK(joined == layers);
    CHECK(hi - lo <= 1);
  }
}

TEST_CASE("rows in job order: grouped by job in plan order, unknown jobs first", "[distributed][results]") {
  FileRows rows;
  rows.header = "job_id,x";
  rows.rows = {{"b", "b,1"}, {"z", "z,0"}, {"a", "a,1"}, {"b", "b,2"}, {"a", "a,2"}, {"c", "c,1"}};
  CHECK(lines_in_job_order(rows, {"a", "b", "c"}) == "job_id,x\nz,0\na,1\na,2\nb,1\nb,2\nc,1\n");
  CHECK(lines_in_job_order(rows, {"c", "b", "a"}) == "job_id,x\nz,0\nc,1\nb,1\nb,2\na,1\na,2\n");
}

TEST_CASE("job cost: grows with layers, tokens, evaluations and the method", "[distributed][schedule]") {
  const test::TempDir dir("kvlab_cost_");
  const std::string dump = test::write_tiny_dump(dir.path / "a.h5");
  const DumpInfo info = DumpReader(dump).info();
  const Registry& reg = Registry::global();
  auto cost = [&](const std::string& spec, ReplayOptions opts) {
    return estimated_job_cost(Job{dump, reg.resolve(spec), opts, {}}, info);
  };
  ReplayOptions all, one, every1, noattn, fewer;
  one.layers = {0};
  every1.eval_every = 1;
  all.eval_every = one.eval_every = noattn.eval_every = fewer.eval_every = 8;
  noattn.attention = false;
  fewer.max_steps = 8;
  CHECK(cost("kivi-2bit", all) == Approx(info.num_layers * cost("kivi-2bit", one)));
  CHECK(cost("kivi-2bit", every1) > cost("kivi-2bit", all));
  CHECK(cost("kivi-2bit", all) > cost("kivi-2bit", noattn));
  CHECK(cost("kivi-2bit", all) > cost("kivi-2bit", fewer));
  CHECK(cost("gear-2bit", all) > cost("kivi-2bit", all));
  CHECK(cost("gear-2bit:rank=8", all) > cost("gear-2bit", all));
  CHECK(cost("h2o-20pct", noattn) > cost("streaming-20pct", noattn));  // H2O scores every step
  ReplayOptions bad;
  bad.layers = {99};
  CHECK(cost("fp16", bad) == 0);
}

TEST_CASE("shards of a sweep merged equal the whole sweep; merge checks plans", "[distributed][shard][sweep]") {
  const test::TempDir dir("kvlab_merge_");
  test::write_tiny_dump(dir.path / "a.h5");
  const std::string yaml = dir.file("s.yaml");
  std::ofstream(yaml) << "name: m\ndumps: [a.h5]\ncompressors: [fp16, {method: kivi, bits: [2, 4]}, "
                         "{method: uniform, bits: [2, 3, 4], axis: [token, channel]}]\nreplay: {eval_every: 8}\n";
  const SweepConfig config = load_sweep_config(yaml);
  SweepRunOptions quiet;
  quiet.quiet = true;
  quiet.threads = 1;
  run_sweep(make_sweep_plan(config, dir.file("whole")), quiet);
  std::vector<std::string> shards;
  std::size_t jobs = 0;
  for (int i = 1; i <= 3; ++i) {
    SweepRunOptions o = quiet;
    o.shard = ShardId{i, 3};
    const SweepPlan plan = make_sweep_plan(config, dir.file(fmt::format("s{}", i)));
    const SweepOutcome r = run_sweep(plan, o);
    CHECK(r.jobs == static_cast<int>(shard_jobs(plan, *o.shard).size()));
    jobs += static_cast<std::size_t>(r.ok);
    const auto record = read_shard_record(plan.out_dir);
    REQUIRE(record);
    CHECK(record->plan_hash == plan_hash(plan));
    CHECK(record->shard.text() == fmt::format("{}/3", i));
    shards.push_back(plan.out_dir);
  }
  CHECK(jobs == 9);
  const MergeOutcome m = merge_results({dir.file("merged"), {shards[2], shards[0], shards[1]}, false});
  CHECK(m.ok == 9);
  CHECK(m.missing.empty());
  CHECK(m.missing_shards.empty());
  for (const char* f : {"summary.csv", "layers.csv", "steps.csv", "config.resolved.yaml"})
    CHECK(slurp(dir.path / "merged" / f) == slurp(dir.path / "whole" / f));
  CHECK_FALSE(fs::exists(dir.path / "merged" / kShardFile));

  // Two shards: the third's jobs are listed missing.
  const MergeOutcome part = merge_results({dir.file("part"), {shards[0], shards[1]}, false});
  CHECK(part.missing_shards == std::vector<std::string>{"3/3"});
  CHECK(part.missing.size() + static_cast<std::size_t>(part.ok) == 9);
  CHECK(!part.missing.empty());
  // Never over existing results without overwrite; never two plans.
  CHECK_THROWS_WITH(merge_results({dir.file("merged"), shards, false}), Catch::Contains("already exist"));
  CHECK_NOTHROW(merge_results({dir.file("merged"), shards, true}));
  std::ofstream(yaml) << "name: m\ndumps: [a.h5]\ncompressors: [fp16, kivi-2bit]\nreplay: {eval_every: 8}\n";
  SweepRunOptions o = quiet;
  o.shard = ShardId{1, 3};
  run_sweep(make_sweep_plan(load_sweep_config(yaml), dir.file("other")), o);
  CHECK_THROWS_WITH(merge_results({dir.file("x"), {shards[0], dir.file("other")}, false}),
                    Catch::Contains("results of another plan"));
  CHECK_THROWS_WITH(merge_results({dir.file("x"), {shards[0], shards[0]}, false}),
                    Catch::Contains("both hold shard 1/3"));
  CHECK_FALSE(fs::exists(dir.path / "x"));
  // A shard folder takes only its own shard.
  SweepRunOptions wrong = quiet;
  wrong.resume = true;
  wrong.shard = ShardId{2, 3};
  CHECK_THROWS_WITH(run_sweep(make_sweep_plan(config, shards[0]), wrong), Catch::Contains("holds shard 1/3, not 2/3"));
  wrong.shard.reset();
  CHECK_THROWS_WITH(run_sweep(make_sweep_plan(config, shards[0]), wrong), Catch::Contains("run it with --shard 1/3"));
}

TEST_CASE("a job run in layer ranges and put back together equals the whole job", "[distributed]") {
  const test::TempDir dir("kvlab_pieces_");
  SynthOptions o;
  o.preset = "tiny";
  o.num_layers = 5;
  const std::string dump = dir.file("a.h5");
  write_synth_dump(dump, o, 1);
  const DumpInfo info = DumpReader(dump).info();
  const Registry& reg = Registry::global();
  ReplayOptions replay;
  replay.eval_every = 16;
  std::vector<Job> jobs;
  for (const char* spec : {"kivi-2bit", "gear-2bit", "h2o-20pct", "kvquant-nuq3-1pct", "pyramidkv-1024"})
    jobs.push_back(Job{dump, reg.resolve(spec), replay, make_identity(reg.resolve(spec), "a.h5", dump, replay)});
  RunnerOptions ro;
  ro.threads = 2;
  CollectingSink whole;
  run_jobs(jobs, ro, whole);
  const TableLayout layout{parameter_columns({reg.resolve("kivi-2bit").method, reg.resolve("gear-2bit").method,
                                              reg.resolve("h2o-20pct").method, reg.resolve("kvquant").method,
                                              reg.resolve("pyramidkv").method})};
  const std::vector<int> all = selected_layers(info, replay);
  for (int pieces : {2, 3, 5}) {
    std::vector<std::vector<JobRecord>> parts(jobs.size());
    for (int p = pieces - 1; p >= 0; --p) {  // any order of running
      std::vector<Job> piece = jobs;
      for (Job& j : piece) j.replay.layers = piece_layers(all, p, pieces);
      CollectingSink sink;
      run_jobs(piece, ro, sink);
      for (std::size_t j = 0; j < jobs.size(); ++j) {
        ByteWriter w;  // through the wire, as between ranks
        encode_piece(w, sink.records[j]);
        const std::string bytes = w.take();
        ByteReader r(bytes);
        parts[j].insert(parts[j].begin(), decode_piece(r));
      }
    }
    for (std::size_t j = 0; j < jobs.size(); ++j) {
      const JobRecord joined = assemble_pieces(jobs[j].identity, std::move(parts[j]));
      REQUIRE(joined.ok());
      const JobRows a = ResultsWriter::format(layout, whole.records[j]), b = ResultsWriter::format(layout, joined);
      REQUIRE(a.size() == b.size());
      for (std::size_t f = 0; f < a.size(); ++f)
        if (a[f].first != "timing.csv") CHECK(a[f] == b[f]);
    }
  }
  // A failing piece fails the job with its error, and the job has no blocks.
  std::vector<JobRecord> parts(2);
  parts[0].result.blocks = {full_block(0)};
  parts[1].error = "layer 3: boom";
  const JobRecord failed = assemble_pieces(jobs[0].identity, std::move(parts));
  CHECK(failed.error == "layer 3: boom");
  CHECK(failed.result.blocks.empty());
}

TEST_CASE("jobs are cut into layer ranges only when one would dominate a rank", "[distributed][schedule]") {
  CHECK(pieces_for(10, 1000, 1, 80) == 1);    // one worker: never
  CHECK(pieces_for(10, 1000, 8, 80) == 1);    // 10 ≤ 1000 / 64
  CHECK(pieces_for(100, 1000, 8, 80) == 7);   // ⌈100 / 15.6⌉
  CHECK(pieces_for(500, 1000, 64, 80) == 80);  // at most one per layer
  CHECK(pieces_for(500, 1000, 64, 0) == 1);
  // Jobs of one dump are cut alike; other dumps may stay whole.
  const test::TempDir dir("kvlab_cut_");
  const std::string dump = test::write_tiny_dump(dir.path / "a.h5");
  const Registry& reg = Registry::global();
  ReplayOptions r1, r2;
  r2.eval_every = 4;  // another replay setting: another group
  std::vector<Job> jobs{{dump, reg.resolve("fp16"), r1, {}}, {dump, reg.resolve("kivi-2bit"), r1, {}},
                        {dump, reg.resolve("fp16"), r2, {}}};
  const std::vector<JobEstimate> est{{100, 4, {0, 1}}, {10, 4, {0, 1}}, {1, 4, {0, 1}}};
  CHECK(job_pieces(jobs, {0, 1, 2}, est, 4) == std::vector<int>{2, 2, 1});
  CHECK(job_pieces(jobs, {1, 2}, est, 4) == std::vector<int>{2, 2});  // resumed: job 0 done, less work left
}

TEST_CASE("merge lists the jobs that failed in a shard, with their reason", "[distributed][shard][sweep]") {
  const test::TempDir dir("kvlab_merge_failed_");
  test::write_tiny_dump(dir.path / "a.h5");
  std::ofstream(dir.path / "bad.h5") << "not an HDF5 file\n";  // its jobs fail; the others run
  const std::string yaml = dir.file("s.yaml");
  std::ofstream(yaml) << "name: f\ndumps: [a.h5, bad.h5]\ncompressors: [fp16, {method: kivi, bits: [2, 4]}]\n"
                         "replay: {eval_every: 8}\n";
  const SweepConfig config = load_sweep_config(yaml);
  SweepRunOptions quiet;
  quiet.quiet = true;
  quiet.threads = 1;
  const SweepOutcome whole = run_sweep(make_sweep_plan(config, dir.file("whole")), quiet);
  REQUIRE(whole.failed == 3);
  REQUIRE(whole.ok == 3);
  std::vector<std::string> shards;
  for (int i = 1; i <= 2; ++i) {
    SweepRunOptions o = quiet;
    o.shard = ShardId{i, 2};
    run_sweep(make_sweep_plan(config, dir.file(fmt::format("s{}", i))), o);
    shards.push_back(dir.file(fmt::format("s{}", i)));
  }
  const MergeOutcome m = merge_results({dir.file("merged"), shards, false});
  CHECK(m.jobs == 6);
  CHECK(m.ok == 3);
  CHECK(m.missing.empty());
  REQUIRE(m.failed.size() == 3);
  for (const MergedJob& j : m.failed) {
    CHECK(j.dump == "bad.h5");
    CHECK_THAT(j.error, Catch::Contains("bad.h5"));
  }
  // The failed jobs' rows are kept, as a single-process sweep keeps them.
  CHECK(slurp(dir.path / "merged" / "summary.csv") == slurp(dir.path / "whole" / "summary.csv"));
}
