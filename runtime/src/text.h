// Byte-level text handling: the UTF-8 stream decoder behind ae_generate's `piece` argument.
// It matches Python's incremental UTF-8 decoder with errors="replace" (the Python runtime's
// ByteTokenizer.stream_decoder), so both runtimes print the same text for the same tokens: each
// maximal invalid subpart becomes one U+FFFD (the WHATWG / Unicode "best practice" rule).
#ifndef ASTROEDGE_RUNTIME_TEXT_H_
#define ASTROEDGE_RUNTIME_TEXT_H_

#include <cstdint>
#include <string>

namespace ae {

class Utf8StreamDecoder {
 public:
  // Appends to `out` the text completed by `byte` (nothing while a character is incomplete).
  void push(uint8_t byte, std::string& out);

 private:
  void reset();
  uint32_t code_point_ = 0;
  int needed_ = 0, seen_ = 0;
  uint8_t lower_ = 0x80, upper_ = 0xBF;
};

void append_utf8(uint32_t code_point, std::string& out);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_TEXT_H_
