// Failures inside the runtime: an exception carrying an AeStatus and a one-line message, turned into
// a return code plus ae_last_error() at the C boundary (guard() in api.cc). C++ exceptions never cross
// into the caller's C code.
#ifndef ASTROEDGE_RUNTIME_ERROR_H_
#define ASTROEDGE_RUNTIME_ERROR_H_

#include <stdexcept>
#include <string>

#include "astroedge.h"

namespace ae {

class Error : public std::runtime_error {
 public:
  Error(AeStatus status, const std::string& message) : std::runtime_error(message), status_(status) {}
  AeStatus status() const { return status_; }

 private:
  AeStatus status_;
};

// Records `message` as this thread's ae_last_error() and returns `status`.
AeStatus set_error(AeStatus status, const std::string& message);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_ERROR_H_
