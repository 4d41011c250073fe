#pragma once
// Progress on stderr ("label  done/total  rate  ETA"): on a terminal one line
// redrawn at most ~5 times a second; otherwise (a batch system's log) a plain
// line every 10 s (KVLAB_PROGRESS_INTERVAL seconds, if set) and none for work
// shorter than that. Silent when disabled (--quiet). Thread-safe: any thread
// may call advance().
#include <atomic>
#include <chrono>
#include <mutex>
#include <string>

namespace kvlab {

class Progress {
 public:
  Progress(std::string label, long long total, bool enabled, std::string unit = "items");
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void advance(long long n = 1);
  void set_label(std::string label);
  void finish();  // clears the line
  bool active() const { return enabled_; }

  static bool stderr_is_terminal();

 private:
  void draw(bool force);

  std::string label_;
  long long total_;
  bool enabled_;
  bool terminal_;
  std::chrono::milliseconds interval_;
  std::string unit_;
  std::atomic<long long> done_{0};
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  bool drawn_ = false;
};

}  // namespace kvlab
