#include "state_file.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "error.h"
#include "fs.h"
#include "sha256.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "state files are little-endian; this host is not");

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
  std::vector<uint8_t> id = hex_to_bytes(e.manifest.sha256);
  buf.insert(buf.end(), id.begin(), id.end());
  put<uint64_t>(buf, stream.position);
  put<uint64_t>(buf, e.state_floats);
  put<uint64_t>(buf, uint64_t(e.manifest.vocab_size));
  std::vector<float> state(stream.state.size());
  e.to_host(state.data(), stream.state.data(), state.size());
  const auto* s = reinterpret_cast<const uint8_t*>(state.data());
  buf.insert(buf.end(), s, s + state.size() * sizeof(float));
  const auto* l = reinterpret_cast<const uint8_t*>(stream.logits.data());
  buf.insert(buf.end(), l, l + stream.logits.size() * sizeof(float));
  Sha256 sha;
  sha.update(buf.data(), buf.size());
  auto d = sha.digest();
  buf.insert(buf.end(), d.begin(), d.end());
  write_file_atomically(path, buf.data(), buf.size());
}

void set_state(AeStream& stream, const float* state, uint64_t position, const float* logits, const std::string& what) {
  const AeEngine& e = *stream.engine;
  const size_t vocab = size_t(e.manifest.vocab_size);
  if (position > e.manifest.max_position) {
    throw Error(AE_ERR_INVALID_ARGUMENT, what + ": position " + std::to_string(position) +
                                             " is past the package's max_position " +
                                             std::to_string(e.manifest.max_position));
  }
  size_t bad = first_non_finite(state, e.state_floats);
  if (bad < e.state_floats)
    throw Error(AE_ERR_NON_FINITE,
                what + ": state value " + std::to_string(bad) + " is " + std::to_string(state[bad]) + ", not finite");
  if (logits && (bad = first_non_finite(logits, vocab)) < vocab) {
    throw Error(AE_ERR_NON_FINITE,
                what + ": logit " + std::to_string(bad) + " is " + std::to_string(logits[bad]) + ", not finite");
  }
  e.to_device(stream.state.data(), state, e.state_floats);
  if (logits)
    std::memcpy(stream.logits.data(), logits, vocab * sizeof(float));
  else
    std::fill(stream.logits.begin(), stream.logits.end(), 0.0f);
  stream.position = position;
  stream.has_logits = logits != nullptr;
  std::fill(stream.seen.begin(), stream.seen.end(), uint8_t(0));  // history starts afresh
}

void load_state(AeStream& stream, const std::string& path) {
  const AeEngine& e = *stream.engine;
  const size_t expected = state_file_size(e);
  std::vector<uint8_t> buf =
      read_user_file(path, expected + 4096);  // a little slack so that "too big" reads as damaged
  auto bad = [&](const std::string& why) { return Error(AE_ERR_FORMAT, path + ": " + why); };
  if (buf.size() < kHeader + kTrailer || std::memcmp(buf.data(), kMagic, 8) != 0) {
    throw bad("not an astroedge state file (written by ae_stream_save_state)");
  }
  uint32_t version = get<uint32_t>(buf.data() + 8);
  if (version > AE_STATE_FILE_VERSION) {
    throw Error(AE_ERR_VERSION, path + ": state file version " + std::to_string(version) +
                                    " is newer than this runtime reads (" + std::to_string(AE_STATE_FILE_VERSION) +
                                    "); upgrade the astroedge runtime");
  }
  if (version < AE_STATE_FILE_VERSION) {
    throw Error(AE_ERR_VERSION, path + ": state file version " + std::to_string(version) +
                                    " is an old format this runtime no longer reads; save the state again");
  }
  Sha256 sha;
  sha.update(buf.data(), buf.size() - kTrailer);
  auto d = sha.digest();
  if (std::memcmp(d.data(), buf.data() + buf.size() - kTrailer, kTrailer) != 0)
    throw bad("checksum mismatch: the file is truncated or damaged");
  std::string id = to_hex(buf.data() + 16, 32);
  if (id != e.manifest.sha256) {
    throw Error(AE_ERR_MISMATCH, path + ": saved for another package (manifest.json sha256 " + id.substr(0, 16) +
                                     "...), this engine runs " + e.manifest.sha256.substr(0, 16) +
                                     "...; load it with the package it came from");
  }
  uint32_t flags = get<uint32_t>(buf.data() + 12);
  uint64_t position = get<uint64_t>(buf.data() + 48);
  uint64_t floats = get<uint64_t>(buf.data() + 56), vocab = get<uint64_t>(buf.data() + 64);
  if (floats != e.state_floats || vocab != uint64_t(e.manifest.vocab_size) || buf.size() != expected) {
    throw bad("sizes do not match the package's state layout");
  }
  if ((flags & ~1u) != 0) throw bad("unknown flags " + std::to_string(flags));
  if (position > e.manifest.max_position)
    throw bad("position " + std::to_string(position) + " is past the package's max_position");
  const uint8_t* p = buf.data() + kHeader;
  std::vector<float> state(e.state_floats);
  std::vector<float> logits(static_cast<size_t>(vocab));
  std::memcpy(state.data(), p, state.size() * sizeof(float));
  std::memcpy(logits.data(), p + state.size() * sizeof(float), logits.size() * sizeof(float));
  set_state(stream, state.data(), position, (flags & 1u) ? logits.data() : nullptr, path);
}

}  // namespace ae
