#pragma once
// Small RAII wrappers over HDF5 C-API identifiers (hid_t) and attribute
// helpers shared by DumpReader and DumpWriter.
//
// Not thread-safe: Debian's HDF5 is built without the thread-safe option, so
// every HDF5 call in kvlab happens on one thread.
#include <hdf5.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kvlab/io/quoted.hpp"

namespace kvlab::io {

// Owns one hid_t and closes it with Close (H5Fclose, H5Dclose, ...).
template <herr_t (*Close)(hid_t)>
class Hid {
 public:
  Hid() = default;
  explicit Hid(hid_t id) : id_(id) {}
  ~Hid() { reset(); }
  Hid(const Hid&) = delete;
  Hid& operator=(const Hid&) = delete;
  Hid(Hid&& other) noexcept : id_(std::exchange(other.id_, H5I_INVALID_HID)) {}
  Hid& operator=(Hid&& other) noexcept {
    if (this != &other) {
      reset();
      id_ = std::exchange(other.id_, H5I_INVALID_HID);
    }
    return *this;
  }

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  explicit operator bool() const { return valid(); }
  void reset() {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using FileHandle = Hid<H5Fclose>;
using GroupHandle = Hid<H5Gclose>;
using DatasetHandle = Hid<H5Dclose>;
using DataspaceHandle = Hid<H5Sclose>;
using DatatypeHandle = Hid<H5Tclose>;
using AttributeHandle = Hid<H5Aclose>;
using PropListHandle = Hid<H5Pclose>;

// ---- reading ---------------------------------------------------------------
// `file` names the file in error messages; `object` is the HDF5 path of the
// object carrying the attribute ("/" for the root). Every error is a
// kvlab::Error of one line: "<file>: attribute '<object>@<name>': expected X, found Y".

bool has_attribute(hid_t object, const std::string& name);
// Integer attribute of any HDF5 integer type (signed/unsigned, 8..64 bits,
// either byte order), scalar or a 1-element array. nullopt when absent.
std::optional<std::int64_t> read_int_attribute(hid_t object, const std::string& name,
                                               const std::string& file, const std::string& object_path);
// Float (or integer) attribute, scalar or 1-element. nullopt when absent.
std::optional<double> read_float_attribute(hid_t object, const std::string& name,
                                           const std::string& file, const std::string& object_path);
// String attribute, fixed or variable length (ASCII or UTF-8), scalar or
// 1-element. Trailing NULs/spaces of fixed-length strings are removed.
std::optional<std::string> read_string_attribute(hid_t object, const std::string& name,
                                                 const std::string& file, const std::string& object_path);

// Shape of a dataset's dataspace (empty for scalar).
std::vector<hsize_t> dataset_shape(hid_t dataset);
// "[2, 256, 32]"
std::string shape_to_string(const std::vector<hsize_t>& shape);
// Human-readable description of an HDF5 datatype: "float16", "float32",
// "float64", "int64", "uint8", "string", "compound", ...
std::string describe_type(hid_t type);

// ---- writing ---------------------------------------------------------------
// Scalar attributes; strings are variable-length UTF-8 (what h5py writes for
// a Python str). Throw kvlab::Error naming `file` on failure.
void write_int_attribute(hid_t object, const std::string& name, std::int64_t value, const std::string& file);
void write_float_attribute(hid_t object, const std::string& name, double value, const std::string& file);
void write_string_attribute(hid_t object, const std::string& name, const std::string& value,
                            const std::string& file);

// IEEE 754 binary16, little endian: the type h5py/numpy write for float16
// (built from H5T_IEEE_F32LE with fields 15/10/5/0/10, ebias 15).
DatatypeHandle make_float16_type();
// True when `type` is exactly that little-endian IEEE half layout, so its
// raw bytes can be decoded with kvlab::half_bits_to_float.
bool is_ieee_half_le(hid_t type);

}  // namespace kvlab::io
