#include "kvlab/io/hdf5_handle.hpp"

#include <fmt/format.h>

#include <cstdlib>
#include <cstring>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_raw.hpp"
#include "kvlab/io/probe_process.hpp"

namespace kvlab::io {

namespace {

std::string where(const std::string& file, const std::string& object_path, const std::string& name) {
  if (object_path.empty() || object_path == "/") return fmt::format("{}: root attribute '{}'", file, name);
  return fmt::format("{}: attribute '{}' of {}", file, name, object_path);
}

// Opens the attribute and checks that it holds exactly one element.
AttributeHandle open_single(hid_t object, const std::string& name, const std::string& file,
                            const std::string& object_path) {
  note_reading(object_path.empty() || object_path == "/" ? fmt::format("root attribute '{}'", name)
                                                         : fmt::format("attribute '{}' of {}", name, object_path));
  AttributeHandle attr(H5Aopen(object, name.c_str(), H5P_DEFAULT));
  if (!attr) fail_file("{}: cannot be opened ({})", where(file, object_path, name), last_hdf5_error());
  DataspaceHandle space(H5Aget_space(attr.get()));
  const hssize_t n = space ? H5Sget_simple_extent_npoints(space.get()) : -1;
  if (n != 1) fail_file("{}: expected a single value, found {} elements", where(file, object_path, name), n);
  return attr;
}

}  // namespace

bool has_attribute(hid_t object, const std::string& name) {
  note_reading(fmt::format("the attributes (looking for '{}')", name));
  return H5Aexists(object, name.c_str()) > 0;
}

std::optional<std::int64_t> read_int_attribute(hid_t object, const std::string& name, const std::string& file,
                                               const std::string& object_path) {
  if (!has_attribute(object, name)) return std::nullopt;
  AttributeHandle attr = open_single(object, name, file, object_path);
  DatatypeHandle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    fail_file("{}: expected an integer, found {}", where(file, object_path, name), describe_type(type.get()));
  // Read through a 64-bit memory type of the attribute's signedness; HDF5
  // converts any width and byte order.
  if (H5Tget_sign(type.get()) == H5T_SGN_NONE) {
    std::uint64_t value = 0;
    if (H5Aread(attr.get(), H5T_NATIVE_UINT64, &value) < 0)
      fail_file("{}: read failed ({})", where(file, object_path, name), last_hdf5_error());
    if (value > static_cast<std::uint64_t>(INT64_MAX))
      fail_file("{}: expected an integer that fits in int64, found {}", where(file, object_path, name), value);
    return static_cast<std::int64_t>(value);
  }
  std::int64_t value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, &value) < 0)
    fail_file("{}: read failed ({})", where(file, object_path, name), last_hdf5_error());
  return value;
}

std::optional<double> read_float_attribute(hid_t object, const std::string& name, const std::string& file,
                                           const std::string& object_path) {
  if (!has_attribute(object, name)) return std::nullopt;
  AttributeHandle attr = open_single(object, name, file, object_path);
  DatatypeHandle type(H5Aget_type(attr.get()));
  const H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    fail_file("{}: expected a number, found {}", where(file, object_path, name), describe_type(type.get()));
  double value = 0;
  if (H5Aread(attr.get(), H5T_NATIVE_DOUBLE, &value) < 0)
    fail_file("{}: read failed ({})", where(file, object_path, name), last_hdf5_error());
  return value;
}

