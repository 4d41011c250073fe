#include "kvlab/report/results_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>
#include <unordered_map>

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

void write_whole_file(const fs::path& path, const std::string& text) { write_file_atomically(path.string(), text); }

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

void write_file_atomically(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) fail("{}: cannot write", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);  // atomic replace
  if (ec) fail("{}: cannot replace: {}", path, ec.message());
}

FileRows read_file_rows(const std::string& path) {
  FileRows out;
  const auto lines = read_complete_lines(path);
  if (lines.empty()) return out;
  out.header = lines.front();
  for (std::size_t i = 1; i < lines.size(); ++i) {
    const auto fields = csv_split(lines[i]);
    out.rows.emplace_back(fields.empty() ? std::string() : fields[0], lines[i]);
  }
  return out;
}

std::vector<std::string> finished_job_ids(const FileRows& summary) {
  std::vector<std::string> ids;
  for (const auto& [id, line] : summary.rows) {
    const auto fields = csv_split(line);
    if (fields.size() > 1 && fields[1] == "ok") ids.push_back(id);
  }
  return ids;
}

std::string lines_in_job_order(const FileRows& rows, const std::vector<std::string>& job_order) {
  std::unordered_map<std::string, std::size_t> position;
  for (std::size_t i = 0; i < job_order.size(); ++i) position.emplace(job_order[i], i + 1);
  std::vector<std::size_t> order(rows.rows.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  auto key = [&](std::size_t i) {
    const auto it = position.find(rows.rows[i].first);
    return it == position.end() ? std::size_t{0} : it->second;  // unknown jobs first
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  std::string text = rows.header + "\n";
  for (std::size_t i : order) text += rows.rows[i].second + "\n";
  return text;
}

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

void ResultsWriter::order_rows(const std::vector<std::string>& job_order) const {
  for (const std::string& name : files(layout_)) {
    const std::string path = (fs::path(dir_) / name).string();
    const FileRows rows = read_file_rows(path);
    const std::string text = lines_in_job_order(rows, job_order);
    std::string current = rows.header + "\n";
    for (const auto& [id, line] : rows.rows) current += line + "\n";
    if (text != current) write_file_atomically(path, text);
  }
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
