#pragma once
// A compact binary encoding of what ranks exchange: job results per block
// (replay/block_result.hpp), finished jobs' formatted rows, job indices.
// Numbers are written in the machine's byte order (ranks of one job run the
// same binary on the same architecture) and doubles bit for bit, so NaN and
// -0.0 survive and gathered results equal those computed in one process.
// Decoding checks every length: a truncated or corrupt message throws
// kvlab::Error, never reads past the end.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvlab/replay/replay_dump.hpp"
#include "kvlab/report/results_writer.hpp"

namespace kvlab::distributed {

class ByteWriter {
 public:
  void u8(std::uint8_t v) { bytes_.push_back(static_cast<char>(v)); }
  void i32(std::int32_t v) { raw(&v, sizeof v); }
  void u64(std::uint64_t v) { raw(&v, sizeof v); }
  void f64(double v) { raw(&v, sizeof v); }
  void str(std::string_view s) {
    u64(s.size());
    bytes_.append(s);
  }
  std::string take() { return std::move(bytes_); }

 private:
  void raw(const void* p, std::size_t n) { bytes_.append(static_cast<const char*>(p), n); }
  std::string bytes_;
};

// Reads from bytes it does not own: they must outlive the reader.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  std::uint8_t u8();
  std::int32_t i32();
  std::uint64_t u64();
  double f64();
  std::string str();
  // A count of items each at least `min_item_bytes` long: larger than what is
  // left means a corrupt message (checked before anything is allocated).
  std::size_t count(std::size_t min_item_bytes);
  bool done() const { return at_ == bytes_.size(); }
  void expect_done() const;

 private:
  void raw(void* p, std::size_t n);
  std::string_view bytes_;
  std::size_t at_ = 0;
};

void encode(ByteWriter& w, const BlockResult& b);
BlockResult decode_block(ByteReader& r);

// A job's result on some of its layers (blocks, settings, error, seconds).
void encode(ByteWriter& w, const JobResult& j);
JobResult decode_job_result(ByteReader& r);

// A finished job as the rank that ran it reports it to rank 0: its position
// in the job list, id, outcome and formatted rows (ResultsWriter::format).
struct FinishedJob {
  std::size_t index = 0;
  std::string job_id;
  bool ok = false;
  JobRows rows;
};
void encode(ByteWriter& w, const FinishedJob& f);
FinishedJob decode_finished_job(ByteReader& r);

std::string encode_finished_jobs(const std::vector<FinishedJob>& jobs);
std::vector<FinishedJob> decode_finished_jobs(std::string_view bytes);

std::string encode_indices(const std::vector<std::size_t>& indices);
std::vector<std::size_t> decode_indices(std::string_view bytes);

}  // namespace kvlab::distributed
