#pragma once
// Checks that a dataset's elements are really stored in the file, made
// before anything is allocated from its declared shape.
//
// A 10 KB file can declare a [1M, 2^28, 2^26] dataset: chunked storage with
// no chunk written reads as fill values, so without these checks a reader
// allocates whatever the header says. Each error is one line
// "<where>: <what is wrong>", where `where` is "<file>: <dataset>".
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

namespace kvlab::io {

// Refuses what would make HDF5 read bytes from somewhere other than this
// file or run decoders kvlab does not vouch for: virtual datasets, external
// raw-data files, and filters other than deflate, shuffle and fletcher32.
void check_storage_kind(hid_t dataset, const std::string& where);

// Checks that every element of `shape` (of `element_size` bytes) is stored:
// contiguous or compact data must hold exactly that many bytes inside the
// file; chunked data must have every chunk written, its chunks must fit in the
// file and hold at least their decoded size (at most deflate's 1032:1 less
// when deflate is on). Returns the bytes of one chunk as HDF5 decodes it (0 for
// contiguous and compact data): a read holds at least one chunk in memory.
std::uint64_t check_storage_size(hid_t dataset, const std::vector<hsize_t>& shape, std::size_t element_size,
                        std::uint64_t file_size, const std::string& where);

// prod(shape) * element_size, saturating at UINT64_MAX.
std::uint64_t declared_bytes(const std::vector<hsize_t>& shape, std::size_t element_size);

// "3.2 GB", "512 KB", "17 bytes"
std::string format_bytes(std::uint64_t bytes);

}  // namespace kvlab::io
