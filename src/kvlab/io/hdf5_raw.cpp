#include "kvlab/io/hdf5_raw.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab::io {

namespace {

constexpr const char* kRawHeapIdTag = "kvlab: raw global heap id";

// Soft conversion "variable-length string -> opaque with our tag" that moves
// no byte: the attribute's stored heap IDs come out exactly as in the file.
herr_t pass_raw_heap_id(hid_t src, hid_t dst, H5T_cdata_t* cdata, size_t, size_t, size_t, void*, void*, hid_t) {
  switch (cdata->command) {
    case H5T_CONV_INIT: {
      if (H5Tis_variable_str(src) <= 0 || H5Tget_class(dst) != H5T_OPAQUE) return -1;
      char* tag = H5Tget_tag(dst);
      const bool ours = tag != nullptr && std::strcmp(tag, kRawHeapIdTag) == 0;
      if (tag != nullptr) H5free_memory(tag);
      if (!ours) return -1;
      cdata->need_bkg = H5T_BKG_NO;
      return 0;
    }
    case H5T_CONV_CONV: return H5Tget_size(src) == H5Tget_size(dst) ? 0 : -1;
    case H5T_CONV_FREE: return 0;
  }
  return -1;
}

void register_pass_through() {
  static bool registered = false;  // HDF5 is used from one thread at a time
  if (registered) return;
  DatatypeHandle vlen_string(H5Tcopy(H5T_C_S1));
  H5Tset_size(vlen_string.get(), H5T_VARIABLE);
  DatatypeHandle raw(H5Tcreate(H5T_OPAQUE, 16));
  H5Tset_tag(raw.get(), kRawHeapIdTag);
  if (H5Tregister(H5T_PERS_SOFT, "kvlab_raw_heap_id", vlen_string.get(), raw.get(), pass_raw_heap_id) < 0)
    fail("cannot register kvlab's HDF5 heap-id conversion ({})", last_hdf5_error());
  registered = true;
}

// Little-endian unsigned integer of `n` bytes (HDF5 encodes addresses and
// lengths of any width little endian).
std::uint64_t decode_le(const unsigned char* p, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

std::uint64_t align8(std::uint64_t n) { return (n + 7) / 8 * 8; }

// The bytes behind an open HDF5 file: its POSIX file, the base address of
// HDF5 addresses (the user block) and the widths of addresses and lengths.
class RawFile {
 public:
  explicit RawFile(hid_t object) {
    FileHandle file(H5Iget_file_id(object));
    if (!file) return;
    PropListHandle fcpl(H5Fget_create_plist(file.get()));
    hsize_t userblock = 0;
    if (!fcpl || H5Pget_sizes(fcpl.get(), &sizeof_addr_, &sizeof_size_) < 0 ||
        H5Pget_userblock(fcpl.get(), &userblock) < 0)
      return;
    base_ = userblock;
    PropListHandle fapl(H5Fget_access_plist(file.get()));
    void* handle = nullptr;
    if (fapl && H5Pget_driver(fapl.get()) == H5FD_SEC2 && H5Fget_vfd_handle(file.get(), fapl.get(), &handle) >= 0 &&
        handle != nullptr) {
      fd_ = *static_cast<int*>(handle);
    } else {  // another driver: read the file by its name
      const ssize_t len = H5Fget_name(file.get(), nullptr, 0);
      if (len <= 0) return;
      std::string name(static_cast<std::size_t>(len) + 1, '\0');
      H5Fget_name(file.get(), name.data(), name.size());
      fd_ = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
      owned_ = fd_ >= 0;
    }
    struct stat st {};
    if (fd_ >= 0 && ::fstat(fd_, &st) == 0 && st.st_size > 0) size_ = static_cast<std::uint64_t>(st.st_size);
  }
  ~RawFile() {
    if (owned_) ::close(fd_);
  }
  RawFile(const RawFile&) = delete;
  RawFile& operator=(const RawFile&) = delete;

  bool valid() const { return fd_ >= 0 && size_ > 0 && sizeof_addr_ >= 2 && sizeof_addr_ <= 8 && sizeof_size_ >= 2 && sizeof_size_ <= 8; }
  std::uint64_t size() const { return size_; }
  std::size_t sizeof_addr() const { return sizeof_addr_; }
  std::size_t sizeof_size() const { return sizeof_size_; }

  // True when the `n` bytes at HDF5 address `addr` lie inside the file.
  bool contains(std::uint64_t addr, std::uint64_t n) const {
    return addr <= size_ && base_ <= size_ - addr && n <= size_ - addr - base_;
  }
  // Reads `n` bytes at HDF5 address `addr`; the caller checked contains().
  bool read(std::uint64_t addr, void* dst, std::size_t n) const {
    auto* out = static_cast<unsigned char*>(dst);
    std::uint64_t offset = base_ + addr;
    while (n > 0) {
      const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(offset));
      if (got <= 0) return false;
      out += got;
      offset += static_cast<std::uint64_t>(got);
      n -= static_cast<std::size_t>(got);
    }
    return true;
  }

 private:
  int fd_ = -1;
  bool owned_ = false;
  std::uint64_t size_ = 0, base_ = 0;
  std::size_t sizeof_addr_ = 0, sizeof_size_ = 0;
};

// The bytes of object `index` of the global heap collection at `addr`,
// whose size must be `length`. Every offset is checked against the
// collection, and the collection against the file.
std::string read_heap_object(const RawFile& raw, std::uint64_t addr, std::uint64_t index, std::uint64_t length,
                             const std::string& where) {
  const std::size_t ss = raw.sizeof_size();
  const std::uint64_t header = align8(8 + ss);  // "GCOL", version, 3 reserved, collection size
  const std::uint64_t object_header = align8(8 + ss);  // index, refcount, 4 reserved, object size
  if (!raw.contains(addr, header))
    fail_file("{}: corrupt string reference: heap address {} lies beyond the end of the file ({} bytes)", where, addr,
         raw.size());
  unsigned char head[32];
  if (!raw.read(addr, head, static_cast<std::size_t>(header)))
    fail_file("{}: cannot read the global heap at address {}", where, addr);
  if (std::memcmp(head, "GCOL", 4) != 0 || head[4] != 1)
    fail_file("{}: corrupt string reference: no global heap collection at address {}", where, addr);
  const std::uint64_t collection = decode_le(head + 8, ss);
  if (collection < header || !raw.contains(addr, collection))
    fail_file("{}: corrupt global heap at address {}: its size {} runs past the end of the file ({} bytes)", where, addr,
         collection, raw.size());
  std::vector<unsigned char> bytes(static_cast<std::size_t>(collection));
  if (!raw.read(addr, bytes.data(), bytes.size())) fail_file("{}: cannot read the global heap at address {}", where, addr);

  std::uint64_t p = header;
  while (p + object_header <= collection) {
    const unsigned char* obj = bytes.data() + p;
    const std::uint64_t id = decode_le(obj, 2);
    const std::uint64_t size = decode_le(obj + 8, ss);
    const std::uint64_t room = collection - p;
    if (id == 0) {  // free space: the rest of the collection
      if (size == 0 || size > room) break;
      p += size;
      continue;
    }
    if (size > room - object_header)
      fail_file("{}: corrupt global heap at address {}: object {} of {} bytes runs past the collection's end", where, addr,
           id, size);
    if (id == index) {
      if (size != length)
        fail_file("{}: corrupt string: stored length {} differs from the {} bytes of its heap object", where, length, size);
      const char* data = reinterpret_cast<const char*>(obj + object_header);
      return std::string(data, strnlen(data, static_cast<std::size_t>(size)));
    }
    p += object_header + align8(size);
  }
  fail_file("{}: corrupt string reference: heap object {} not found in the collection at address {}", where, index, addr);
}

}  // namespace

