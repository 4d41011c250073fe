#include "kvlab/io/hdf5_checked.hpp"

#include <Eigen/Core>
#include <fmt/format.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "kvlab/core/error.hpp"
#include "kvlab/core/fp16.hpp"
#include "kvlab/io/hdf5_errors.hpp"

namespace kvlab::io {

std::string layer_path(int layer, const char* name) { return fmt::format("/layers/{}/{}", layer, name); }

bool path_exists(hid_t file, const std::string& path) {
  std::size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) {
    if (H5Lexists(file, path.substr(0, pos).c_str(), H5P_DEFAULT) <= 0) return false;
  }
  return H5Lexists(file, path.c_str(), H5P_DEFAULT) > 0;
}

namespace {

bool is_dataset(hid_t file, const std::string& path) {
  H5O_info_t info;
  if (H5Oget_info_by_name(file, path.c_str(), &info, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

}  // namespace

CheckedFile::CheckedFile(const std::string& path, const char* kind) : path_(path) {
  silence_hdf5_errors();
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (!fs::exists(status)) fail_file("{}: no such file", path);
  if (fs::is_directory(status)) fail_file("{}: is a directory, expected a {} HDF5 file", path, kind);
  if (std::FILE* probe = std::fopen(path.c_str(), "rb")) {
    std::fclose(probe);
  } else {
    fail_file("{}: cannot be read ({})", path, std::strerror(errno));
  }
  if (fs::file_size(path, ec) == 0) fail_file("{}: not an HDF5 file (the file is empty)", path);
  if (H5Fis_hdf5(path.c_str()) <= 0) fail_file("{}: not an HDF5 file (no HDF5 signature found)", path);
  file_ = FileHandle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file_) {
    const std::string reason = last_hdf5_error();
    fail_file("{}: HDF5 file is truncated or corrupt, cannot be opened ({})", path, reason.empty() ? "unknown" : reason);
  }
}

void CheckedFile::bad(const std::string& what) const { fail_file("{}: {}", path_, what); }

DatasetHandle CheckedFile::open_dataset(const std::string& dataset) const {
  if (!path_exists(file_.get(), dataset)) bad(fmt::format("missing dataset {}", dataset));
  if (!is_dataset(file_.get(), dataset))
    bad(fmt::format("{}: expected a dataset, found a group or other object", dataset));
  DatasetHandle ds(H5Dopen2(file_.get(), dataset.c_str(), H5P_DEFAULT));
  if (!ds) bad(fmt::format("{}: cannot open dataset, file truncated or corrupt ({})", dataset, last_hdf5_error()));
  return ds;
}

std::size_t CheckedFile::check_float_tensor(const std::string& dataset, const std::vector<hsize_t>& expected,
                                            const std::string& dims_meaning) const {
  DatasetHandle ds = open_dataset(dataset);
  const std::vector<hsize_t> shape = dataset_shape(ds.get());
  if (shape.size() != expected.size())
    bad(fmt::format("{}: expected rank {} {} = {}, found rank {} {}", dataset, expected.size(), dims_meaning,
                    shape_to_string(expected), shape.size(), shape_to_string(shape)));
  if (shape != expected)
    bad(fmt::format("{}: expected shape {} {}, found {}", dataset, shape_to_string(expected), dims_meaning,
                    shape_to_string(shape)));
  DatatypeHandle type(H5Dget_type(ds.get()));
  const std::size_t size = H5Tget_size(type.get());
  if (H5Tget_class(type.get()) != H5T_FLOAT || (size != 2 && size != 4 && size != 8))
    bad(fmt::format("{}: expected float16, float32 or float64 elements, found {}", dataset,
                    describe_type(type.get())));
  return size;
}

FloatReader::FloatReader(const CheckedFile& file, const std::string& dataset)
    : file_(file), dataset_(dataset), ds_(file.open_dataset(dataset)), type_(H5Dget_type(ds_.get())),
      raw_half_(is_ieee_half_le(type_.get())) {}

void FloatReader::read_all(float* dst, std::size_t count, const char* noun, const Locate& locate) {
  read_into(dst, count, H5S_ALL, H5S_ALL, "", noun, locate);
}

void FloatReader::read_block(float* dst, const std::vector<hsize_t>& start, const std::vector<hsize_t>& count,
                             const std::string& part, const char* noun, const Locate& locate) {
  DataspaceHandle file_space(H5Dget_space(ds_.get()));
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0)
    file_.bad(fmt::format("{}: cannot select {} ({})", dataset_, part, last_hdf5_error()));
  const std::size_t rank = count.size();
  const hsize_t mem_dims[2] = {rank >= 2 ? count[rank - 2] : 1, count[rank - 1]};
  DataspaceHandle mem_space(H5Screate_simple(2, mem_dims, nullptr));
  read_into(dst, static_cast<std::size_t>(mem_dims[0] * mem_dims[1]), mem_space.get(), file_space.get(), part, noun,
            locate);
}

void FloatReader::read_into(float* dst, std::size_t n, hid_t mem_space, hid_t file_space, const std::string& part,
                            const char* noun, const Locate& locate) {
  herr_t status;
  if (raw_half_) {
    half_.resize(n);
    status = H5Dread(ds_.get(), type_.get(), mem_space, file_space, H5P_DEFAULT, half_.data());
  } else {
    status = H5Dread(ds_.get(), H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, dst);
  }
  if (status < 0) {
    if (part.empty())
      file_.bad(fmt::format("{}: read failed, file truncated or corrupt ({})", dataset_, last_hdf5_error()));
    file_.bad(fmt::format("{}: read of {} failed, file truncated or corrupt ({})", dataset_, part,
                          last_hdf5_error()));
  }
  if (raw_half_) decode_half(half_.data(), dst, n, decode_threads_);
  const Eigen::Map<const Eigen::ArrayXf> values(dst, static_cast<Eigen::Index>(n));
  if (values.allFinite()) return;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(dst[i])) file_.bad(fmt::format("{}: non-finite {} {} at {}", dataset_, noun, dst[i], locate(i)));
}

}  // namespace kvlab::io
