// SHA-256 (FIPS 180-4), written out so the runtime needs no crypto library: package files are
// checked against manifest.json and state files carry a checksum of their content.
#ifndef ASTROEDGE_RUNTIME_SHA256_H_
#define ASTROEDGE_RUNTIME_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace ae {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t len);
  std::array<uint8_t, 32> digest();  // finishes the hash; call once

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string to_hex(const uint8_t* bytes, size_t len);

}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_SHA256_H_
