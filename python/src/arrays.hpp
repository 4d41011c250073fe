#pragma once
// NumPy arrays in and out of the core's Eigen types. Inputs are mapped without
// a copy when they already are float32 with contiguous rows (the last axis
// adjacent in memory: C-contiguous arrays and their slices along the other
// axes); anything else with __array__ (lists, float64/float16 arrays, CPU
// torch tensors) is converted once. Called with the GIL held.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "kvlab/core/bit_count.hpp"
#include "kvlab/core/types.hpp"

namespace kvlab::python {

namespace py = pybind11;

using MatrixMap = Eigen::Map<const Matrix, 0, Eigen::OuterStride<>>;
using RowMap = Eigen::Map<const RowVector>;

// A float32 array of a known rank whose last axis is contiguous. `array`
// keeps the data alive (the caller's array, or the converted copy).
class FloatTensor {
 public:
  // `what` names the argument in errors ("keys"); `axes` names the `rank`
  // (1 to 3) expected axes for messages ("[kv_heads, T, d]"). Both are
  // string literals (kept, not copied: this is on the per-token path).
  FloatTensor(py::handle obj, const char* what, int rank, const char* axes);

  int dim(int axis) const { return static_cast<int>(shape_[static_cast<std::size_t>(axis)]); }
  int rank() const { return rank_; }
  const char* what() const { return what_; }
  const char* axes() const { return axes_; }

  // The [rows × cols] matrix spanned by the last two axes at leading index
  // `i` (rank 3) or the whole array (rank 2).
  MatrixMap matrix(int i = 0) const;
  // Row `r` of the last axis: index r of the leading axis (rank 2), or the
  // whole array (rank 1); as a vector or as a [1 × cols] matrix.
  RowMap row(int r = 0) const;
  MatrixMap row_matrix(int r = 0) const;

  // Throws kvlab::Error naming the first NaN/Inf ("keys: non-finite value nan
  // at [1, 5, 3]"). Reads every element; call without the GIL.
  void check_finite() const;

 private:
  const char* what_;
  const char* axes_;
  int rank_;
  py::array_t<float> array_;
  std::array<py::ssize_t, 3> shape_{}, stride_{};  // stride in floats
  const float* data_ = nullptr;
};

// Copies src into dst (resized) and tells whether every value was finite, in
// one pass (the exponent bits are checked branch-free, so it vectorises).
bool copy_finite(const MatrixMap& src, Matrix& dst);
// Whether every one of the n floats at p is finite (same test, no copy).
bool all_finite(const float* p, std::ptrdiff_t n);

// Throws kvlab::Error "<what>: expected shape [..] <axes>, found [..]" unless
// t.dim(i) == expected[i] wherever expected[i] >= 0 (rank = expected.size()).
void expect_shape(const FloatTensor& t, std::initializer_list<int> expected);

// A new C-contiguous float32 array of `shape` (uninitialised).
py::array_t<float> new_float_array(const std::vector<py::ssize_t>& shape);
py::array_t<bool> new_bool_array(const std::vector<py::ssize_t>& shape);

// {"codes", "metadata", "sparse", "lowrank", "fp16", "index", "total"}: the
// names of summary.csv's bits_* columns.
py::dict bits_dict(const BitCount& bits);

// The shape as text: "[2, 16, 8]".
std::string shape_text(const std::vector<py::ssize_t>& shape);

}  // namespace kvlab::python
