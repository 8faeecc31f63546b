// The rules are astroedge/manifest.py's validate() (the Python owner of the format), field by field
// and in the same order, so that both readers refuse the same manifests naming the same field
// (tests/fixtures/manifest_cases/ holds the shared table).
#include "manifest.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
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
    case Json::Kind::kNull:
      return "null";
    case Json::Kind::kBool:
      return v.boolean ? "true" : "false";
    case Json::Kind::kNumber: {
      char buf[40];
      std::snprintf(buf, sizeof buf, v.integral ? "%.0f" : "%.17g", v.number);
      return buf;
    }
    case Json::Kind::kString: {
      std::string s = v.string.size() > 60 ? v.string.substr(0, 60) + "..." : v.string;
      for (char& c : s) {
        if (static_cast<unsigned char>(c) < 0x20) c = '?';  // one line
      }
      return "\"" + s + "\"";
    }
    case Json::Kind::kArray:
      return "an array of " + std::to_string(v.array.size());
    case Json::Kind::kObject:
      return "an object";
  }
  return "?";
}

std::string cut(const std::string& s) {
  std::string out = s.size() > 60 ? s.substr(0, 60) + "..." : s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return out;
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& text) const {
    throw Error(AE_ERR_FORMAT, file_ + ": " + text + "; " + kRegenerate);
  }
  [[noreturn]] void bad(const std::string& field, const Json& v, const std::string& why) const {
    fail("field '" + field + "' = " + shown(v) + " " + why);
  }

  const Json& get(const Json& obj, const std::string& key, const std::string& field) const {
    const Json* v = obj.find(key);
    if (!v) fail("required field '" + field + "' is missing");
    return *v;
  }
  const Json& object(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kObject) bad(field, v, "must be an object");
    return v;
  }
  std::string str(const Json& obj, const std::string& key, const std::string& field) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kString || v.string.empty()) bad(field, v, "must be a non-empty string");
    return v.string;
  }
  int64_t integer(const Json& obj, const std::string& key, const std::string& field, int64_t lo, int64_t hi) const {
    const Json& v = get(obj, key, field);
    if (!v.is_integer() || v.number < double(lo) || v.number > double(hi)) {
      bad(field, v, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    }
    return int64_t(v.number);
  }
  void equal(const Json& obj, const std::string& key, const std::string& field, const std::string& expected) const {
    const Json& v = get(obj, key, field);
    if (v.kind != Json::Kind::kString || v.string != expected) bad(field, v, "must be \"" + expected + "\"");
  }
  std::string name(const Json& v, const std::string& field) const {
    if (v.kind != Json::Kind::kString || !plain_name(v.string)) {
      bad(field, v, "must be a plain file name inside the package (letters, digits, '.', '_', '-'; no '/', no '..')");
    }
    return v.string;
  }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

struct Range {
  const char* key;
  bool is_int;
  double lo, hi;
  bool inclusive;  // else (lo, hi]
};

// astroedge/manifest.py CONFIG_RANGES: tighter than the model's own checks so that no value can
// overflow a derived size before the relations are checked.
constexpr Range kConfig[] = {
    {"vocab_size", true, 2, 1 << 24, true},    {"d_model", true, 2, 1 << 16, true},
    {"n_layers", true, 1, 1024, true},         {"n_heads", true, 1, 4096, true},
    {"ffn_mult", false, 0, 64, false},         {"tau_n", false, 0, 1e9, false},
    {"tau_a_min", false, 0, 1e9, false},       {"tau_a_max", false, 0, 1e9, false},
    {"threshold", false, -1e6, 1e6, true},     {"ffn_threshold", false, -1e6, 1e6, true},
    {"rope_base", false, 1, 1e12, false},      {"norm_eps", false, 0, 1, false},
    {"surrogate_width", false, 0, 1e6, false},
};

ModelConfig check_config(const Json& model, const Reader& r) {
  if (model.kind != Json::Kind::kObject) r.bad("model", model, "must be an object of model config fields");
  for (const auto& [key, value] : model.object) {
    bool known = false;
    for (const Range& c : kConfig) known = known || key == c.key;
    if (!known) r.fail("field 'model." + cut(key) + "' is not a model config field");
  }
  double v[13];
  for (size_t i = 0; i < 13; ++i) {
    const Range& c = kConfig[i];
    std::string field = std::string("model.") + c.key;
    const Json& x = r.get(model, c.key, field);
    bool ok = x.kind == Json::Kind::kNumber && (!c.is_int || x.is_integer()) && std::isfinite(x.number) &&
              (c.inclusive ? x.number >= c.lo && x.number <= c.hi : x.number > c.lo && x.number <= c.hi);
    if (!ok) {
      char bound[80];
      std::snprintf(bound, sizeof bound, c.inclusive ? "[%g, %g]" : "(%g, %g]", c.lo, c.hi);
      r.bad(field, x, std::string("must be ") + (c.is_int ? "an integer" : "a number") + " in " + bound);
    }
    v[i] = x.number;
  }
  ModelConfig cfg;
  cfg.vocab_size = int64_t(v[0]), cfg.d_model = int64_t(v[1]), cfg.n_layers = int64_t(v[2]),
  cfg.n_heads = int64_t(v[3]);
  cfg.ffn_mult = v[4], cfg.tau_n = v[5], cfg.tau_a_min = v[6], cfg.tau_a_max = v[7], cfg.threshold = v[8],
  cfg.ffn_threshold = v[9];
  cfg.rope_base = v[10], cfg.norm_eps = v[11], cfg.surrogate_width = v[12];
  auto relation = [&](const char* field, const Json& x, const std::string& why) {
    r.fail("config field '" + std::string(field) + "' = " + shown(x) + ": " + why);
  };
  if (cfg.d_model % cfg.n_heads)
    relation("d_model", model.object.at("d_model"), "must be divisible by n_heads=" + std::to_string(cfg.n_heads));
  if ((cfg.d_model / cfg.n_heads) % 2)
    relation("n_heads", model.object.at("n_heads"), "head width d_model/n_heads must be even (RoPE rotates pairs)");
  if (std::nearbyint(cfg.ffn_mult * double(cfg.d_model)) < 1)
    relation("ffn_mult", model.object.at("ffn_mult"), "must be positive");
  if (cfg.tau_a_max < cfg.tau_a_min)
    relation("tau_a_max", model.object.at("tau_a_max"), "must be finite and >= tau_a_min");
  uint64_t hd = uint64_t(cfg.d_model / cfg.n_heads);
  uint64_t bytes = uint64_t(cfg.n_layers) * (uint64_t(cfg.n_heads) * hd * hd + uint64_t(cfg.d_model)) * 4;
  if (bytes > kMaxStateBytes)
    r.fail("field 'model' gives " + std::to_string(bytes) + " bytes of state per stream (limit " +
           std::to_string(kMaxStateBytes) + ")");
  return cfg;
}

bool is_hex64(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

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
  if (root.kind != Json::Kind::kObject) r.fail("must hold a JSON object");
  const Json* format = root.find("format");
  if (!format || format->kind != Json::Kind::kString || format->string != kFormat) {
    throw Error(AE_ERR_FORMAT, file + ": field 'format' " +
                                   (format ? "= " + shown(*format) : std::string("is missing")) + ", expected \"" +
                                   kFormat + "\"; this is not an astroedge package");
  }
  const Json& fv = r.get(root, "format_version", "format_version");
  if (!fv.is_integer() || fv.number < 1) r.bad("format_version", fv, "must be an integer >= 1");
  if (fv.number > AE_PACKAGE_FORMAT_VERSION) {
    throw Error(AE_ERR_VERSION, file + ": package format_version " + shown(fv) + " is newer than this runtime reads (" +
                                    std::to_string(AE_PACKAGE_FORMAT_VERSION) + "); upgrade the astroedge runtime");
  }
  m.format_version = int(fv.number);
  if (const Json* c = root.find("created_by"); c && c->kind != Json::Kind::kString && c->kind != Json::Kind::kNull)
    r.bad("created_by", *c, "must be a string");
  if (const Json* p = root.find("parameters");
      p && p->kind != Json::Kind::kNull && (!p->is_integer() || p->number < 0)) {
    r.bad("parameters", *p, "must be a non-negative integer");
  }

  m.config = check_config(r.get(root, "model", "model"), r);
  m.vocab_size = int32_t(m.config.vocab_size);
  const Json& op = r.object(root, "op", "op");
  r.str(op, "name", "op.name");
  r.str(op, "domain", "op.domain");
  r.integer(op, "version", "op.version", 1, 2147483647);
  m.precision = r.str(root, "precision", "precision");
  if (m.precision != "fp32" && m.precision != "fp16" && m.precision != "int8" && m.precision != "int4") {
    r.bad("precision", root.object.at("precision"), "is unknown (expected one of fp32, fp16, int8, int4)");
  }

  const Json& files = r.object(root, "files", "files");
  if (files.object.size() > 64)
    r.fail("field 'files' lists " + std::to_string(files.object.size()) + " files (at most 64)");
  for (const auto& [name, entry] : files.object) {
    std::string at = "files." + cut(name);
    Json as_json;
    as_json.kind = Json::Kind::kString;
    as_json.string = name;
    r.name(as_json, at);
    if (name == "manifest.json") r.fail("field '" + at + "' lists manifest.json itself");
    if (entry.kind != Json::Kind::kObject) r.bad(at, entry, "must be an object with 'sha256' and 'bytes'");
    for (const auto& [key, value] : entry.object) {
      if (key != "sha256" && key != "bytes") r.bad(at + "." + cut(key), value, "is not a file field");
    }
    FileEntry f;
    f.sha256 = r.str(entry, "sha256", at + ".sha256");
    if (!is_hex64(f.sha256)) r.bad(at + ".sha256", entry.object.at("sha256"), "must be 64 lowercase hex digits");
    f.bytes = uint64_t(r.integer(entry, "bytes", at + ".bytes", 1, int64_t(kMaxFileBytes)));
    m.files[name] = f;
  }

  const Json& onnx = r.object(root, "onnx", "onnx");
  m.onnx_file = r.name(r.get(onnx, "file", "onnx.file"), "onnx.file");
  if (m.onnx_file == "manifest.json") r.bad("onnx.file", onnx.object.at("file"), "must not be the manifest");
  m.opset = r.integer(onnx, "opset", "onnx.opset", 1, 1000);
  const Json& ext = r.get(onnx, "external_data", "onnx.external_data");
  if (ext.kind != Json::Kind::kNull) {
    m.external_data = r.name(ext, "onnx.external_data");
    if (m.external_data == m.onnx_file || m.external_data == "manifest.json")
      r.bad("onnx.external_data", ext, "must differ from onnx.file and manifest.json");
  }

  const Json& inputs = r.object(root, "inputs", "inputs");
  const Json& outputs = r.object(root, "outputs", "outputs");
  if (inputs.object.size() != 2 || !inputs.find("tokens") || !inputs.find("position"))
    r.bad("inputs", inputs, "must have exactly the keys 'tokens' and 'position'");
  if (outputs.object.size() != 1 || !outputs.find("logits"))
    r.bad("outputs", outputs, "must have exactly the key 'logits'");
  r.equal(inputs, "tokens", "inputs.tokens", "tokens");
  r.equal(inputs, "position", "inputs.position", "position");
  r.equal(outputs, "logits", "outputs.logits", "logits");
  m.tokens_input = "tokens";
  m.position_input = "position";
  m.logits_output = "logits";

  // The state is fixed by the model config (h.i then u.i per layer, in graph input order): a manifest
  // can neither rewire nor reorder it.
  const Json& state = r.get(root, "state", "state");
  if (state.kind != Json::Kind::kArray) r.bad("state", state, "must be a list of state tensors");
  const ModelConfig& c = m.config;
  const int64_t hd = c.d_model / c.n_heads;
  std::vector<StateSpec> expected;
  for (int64_t i = 0; i < c.n_layers; ++i) {
    for (int kind = 0; kind < 2; ++kind) {
      StateSpec s;
      std::string n = (kind == 0 ? "h." : "u.") + std::to_string(i);
      s.name = n, s.input = "past_" + n, s.output = "present_" + n;
      s.shape = kind == 0 ? std::vector<int64_t>{1, c.n_heads, hd, hd} : std::vector<int64_t>{1, c.d_model};
      s.count = kind == 0 ? size_t(c.n_heads * hd * hd) : size_t(c.d_model);
      expected.push_back(std::move(s));
    }
  }
  for (size_t i = 0; i < state.array.size() && i < expected.size(); ++i) {
    const Json& e = state.array[i];
    const StateSpec& want = expected[i];
    std::string at = "state[" + std::to_string(i) + "]";
    if (e.kind != Json::Kind::kObject) r.bad(at, e, "must be an object");
    for (const auto& [key, value] : e.object) {
      if (key != "name" && key != "input" && key != "output" && key != "dtype" && key != "shape" && key != "init")
        r.bad(at + "." + cut(key), value, "is not a state field");
    }
    r.equal(e, "dtype", at + ".dtype", "float32");
    const Json& shape = r.get(e, "shape", at + ".shape");
    bool shape_ok = shape.kind == Json::Kind::kArray && shape.array.size() == want.shape.size() &&
                    shape.array[0].kind == Json::Kind::kString && shape.array[0].string == "batch";
    for (size_t d = 1; shape_ok && d < want.shape.size(); ++d)
      shape_ok = shape.array[d].is_integer() && int64_t(shape.array[d].number) == want.shape[d];
    if (!shape_ok) {
      std::string w = "[\"batch\"";
      for (size_t d = 1; d < want.shape.size(); ++d) w += ", " + std::to_string(want.shape[d]);
      r.bad(at + ".shape", shape, "must be " + w + "] (from the model config)");
    }
    r.equal(e, "name", at + ".name", want.name);
    r.equal(e, "input", at + ".input", want.input);
    r.equal(e, "output", at + ".output", want.output);
    if (e.find("init")) r.equal(e, "init", at + ".init", "zeros");
  }
  if (state.array.size() != expected.size()) {
    r.fail("field 'state' lists " + std::to_string(state.array.size()) + " tensors, must list " +
           std::to_string(expected.size()) + " (2 per layer of the model config)");
  }
  m.state = expected;
  uint64_t total = 0;
  for (const auto& s : m.state) total += s.count * 4;
  m.state_bytes = size_t(total);
  int64_t sb = r.integer(root, "state_bytes_per_stream", "state_bytes_per_stream", 1, int64_t(kMaxStateBytes));
  if (uint64_t(sb) != total)
    r.bad("state_bytes_per_stream", root.object.at("state_bytes_per_stream"),
          "disagrees with the state shapes (" + std::to_string(total) + ")");
  m.max_position = uint64_t(r.integer(root, "max_position", "max_position", 1, int64_t(kMaxPosition)));

  const Json& tok = r.object(root, "tokenizer", "tokenizer");
  m.tokenizer = r.str(tok, "type", "tokenizer.type");
  if (m.tokenizer != "bytes" && m.tokenizer != "hf")
    r.bad("tokenizer.type", tok.object.at("type"), "must be one of bytes, hf");
  int64_t tok_vocab = r.integer(tok, "vocab_size", "tokenizer.vocab_size", 1, c.vocab_size);
  const Json& tf = r.get(tok, "file", "tokenizer.file");
  if (m.tokenizer == "bytes") {
    if (tok_vocab != 256)
      r.bad("tokenizer.vocab_size", tok.object.at("vocab_size"), "must be 256 for the byte tokenizer");
    if (tf.kind != Json::Kind::kNull) r.bad("tokenizer.file", tf, "must be null for the byte tokenizer");
  } else {
    m.tokenizer_file = r.name(tf, "tokenizer.file");
  }

  std::vector<std::string> used{m.onnx_file};
  if (!m.external_data.empty()) used.push_back(m.external_data);
  if (!m.tokenizer_file.empty()) used.push_back(m.tokenizer_file);
  if (std::set<std::string>(used.begin(), used.end()).size() != used.size()) {
    r.bad("onnx.file", onnx.object.at("file"),
          "names the same file twice among onnx.file, onnx.external_data and tokenizer.file");
  }
  for (const auto& [field, name] : {std::pair<std::string, std::string>{"onnx.file", m.onnx_file},
                                    {"onnx.external_data", m.external_data},
                                    {"tokenizer.file", m.tokenizer_file}}) {
    if (!name.empty() && !m.files.count(name)) {
      r.fail("field '" + field + "' = \"" + cut(name) +
             "\" is not listed in 'files' (every file the runtime reads needs its size and sha256)");
    }
  }
  for (const auto& [name, entry] : m.files) {
    if (std::find(used.begin(), used.end(), name) == used.end())
      r.fail("field 'files." + cut(name) + "' is listed but not used by the package");
  }
  return m;
}

}  // namespace ae