std::optional<std::string> read_string_attribute(hid_t object, const std::string& name, const std::string& file,
                                                 const std::string& object_path) {
  if (!has_attribute(object, name)) return std::nullopt;
  AttributeHandle attr = open_single(object, name, file, object_path);
  DatatypeHandle type(H5Aget_type(attr.get()));
  if (H5Tget_class(type.get()) != H5T_STRING)
    fail_file("{}: expected a string, found {}", where(file, object_path, name), describe_type(type.get()));
  if (H5Tis_variable_str(type.get()) > 0) return read_vlen_string_attribute(attr.get(), where(file, object_path, name));
  const std::size_t size = H5Tget_size(type.get());
  const std::uint64_t file_bytes = file_size_of(attr.get());
  if (size == 0 || size > file_bytes)
    fail_file("{}: corrupt string attribute: fixed length {} against a file of {} bytes", where(file, object_path, name),
         size, file_bytes);
  const H5T_cset_t cset = H5Tget_cset(type.get());
  DatatypeHandle mem(H5Tcopy(H5T_C_S1));
  H5Tset_size(mem.get(), size + 1);  // room for a terminator
  H5Tset_strpad(mem.get(), H5T_STR_NULLTERM);
  H5Tset_cset(mem.get(), cset);
  std::string buffer(size + 1, '\0');
  if (H5Aread(attr.get(), mem.get(), buffer.data()) < 0)
    fail_file("{}: read failed ({})", where(file, object_path, name), last_hdf5_error());
  buffer.resize(std::strlen(buffer.c_str()));
  while (!buffer.empty() && buffer.back() == ' ') buffer.pop_back();  // H5T_STR_SPACEPAD
  return buffer;
}

std::vector<hsize_t> dataset_shape(hid_t dataset) {
  DataspaceHandle space(H5Dget_space(dataset));
  if (!space) return {};
  const int rank = H5Sget_simple_extent_ndims(space.get());
  if (rank <= 0) return {};
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
  return dims;
}

std::string shape_to_string(const std::vector<hsize_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

std::string describe_type(hid_t type) {
  const std::size_t bits = H5Tget_size(type) * 8;
  switch (H5Tget_class(type)) {
    case H5T_FLOAT: return fmt::format("float{}", bits);
    case H5T_INTEGER: return fmt::format("{}int{}", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_ENUM: return "enum";
    case H5T_ARRAY: return "array";
    case H5T_VLEN: return "vlen";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    case H5T_REFERENCE: return "reference";
    case H5T_TIME: return "time";
    default: return "unknown type";
  }
}

namespace {
void write_scalar(hid_t object, const std::string& name, hid_t file_type, hid_t mem_type, const void* data,
                  const std::string& file) {
  if (has_attribute(object, name)) H5Adelete(object, name.c_str());
  DataspaceHandle space(H5Screate(H5S_SCALAR));
  AttributeHandle attr(H5Acreate2(object, name.c_str(), file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT));
  if (!attr || H5Awrite(attr.get(), mem_type, data) < 0)
    fail_file("{}: cannot write attribute '{}' ({})", file, name, last_hdf5_error());
}
}  // namespace

void write_int_attribute(hid_t object, const std::string& name, std::int64_t value, const std::string& file) {
  write_scalar(object, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value, file);
}

void write_float_attribute(hid_t object, const std::string& name, double value, const std::string& file) {
  write_scalar(object, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value, file);
}

void write_string_attribute(hid_t object, const std::string& name, const std::string& value,
                            const std::string& file) {
  DatatypeHandle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  const char* data = value.c_str();
  write_scalar(object, name, type.get(), type.get(), &data, file);
}

DatatypeHandle make_float16_type() {
  DatatypeHandle type(H5Tcopy(H5T_IEEE_F32LE));
  H5Tset_fields(type.get(), 15, 10, 5, 0, 10);
  H5Tset_precision(type.get(), 16);
  H5Tset_size(type.get(), 2);
  H5Tset_ebias(type.get(), 15);
  return type;
}

bool is_ieee_half_le(hid_t type) {
  if (H5Tget_class(type) != H5T_FLOAT || H5Tget_size(type) != 2 || H5Tget_order(type) != H5T_ORDER_LE)
    return false;
  std::size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
  if (H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize) < 0) return false;
  return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 && H5Tget_ebias(type) == 15 &&
         H5Tget_precision(type) == 16 && H5Tget_offset(type) == 0 && H5Tget_norm(type) == H5T_NORM_IMPLIED;
}

}  // namespace kvlab::io
