#include "engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <memory>
#include <set>

#include "error.h"

namespace {

using ae::Error;

// Longest run of tokens one graph call gets: bounds the [chunk, vocab] logits buffer of a prefill.
// 256 as in the Python runtime's Stream.feed, so that both compute the same floats.
constexpr size_t kMaxChunk = 256;

const OrtApi* ort_api() {
  const OrtApiBase* base = OrtGetApiBase();
  const OrtApi* api = base ? base->GetApi(ORT_API_VERSION) : nullptr;
  if (!api) {
    throw Error(AE_ERR_VERSION, std::string("onnxruntime ") + (base ? base->GetVersionString() : "?") +
                                    " does not offer C API version " + std::to_string(ORT_API_VERSION) +
                                    "; use onnxruntime 1.23 or newer");
  }
  return api;
}

// Turns an OrtStatus into an ae::Error (and releases it); a null status is success.
void check(const OrtApi* api, OrtStatus* status, const std::string& what) {
  if (!status) return;
  std::string msg = api->GetErrorMessage(status);
  api->ReleaseStatus(status);
  size_t nl = msg.find('\n');
  if (nl != std::string::npos) msg.resize(nl);
  throw Error(AE_ERR_RUNTIME, what + ": onnxruntime: " + msg);
}

}  // namespace

AeEngine::AeEngine(const AeEngineConfig& config) {
  manifest = ae::read_manifest(config.package_dir);
  if (config.verify_checksums) ae::verify_files(manifest);
  model_sha256 = manifest.files.at(manifest.onnx_file).sha256;
  for (const auto& s : manifest.state) {
    state_offsets.push_back(state_floats);
    state_floats += s.count;
  }
  std::string lib = config.amsu_library ? config.amsu_library : "";
  if (!lib.empty()) {
    struct stat st {};
    if (stat(lib.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw Error(AE_ERR_IO, "amsu_library " + lib + ": no such file; build it with 'make plugins' or pass NULL to run the fallback function");
    }
  }
  kernel = lib.empty() ? "fallback" : "library";

  api_ = ort_api();
  std::string model = manifest.path(manifest.onnx_file);
  OrtSessionOptions* opts = nullptr;
  try {
    check(api_, api_->CreateEnv(ORT_LOGGING_LEVEL_ERROR, "astroedge", &env_), "creating the environment");
    check(api_, api_->CreateSessionOptions(&opts), "creating session options");
    if (config.num_threads > 0) check(api_, api_->SetIntraOpNumThreads(opts, config.num_threads), "setting num_threads");
    if (!lib.empty()) check(api_, api_->RegisterCustomOpsLibrary_V2(opts, lib.c_str()), "amsu_library " + lib);
    check(api_, api_->CreateSession(env_, model.c_str(), opts, &session_), model);
    api_->ReleaseSessionOptions(opts);
    opts = nullptr;
    check(api_, api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_), "creating memory info");
    input_names_ = {manifest.tokens_input, manifest.position_input};
    output_names_ = {manifest.logits_output};
    for (const auto& s : manifest.state) {
      input_names_.push_back(s.input);
      output_names_.push_back(s.output);
    }
    check_io();
  } catch (...) {
    if (opts) api_->ReleaseSessionOptions(opts);
    release();  // a constructor that throws gets no destructor call
    throw;
  }
}

AeEngine::~AeEngine() { release(); }

void AeEngine::release() {
  if (memory_) api_->ReleaseMemoryInfo(memory_);
  if (session_) api_->ReleaseSession(session_);
  if (env_) api_->ReleaseEnv(env_);
  memory_ = nullptr;
  session_ = nullptr;
  env_ = nullptr;
}

void AeEngine::check_io() const {
  OrtAllocator* alloc = nullptr;
  check(api_, api_->GetAllocatorWithDefaultOptions(&alloc), "getting the allocator");
  auto names = [&](bool inputs) {
    size_t count = 0;
    check(api_, inputs ? api_->SessionGetInputCount(session_, &count) : api_->SessionGetOutputCount(session_, &count), "reading graph I/O");
    std::set<std::string> out;
    for (size_t i = 0; i < count; ++i) {
      char* name = nullptr;
      check(api_, inputs ? api_->SessionGetInputName(session_, i, alloc, &name) : api_->SessionGetOutputName(session_, i, alloc, &name),
            "reading graph I/O");
      out.insert(name);
      alloc->Free(alloc, name);
    }
    return out;
  };
  std::string file = manifest.path("manifest.json");
  std::set<std::string> graph_inputs = names(true), graph_outputs = names(false);
  for (const auto& n : input_names_) {
    if (!graph_inputs.erase(n)) throw Error(AE_ERR_FORMAT, file + ": graph input '" + n + "' is not in " + manifest.onnx_file + "; re-export the package");
  }
  if (!graph_inputs.empty()) {
    throw Error(AE_ERR_FORMAT, manifest.path(manifest.onnx_file) + ": graph input '" + *graph_inputs.begin() +
                                   "' is not described by manifest.json; re-export the package");
  }
  for (const auto& n : output_names_) {
    if (!graph_outputs.count(n)) throw Error(AE_ERR_FORMAT, file + ": graph output '" + n + "' is not in " + manifest.onnx_file + "; re-export the package");
  }
}

