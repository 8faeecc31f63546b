#include "text.h"

#include <algorithm>
#include <utility>

namespace ae {

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

void Utf8StreamDecoder::reset() {
  code_point_ = 0;
  needed_ = seen_ = 0;
  lower_ = 0x80;
  upper_ = 0xBF;
}

void Utf8StreamDecoder::push(uint8_t b, std::string& out) {
  if (needed_ > 0) {
    if (b < lower_ || b > upper_) {
      // The pending sequence is invalid: one U+FFFD for it, then `b` starts afresh.
      reset();
      append_utf8(0xFFFD, out);
    } else {
      lower_ = 0x80;
      upper_ = 0xBF;
      code_point_ = (code_point_ << 6) | (b & 0x3F);
      if (++seen_ == needed_) {
        append_utf8(code_point_, out);
        reset();
      }
      return;
    }
  }
  if (b < 0x80) {
    out += char(b);
  } else if (b >= 0xC2 && b <= 0xDF) {
    needed_ = 1;
    code_point_ = b & 0x1F;
  } else if (b >= 0xE0 && b <= 0xEF) {
    if (b == 0xE0) lower_ = 0xA0;  // no overlong 3-byte forms
    if (b == 0xED) upper_ = 0x9F;  // no surrogates
    needed_ = 2;
    code_point_ = b & 0x0F;
  } else if (b >= 0xF0 && b <= 0xF4) {
    if (b == 0xF0) lower_ = 0x90;  // no overlong 4-byte forms
    if (b == 0xF4) upper_ = 0x8F;  // nothing above U+10FFFF
    needed_ = 3;
    code_point_ = b & 0x07;
  } else {
    append_utf8(0xFFFD, out);
  }
}

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& s : stops_) keep_ = std::max(keep_, s.size());
}

int32_t StopMatcher::push(const char* piece, size_t len) {
  if (keep_ == 0 || len == 0) return -1;  // an empty piece cannot complete a stop string
  tail_.append(piece, len);
  if (tail_.size() > keep_) tail_.erase(0, tail_.size() - keep_);
  for (size_t s = 0; s < stops_.size(); ++s) {
    const std::string& stop = stops_[s];
    if (tail_.size() >= stop.size() && tail_.compare(tail_.size() - stop.size(), stop.size(), stop) == 0)
      return int32_t(s);
  }
  return -1;
}

}  // namespace ae
