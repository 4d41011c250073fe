#pragma once
// Writes summary.csv, layers.csv, steps.csv and timing.csv into a results
// folder so that a kill at any moment leaves only complete rows:
//   * each job's rows go to each file in ONE write(2) of whole lines (a signal
//     cannot split a write to a regular file), layers and steps first and the
//     summary row last;
//   * a job counts as finished iff its summary row exists; on resume, rows of
//     unfinished jobs (and a torn last line) are dropped from every file first,
//     so re-running those jobs adds no duplicates.
#include <set>
#include <string>
#include <vector>

#include "kvlab/model/decode_compare.hpp"
#include "kvlab/report/result_rows.hpp"

namespace kvlab {

class ResultsWriter {
 public:
  // resume = false: start every file afresh. resume = true: keep finished jobs
  // (the existing summary header must match `param_names`).
  // decode_layers > 0: the sweep has a model in the loop; summary.csv gets
  // the decode_* columns and decode_steps.csv is written.
  ResultsWriter(std::string dir, std::vector<std::string> param_names, bool resume, int decode_layers = 0);

  const std::set<std::string>& finished_jobs() const { return finished_; }
  bool finished(const std::string& job_id) const { return finished_.count(job_id) != 0; }

  void write_job(const JobIdentity& id, const JobResult& job, const JobSummary& summary, double wall_seconds,
                 int threads, const DecodeResult* decode = nullptr);
  void write_failed(const JobIdentity& id, const std::string& error);

  const std::string& dir() const { return dir_; }

 private:
  void append_rows(const std::string& file, const std::vector<std::vector<std::string>>& rows);

  std::string dir_;
  std::vector<std::string> param_names_;
  int decode_layers_ = 0;
  std::set<std::string> finished_;
};

}  // namespace kvlab
