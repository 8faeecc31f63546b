#include "manifest.h"

#include <cmath>
#include <set>

#include "astroedge.h"
#include "error.h"
#include "fs.h"
#include "json.h"

namespace ae {
namespace {

constexpr const char* kFormat = "astroedge-package";
constexpr const char* kRegenerate = "re-export the package with 'astroedge export'";

std::string shown(const Json& v) {
  switch (v.kind) {
    case Json::Kind::kNull: return "null";
    case Json::Kind::kBool: return v.boolean ? "true" : "false";
    case Json::Kind::kNumber: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", v.number);
      return buf;
    }
    case Json::Kind::kString: return "\"" + (v.string.size() > 60 ? v.string.substr(0, 60) + "..." : v.string) + "\"";
    case Json::Kind::kArray: return "an array";
    case Json::Kind::kObject: return "an object";
  }
  return "?";
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void bad(const std::string& field, const std::string& why) const {
    throw Error(AE_ERR_FORMAT, file_ + ": field '" + field + "' " + why + "; " + kRegenerate);
  }
  [[noreturn]] void bad(const std::string& field, const Json& v, const std::string& why) const { bad(field, "= " + shown(v) + " " + why); }

  const Json& get(const Json& obj, const std::string& key, const std::string& field) const {
    const Json* v = obj.find(key);
    if (!v) throw Error(AE_ERR_FORMAT, file_ + ": required field '" + field + "' is missing; " + kRegenerate);
    return *v;
  }
  std::string str(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kString || v.string.empty()) bad(field, v, "must be a non-empty string");
    if (v.string.size() > 4096 || v.string.find('\0') != std::string::npos) bad(field, v, "is not a sensible name");
    return v.string;
  }
  int64_t integer(const Json& obj, const std::string& key, const std::string& field, int64_t lo, int64_t hi) const {
    const Json& v = get(obj, key, field);
    if (!v.is_integer()) bad(field, v, "must be an integer");
    if (v.number < double(lo) || v.number > double(hi)) bad(field, v, "is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int64_t(v.number);
  }
  const Json& object(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kObject) bad(field, v, "must be an object");
    return v;
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

bool is_hex64(const std::string& s) { return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos; }

}  // namespace

Manifest parse_manifest(const std::string& text, const std::string& dir, const std::string& sha256) {
  Manifest m;
  m.dir = dir;
  m.sha256 = sha256;
  std::string file = m.path("manifest.json");
  Json root;
  try {
    root = parse_json(text);
  } catch (const std::runtime_error& e) {
    throw Error(AE_ERR_FORMAT, file + ": not valid JSON (" + e.what() + "); " + kRegenerate);
  }
  Reader r(file);
  if (root.kind != Json::Kind::kObject) r.bad("(root)", "must be a JSON object");
  const Json* format = root.find("format");
  if (!format || format->kind != Json::Kind::kString || format->string != kFormat) {
    throw Error(AE_ERR_FORMAT, file + ": field 'format' " + (format ? "= " + shown(*format) : std::string("is missing")) + ", expected \"" + kFormat +
                                   "\"; this is not an astroedge package");
  }
  const Json& fv = r.get(root, "format_version", "format_version");
  if (!fv.is_integer()) r.bad("format_version", fv, "must be an integer");
  if (fv.number > AE_PACKAGE_FORMAT_VERSION) {
    throw Error(AE_ERR_VERSION, file + ": package format_version " + shown(fv) + " is newer than this runtime reads (" +
                                    std::to_string(AE_PACKAGE_FORMAT_VERSION) + "); upgrade the astroedge runtime");
  }
  if (fv.number < 1) r.bad("format_version", fv, "must be >= 1");
  m.format_version = int(fv.number);

  const Json& model = r.object(root, "model", "model");
  m.vocab_size = int32_t(r.integer(model, "vocab_size", "model.vocab_size", 2, kMaxVocab));
  m.precision = r.str(root, "precision", "precision");
  if (m.precision != "fp32" && m.precision != "fp16" && m.precision != "int8" && m.precision != "int4") {
    r.bad("precision", r.get(root, "precision", "precision"), "is unknown (expected one of fp32, fp16, int8, int4)");
  }

  const Json& onnx = r.object(root, "onnx", "onnx");
  m.onnx_file = r.str(onnx, "file", "onnx.file");
  if (!plain_name(m.onnx_file)) r.bad("onnx.file", onnx.object.at("file"), "must be a plain file name inside the package");
  if (const Json* ext = onnx.find("external_data"); ext && ext->kind != Json::Kind::kNull) {
    m.external_data = r.str(onnx, "external_data", "onnx.external_data");
    if (!plain_name(m.external_data)) r.bad("onnx.external_data", *ext, "must be a plain file name inside the package");
  }

  const Json& inputs = r.object(root, "inputs", "inputs");
  m.tokens_input = r.str(inputs, "tokens", "inputs.tokens");
  m.position_input = r.str(inputs, "position", "inputs.position");
  m.logits_output = r.str(r.object(root, "outputs", "outputs"), "logits", "outputs.logits");

  const Json& state = r.get(root, "state", "state");
  if (state.kind != Json::Kind::kArray || state.array.empty()) r.bad("state", state, "must be a non-empty array");
  if (state.array.size() > 4096) r.bad("state", "lists more than 4096 tensors");
  uint64_t total = 0;
  std::set<std::string> seen_names, seen_io{m.tokens_input, m.position_input, m.logits_output};
  if (seen_io.size() != 3) r.bad("inputs", "names the same tensor twice");
  for (size_t i = 0; i < state.array.size(); ++i) {
    const Json& e = state.array[i];
    std::string at = "state[" + std::to_string(i) + "]";
    if (e.kind != Json::Kind::kObject) r.bad(at, e, "must be an object");
    StateSpec s;
    s.name = r.str(e, "name", at + ".name");
    s.input = r.str(e, "input", at + ".input");
    s.output = r.str(e, "output", at + ".output");
    if (!seen_names.insert(s.name).second) r.bad(at + ".name", e.object.at("name"), "appears twice");
    if (!seen_io.insert(s.input).second) r.bad(at + ".input", e.object.at("input"), "appears twice");
    if (!seen_io.insert(s.output).second) r.bad(at + ".output", e.object.at("output"), "appears twice");
    const Json& dtype = r.get(e, "dtype", at + ".dtype");
    if (dtype.kind != Json::Kind::kString || dtype.string != "float32") r.bad(at + ".dtype", dtype, "must be \"float32\" (state is always fp32)");
    const Json* init = e.find("init");
    if (init && !(init->kind == Json::Kind::kString && init->string == "zeros")) r.bad(at + ".init", *init, "is not supported (only \"zeros\")");
    const Json& shape = r.get(e, "shape", at + ".shape");
    if (shape.kind != Json::Kind::kArray || shape.array.size() < 2 || shape.array.size() > 8 || shape.array[0].kind != Json::Kind::kString ||
        shape.array[0].string != "batch") {
      r.bad(at + ".shape", shape, "must be [\"batch\", 1 to 7 positive sizes]");
    }
    s.shape.push_back(1);
    uint64_t count = 1;
    for (size_t d = 1; d < shape.array.size(); ++d) {
      const Json& dim = shape.array[d];
      if (!dim.is_integer() || dim.number < 1 || dim.number > double(kMaxStateBytes)) r.bad(at + ".shape", dim, "is not a positive size");
      s.shape.push_back(int64_t(dim.number));
      count *= uint64_t(dim.number);
      if (count * 4 > kMaxStateBytes) r.bad(at + ".shape", "claims more than " + std::to_string(kMaxStateBytes) + " bytes of state");
    }
    s.count = size_t(count);
    total += count * 4;
    if (total > kMaxStateBytes) r.bad("state", "claims more than " + std::to_string(kMaxStateBytes) + " bytes of state per stream");
    m.state.push_back(std::move(s));
  }
  m.state_bytes = size_t(total);
  int64_t sb = r.integer(root, "state_bytes_per_stream", "state_bytes_per_stream", 1, int64_t(kMaxStateBytes));
  if (uint64_t(sb) != total) r.bad("state_bytes_per_stream", r.get(root, "state_bytes_per_stream", ""), "disagrees with the state shapes (" + std::to_string(total) + " bytes)");
  m.max_position = uint64_t(r.integer(root, "max_position", "max_position", 1, int64_t(kMaxPosition)));

  const Json& tok = r.object(root, "tokenizer", "tokenizer");
  m.tokenizer = r.str(tok, "type", "tokenizer.type");
  if (m.tokenizer != "bytes" && m.tokenizer != "hf") r.bad("tokenizer.type", tok.object.at("type"), "must be \"bytes\" or \"hf\"");
  int64_t tok_vocab = r.integer(tok, "vocab_size", "tokenizer.vocab_size", 1, kMaxVocab);
  if (tok_vocab > m.vocab_size) r.bad("tokenizer.vocab_size", tok.object.at("vocab_size"), "exceeds the model's vocab_size " + std::to_string(m.vocab_size));
  if (m.tokenizer == "bytes") {
    if (m.vocab_size < 256 || tok_vocab != 256) r.bad("tokenizer.vocab_size", tok.object.at("vocab_size"), "must be 256 for a byte-level tokenizer (and model.vocab_size >= 256)");
    const Json* tf = tok.find("file");
    if (tf && tf->kind != Json::Kind::kNull) r.bad("tokenizer.file", *tf, "must be null for a byte-level tokenizer");
  } else {
    m.tokenizer_file = r.str(tok, "file", "tokenizer.file");
    if (!plain_name(m.tokenizer_file)) r.bad("tokenizer.file", tok.object.at("file"), "must be a plain file name inside the package");
  }

  const Json& files = r.object(root, "files", "files");
  if (files.object.size() > 64) r.bad("files", "lists more than 64 files");
  for (const auto& [name, entry] : files.object) {
    std::string at = "files." + name;
    if (!plain_name(name) || name == "manifest.json") r.bad("files", "names \"" + name + "\"; entries must be plain file names inside the package");
    if (entry.kind != Json::Kind::kObject) r.bad(at, entry, "must be an object with 'sha256' and 'bytes'");
    FileEntry f;
    f.sha256 = r.str(entry, "sha256", at + ".sha256");
    if (!is_hex64(f.sha256)) r.bad(at + ".sha256", entry.object.at("sha256"), "must be 64 lowercase hex digits");
    f.bytes = uint64_t(r.integer(entry, "bytes", at + ".bytes", 0, int64_t(kMaxFileBytes)));
    m.files[name] = f;
  }
  for (const auto& [field, name] : {std::pair<std::string, std::string>{"onnx.file", m.onnx_file}, {"onnx.external_data", m.external_data},
                                    {"tokenizer.file", m.tokenizer_file}}) {
    if (!name.empty() && !m.files.count(name)) r.bad(field, "= \"" + name + "\" is not listed in 'files' with its size and sha256");
  }
  return m;
}

}  // namespace ae
