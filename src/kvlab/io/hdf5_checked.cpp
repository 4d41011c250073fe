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
#include "kvlab/io/hdf5_storage.hpp"
#include "kvlab/io/probe_process.hpp"

namespace kvlab::io {

std::string layer_path(int layer, const char* name) { return fmt::format("/layers/{}/{}", layer, name); }

namespace {

// Prefixes of an absolute HDF5 path: "/a/b/c" -> "/a", "/a/b", "/a/b/c".
std::vector<std::string> path_prefixes(const std::string& path) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = path.find('/', pos + 1)) != std::string::npos) out.push_back(path.substr(0, pos));
  out.push_back(path);
  return out;
}

bool is_hard_link(hid_t file, const std::string& path) {
  H5L_info_t info;
  return H5Lget_info(file, path.c_str(), &info, H5P_DEFAULT) >= 0 && info.type == H5L_TYPE_HARD;
}

bool is_dataset(hid_t file, const std::string& path) {
  H5O_info_t info;
  if (H5Oget_info_by_name2(file, path.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
  return info.type == H5O_TYPE_DATASET;
}

// "a soft link to \"/x\"", "an external link to \"f.h5\" object \"/x\"".
std::string describe_link(hid_t file, const std::string& path) {
  H5L_info_t info;
  if (H5Lget_info(file, path.c_str(), &info, H5P_DEFAULT) < 0) return "a link that cannot be read";
  if (info.type != H5L_TYPE_SOFT && info.type != H5L_TYPE_EXTERNAL)
    return fmt::format("a user-defined link (type {})", static_cast<int>(info.type));
  const char* kind = info.type == H5L_TYPE_SOFT ? "a soft link" : "an external link";
  if (info.u.val_size == 0 || info.u.val_size > 4096) return kind;
  std::vector<char> value(info.u.val_size, '\0');
  if (H5Lget_val(file, path.c_str(), value.data(), value.size(), H5P_DEFAULT) < 0) return kind;
  if (info.type == H5L_TYPE_SOFT)
    return fmt::format("{} to {}", kind, quoted(std::string_view(value.data(), strnlen(value.data(), value.size()))));
  unsigned flags = 0;
  const char* target_file = nullptr;
  const char* target_object = nullptr;
  if (H5Lunpack_elink_val(value.data(), value.size(), &flags, &target_file, &target_object) < 0) return kind;
  return fmt::format("{} to {} object {}", kind, quoted(target_file), quoted(target_object));
}

}  // namespace

bool path_exists(hid_t file, const std::string& path) {
  note_reading(path);
  // Component by component, never through a soft or external link: H5Lexists
  // on "/a/b" would follow "/a" wherever it points, even into another file.
  for (const std::string& prefix : path_prefixes(path)) {
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (!is_hard_link(file, prefix)) return true;  // CheckedFile::check_plain_path says why it is refused
  }
  return true;
}

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
  if (!fs::is_regular_file(status)) fail_file("{}: not a regular file, expected a {} HDF5 file", path, kind);
  file_size_ = fs::file_size(path, ec);
  if (ec || file_size_ == 0) fail_file("{}: not an HDF5 file (the file is empty)", path);
  note_reading("the file header (superblock)");
  if (H5Fis_hdf5(path.c_str()) <= 0) fail_file("{}: not an HDF5 file (no HDF5 signature found)", path);
  file_ = FileHandle(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
  if (!file_) {
    const std::string reason = last_hdf5_error();
    fail_file("{}: HDF5 file is truncated or corrupt, cannot be opened ({})", path, reason.empty() ? "unknown" : reason);
  }
}

void CheckedFile::bad(const std::string& what) const { fail_file("{}: {}", path_, what); }

void CheckedFile::check_plain_path(const std::string& path) const {
  for (const std::string& prefix : path_prefixes(path)) {
    if (H5Lexists(file_.get(), prefix.c_str(), H5P_DEFAULT) <= 0) return;
    if (!is_hard_link(file_.get(), prefix))
      bad(fmt::format("{}: is {}; kvlab reads only objects stored in the file under their own path, and never "
                      "follows links",
                      prefix, describe_link(file_.get(), prefix)));
  }
}

DatasetHandle CheckedFile::open_dataset(const std::string& dataset) const {
  note_reading(dataset);
  check_plain_path(dataset);
  if (!path_exists(file_.get(), dataset)) bad(fmt::format("missing dataset {}", dataset));
  if (!is_dataset(file_.get(), dataset))
    bad(fmt::format("{}: expected a dataset, found a group or other object", dataset));
  DatasetHandle ds(H5Dopen2(file_.get(), dataset.c_str(), H5P_DEFAULT));
  if (!ds) bad(fmt::format("{}: cannot open dataset, file truncated or corrupt ({})", dataset, last_hdf5_error()));
  check_storage_kind(ds.get(), fmt::format("{}: {}", path_, dataset));
  return ds;
}

std::size_t CheckedFile::check_float_tensor(const std::string& dataset, const std::vector<hsize_t>& expected,
                                            const std::string& dims_meaning) const {
  return check_tensor_storage(dataset, expected, dims_meaning).element_size;
}

CheckedFile::TensorStorage CheckedFile::check_tensor_storage(const std::string& dataset,
                                                             const std::vector<hsize_t>& expected,
                                                             const std::string& dims_meaning) const {
  DatasetHandle ds = open_dataset(dataset);
  note_reading(fmt::format("{} (shape, type and chunk index)", dataset));
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
  TensorStorage storage;
  storage.element_size = size;
  storage.chunk_bytes = check_storage_size(ds.get(), shape, size, file_size_, fmt::format("{}: {}", path_, dataset));
  return storage;
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
  note_reading(part.empty() ? fmt::format("{} (data)", dataset_) : fmt::format("{} (data of {})", dataset_, part));
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
  if (raw_half_ ? decode_half(half_.data(), dst, n, decode_threads_)
                : Eigen::Map<const Eigen::ArrayXf>(dst, static_cast<Eigen::Index>(n)).allFinite())
    return;
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(dst[i])) file_.bad(fmt::format("{}: non-finite {} {} at {}", dataset_, noun, dst[i], locate(i)));
}

}  // namespace kvlab::io
