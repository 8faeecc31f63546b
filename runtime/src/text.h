// Text handling of generation: the UTF-8 stream decoder behind the generator's byte-level `piece`s,
// and the stop-string matcher (every package: "hf" pieces are pushed by the binding).
// It matches Python's incremental UTF-8 decoder with errors="replace" (the Python runtime's
// ByteTokenizer.stream_decoder), so both runtimes print the same text for the same tokens: each
// maximal invalid subpart becomes one U+FFFD (the WHATWG / Unicode "best practice" rule).
#ifndef ASTROEDGE_RUNTIME_TEXT_H_
#define ASTROEDGE_RUNTIME_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

// Matches the generated text (the concatenated pieces) against stop strings. Keeps only the tail
// the longest stop string can span, so memory stays constant however long generation runs.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);
  // Appends `piece` to the text; returns the index of the first stop string the text now ends
  // with, or -1.
  int32_t push(const char* piece, size_t len);
  bool empty() const { return keep_ == 0; }

 private:
  std::vector<std::string> stops_;
  std::string tail_;
  size_t keep_ = 0;
};

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_TEXT_H_
