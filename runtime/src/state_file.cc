#include "state_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "error.h"
#include "sha256.h"

namespace ae {
namespace {

constexpr char kMagic[8] = {'A', 'E', 'S', 'T', 'A', 'T', 'E', '\0'};
constexpr size_t kHeader = 8 + 4 + 4 + 32 + 8 + 8 + 8;
constexpr size_t kTrailer = 32;

template <class T>
void put(std::vector<uint8_t>& out, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

template <class T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::vector<uint8_t> hex_to_bytes(const std::string& hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) out[i] = uint8_t(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return out;
}

std::string folder_of(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

size_t state_file_size(const AeEngine& engine) {
  return kHeader + (engine.state_floats + size_t(engine.manifest.vocab_size)) * sizeof(float) + kTrailer;
}

void save_state(const AeStream& stream, const std::string& path) {
  const AeEngine& e = *stream.engine;
  std::vector<uint8_t> buf;
  buf.reserve(state_file_size(e));
  buf.insert(buf.end(), kMagic, kMagic + 8);
  put<uint32_t>(buf, AE_STATE_FILE_VERSION);
  put<uint32_t>(buf, stream.has_logits ? 1u : 0u);
  std::vector<uint8_t> model = hex_to_bytes(e.model_sha256);
  buf.insert(buf.end(), model.begin(), model.end());
  put<uint64_t>(buf, stream.position);
  put<uint64_t>(buf, e.state_floats);
  put<uint64_t>(buf, uint64_t(e.manifest.vocab_size));
  const auto* s = reinterpret_cast<const uint8_t*>(stream.state.data());
  buf.insert(buf.end(), s, s + stream.state.size() * sizeof(float));
  const auto* l = reinterpret_cast<const uint8_t*>(stream.logits.data());
  buf.insert(buf.end(), l, l + stream.logits.size() * sizeof(float));
  Sha256 sha;
  sha.update(buf.data(), buf.size());
  auto d = sha.digest();
  buf.insert(buf.end(), d.begin(), d.end());

  std::string tmp = folder_of(path) + "/.aestate.XXXXXX";
  std::vector<char> name(tmp.begin(), tmp.end());
  name.push_back('\0');
  int fd = mkstemp(name.data());
  if (fd < 0) {
    throw Error(AE_ERR_IO, path + ": cannot create a temp file in " + folder_of(path) + " (" + std::strerror(errno) +
                               "); choose an existing, writable folder");
  }
  size_t done = 0;
  bool ok = true;
  while (ok && done < buf.size()) {
    ssize_t w = write(fd, buf.data() + done, buf.size() - done);
    if (w < 0 && errno == EINTR) continue;
    ok = w > 0;
    if (ok) done += size_t(w);
  }
  int err = ok ? 0 : errno;
  if (ok && fsync(fd) != 0) {
    ok = false;
    err = errno;
  }
  if (close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (ok && chmod(name.data(), 0644) != 0) {  // mkstemp makes 0600; a state file is ordinary data
    ok = false;
    err = errno;
  }
  if (ok && rename(name.data(), path.c_str()) != 0) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    unlink(name.data());
    throw Error(AE_ERR_IO, path + ": cannot write the state file (" + std::strerror(err) + "); check the path and free space");
  }
}

void load_state(AeStream& stream, const std::string& path) {
  const AeEngine& e = *stream.engine;
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(AE_ERR_IO, path + ": cannot open the state file (" + std::strerror(errno) + ")");
  std::vector<uint8_t> buf;
  uint8_t chunk[65536];
  ssize_t r;
  while ((r = read(fd, chunk, sizeof chunk)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int err = errno;
      close(fd);
      throw Error(AE_ERR_IO, path + ": read error (" + std::strerror(err) + ")");
    }
    buf.insert(buf.end(), chunk, chunk + r);
    if (buf.size() > state_file_size(e) + (1u << 20)) break;  // far too big: no need to read it all
  }
  close(fd);
  auto bad = [&](const std::string& why) { return Error(AE_ERR_FORMAT, path + ": " + why); };
  if (buf.size() < kHeader + kTrailer || std::memcmp(buf.data(), kMagic, 8) != 0) {
    throw bad("not an astroedge state file (written by ae_stream_save_state)");
  }
  uint32_t version = get<uint32_t>(buf.data() + 8);
  if (version > AE_STATE_FILE_VERSION) {
    throw Error(AE_ERR_VERSION, path + ": state file version " + std::to_string(version) + " is newer than this runtime reads (" +
                                    std::to_string(AE_STATE_FILE_VERSION) + "); upgrade the astroedge runtime");
  }
  Sha256 sha;
  sha.update(buf.data(), buf.size() - kTrailer);
  auto d = sha.digest();
  if (std::memcmp(d.data(), buf.data() + buf.size() - kTrailer, kTrailer) != 0) throw bad("checksum mismatch: the file is truncated or damaged");
  std::string model = to_hex(buf.data() + 16, 32);
  if (model != e.model_sha256) {
    throw Error(AE_ERR_MISMATCH, path + ": saved for another package (model.onnx sha256 " + model.substr(0, 16) + "...), this engine runs " +
                                     e.model_sha256.substr(0, 16) + "...; load it with the package it came from");
  }
  uint32_t flags = get<uint32_t>(buf.data() + 12);
  uint64_t position = get<uint64_t>(buf.data() + 48);
  uint64_t floats = get<uint64_t>(buf.data() + 56), vocab = get<uint64_t>(buf.data() + 64);
  if (floats != e.state_floats || vocab != uint64_t(e.manifest.vocab_size) || buf.size() != state_file_size(e)) {
    throw bad("sizes do not match the package's state layout");
  }
  if (position > e.manifest.max_position || (flags & ~1u) != 0) throw bad("invalid position or flags");
  const uint8_t* p = buf.data() + kHeader;
  std::memcpy(stream.state.data(), p, e.state_floats * sizeof(float));
  std::memcpy(stream.logits.data(), p + e.state_floats * sizeof(float), size_t(vocab) * sizeof(float));
  stream.position = position;
  stream.has_logits = (flags & 1u) != 0;
  std::fill(stream.seen.begin(), stream.seen.end(), uint8_t(0));  // as the Python runtime: history starts afresh
}

}  // namespace ae
