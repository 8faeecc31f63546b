// Failures inside the runtime: an exception carrying an AeStatus and a one-line message, turned into
// a return code plus ae_last_error() at the C boundary (guard() in api.cc). C++ exceptions never cross
// into the caller's C code.
#ifndef ASTROEDGE_RUNTIME_ERROR_H_
#define ASTROEDGE_RUNTIME_ERROR_H_

#include <stdexcept>
#include <string>

#include "astroedge.h"

namespace ae {

// Messages are one line whatever they quote (a key or value from a hostile file, onnxruntime's
// text): control characters become '?'.
inline std::string one_line_message(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = '?';
  }
  return s;
}

class Error : public std::runtime_error {
 public:
  Error(AeStatus status, const std::string& message) : std::runtime_error(one_line_message(message)), status_(status) {}
  AeStatus status() const { return status_; }

 private:
  AeStatus status_;
};

// Records `message` as this thread's ae_last_error() and returns `status`.
AeStatus set_error(AeStatus status, const std::string& message);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_ERROR_H_
