#pragma once
// What kvlab reads from an HDF5 file's bytes itself, because HDF5 1.10.8
// trusts them.
//
// A variable-length string is stored as a "global heap ID" in the attribute
// (sequence length, address of a global heap collection, object index) and
// its bytes in that collection. HDF5 trusts all three: a flipped byte in the
// stored length overflows a heap buffer, a flipped index reads past the
// collection's object table (SIGSEGV in H5HG_read). So kvlab never lets HDF5
// dereference a heap ID: it reads the raw ID through a pass-through datatype
// conversion and parses the collection itself, checking every offset and size
// against the size of the file.
#include <hdf5.h>

#include <cstdint>
#include <string>

namespace kvlab::io {

// Size in bytes of the file that holds `object` (any HDF5 id of an open
// file), as it is on disk now; 0 when it cannot be determined.
std::uint64_t file_size_of(hid_t object);

// The value of a one-element variable-length string attribute. `where` names
// the attribute in error messages ("<file>: root attribute 'format'"); every
// error is a kvlab::Error "<where>: <what is wrong>". An embedded NUL ends the
// string (what HDF5's own conversion to a C string gives).
std::string read_vlen_string_attribute(hid_t attr, const std::string& where);

}  // namespace kvlab::io
