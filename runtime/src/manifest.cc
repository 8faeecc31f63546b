#include "manifest.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "astroedge.h"
#include "error.h"
#include "json.h"
#include "sha256.h"

namespace ae {
namespace {

constexpr const char* kFormat = "astroedge-package";
constexpr const char* kRegenerate = "re-export the package with 'astroedge export'";

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    throw Error(AE_ERR_FORMAT, file_ + ": field '" + field + "' " + why + "; " + kRegenerate);
  }

  const Json& get(const Json& obj, const std::string& key, const std::string& field) const {
    const Json* v = obj.find(key);
    if (!v) bad(field, "is missing");
    return *v;
  }
  std::string str(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kString || v.string.empty()) bad(field, "must be a non-empty string");
    return v.string;
  }
  int64_t integer(const Json& obj, const std::string& key, const std::string& field, int64_t lo) const {
    const Json& v = get(obj, key, field);
    if (!v.is_integer() || v.number < double(lo)) bad(field, "must be an integer >= " + std::to_string(lo));
    return int64_t(v.number);
  }
  const Json& object(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kObject) bad(field, "must be an object");
    return v;
  }

 private:
  std::string file_;
};

// A file named by the manifest must stay inside the package.
bool plain_file_name(const std::string& name) {
  return !name.empty() && name.find('/') == std::string::npos && name.find('\\') == std::string::npos && name != "." && name != "..";
}

}  // namespace

