#include "kvlab/core/progress.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace kvlab {

bool Progress::stderr_is_terminal() { return isatty(STDERR_FILENO) != 0; }

namespace {
std::chrono::milliseconds plain_interval() {
  const char* env = std::getenv("KVLAB_PROGRESS_INTERVAL");
  const double seconds = env ? std::atof(env) : 10.0;
  return std::chrono::milliseconds(static_cast<long long>(1000 * (seconds > 0 ? seconds : 10.0)));
}
}  // namespace

Progress::Progress(std::string label, long long total, bool enabled, std::string unit)
    : label_(std::move(label)),
      total_(total),
      enabled_(enabled),
      terminal_(stderr_is_terminal()),
      interval_(terminal_ ? std::chrono::milliseconds(200) : plain_interval()),
      unit_(std::move(unit)) {
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::set_label(std::string label) {
  std::lock_guard<std::mutex> lock(mutex_);
  label_ = std::move(label);
}

void Progress::advance(long long n) {
  done_ += n;
  if (enabled_) draw(false);
}

void Progress::draw(bool force) {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < interval_) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const long long done = done_.load();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0.0;
  std::fprintf(stderr, "%s%s  %lld/%lld %s  %.1f/s  elapsed %.0fs  ETA %.0fs%s", terminal_ ? "\r\033[K" : "",
               label_.c_str(), done, total_, unit_.c_str(), rate, elapsed, eta, terminal_ ? "" : "\n");
  std::fflush(stderr);
  drawn_ = terminal_;
}

void Progress::finish() {
  if (!enabled_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (drawn_) {
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }
}

}  // namespace kvlab
