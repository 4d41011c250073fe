#pragma once
// The optional vocabulary of a kvlab-model file (docs/model-format.md), so
// that generated token ids can be shown as text:
//   root attribute vocab_type = "bytes": token id i < 256 is the byte i
//     (byte-level models); other ids have no text;
//   vocab_type = "table": /vocab/offsets int [vocab_size + 1] (non-decreasing,
//     from 0) and /vocab/bytes uint8 [offsets[vocab_size]]: token i is the
//     byte string bytes[offsets[i], offsets[i+1]) it decodes to.
// Absent: ids only. Token bytes need not be valid UTF-8 on their own (a
// character may span tokens); printable() makes any byte string safe to show.
#include <hdf5.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace kvlab {

namespace io {
class CheckedFile;
}

class Vocabulary {
 public:
  enum class Kind { None, Bytes, Table };

  Vocabulary() = default;
  static Vocabulary bytes() { return Vocabulary(Kind::Bytes, {}, {}); }
  // Throws kvlab::Error when offsets are not a non-decreasing list from 0
  // ending at data.size().
  static Vocabulary table(std::vector<std::int64_t> offsets, std::string data);

  Kind kind() const { return kind_; }
  bool has_text() const { return kind_ != Kind::None; }
  // The bytes token `id` stands for; "<id>" when it has none.
  std::string token(std::int64_t id) const;
  std::string decode(std::span<const std::int64_t> ids) const;

  const std::vector<std::int64_t>& offsets() const { return offsets_; }
  const std::string& data() const { return data_; }

 private:
  Vocabulary(Kind kind, std::vector<std::int64_t> offsets, std::string data)
      : kind_(kind), offsets_(std::move(offsets)), data_(std::move(data)) {}
  Kind kind_ = Kind::None;
  std::vector<std::int64_t> offsets_;
  std::string data_;
};

// One printable line: newline → ⏎, tab → →, other control bytes → ·, bytes
// that are not valid UTF-8 → \xNN.
std::string printable(std::string_view bytes);
// Its width in terminal columns (code points; the replacements above count 1 each, \xNN 4).
int printable_width(std::string_view printable_text);

// Reads the vocabulary of a model file (vocab_size tokens); throws
// kvlab::Error naming the file and the attribute or dataset.
Vocabulary read_vocabulary(const io::CheckedFile& file, int vocab_size);
// Writes it (nothing for Kind::None).
void write_vocabulary(hid_t file, const Vocabulary& vocab, const std::string& path);

}  // namespace kvlab