Manifest read_manifest(const std::string& dir) {
  struct stat st {};
  if (dir.empty() || stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    throw Error(AE_ERR_IO, dir + ": package directory not found; pass the *.aepkg directory written by 'astroedge export'");
  }
  Manifest m;
  m.dir = dir;
  std::string file = m.path("manifest.json");
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(AE_ERR_IO, file + ": cannot open (" + std::strerror(errno) + "); is " + dir + " an astroedge package?");
  std::stringstream text;
  text << in.rdbuf();
  Json root;
  try {
    root = parse_json(text.str());
  } catch (const std::runtime_error& e) {
    throw Error(AE_ERR_FORMAT, file + ": not valid JSON (" + e.what() + "); " + kRegenerate);
  }
  Reader r(file);
  if (root.kind != Json::Kind::kObject) r.bad("(root)", "must be a JSON object");
  const Json* format = root.find("format");
  if (!format || format->kind != Json::Kind::kString || format->string != kFormat) {
    r.bad("format", std::string("must be \"") + kFormat + "\" (not an astroedge package manifest)");
  }
  int64_t version = r.integer(root, "format_version", "format_version", 1);
  if (version > AE_PACKAGE_FORMAT_VERSION) {
    throw Error(AE_ERR_VERSION, file + ": package format_version " + std::to_string(version) + " is newer than this runtime reads (" +
                                    std::to_string(AE_PACKAGE_FORMAT_VERSION) + "); upgrade the astroedge runtime");
  }
  m.format_version = int(version);

  const Json& model = r.object(root, "model", "model");
  int64_t vocab = r.integer(model, "vocab_size", "model.vocab_size", 2);
  if (vocab > INT32_MAX) r.bad("model.vocab_size", "is too large for int32 token ids");
  m.vocab_size = int32_t(vocab);

  const Json& onnx = r.object(root, "onnx", "onnx");
  m.onnx_file = r.str(onnx, "file", "onnx.file");
  if (!plain_file_name(m.onnx_file)) r.bad("onnx.file", "= \"" + m.onnx_file + "\" must be a file name inside the package");

  const Json& inputs = r.object(root, "inputs", "inputs");
  m.tokens_input = r.str(inputs, "tokens", "inputs.tokens");
  m.position_input = r.str(inputs, "position", "inputs.position");
  m.logits_output = r.str(r.object(root, "outputs", "outputs"), "logits", "outputs.logits");

  const Json& state = r.get(root, "state", "state");
  if (state.kind != Json::Kind::kArray || state.array.empty()) r.bad("state", "must be a non-empty array");
  size_t total = 0;
  for (size_t i = 0; i < state.array.size(); ++i) {
    const Json& e = state.array[i];
    std::string at = "state[" + std::to_string(i) + "]";
    if (e.kind != Json::Kind::kObject) r.bad(at, "must be an object");
    StateSpec s;
    s.name = r.str(e, "name", at + ".name");
    s.input = r.str(e, "input", at + ".input");
    s.output = r.str(e, "output", at + ".output");
    if (r.str(e, "dtype", at + ".dtype") != "float32") r.bad(at + ".dtype", "must be \"float32\" (state is always fp32)");
    const Json* init = e.find("init");
    if (init && !(init->kind == Json::Kind::kString && init->string == "zeros")) r.bad(at + ".init", "must be \"zeros\"");
    const Json& shape = r.get(e, "shape", at + ".shape");
    if (shape.kind != Json::Kind::kArray || shape.array.size() < 2 || shape.array[0].kind != Json::Kind::kString ||
        shape.array[0].string != "batch") {
      r.bad(at + ".shape", "must be [\"batch\", dims...]");
    }
    s.shape.push_back(1);
    s.count = 1;
    for (size_t d = 1; d < shape.array.size(); ++d) {
      const Json& dim = shape.array[d];
      if (!dim.is_integer() || dim.number < 1 || dim.number > double(1 << 30)) r.bad(at + ".shape", "must hold positive integer sizes");
      s.shape.push_back(int64_t(dim.number));
      s.count *= size_t(dim.number);
    }
    total += s.count * sizeof(float);
    m.state.push_back(std::move(s));
  }
  m.state_bytes = total;
  if (const Json* sb = root.find("state_bytes_per_stream")) {
    if (!sb->is_integer() || size_t(sb->number) != total) {
      r.bad("state_bytes_per_stream", "disagrees with the state shapes (" + std::to_string(total) + " bytes)");
    }
  }
  m.max_position = uint64_t(1) << 32;
  if (const Json* mp = root.find("max_position")) {
    if (!mp->is_integer() || mp->number < 1) r.bad("max_position", "must be a positive integer");
    m.max_position = uint64_t(mp->number);
  }

  const Json& tok = r.object(root, "tokenizer", "tokenizer");
  m.tokenizer = r.str(tok, "type", "tokenizer.type");
  if (m.tokenizer != "bytes" && m.tokenizer != "hf") r.bad("tokenizer.type", "= \"" + m.tokenizer + "\" must be \"bytes\" or \"hf\"");
  if (m.tokenizer == "bytes" && m.vocab_size < 256) r.bad("model.vocab_size", "must be >= 256 for a byte-level tokenizer");

  const Json& files = r.object(root, "files", "files");
  for (const auto& [name, entry] : files.object) {
    std::string at = "files." + name;
    if (!plain_file_name(name)) r.bad(at, "names a file outside the package");
    FileEntry f;
    f.sha256 = r.str(entry, "sha256", at + ".sha256");
    if (f.sha256.size() != 64 || f.sha256.find_first_not_of("0123456789abcdef") != std::string::npos) {
      r.bad(at + ".sha256", "must be 64 lowercase hex digits");
    }
    if (entry.find("bytes")) f.bytes = r.integer(entry, "bytes", at + ".bytes", 0);
    m.files[name] = f;
  }
  if (!m.files.count(m.onnx_file)) r.bad("files", "has no entry for " + m.onnx_file);
  return m;
}

void verify_files(const Manifest& m) {
  for (const auto& [name, entry] : m.files) {
    std::string path = m.path(name);
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) throw Error(AE_ERR_IO, path + ": listed in manifest.json but missing; " + kRegenerate);
    if (entry.bytes >= 0 && int64_t(st.st_size) != entry.bytes) {
      throw Error(AE_ERR_CHECKSUM, path + ": " + std::to_string(st.st_size) + " bytes, manifest.json says " + std::to_string(entry.bytes) +
                                       " (truncated or changed); " + kRegenerate);
    }
    std::string got = sha256_file(path);
    if (got != entry.sha256) {
      throw Error(AE_ERR_CHECKSUM, path + ": sha256 " + got.substr(0, 16) + "... differs from manifest.json (" + entry.sha256.substr(0, 16) +
                                       "...); the file is damaged or was changed: " + kRegenerate);
    }
  }
}

}  // namespace ae