void AeEngine::run(const int64_t* tokens, size_t n, int64_t position, const float* past, float* present, float* logits) const {
  struct Values {
    const OrtApi* api;
    std::vector<OrtValue*> v;
    ~Values() {
      for (OrtValue* x : v) api->ReleaseValue(x);
    }
  };
  Values in{api_, {}}, out{api_, {}};
  auto tensor = [&](Values& into, void* data, size_t bytes, const std::vector<int64_t>& shape, ONNXTensorElementDataType type) {
    OrtValue* value = nullptr;
    check(api_, api_->CreateTensorWithDataAsOrtValue(memory_, data, bytes, shape.data(), shape.size(), type, &value), "creating a tensor");
    into.v.push_back(value);
  };
  const auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  const auto i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  tensor(in, const_cast<int64_t*>(tokens), n * sizeof(int64_t), {1, int64_t(n)}, i64);
  tensor(in, &position, sizeof(int64_t), {1}, i64);
  tensor(out, logits, n * size_t(manifest.vocab_size) * sizeof(float), {1, int64_t(n), manifest.vocab_size}, f32);
  for (size_t i = 0; i < manifest.state.size(); ++i) {
    const auto& s = manifest.state[i];
    tensor(in, const_cast<float*>(past) + state_offsets[i], s.count * sizeof(float), s.shape, f32);
    tensor(out, present + state_offsets[i], s.count * sizeof(float), s.shape, f32);
  }
  std::vector<const char*> in_names, out_names;
  for (const auto& s : input_names_) in_names.push_back(s.c_str());
  for (const auto& s : output_names_) out_names.push_back(s.c_str());
  check(api_,
        api_->Run(session_, nullptr, in_names.data(), in.v.data(), in.v.size(), out_names.data(), out_names.size(), out.v.data()),
        "running " + manifest.path(manifest.onnx_file));
}

AeStream::AeStream(AeEngine* e)
    : engine(e),
      state(e->state_floats, 0.0f),
      next(e->state_floats, 0.0f),
      logits(size_t(e->manifest.vocab_size), 0.0f),
      seen(size_t(e->manifest.vocab_size), 0) {}

void AeStream::reset() {
  std::fill(state.begin(), state.end(), 0.0f);
  std::fill(logits.begin(), logits.end(), 0.0f);
  std::fill(seen.begin(), seen.end(), uint8_t(0));
  position = 0;
  has_logits = false;
}

void AeStream::feed(const int32_t* tokens, size_t n) {
  const ae::Manifest& m = engine->manifest;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= m.vocab_size) {
      throw Error(AE_ERR_INVALID_ARGUMENT, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) + " is outside the vocabulary [0, " +
                                               std::to_string(m.vocab_size) + ")");
    }
  }
  if (n > m.max_position || position > m.max_position - n) {
    throw Error(AE_ERR_POSITION, "stream position " + std::to_string(position) + " + " + std::to_string(n) + " tokens would pass the package's max_position " +
                                     std::to_string(m.max_position) + "; reset the stream");
  }
  if (n == 0) return;
  size_t vocab = size_t(m.vocab_size);
  // State flows state -> next (-> spare -> next ... for long prefills); `state` is replaced only
  // after every chunk succeeded, so a failing call leaves the stream as it was.
  std::vector<float> spare(n > kMaxChunk ? state.size() : 0);
  const float* src = state.data();
  float* dst = next.data();
  uint64_t pos = position;
  std::vector<int64_t> ids(std::min(n, kMaxChunk));
  for (size_t start = 0; start < n; start += kMaxChunk) {
    size_t len = std::min(kMaxChunk, n - start);
    for (size_t i = 0; i < len; ++i) ids[i] = tokens[start + i];
    scratch.resize(len * vocab);
    engine->run(ids.data(), len, int64_t(pos), src, dst, scratch.data());
    pos += len;
    src = dst;
    dst = dst == next.data() ? spare.data() : next.data();
  }
  state.swap(src == next.data() ? next : spare);
  position = pos;
  std::copy(scratch.end() - std::ptrdiff_t(vocab), scratch.end(), logits.begin());
  has_logits = true;
  for (size_t i = 0; i < n; ++i) seen[size_t(tokens[i])] = 1;
}