std::uint64_t file_size_of(hid_t object) {
  const RawFile raw(object);
  return raw.valid() ? raw.size() : 0;
}

std::string read_vlen_string_attribute(hid_t attr, const std::string& where) {
  register_pass_through();
  const RawFile raw(attr);
  if (!raw.valid()) fail_file("{}: cannot inspect the file's bytes to check the string", where);
  const std::size_t id_size = 4 + raw.sizeof_addr() + 4;  // length, collection address, object index
  const hsize_t stored = H5Aget_storage_size(attr);
  if (stored != id_size)
    fail_file("{}: corrupt string attribute: {} bytes stored, expected one {}-byte heap reference", where, stored, id_size);

  DatatypeHandle raw_type(H5Tcreate(H5T_OPAQUE, id_size));
  H5Tset_tag(raw_type.get(), kRawHeapIdTag);
  std::vector<unsigned char> id(id_size);
  if (!raw_type || H5Aread(attr, raw_type.get(), id.data()) < 0)
    fail_file("{}: read failed ({})", where, last_hdf5_error());
  const std::uint64_t length = decode_le(id.data(), 4);
  const std::uint64_t addr = decode_le(id.data() + 4, raw.sizeof_addr());
  const std::uint64_t index = decode_le(id.data() + 4 + raw.sizeof_addr(), 4);
  if (addr == 0) return {};  // HDF5's null string
  if (length > raw.size())
    fail_file("{}: corrupt string: stored length {} exceeds the file size ({} bytes)", where, length, raw.size());
  if (index == 0 || index > 0xFFFF)
    fail_file("{}: corrupt string reference: heap object index {} out of range 1..65535", where, index);
  return read_heap_object(raw, addr, index, length, where);
}

}  // namespace kvlab::io
