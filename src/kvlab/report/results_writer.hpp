#pragma once
// Writes the results files of a folder (result_fields.hpp) so that a kill at
// any moment leaves only complete rows:
//   * each job's rows go to each file in ONE write(2) of whole lines (a signal
//     cannot split a write to a regular file), the summary row last;
//   * a job counts as finished iff its summary row exists; on resume, rows of
//     unfinished jobs (and a torn last line) are dropped from every file first,
//     so re-running those jobs adds no duplicates.
// No results file is ever replaced or emptied unless the caller says so.
// Rows may be appended in any job order (ranks finish out of order); at the
// end order_rows() puts them in plan order, one atomic rename per file, so a
// kill during that step leaves every file complete too.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "kvlab/report/result_fields.hpp"

namespace kvlab {

// A job's formatted rows: (file, text of whole lines), summary.csv last.
using JobRows = std::vector<std::pair<std::string, std::string>>;

// The complete lines of a results file (a torn last line is dropped): the
// header and each row with its job id (the first column).
struct FileRows {
  std::string header;                                     // without '\n'; empty for an empty file
  std::vector<std::pair<std::string, std::string>> rows;  // (job id, line without '\n')
};
FileRows read_file_rows(const std::string& path);

// Job ids whose summary row says "ok" (the jobs a folder has finished).
std::vector<std::string> finished_job_ids(const FileRows& summary);

// Writes `text` to `path` through a temporary file and an atomic rename.
void write_file_atomically(const std::string& path, const std::string& text);

// `rows` grouped by job in the order of `job_order`; rows of jobs not in it
// come first, in their current order (they were finished earlier). Within a
// job, rows keep their order.
std::string lines_in_job_order(const FileRows& rows, const std::vector<std::string>& job_order);

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

  // Rewrites each file whose rows are not yet grouped in `job_order`
  // (lines_in_job_order); files already in order are left untouched.
  void order_rows(const std::vector<std::string>& job_order) const;

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
