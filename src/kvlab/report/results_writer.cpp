#include "kvlab/report/results_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "kvlab/core/csv.hpp"
#include "kvlab/core/error.hpp"

namespace kvlab {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> timing_header() { return {"job_id", "spec", "dump", "wall_s", "threads"}; }

// Complete lines of a file (a torn last line, one without '\n', is dropped).
std::vector<std::string> read_complete_lines(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string text = ss.str();
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\n') {
      lines.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  return lines;
}

void write_whole_file(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) fail("{}: cannot write", tmp.string());
  }
  fs::rename(tmp, path);  // atomic replace
}

void write_all(int fd, const std::string& data, const std::string& file) {
  std::size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("{}: write failed: {}", file, std::strerror(errno));
    }
    done += static_cast<std::size_t>(n);
  }
}

}  // namespace

ResultsWriter::ResultsWriter(std::string dir, std::vector<std::string> param_names, bool resume, int decode_layers)
    : dir_(std::move(dir)), param_names_(std::move(param_names)), decode_layers_(decode_layers) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail("{}: cannot create results folder: {}", dir_, ec.message());

  std::vector<std::pair<std::string, std::vector<std::string>>> files = {
      {"summary.csv", summary_header(param_names_, decode_layers_ > 0)},
      {"layers.csv", layers_header()},
      {"steps.csv", steps_header()},
      {"timing.csv", timing_header()}};
  if (decode_layers_ > 0) files.push_back({"decode_steps.csv", decode_steps_header(decode_layers_)});

  const fs::path summary = fs::path(dir_) / "summary.csv";
  if (resume && fs::exists(summary)) {
    const auto lines = read_complete_lines(summary);
    if (!lines.empty() && lines.front() + "\n" != csv_line(files[0].second))
      fail("{}: existing summary.csv has different columns; cannot resume into it (use a new --out)",
           summary.string());
    for (std::size_t i = 1; i < lines.size(); ++i) {
      const auto fields = csv_split(lines[i]);
      if (fields.size() > 1 && fields[1] == "ok") finished_.insert(fields[0]);
    }
  }
  // Rewrite each file keeping the header and the rows of finished jobs only.
  for (const auto& [name, header] : files) {
    const fs::path path = fs::path(dir_) / name;
    std::string text = csv_line(header);
    if (resume && fs::exists(path)) {
      const auto lines = read_complete_lines(path);
      for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto fields = csv_split(lines[i]);
        if (!fields.empty() && finished_.count(fields[0])) text += lines[i] + "\n";
      }
    }
    write_whole_file(path, text);
  }
}

void ResultsWriter::append_rows(const std::string& file, const std::vector<std::vector<std::string>>& rows) {
  std::string data;
  for (const auto& r : rows) data += csv_line(r);
  const std::string path = (fs::path(dir_) / file).string();
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd < 0) fail("{}: cannot open for append: {}", path, std::strerror(errno));
  try {
    write_all(fd, data, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void ResultsWriter::write_job(const JobIdentity& id, const JobResult& job, const JobSummary& summary,
                              double wall_seconds, int threads, const DecodeResult* decode) {
  KVLAB_ASSERT((decode != nullptr) == (decode_layers_ > 0));
  append_rows("layers.csv", layers_rows(id, job));
  if (decode) append_rows("decode_steps.csv", decode_steps_rows(id, *decode));
  append_rows("steps.csv", steps_rows(id, summarize_steps(job)));
  append_rows("timing.csv", {{id.job_id, id.spec, id.dump, fmt::format("{:.4f}", wall_seconds),
                              fmt::format("{}", threads)}});
  std::vector<std::string> row = summary_row(id, param_names_, summary);
  if (decode) {
    const auto extra = decode_summary_fields(*decode);
    row.insert(row.end(), extra.begin(), extra.end());
  }
  append_rows("summary.csv", {row});  // last: marks the job finished
  finished_.insert(id.job_id);
}

void ResultsWriter::write_failed(const JobIdentity& id, const std::string& error) {
  std::vector<std::string> row = failed_summary_row(id, param_names_, error);
  if (decode_layers_ > 0) row.resize(row.size() + decode_summary_columns().size());
  append_rows("summary.csv", {row});
}

}  // namespace kvlab
