#include "kvlab/model/vocabulary.hpp"

#include <fmt/format.h>

#include "kvlab/core/error.hpp"
#include "kvlab/io/hdf5_checked.hpp"
#include "kvlab/io/hdf5_errors.hpp"
#include "kvlab/io/hdf5_handle.hpp"

namespace kvlab {

using namespace kvlab::io;

Vocabulary Vocabulary::table(std::vector<std::int64_t> offsets, std::string data) {
  if (offsets.empty() || offsets.front() != 0) fail("vocabulary: offsets must start at 0");
  for (std::size_t i = 1; i < offsets.size(); ++i)
    if (offsets[i] < offsets[i - 1]) fail("vocabulary: offsets decrease at index {}", i);
  if (offsets.back() != static_cast<std::int64_t>(data.size()))
    fail("vocabulary: the last offset ({}) must equal the number of bytes ({})", offsets.back(), data.size());
  return Vocabulary(Kind::Table, std::move(offsets), std::move(data));
}

std::string Vocabulary::token(std::int64_t id) const {
  if (kind_ == Kind::Bytes && id >= 0 && id < 256) return std::string(1, static_cast<char>(id));
  if (kind_ == Kind::Table && id >= 0 && static_cast<std::size_t>(id) + 1 < offsets_.size()) {
    const auto i = static_cast<std::size_t>(id);
    return data_.substr(static_cast<std::size_t>(offsets_[i]), static_cast<std::size_t>(offsets_[i + 1] - offsets_[i]));
  }
  return fmt::format("<{}>", id);
}

std::string Vocabulary::decode(std::span<const std::int64_t> ids) const {
  std::string out;
  for (std::int64_t id : ids) out += token(id);
  return out;
}

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0.
std::size_t utf8_length(std::string_view s, std::size_t i) {
  const auto b = static_cast<unsigned char>(s[i]);
  std::size_t n = 0;
  unsigned min = 0;
  if (b < 0x80) return 1;
  if ((b & 0xE0) == 0xC0) { n = 2; min = 0x80; }
  else if ((b & 0xF0) == 0xE0) { n = 3; min = 0x800; }
  else if ((b & 0xF8) == 0xF0) { n = 4; min = 0x10000; }
  else return 0;
  if (i + n > s.size()) return 0;
  unsigned cp = b & (0x7F >> n);
  for (std::size_t k = 1; k < n; ++k) {
    const auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::string printable(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b == '\n') {
      out += "⏎";
      ++i;
    } else if (b == '\t') {
      out += "→";
      ++i;
    } else if (b < 0x20 || b == 0x7F) {
      out += "·";
      ++i;
    } else if (const std::size_t n = utf8_length(s, i); n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += fmt::format("\\x{:02X}", b);
      ++i;
    }
  }
  return out;
}

int printable_width(std::string_view s) {
  int w = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++w;  // count code points (lead bytes)
  return w;
}

namespace {

std::vector<hsize_t> shape_of(const CheckedFile& file, const std::string& name, DatasetHandle& ds) {
  ds = file.open_dataset(name);
  const std::vector<hsize_t> shape = dataset_shape(ds.get());
  if (shape.size() != 1) file.bad(fmt::format("{}: expected rank 1, found {}", name, shape_to_string(shape)));
  DatatypeHandle type(H5Dget_type(ds.get()));
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    file.bad(fmt::format("{}: expected integer elements, found {}", name, describe_type(type.get())));
  return shape;
}

}  // namespace

Vocabulary read_vocabulary(const CheckedFile& file, int vocab_size) {
  const auto kind = read_string_attribute(file.get(), "vocab_type", file.path(), "/");
  if (!kind) return {};
  if (*kind == "bytes") return Vocabulary::bytes();
  if (*kind != "table")
    file.bad(fmt::format("root attribute 'vocab_type': expected \"bytes\" or \"table\", found \"{}\"", *kind));
  DatasetHandle off_ds, bytes_ds;
  const auto off_shape = shape_of(file, "/vocab/offsets", off_ds);
  if (off_shape[0] != static_cast<hsize_t>(vocab_size) + 1)
    file.bad(fmt::format("/vocab/offsets: expected shape [{}] [vocab_size + 1], found {}", vocab_size + 1,
                         shape_to_string(off_shape)));
  const auto bytes_shape = shape_of(file, "/vocab/bytes", bytes_ds);
  std::vector<std::int64_t> offsets(off_shape[0]);
  std::string data(bytes_shape[0], '\0');
  if (H5Dread(off_ds.get(), H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data()) < 0)
    file.bad(fmt::format("/vocab/offsets: read failed ({})", last_hdf5_error()));
  if (!data.empty() && H5Dread(bytes_ds.get(), H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
    file.bad(fmt::format("/vocab/bytes: read failed ({})", last_hdf5_error()));
  try {
    return Vocabulary::table(std::move(offsets), std::move(data));
  } catch (const Error& e) {
    file.bad(fmt::format("/vocab: {}", std::string(e.what()).substr(std::string("vocabulary: ").size())));
  }
}

void write_vocabulary(hid_t file, const Vocabulary& vocab, const std::string& path) {
  if (vocab.kind() == Vocabulary::Kind::None) return;
  write_string_attribute(file, "vocab_type", vocab.kind() == Vocabulary::Kind::Bytes ? "bytes" : "table", path);
  if (vocab.kind() != Vocabulary::Kind::Table) return;
  auto write = [&](const char* name, hid_t type, hid_t mem_type, const void* data, hsize_t n) {
    DataspaceHandle space(H5Screate_simple(1, &n, nullptr));
    PropListHandle lcpl(H5Pcreate(H5P_LINK_CREATE));
    H5Pset_create_intermediate_group(lcpl.get(), 1);
    DatasetHandle ds(H5Dcreate2(file, name, type, space.get(), lcpl.get(), H5P_DEFAULT, H5P_DEFAULT));
    if (!ds || (n > 0 && H5Dwrite(ds.get(), mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0))
      fail("{}: cannot write dataset {} ({})", path, name, last_hdf5_error());
  };
  write("/vocab/offsets", H5T_STD_I64LE, H5T_NATIVE_INT64, vocab.offsets().data(), vocab.offsets().size());
  write("/vocab/bytes", H5T_STD_U8LE, H5T_NATIVE_UINT8, vocab.data().data(), vocab.data().size());
}

}  // namespace kvlab
