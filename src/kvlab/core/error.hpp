#pragma once
// User-facing errors. kvlab::Error carries a one-line message naming the file /
// key at fault; the CLI prints it and exits non-zero. Internal invariants use
// KVLAB_ASSERT, which aborts: they are bugs, not bad input.
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace kvlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An Error about a file rather than the request: it is missing or unreadable,
// not HDF5, truncated, or its contents break the format (attributes, shapes,
// non-finite values). Thrown by the io layer only; the Python module raises
// OSError for it and ValueError for every other Error.
class FileError : public Error {
 public:
  using Error::Error;
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_file(fmt::format_string<Args...> format, Args&&... args) {
  throw FileError(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace kvlab

#define KVLAB_ASSERT(cond)                                                                    \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      std::fprintf(stderr, "kvlab internal error: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)
