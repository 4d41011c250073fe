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

std::vector<std::string> ResultsWriter::files(const TableLayout& layout) {
  std::vector<std::string> out;
  for (const ResultTable& t : result_tables())
    if (!t.model_only || layout.model()) out.push_back(t.file);
  return out;
}

ResultsWriter::ResultsWriter(std::string dir, TableLayout layout, Mode mode)
    : dir_(std::move(dir)), layout_(std::move(layout)) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) fail("{}: cannot create results folder: {}", dir_, ec.message());

  if (mode == Mode::Fresh) {
    std::vector<std::string> names{"config.resolved.yaml"};
    for (const ResultTable& t : result_tables()) names.push_back(t.file);
    for (const std::string& name : names)
      if (fs::exists(fs::path(dir_) / name))
        fail("{}: results already exist ({}); use --resume to finish them or --overwrite to start over", dir_,
             name);
  }
  const bool resume = mode == Mode::Resume;
  const fs::path summary = fs::path(dir_) / "summary.csv";
  if (resume && fs::exists(summary)) {
    const auto lines = read_complete_lines(summary);
    if (!lines.empty() && lines.front() + "\n" != csv_line(result_table("summary.csv").header(layout_)))
      fail("{}: existing summary.csv has different columns; cannot resume into it (use a new --out)",
           summary.string());
    for (std::size_t i = 1; i < lines.size(); ++i) {
      const auto fields = csv_split(lines[i]);
      if (fields.size() > 1 && fields[1] == "ok") finished_.insert(fields[0]);
    }
  }
  // Rewrite each file keeping the header and the rows of finished jobs only.
  for (const std::string& name : files(layout_)) {
    const fs::path path = fs::path(dir_) / name;
    std::string text = csv_line(result_table(name).header(layout_));
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

JobRows ResultsWriter::format(const TableLayout& layout, const JobRecord& record) {
  JobRows rows;
  const std::vector<std::string> names = files(layout);
  // Summary last: its row marks the job finished.
  for (int pass = 0; pass < 2; ++pass)
    for (const std::string& name : names) {
      if ((name == "summary.csv") != (pass == 1)) continue;
      std::string text;
      for (const auto& row : table_rows(result_table(name), layout, record)) text += csv_line(row);
      if (!text.empty()) rows.emplace_back(name, std::move(text));
    }
  return rows;
}

void ResultsWriter::append(const JobRows& rows, const std::string& job_id, bool ok) {
  for (const auto& [file, text] : rows) {
    const std::string path = (fs::path(dir_) / file).string();
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) fail("{}: cannot open for append: {}", path, std::strerror(errno));
    try {
      write_all(fd, text, path);
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
  }
  if (ok) finished_.insert(job_id);
}

}  // namespace kvlab
