#include "kvlab/distributed/wire.hpp"

#include <cstring>

#include "kvlab/core/error.hpp"

namespace kvlab::distributed {

// A new field in these structs must be encoded below (and decoded): these
// sizes change when one is added, so the build stops here until it is.
static_assert(sizeof(TensorError) == 3 * 8 && sizeof(AttentionError) == 4 * 8 && sizeof(BitCount) == 6 * 8,
              "a metrics struct gained a field: add it to encode/decode in wire.cpp");
static_assert(sizeof(StepPoint) == 112, "StepPoint changed: update encode/decode in wire.cpp");
static_assert(sizeof(BlockResult) == 184, "BlockResult changed: update encode/decode in wire.cpp");

void ByteReader::raw(void* p, std::size_t n) {
  if (bytes_.size() - at_ < n) fail("malformed message: {} bytes needed at offset {} of {}", n, at_, bytes_.size());
  std::memcpy(p, bytes_.data() + at_, n);
  at_ += n;
}

std::uint8_t ByteReader::u8() {
  std::uint8_t v;
  raw(&v, 1);
  return v;
}
std::int32_t ByteReader::i32() {
  std::int32_t v;
  raw(&v, sizeof v);
  return v;
}
std::uint64_t ByteReader::u64() {
  std::uint64_t v;
  raw(&v, sizeof v);
  return v;
}
double ByteReader::f64() {
  double v;
  raw(&v, sizeof v);
  return v;
}
std::string ByteReader::str() {
  const std::size_t n = count(1);
  std::string s(bytes_.substr(at_, n));
  at_ += n;
  return s;
}
std::size_t ByteReader::count(std::size_t min_item_bytes) {
  const std::uint64_t n = u64();
  if (n > (bytes_.size() - at_) / std::max<std::size_t>(min_item_bytes, 1))
    fail("malformed message: {} items cannot fit in the {} bytes left", n, bytes_.size() - at_);
  return static_cast<std::size_t>(n);
}
void ByteReader::expect_done() const {
  if (!done()) fail("malformed message: {} bytes left over", bytes_.size() - at_);
}

namespace {

void put(ByteWriter& w, const TensorError& e) {
  w.f64(e.sq_err);
  w.f64(e.sq_norm);
  w.f64(e.max_abs);
}
TensorError get_tensor_error(ByteReader& r) {
  TensorError e;
  e.sq_err = r.f64();
  e.sq_norm = r.f64();
  e.max_abs = r.f64();
  return e;
}
void put(ByteWriter& w, const AttentionError& a) {
  w.f64(a.out_rel);
  w.f64(a.kl);
  w.f64(a.kl_rev);
  w.f64(a.dropped_mass);
}
AttentionError get_attention_error(ByteReader& r) {
  AttentionError a;
  a.out_rel = r.f64();
  a.kl = r.f64();
  a.kl_rev = r.f64();
  a.dropped_mass = r.f64();
  return a;
}
void put(ByteWriter& w, const BitCount& b) {
  for (std::uint64_t v : {b.codes, b.metadata, b.sparse, b.lowrank, b.fp16_buffer, b.index}) w.u64(v);
}
BitCount get_bit_count(ByteReader& r) {
  BitCount b;
  for (std::uint64_t* v : {&b.codes, &b.metadata, &b.sparse, &b.lowrank, &b.fp16_buffer, &b.index}) *v = r.u64();
  return b;
}

constexpr std::size_t kStepBytes = 4 * 4 + 4 * 8 + 2 * 3 * 8 + 8;

}  // namespace

void encode(ByteWriter& w, const BlockResult& b) {
  w.i32(b.layer);
  w.i32(b.kv_head);
  w.i32(b.tokens);
  w.i32(b.head_dim);
  w.u8(b.keys_reconstructible ? 1 : 0);
  put(w, b.keys);
  put(w, b.values);
  put(w, b.bits);
  put(w, b.attn);
  w.i32(b.attn_evals);
  w.u64(b.steps.size());
  for (const StepPoint& p : b.steps) {
    w.i32(p.decode_step);
    w.i32(p.position);
    w.i32(p.tokens);
    put(w, p.attn);
    w.i32(p.heads);
    put(w, p.keys);
    put(w, p.values);
    w.u64(p.bits);
  }
}

BlockResult decode_block(ByteReader& r) {
  BlockResult b;
  b.layer = r.i32();
  b.kv_head = r.i32();
  b.tokens = r.i32();
  b.head_dim = r.i32();
  b.keys_reconstructible = r.u8() != 0;
  b.keys = get_tensor_error(r);
  b.values = get_tensor_error(r);
  b.bits = get_bit_count(r);
  b.attn = get_attention_error(r);
  b.attn_evals = r.i32();
  b.steps.resize(r.count(kStepBytes));
  for (StepPoint& p : b.steps) {
    p.decode_step = r.i32();
    p.position = r.i32();
    p.tokens = r.i32();
    p.attn = get_attention_error(r);
    p.heads = r.i32();
    p.keys = get_tensor_error(r);
    p.values = get_tensor_error(r);
    p.bits = r.u64();
  }
  return b;
}

void encode(ByteWriter& w, const JobResult& j) {
  w.i32(j.prompt_len);
  w.i32(j.decode_steps);
  w.u8(j.attention ? 1 : 0);
  w.str(j.error);
  w.f64(j.compute_seconds);
  w.u64(j.blocks.size());
  for (const BlockResult& b : j.blocks) encode(w, b);
}

JobResult decode_job_result(ByteReader& r) {
  JobResult j;
  j.prompt_len = r.i32();
  j.decode_steps = r.i32();
  j.attention = r.u8() != 0;
  j.error = r.str();
  j.compute_seconds = r.f64();
  j.blocks.resize(r.count(4 * 4 + 1));
  for (BlockResult& b : j.blocks) b = decode_block(r);
  return j;
}

void encode(ByteWriter& w, const FinishedJob& f) {
  w.u64(f.index);
  w.str(f.job_id);
  w.u8(f.ok ? 1 : 0);
  w.u64(f.rows.size());
  for (const auto& [file, text] : f.rows) {
    w.str(file);
    w.str(text);
  }
}

FinishedJob decode_finished_job(ByteReader& r) {
  FinishedJob f;
  f.index = static_cast<std::size_t>(r.u64());
  f.job_id = r.str();
  f.ok = r.u8() != 0;
  f.rows.resize(r.count(16));
  for (auto& [file, text] : f.rows) {
    file = r.str();
    text = r.str();
  }
  return f;
}

std::string encode_finished_jobs(const std::vector<FinishedJob>& jobs) {
  ByteWriter w;
  w.u64(jobs.size());
  for (const FinishedJob& f : jobs) encode(w, f);
  return w.take();
}

std::vector<FinishedJob> decode_finished_jobs(std::string_view bytes) {
  ByteReader r(bytes);
  std::vector<FinishedJob> jobs(r.count(8 + 8 + 1 + 8));
  for (FinishedJob& f : jobs) f = decode_finished_job(r);
  r.expect_done();
  return jobs;
}

std::string encode_indices(const std::vector<std::size_t>& indices) {
  ByteWriter w;
  w.u64(indices.size());
  for (std::size_t i : indices) w.u64(i);
  return w.take();
}

std::vector<std::size_t> decode_indices(std::string_view bytes) {
  ByteReader r(bytes);
  std::vector<std::size_t> out(r.count(8));
  for (std::size_t& i : out) i = static_cast<std::size_t>(r.u64());
  r.expect_done();
  return out;
}

}  // namespace kvlab::distributed
