#pragma once
// Shared pieces of the benchmarks: a 7B-shaped layer, timing with median /
// min / max over several runs, the memory floor (time to read and write the
// same bytes) measured in the same run, and a bitwise hash of results (so a
// speed change can be checked to leave the numbers untouched).
#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "kvlab/core/rng.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab::bench {

struct Layer {
  std::vector<Matrix> keys, values;  // heads × [T × d]
};

// Gaussian keys/values with a few large key channels (as in RoPE models).
inline Layer make_layer(int heads, int tokens, int dim, std::uint64_t seed = 1) {
  Layer l;
  l.keys.resize(heads);
  l.values.resize(heads);
#pragma omp parallel for
  for (int h = 0; h < heads; ++h) {
    Rng rng = Rng::for_block(seed, 0, h);
    l.keys[h].resize(tokens, dim);
    l.values[h].resize(tokens, dim);
    for (int t = 0; t < tokens; ++t)
      for (int c = 0; c < dim; ++c) {
        l.keys[h](t, c) = static_cast<float>(rng.normal() * (c % 37 == 3 ? 8.0 : 1.0));
        l.values[h](t, c) = static_cast<float>(rng.normal());
      }
  }
  return l;
}

// CPU time of the calling thread, in seconds: unlike wall time, it does not
// count time the thread waited for a core on a shared machine.
inline double thread_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}
inline double cpu_seconds_of(const std::function<void()>& fn) {
  const double t0 = thread_cpu_seconds();
  fn();
  return thread_cpu_seconds() - t0;
}

// The 1-, 5- and 15-minute load averages, for the report: on a shared machine
// they say how much the wall times were stretched by other work.
inline std::string load_average() {
  std::ifstream f("/proc/loadavg");
  double a = 0, b = 0, c = 0;
  if (!(f >> a >> b >> c)) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f}", a, b, c);
}

inline double seconds_of(const std::function<void()>& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Median, min and max of repeated measurements (any unit).
struct Stats {
  double median = 0, min = 0, max = 0;
  int runs = 0;
};

inline Stats stats_of(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  s.min = v.front();
  s.max = v.back();
  s.runs = static_cast<int>(n);
  return s;
}

// "median 12.34 ms (min 11.90, max 14.02; 7 runs)" for values in seconds.
inline std::string ms(const Stats& s, int digits = 1) {
  return fmt::format("median {:.{}f} ms (min {:.{}f}, max {:.{}f}; {} runs)", s.median * 1e3, digits, s.min * 1e3,
                     digits, s.max * 1e3, digits, s.runs);
}

// Stats of `runs` timings of fn, in seconds.
inline Stats time_runs(int runs, const std::function<void()>& fn) {
  std::vector<double> t;
  for (int i = 0; i < runs; ++i) t.push_back(seconds_of(fn));
  return stats_of(t);
}

// Copies K and V into preallocated buffers: reads and writes the bytes a
// compressor must at least read (input) and write (reconstruction), at memory
// bandwidth (no page faults in the timed region). Call run() once per
// measurement, interleaved with the code under test, so background load hits
// both alike.
class MemoryFloor {
 public:
  MemoryFloor(const Layer& l, int threads) : layer_(l), threads_(threads) {
    for (const Matrix& m : l.keys) k_.push_back(Matrix::Zero(m.rows(), m.cols()));
    for (const Matrix& m : l.values) v_.push_back(Matrix::Zero(m.rows(), m.cols()));
  }
  double run() {
    const int heads = static_cast<int>(k_.size());
    return seconds_of([&] {
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads_)
      for (int h = 0; h < heads; ++h) {
        k_[h] = layer_.keys[h];
        v_[h] = layer_.values[h];
      }
    });
  }
  // Bytes moved per run: K and V read once and written once.
  double bytes() const {
    double b = 0;
    for (const Matrix& m : k_) b += 2.0 * static_cast<double>(m.size()) * sizeof(float);
    return 2 * b;
  }

 private:
  const Layer& layer_;
  int threads_;
  std::vector<Matrix> k_, v_;
};

// FNV-1a over the bytes of a float matrix: equal hashes mean bit-identical data.
inline std::uint64_t hash_bits(ConstMatrixRef m, std::uint64_t h = 1469598103934665603ULL) {
  for (Eigen::Index r = 0; r < m.rows(); ++r)
    for (Eigen::Index c = 0; c < m.cols(); ++c) {
      std::uint32_t u;
      const float f = m(r, c);
      std::memcpy(&u, &f, sizeof u);
      for (int b = 0; b < 4; ++b) h = (h ^ ((u >> (8 * b)) & 0xFFu)) * 1099511628211ULL;
    }
  return h;
}

// Minimal option parsing: `--name value` options and bare `--flag`s; anything
// else prints the usage line and exits with status 2.
class Args {
 public:
  Args(int argc, char** argv, std::vector<std::string> options, std::vector<std::string> flags, std::string usage)
      : command_(argv[0]) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      command_ += " " + a;
      if (std::find(flags.begin(), flags.end(), a) != flags.end()) {
        set_.push_back({a, ""});
      } else if (std::find(options.begin(), options.end(), a) != options.end() && i + 1 < argc) {
        set_.push_back({a, argv[++i]});
        command_ += " " + set_.back().second;
      } else {
        fmt::print(stderr, "usage: {}\n", usage);
        std::exit(2);
      }
    }
  }
  std::string get(const std::string& name, const std::string& fallback) const {
    for (const auto& [k, v] : set_)
      if (k == name) return v;
    return fallback;
  }
  int get_int(const std::string& name, int fallback) const {
    const std::string v = get(name, "");
    return v.empty() ? fallback : std::atoi(v.c_str());
  }
  bool has(const std::string& name) const {
    for (const auto& kv : set_)
      if (kv.first == name) return true;
    return false;
  }
  // The command line as typed, for the report.
  const std::string& command() const { return command_; }

 private:
  std::string command_;
  std::vector<std::pair<std::string, std::string>> set_;
};

}  // namespace kvlab::bench
