#include "onnx_graph.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include "astroedge.h"
#include "error.h"

namespace ae {
namespace {

constexpr int kMaxNesting = 32;  // subgraphs inside attributes inside subgraphs...
constexpr int64_t kFloat = 1, kInt64 = 7;
constexpr const char* kRegenerate = "re-export the package with 'astroedge export'";

struct Span {
  size_t begin = 0, end = 0;
};

struct Field {
  uint32_t number = 0;
  int wire = 0;
  uint64_t varint = 0;  // wire 0
  Span span;            // wire 2 (also 1 and 5: the raw bytes)
};

class Protobuf {
 public:
  Protobuf(const uint8_t* data, size_t size) : d_(data), n_(size) {}

  std::vector<Field> fields(Span s) const {
    std::vector<Field> out;
    size_t pos = s.begin;
    while (pos < s.end) {
      uint64_t key = varint(pos, s.end);
      Field f;
      if ((key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) throw std::runtime_error("bad field number");
      f.number = uint32_t(key >> 3);
      f.wire = int(key & 7);
      if (f.wire == 0) {
        f.varint = varint(pos, s.end);
      } else if (f.wire == 1 || f.wire == 5) {
        size_t len = f.wire == 1 ? 8 : 4;
        if (len > s.end - pos) throw std::runtime_error("truncated message");
        f.span = {pos, pos + len};
        pos += len;
      } else if (f.wire == 2) {
        uint64_t len = varint(pos, s.end);
        if (len > s.end - pos) throw std::runtime_error("truncated message");
        f.span = {pos, pos + size_t(len)};
        pos += size_t(len);
      } else {
        throw std::runtime_error("unsupported wire type " + std::to_string(f.wire));
      }
      out.push_back(f);
    }
    return out;
  }

  std::string text(const Field& f) const {
    if (f.wire != 2) throw std::runtime_error("string field with a non-length wire type");
    return std::string(reinterpret_cast<const char*>(d_ + f.span.begin), f.span.end - f.span.begin);
  }
  Span sub(const Field& f) const {
    if (f.wire != 2) throw std::runtime_error("message field with a non-length wire type");
    return f.span;
  }
  size_t size() const { return n_; }

 private:
  uint64_t varint(size_t& pos, size_t end) const {
    uint64_t result = 0;
    for (int shift = 0; shift <= 63; shift += 7) {
      if (pos >= end) break;
      uint8_t b = d_[pos++];
      result |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return result;
    }
    throw std::runtime_error("truncated or overlong varint");
  }
  const uint8_t* d_;
  size_t n_;
};

ValueInfo value_info(const Protobuf& pb, Span s) {
  ValueInfo v;
  for (const Field& f : pb.fields(s)) {
    if (f.number == 1) {
      v.name = pb.text(f);
    } else if (f.number == 2) {  // TypeProto
      for (const Field& t : pb.fields(pb.sub(f))) {
        if (t.number != 1) continue;  // tensor_type
        for (const Field& x : pb.fields(pb.sub(t))) {
          if (x.number == 1 && x.wire == 0) {
            v.elem_type = int64_t(x.varint);
          } else if (x.number == 2) {  // TensorShapeProto
            for (const Field& d : pb.fields(pb.sub(x))) {
              if (d.number != 1) continue;
              int64_t dim = -1;
              for (const Field& k : pb.fields(pb.sub(d))) {
                if (k.number == 1 && k.wire == 0)
                  dim = int64_t(k.varint);
                else if (k.number == 2)
                  dim = -1;
              }
              v.dims.push_back(dim);
            }
          }
        }
      }
    }
  }
  return v;
}

uint64_t to_u64(const std::string& s, const std::string& tensor) {
  uint64_t v = 0;
  auto res = std::from_chars(s.data(), s.data() + s.size(), v);
  if (res.ec != std::errc() || res.ptr != s.data() + s.size())
    throw std::runtime_error("tensor '" + tensor.substr(0, 60) + "': external data offset/length are not integers");
  return v;
}

void tensor(const Protobuf& pb, Span s, GraphFacts& facts, bool initializer) {
  std::string name;
  bool external = false;
  std::map<std::string, std::string> entries;
  for (const Field& f : pb.fields(s)) {
    if (f.number == 8) {
      name = pb.text(f);
    } else if (f.number == 14 && f.wire == 0) {
      external = f.varint == 1;
    } else if (f.number == 13) {
      std::string key, value;
      for (const Field& k : pb.fields(pb.sub(f))) {
        if (k.number == 1)
          key = pb.text(k);
        else if (k.number == 2)
          value = pb.text(k);
      }
      entries[key] = value;
    }
  }
  if (initializer) facts.initializers.insert(name);
  if (external || !entries.empty()) {
    ExternalRef ref;
    ref.tensor = name;
    ref.location = entries.count("location") ? entries["location"] : "";
    ref.offset = entries.count("offset") ? to_u64(entries["offset"], name) : 0;
    ref.length = entries.count("length")
                     ? int64_t(std::min<uint64_t>(to_u64(entries["length"], name), uint64_t(INT64_MAX)))
                     : -1;
    facts.external.push_back(ref);
  }
}

void nodes(const Protobuf& pb, const std::vector<Span>& spans, GraphFacts& facts, int depth);

void graph(const Protobuf& pb, Span s, GraphFacts& facts, int depth, bool top) {
  if (depth > kMaxNesting) throw std::runtime_error("subgraphs nest deeper than " + std::to_string(kMaxNesting));
  for (const Field& f : pb.fields(s)) {
    if (f.number == 1) {
      nodes(pb, {pb.sub(f)}, facts, depth);
    } else if (f.number == 5) {
      tensor(pb, pb.sub(f), facts, top);
    } else if (f.number == 15) {  // SparseTensorProto: values, indices
      for (const Field& x : pb.fields(pb.sub(f))) {
        if (x.number == 1 || x.number == 2) tensor(pb, pb.sub(x), facts, false);
      }
    } else if (top && f.number == 11) {
      facts.inputs.push_back(value_info(pb, pb.sub(f)));
    } else if (top && f.number == 12) {
      facts.outputs.push_back(value_info(pb, pb.sub(f)));
    }
  }
}

void nodes(const Protobuf& pb, const std::vector<Span>& spans, GraphFacts& facts, int depth) {
  for (const Span& s : spans) {
    for (const Field& f : pb.fields(s)) {
      if (f.number != 5) continue;  // attribute
      for (const Field& a : pb.fields(pb.sub(f))) {
        if (a.number == 5 || a.number == 10) {  // t, tensors
          tensor(pb, pb.sub(a), facts, false);
        } else if (a.number == 6 || a.number == 11) {  // g, graphs
          graph(pb, pb.sub(a), facts, depth + 1, false);
        } else if (a.number == 22 || a.number == 23) {  // sparse_tensor(s)
          for (const Field& x : pb.fields(pb.sub(a))) {
            if (x.number == 1 || x.number == 2) tensor(pb, pb.sub(x), facts, false);
          }
        }
      }
    }
  }
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + (dims[i] < 0 ? std::string("*") : std::to_string(dims[i]));
  return s + "]";
}

}  // namespace

GraphFacts graph_facts(const uint8_t* data, size_t size, const std::string& source) {
  Protobuf pb(data, size);
  GraphFacts facts;
  try {
    int graphs = 0;
    for (const Field& f : pb.fields({0, size})) {
      if (f.number == 7) {
        graph(pb, pb.sub(f), facts, 0, true);
        ++graphs;
      } else if (f.number == 8) {
        std::string domain;
        int64_t version = 0;
        for (const Field& o : pb.fields(pb.sub(f))) {
          if (o.number == 1)
            domain = pb.text(o);
          else if (o.number == 2 && o.wire == 0)
            version = int64_t(o.varint);
        }
        facts.opsets[domain.empty() ? "ai.onnx" : domain] = version;
      } else if (f.number == 25) {  // FunctionProto: node = 7
        std::vector<Span> spans;
        for (const Field& x : pb.fields(pb.sub(f))) {
          if (x.number == 7) spans.push_back(pb.sub(x));
        }
        nodes(pb, spans, facts, 1);
      }
    }
    if (graphs != 1) throw std::runtime_error(graphs == 0 ? "no graph" : "more than one graph");
  } catch (const std::runtime_error& e) {
    throw Error(AE_ERR_FORMAT, source + ": not a valid ONNX model (" + std::string(e.what()).substr(0, 120) +
                                   "); the file is damaged, " + kRegenerate);
  }
  return facts;
}

void check_graph(const GraphFacts& facts, const Manifest& m, const std::string& source) {
  auto fail = [&](const std::string& what) { throw Error(AE_ERR_FORMAT, source + ": " + what + "; " + kRegenerate); };
  const FileEntry* ext = m.external_data.empty() ? nullptr : &m.files.at(m.external_data);
  for (const ExternalRef& ref : facts.external) {
    if (!ext || ref.location != m.external_data) {
      fail("tensor '" + ref.tensor.substr(0, 60) + "' keeps its data in '" + ref.location.substr(0, 80) +
           "', which is not the package's listed onnx.external_data (" +
           (m.external_data.empty() ? std::string("none") : m.external_data) + ")");
    }
    uint64_t length = ref.length < 0 ? 0 : uint64_t(ref.length);
    if (ref.offset > ext->bytes || length > ext->bytes - ref.offset) {
      fail("tensor '" + ref.tensor.substr(0, 60) + "' reads bytes " + std::to_string(ref.offset) + ".." +
           std::to_string(ref.offset + length) + " of " + m.external_data + ", which holds " +
           std::to_string(ext->bytes));
    }
  }
  if (ext && facts.external.empty())
    fail("onnx.external_data names " + m.external_data + " but the graph keeps no data outside");
  auto opset = facts.opsets.find("ai.onnx");
  if (opset == facts.opsets.end() || opset->second != m.opset) {
    fail("graph opset " + (opset == facts.opsets.end() ? std::string("(none)") : std::to_string(opset->second)) +
         " differs from the manifest's onnx.opset " + std::to_string(m.opset));
  }

  struct Want {
    int64_t elem;
    std::vector<int64_t> dims;  // -1: any size
  };
  std::map<std::string, Want> want_in{{m.tokens_input, {kInt64, {-1, -1}}}, {m.position_input, {kInt64, {-1}}}};
  std::map<std::string, Want> want_out{{m.logits_output, {kFloat, {-1, -1, m.vocab_size}}}};
  for (const auto& s : m.state) {
    std::vector<int64_t> dims = s.shape;
    dims[0] = -1;
    want_in[s.input] = {kFloat, dims};
    want_out[s.output] = {kFloat, dims};
  }
  std::vector<ValueInfo> graph_inputs;
  for (const auto& v : facts.inputs) {
    if (!facts.initializers.count(v.name)) graph_inputs.push_back(v);
  }
  for (int k = 0; k < 2; ++k) {
    const char* kind = k == 0 ? "input" : "output";
    const std::vector<ValueInfo>& values = k == 0 ? graph_inputs : facts.outputs;
    const std::map<std::string, Want>& want = k == 0 ? want_in : want_out;
    std::set<std::string> names;
    for (const auto& v : values) {
      if (!want.count(v.name))
        fail("the graph has the unexpected " + std::string(kind) + " '" + v.name.substr(0, 60) + "'");
      if (!names.insert(v.name).second)
        fail("the graph repeats the " + std::string(kind) + " '" + v.name.substr(0, 60) + "'");
    }
    for (const auto& [name, w] : want) {
      if (!names.count(name))
        fail("the graph lacks the " + std::string(kind) + " '" + name + "' named in manifest.json");
    }
    for (const auto& v : values) {
      const Want& w = want.at(v.name);
      bool ok = v.elem_type == w.elem && v.dims.size() == w.dims.size();
      for (size_t d = 0; ok && d < v.dims.size(); ++d) ok = w.dims[d] < 0 || v.dims[d] == w.dims[d];
      for (size_t d = 0; ok && d < v.dims.size(); ++d) ok = v.dims[d] != 0;
      if (!ok) {
        fail("graph " + std::string(kind) + " '" + v.name + "' has element type " + std::to_string(v.elem_type) +
             " and shape " + dims_text(v.dims) + ", the manifest says type " + std::to_string(w.elem) + " and shape " +
             dims_text(w.dims));
      }
    }
  }
}

}  // namespace ae
