#include "arrays.hpp"

#include <fmt/format.h>

#include <bit>
#include <cstdint>

#include "kvlab/core/error.hpp"

namespace kvlab::python {

namespace {

// obj as an ndarray (np.asarray: __array__ for torch tensors), no copy when
// it already is one.
py::array as_ndarray(py::handle obj, const char* what) {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  try {
    return py::module_::import("numpy").attr("asarray")(obj);
  } catch (py::error_already_set& e) {
    throw py::type_error(fmt::format("{}: cannot be read as an array ({}: {})", what,
                                     py::str(e.type().attr("__name__")).cast<std::string>(),
                                     py::str(e.value()).cast<std::string>()));
  }
}

// The last axis adjacent in memory and every stride a whole number of floats.
bool rows_contiguous(const py::array& a) {
  const py::ssize_t n = a.ndim();
  for (py::ssize_t i = 0; i < n; ++i)
    if (a.strides(i) < 0 || a.strides(i) % static_cast<py::ssize_t>(sizeof(float)) != 0) return false;
  return a.shape(n - 1) <= 1 || a.strides(n - 1) == static_cast<py::ssize_t>(sizeof(float));
}

std::string dims_text(const py::ssize_t* shape, int n) {
  return fmt::format("[{}]", fmt::join(shape, shape + n, ", "));
}

}  // namespace

std::string shape_text(const std::vector<py::ssize_t>& shape) { return dims_text(shape.data(), static_cast<int>(shape.size())); }

FloatTensor::FloatTensor(py::handle obj, const char* what, int rank, const char* axes)
    : what_(what), axes_(axes), rank_(rank) {
  KVLAB_ASSERT(rank >= 1 && rank <= 3);
  py::array a = as_ndarray(obj, what);
  if (a.dtype().kind() != 'f')
    throw py::type_error(fmt::format("{}: expected floating-point values, found dtype {}", what,
                                     py::str(a.dtype()).cast<std::string>()));
  if (a.ndim() != rank)
    fail("{}: expected {} axes {}, found shape {}", what, rank, axes, dims_text(a.shape(), static_cast<int>(a.ndim())));
  if (py::isinstance<py::array_t<float>>(a) && rows_contiguous(a))
    array_ = py::reinterpret_borrow<py::array_t<float>>(a);
  else  // float64/float16, another byte order, or rows not adjacent: one converted copy
    array_ = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!array_) throw py::error_already_set();
  for (int i = 0; i < rank; ++i) {
    shape_[static_cast<std::size_t>(i)] = array_.shape(i);
    stride_[static_cast<std::size_t>(i)] = array_.strides(i) / static_cast<py::ssize_t>(sizeof(float));
  }
  data_ = array_.data();
}

MatrixMap FloatTensor::matrix(int i) const {
  KVLAB_ASSERT(rank_ >= 2);
  const std::size_t r = static_cast<std::size_t>(rank_);
  const float* base = data_ + (rank_ == 3 ? static_cast<py::ssize_t>(i) * stride_[0] : 0);
  const py::ssize_t rows = shape_[r - 2], cols = shape_[r - 1];
  // One row's outer stride is irrelevant (and may be anything); Eigen wants >= cols.
  const py::ssize_t outer = rows <= 1 ? cols : stride_[r - 2];
  return MatrixMap(base, rows, cols, Eigen::OuterStride<>(outer));
}

RowMap FloatTensor::row(int r) const {
  const float* base = data_ + (rank_ == 2 ? static_cast<py::ssize_t>(r) * stride_[0] : 0);
  return RowMap(base, shape_[static_cast<std::size_t>(rank_ - 1)]);
}

MatrixMap FloatTensor::row_matrix(int r) const {
  const RowMap v = row(r);
  return MatrixMap(v.data(), 1, v.size(), Eigen::OuterStride<>(v.size()));
}

void FloatTensor::check_finite() const {
  // Rows of the last axis in index order, so the first bad element is named.
  const std::size_t n = static_cast<std::size_t>(rank_);
  const py::ssize_t cols = shape_[n - 1];
  py::ssize_t rows = 1;
  for (std::size_t i = 0; i + 1 < n; ++i) rows *= shape_[i];
  for (py::ssize_t o = 0; o < rows; ++o) {
    std::array<py::ssize_t, 3> index{};
    py::ssize_t rest = o, offset = 0;
    for (std::size_t i = n - 1; i-- > 0;) {
      index[i] = rest % shape_[i];
      rest /= shape_[i];
      offset += index[i] * stride_[i];
    }
    const RowMap row(data_ + offset, cols);
    if (all_finite(row.data(), cols)) continue;
    for (py::ssize_t c = 0; c < cols; ++c)
      if (!std::isfinite(row[c])) {
        index[n - 1] = c;
        fail("{}: non-finite value {} at {}", what_, row[c], dims_text(index.data(), rank_));
      }
  }
}

namespace {

// NaN and ±Inf are the floats whose exponent bits are all ones.
inline std::uint32_t non_finite(float x) {
  constexpr std::uint32_t exponent = 0x7f800000u;
  return (std::bit_cast<std::uint32_t>(x) & exponent) == exponent ? 1u : 0u;
}

}  // namespace

bool all_finite(const float* p, std::ptrdiff_t n) {
  std::uint32_t bad = 0;
  for (std::ptrdiff_t i = 0; i < n; ++i) bad |= non_finite(p[i]);
  return bad == 0;
}

bool copy_finite(const MatrixMap& src, Matrix& dst) {
  dst.resize(src.rows(), src.cols());
  const std::ptrdiff_t cols = src.cols();
  std::uint32_t bad = 0;
  for (Eigen::Index r = 0; r < src.rows(); ++r) {
    const float* in = src.data() + r * src.outerStride();
    float* out = dst.data() + r * cols;
    for (std::ptrdiff_t c = 0; c < cols; ++c) {
      out[c] = in[c];
      bad |= non_finite(in[c]);
    }
  }
  return bad == 0;
}

void expect_shape(const FloatTensor& t, std::initializer_list<int> expected) {
  bool ok = static_cast<int>(expected.size()) == t.rank();
  int i = 0;
  for (const int e : expected) {
    if (ok && e >= 0 && e != t.dim(i)) ok = false;
    ++i;
  }
  if (ok) return;
  std::vector<std::string> want, found;
  for (const int e : expected) want.push_back(e < 0 ? "*" : std::to_string(e));
  for (int j = 0; j < t.rank(); ++j) found.push_back(std::to_string(t.dim(j)));
  fail("{}: expected shape [{}] {}, found [{}]", t.what(), fmt::join(want, ", "), t.axes(), fmt::join(found, ", "));
}

py::array_t<float> new_float_array(const std::vector<py::ssize_t>& shape) { return py::array_t<float>(shape); }
py::array_t<bool> new_bool_array(const std::vector<py::ssize_t>& shape) { return py::array_t<bool>(shape); }

py::dict bits_dict(const BitCount& bits) {
  py::dict d;
  d["codes"] = bits.codes;
  d["metadata"] = bits.metadata;
  d["sparse"] = bits.sparse;
  d["lowrank"] = bits.lowrank;
  d["fp16"] = bits.fp16_buffer;
  d["index"] = bits.index;
  d["total"] = bits.total();
  return d;
}

}  // namespace kvlab::python
