#include "kvlab/io/hdf5_storage.hpp"

#include <fmt/format.h>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab::io {

namespace {

// zlib's deflate cannot compress better than 1032:1 (RFC 1951: a 258-byte
// match costs at least 2 bits).
constexpr std::uint64_t kDeflateMaxRatio = 1032;

std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > UINT64_MAX / a) return UINT64_MAX;
  return a * b;
}

bool has_filter(hid_t dcpl, H5Z_filter_t wanted) {
  const int n = H5Pget_nfilters(dcpl);
  for (int i = 0; i < n; ++i) {
    unsigned flags = 0;
    std::size_t nelem = 0;
    if (H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &nelem, nullptr, 0, nullptr, nullptr) == wanted)
      return true;
  }
  return false;
}

}  // namespace

std::uint64_t declared_bytes(const std::vector<hsize_t>& shape, std::size_t element_size) {
  std::uint64_t n = element_size;
  for (const hsize_t dim : shape) n = saturating_mul(n, dim);
  return n;
}

std::string format_bytes(std::uint64_t bytes) {
  if (bytes == UINT64_MAX) return "more than 16 EB";
  const char* units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
  if (bytes < 1000) return fmt::format("{} bytes", bytes);
  double v = static_cast<double>(bytes) / 1000.0;
  std::size_t u = 0;
  while (v >= 1000.0 && u + 1 < std::size(units)) {
    v /= 1000.0;
    ++u;
  }
  return fmt::format("{:.{}f} {}", v, v < 10 ? 1 : 0, units[u]);
}

void check_storage_kind(hid_t dataset, const std::string& where) {
  PropListHandle dcpl(H5Dget_create_plist(dataset));
  if (!dcpl) fail_file("{}: cannot read the dataset's storage properties ({})", where, last_hdf5_error());
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  if (layout == H5D_VIRTUAL)
    fail_file("{}: is a virtual dataset (its data lives in other files); kvlab reads only data stored in the file itself",
         where);
  if (layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED && layout != H5D_COMPACT)
    fail_file("{}: unknown storage layout ({})", where, static_cast<int>(layout));
  const int external = H5Pget_external_count(dcpl.get());
  if (external != 0)
    fail_file("{}: keeps its data in {} external file(s); kvlab reads only data stored in the file itself", where,
         external);
  const int filters = H5Pget_nfilters(dcpl.get());
  if (filters < 0) fail_file("{}: cannot read the dataset's filter pipeline ({})", where, last_hdf5_error());
  for (int i = 0; i < filters; ++i) {
    unsigned flags = 0;
    std::size_t nelem = 0;
    char name[64] = {};
    const H5Z_filter_t id =
        H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nelem, nullptr, sizeof name, name, nullptr);
    if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32)
      fail_file("{}: compressed with HDF5 filter {} ({}); kvlab reads only deflate (gzip), shuffle and fletcher32", where,
           id, quoted(name));
  }
}

std::uint64_t check_storage_size(hid_t dataset, const std::vector<hsize_t>& shape, std::size_t element_size,
                                 std::uint64_t file_size, const std::string& where) {
  const std::uint64_t bytes = declared_bytes(shape, element_size);
  const std::string declared = fmt::format("declares {} elements of {} bytes ({})", shape_to_string(shape),
                                           element_size, format_bytes(bytes));
  if (bytes == 0) return 0;
  PropListHandle dcpl(H5Dget_create_plist(dataset));
  if (!dcpl) fail_file("{}: cannot read the dataset's storage properties ({})", where, last_hdf5_error());
  const H5D_layout_t layout = H5Pget_layout(dcpl.get());
  const std::uint64_t stored = H5Dget_storage_size(dataset);

  if (layout != H5D_CHUNKED) {
    if (stored < bytes)
      fail_file("{}: {} but stores {} (unwritten or truncated data)", where, declared, format_bytes(stored));
    if (layout == H5D_CONTIGUOUS) {
      const haddr_t offset = H5Dget_offset(dataset);
      if (offset == HADDR_UNDEF || offset > file_size || bytes > file_size - offset)
        fail_file("{}: {} at file offset {}, past the end of the file ({} bytes): truncated or corrupt", where, declared,
             offset == HADDR_UNDEF ? std::string("(none)") : std::to_string(offset), file_size);
    }
    return 0;
  }

  const int rank = static_cast<int>(shape.size());
  std::vector<hsize_t> chunk(shape.size(), 0);
  if (H5Pget_chunk(dcpl.get(), rank, chunk.data()) != rank)
    fail_file("{}: chunk shape does not match the dataset's rank {} ({})", where, rank, last_hdf5_error());
  std::uint64_t needed_chunks = 1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (chunk[i] == 0) fail_file("{}: chunk shape {} has a zero dimension", where, shape_to_string(chunk));
    needed_chunks = saturating_mul(needed_chunks, (shape[i] + chunk[i] - 1) / chunk[i]);
  }
  DataspaceHandle space(H5Dget_space(dataset));
  hsize_t written = 0;
  if (!space || H5Dget_num_chunks(dataset, space.get(), &written) < 0)
    fail_file("{}: cannot read the chunk index, file truncated or corrupt ({})", where, last_hdf5_error());
  if (written < needed_chunks)
    fail_file("{}: {} in {} chunks of {}, but only {} chunk(s) are written (a kvdump stores every element)", where,
         declared, needed_chunks, shape_to_string(chunk), written);
  if (stored > file_size)
    fail_file("{}: its chunks claim {}, more than the whole file ({} bytes): corrupt chunk index", where,
         format_bytes(stored), file_size);
  // Every written chunk decodes to a whole chunk (edge chunks too).
  const std::uint64_t chunk_bytes = declared_bytes(chunk, element_size);
  const std::uint64_t decoded = saturating_mul(written, chunk_bytes);
  const std::string chunks = fmt::format("{} chunk(s) of {} ({} decoded)", written, shape_to_string(chunk),
                                         format_bytes(decoded));
  if (has_filter(dcpl.get(), H5Z_FILTER_DEFLATE)) {
    if (saturating_mul(stored, kDeflateMaxRatio) < decoded)
      fail_file("{}: {} stored in {} bytes, beyond deflate's best ratio of {}:1: corrupt", where, chunks, stored,
           kDeflateMaxRatio);
  } else if (stored < decoded) {
    fail_file("{}: {} stored in only {} bytes (truncated or corrupt)", where, chunks, stored);
  }
  return chunk_bytes;
}

}  // namespace kvlab::io
