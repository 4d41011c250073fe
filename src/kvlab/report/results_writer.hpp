#pragma once
// Writes the results files of a folder (result_fields.hpp) so that a kill at
// any moment leaves only complete rows:
//   * each job's rows go to each file in ONE write(2) of whole lines (a signal
//     cannot split a write to a regular file), the summary row last;
//   * a job counts as finished iff its summary row exists; on resume, rows of
//     unfinished jobs (and a torn last line) are dropped from every file first,
//     so re-running those jobs adds no duplicates.
// No results file is ever replaced or emptied unless the caller says so.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kvlab/report/result_fields.hpp"

namespace kvlab {

// A job's formatted rows: (file, text of whole lines), summary.csv last.
using JobRows = std::vector<std::pair<std::string, std::string>>;

class ResultsWriter {
 public:
  enum class Mode {
    Fresh,      // the folder must hold no results file yet
    Resume,     // keep finished jobs (the existing headers must match)
    Overwrite,  // start every file afresh
  };
  ResultsWriter(std::string dir, TableLayout layout, Mode mode);

  const std::set<std::string>& finished_jobs() const { return finished_; }
  bool finished(const std::string& job_id) const { return finished_.count(job_id) != 0; }

  // Formatting is separate from writing so that rows made elsewhere (another
  // process or rank) can be appended here unchanged.
  static JobRows format(const TableLayout& layout, const JobRecord& record);
  void append(const JobRows& rows, const std::string& job_id, bool ok);
  void write(const JobRecord& record) { append(format(layout_, record), record.identity.job_id, record.ok()); }

  const std::string& dir() const { return dir_; }
  const TableLayout& layout() const { return layout_; }

  // The result files a folder with this layout holds.
  static std::vector<std::string> files(const TableLayout& layout);

 private:
  std::string dir_;
  TableLayout layout_;
  std::set<std::string> finished_;
};

}  // namespace kvlab
