#include "kvlab/io/hdf5_errors.hpp"

#include <hdf5.h>

#include "kvlab/io/quoted.hpp"

namespace kvlab::io {

void silence_hdf5_errors() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {
herr_t keep_innermost(unsigned n, const H5E_error2_t* err, void* data) {
  // H5E_WALK_UPWARD visits the innermost (most specific) error first.
  auto* out = static_cast<std::string*>(data);
  if (n == 0 && err != nullptr && err->desc != nullptr) *out = err->desc;
  return 0;
}
}  // namespace

std::string last_hdf5_error() {
  std::string message;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, keep_innermost, &message);
  return escaped(message);  // it may quote names from the file
}

}  // namespace kvlab::io
