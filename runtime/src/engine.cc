#include "engine.h"

#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <set>

#include "error.h"
#include "fs.h"
#include "json.h"
#include "onnx_graph.h"
#include "sha256.h"

namespace {

using ae::Error;

// Longest run of tokens one graph call gets: bounds the [chunk, vocab] logits buffer of a prefill.
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

// onnxruntime's messages can run over many lines (graph dumps, stack traces): keep the first line, at
// most 300 characters, so that ae_last_error() stays one line.
std::string one_line(std::string msg) {
  size_t nl = msg.find_first_of("\r\n");
  if (nl != std::string::npos) msg.resize(nl);
  if (msg.size() > 300) msg = msg.substr(0, 297) + "...";
  return msg;
}

// Turns an OrtStatus into an ae::Error (and releases it); a null status is success.
void check(const OrtApi* api, OrtStatus* status, const std::string& what, AeStatus code = AE_ERR_RUNTIME) {
  if (!status) return;
  std::string msg = one_line(api->GetErrorMessage(status));
  api->ReleaseStatus(status);
  throw Error(code, what + ": onnxruntime: " + msg);
}

}  // namespace

std::string AeEngineParams::resolved_amsu_library(std::string* source) const {
  if (amsu_set) {
    *source = "amsu_library";
    return amsu_library;
  }
  *source = "ASTROEDGE_ORT_LIBRARY";
  const char* env = std::getenv("ASTROEDGE_ORT_LIBRARY");
  return env ? env : "";
}

size_t ae::first_non_finite(const float* data, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (!std::isfinite(data[i])) return i;
  }
  return n;
}

AeEngine::AeEngine(const AeEngineParams& params) : device(params.device) {
  ae::PackageDir dir(params.package_dir);
  std::vector<uint8_t> raw = dir.read("manifest.json", -1, ae::kMaxManifestBytes);
  ae::Sha256 mh;
  mh.update(raw.data(), raw.size());
  auto md = mh.digest();
  manifest =
      ae::parse_manifest(std::string(raw.begin(), raw.end()), params.package_dir, ae::to_hex(md.data(), md.size()));
  run_failed_ = manifest.path(manifest.onnx_file) +
                ": the graph failed to run (the package is damaged or was edited; re-export it)";

  // Every listed file is read once, size-checked before allocation, hashed, and the bytes that were
  // hashed are the bytes the session is built from: nothing is reopened later.
  // Everything listed is read into memory: a package that claims more than this machine has (a
  // sparse 1 TiB file, say) is refused before anything is allocated.
  uint64_t listed = 0;
  for (const auto& [name, entry] : manifest.files) listed += entry.bytes;
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  const uint64_t memory = pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : UINT64_MAX;
  if (listed > memory) {
    throw Error(AE_ERR_UNSUPPORTED, manifest.path("manifest.json") + ": the package's files hold " +
                                        std::to_string(listed) + " bytes, more than this machine's memory (" +
                                        std::to_string(memory) + " bytes); it cannot be loaded here");
  }
  std::vector<uint8_t> model, external;
  for (const auto& [name, entry] : manifest.files) {
    std::vector<uint8_t> bytes = dir.read(name, int64_t(entry.bytes), 0);
    if (params.verify_checksums) {
      ae::Sha256 h;
      h.update(bytes.data(), bytes.size());
      auto d = h.digest();
      std::string got = ae::to_hex(d.data(), d.size());
      if (got != entry.sha256) {
        throw Error(AE_ERR_CHECKSUM,
                    dir.path(name) + ": sha256 " + got.substr(0, 16) + "... differs from manifest.json (" +
                        entry.sha256.substr(0, 16) +
                        "...); the file is damaged or was changed: re-export the package with 'astroedge export'");
      }
    }
    if (name == manifest.onnx_file)
      model = std::move(bytes);
    else if (name == manifest.external_data)
      external = std::move(bytes);
    else if (name == manifest.tokenizer_file)
      tokenizer_data = std::move(bytes);
  }
  if (!tokenizer_data.empty()) {
    std::string text(tokenizer_data.begin(), tokenizer_data.end());
    if (tokenizer_data.size() > ae::kMaxTokenizerBytes) {
      throw Error(AE_ERR_FORMAT, dir.path(manifest.tokenizer_file) + ": " + std::to_string(tokenizer_data.size()) +
                                     " bytes, more than a tokenizer may hold (" +
                                     std::to_string(ae::kMaxTokenizerBytes) + ")");
    }
    try {
      ae::parse_json(text, 64);  // UTF-8 and well-formed; the binding's tokenizers library reads the rest
    } catch (const std::runtime_error& e) {
      throw Error(AE_ERR_FORMAT, dir.path(manifest.tokenizer_file) + ": not a valid tokenizer file (" + e.what() +
                                     "); re-export the package with 'astroedge export'");
    }
  }
  // The graph is checked before onnxruntime sees it: it may read no file but the listed external data.
  std::string model_path = dir.path(manifest.onnx_file);
  ae::GraphFacts facts = ae::graph_facts(model.data(), model.size(), model_path);
  ae::check_graph(facts, manifest, model_path);
  for (const auto& s : manifest.state) {
    state_offsets.push_back(state_floats);
    state_floats += s.count;
  }
  if (device == "tensorrt" || device == "jetson") {
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> initializers;
    for (const auto& ref : facts.external) {
      uint64_t length =
          ref.length < 0 ? manifest.files.at(manifest.external_data).bytes - ref.offset : uint64_t(ref.length);
      initializers.push_back({ref.tensor, {ref.offset, length}});
    }
    try {
      load_tensorrt(params, model, external, initializers);
    } catch (...) {
      release();  // a constructor that throws gets no destructor call
      throw;
    }
  } else {
    load_session(params, model, external);
  }
}

void AeEngine::load_session(const AeEngineParams& params, const std::vector<uint8_t>& model,
                            const std::vector<uint8_t>& external) {
  std::string source;
  std::string lib = params.resolved_amsu_library(&source);
  if (!lib.empty()) {
    struct stat st{};
    if (stat(lib.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      throw Error(AE_ERR_IO, source + " " + lib + ": no such file; build it with 'make plugins', or set " + source +
                                 " to \"\" to run the fallback function on purpose");
    }
  }
  kernel = lib.empty() ? "fallback" : "library";

  api_ = ort_api();
  std::string model_path = manifest.path(manifest.onnx_file);
  OrtSessionOptions* opts = nullptr;
  try {
    check(api_, api_->CreateEnv(ORT_LOGGING_LEVEL_FATAL, "astroedge", &env_), "creating the environment");
    check(api_, api_->CreateSessionOptions(&opts), "creating session options");
    if (params.num_threads > 0)
      check(api_, api_->SetIntraOpNumThreads(opts, params.num_threads), "setting num_threads");
    if (!lib.empty())
      check(api_, api_->RegisterCustomOpsLibrary_V2(opts, lib.c_str()), source + " " + lib + " could not be loaded",
            AE_ERR_IO);
    if (device == "cuda") {
      const std::string what =
          "device \"cuda\": the CUDA execution provider could not be loaded (use an onnxruntime-gpu build with CUDA, "
          "or \"cpu\")";
      OrtCUDAProviderOptionsV2* cuda = nullptr;
      check(api_, api_->CreateCUDAProviderOptions(&cuda), what, AE_ERR_UNSUPPORTED);
      std::string id = std::to_string(params.device_id);
      const char* keys[] = {"device_id"};
      const char* values[] = {id.c_str()};
      OrtStatus* st = api_->UpdateCUDAProviderOptions(cuda, keys, values, 1);
      if (!st) st = api_->SessionOptionsAppendExecutionProvider_CUDA_V2(opts, cuda);
      api_->ReleaseCUDAProviderOptions(cuda);
      check(api_, st, what, AE_ERR_UNSUPPORTED);
    }
    if (!manifest.external_data.empty()) {
      const char* names[] = {manifest.external_data.c_str()};
      char* buffers[] = {const_cast<char*>(reinterpret_cast<const char*>(external.data()))};
      size_t lengths[] = {external.size()};
      check(api_, api_->AddExternalInitializersFromFilesInMemory(opts, names, buffers, lengths, 1),
            manifest.path(manifest.external_data));
    }
    check(api_, api_->CreateSessionFromArray(env_, model.data(), model.size(), opts, &session_), model_path,
          AE_ERR_FORMAT);
    api_->ReleaseSessionOptions(opts);
    opts = nullptr;
    check(api_, api_->CreateCpuMemoryInfo(OrtArenaAllocator, OrtMemTypeDefault, &memory_), "creating memory info");
    if (device == "cuda") {
      check(api_, api_->CreateMemoryInfo("Cuda", OrtDeviceAllocator, params.device_id, OrtMemTypeDefault, &gpu_memory_),
            "device \"cuda\": memory info");
      check(api_, api_->CreateAllocator(session_, gpu_memory_, &gpu_alloc_), "device \"cuda\": the GPU allocator",
            AE_ERR_UNSUPPORTED);
      for (const char* name : {"libcudart.so.12", "libcudart.so.13", "libcudart.so.11.0", "libcudart.so"}) {
        if ((cuda_.handle = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
      }
      if (cuda_.handle) {
        cuda_.memcpy = reinterpret_cast<int (*)(void*, const void*, size_t, int)>(dlsym(cuda_.handle, "cudaMemcpy"));
        cuda_.memset = reinterpret_cast<int (*)(void*, int, size_t)>(dlsym(cuda_.handle, "cudaMemset"));
        cuda_.synchronize = reinterpret_cast<int (*)()>(dlsym(cuda_.handle, "cudaDeviceSynchronize"));
      }
      if (!cuda_.memcpy || !cuda_.memset || !cuda_.synchronize) {
        throw Error(AE_ERR_UNSUPPORTED,
                    "device \"cuda\": the CUDA runtime (libcudart.so.12) could not be loaded beside onnxruntime's CUDA "
                    "provider; install CUDA, or use \"cpu\"");
      }
    }
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

namespace {

// The folder libastroedge was loaded from: its TensorRT module is looked for there, nowhere else.
std::string library_folder() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&ae_api_version), &info) || !info.dli_fname) return ".";
  std::string path = info.dli_fname;
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// mkdir -p; failures show up when the cache file is written (a cache that can't be written only costs
// a rebuild next time, so they are not errors).
void make_folders(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
  }
}

}  // namespace

void AeEngine::load_tensorrt(const AeEngineParams& params, const std::vector<uint8_t>& model,
                             const std::vector<uint8_t>& external,
                             const std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>& initializers) {
  const std::string where = "device \"" + device + "\"";
  std::string module = library_folder() + "/libastroedge_tensorrt.so";
  struct stat st{};
  if (stat(module.c_str(), &st) != 0) {
    throw Error(AE_ERR_UNSUPPORTED, where + ": " + module +
                                        " is missing: this libastroedge was built without TensorRT (configure it where "
                                        "TensorRT is installed, TENSORRT_ROOT=...), or use \"cpu\" / \"cuda\"");
  }
  trt_module_ = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!trt_module_) {
    const char* why = dlerror();
    throw Error(AE_ERR_UNSUPPORTED, where + ": " + module + " could not be loaded (" + (why ? why : "?") +
                                        "): TensorRT or CUDA is missing on this machine");
  }
  std::string source;
  std::string plugin = params.resolved_amsu_library(&source);
  if (plugin.empty()) {
    throw Error(
        AE_ERR_INVALID_ARGUMENT,
        where +
            " runs the AMSU op as a TensorRT plugin: name the plugin library with amsu_library (ae_generate --library) "
            "or ASTROEDGE_ORT_LIBRARY (build/plugins/libastroedge_trt.so, made where TensorRT is installed)");
  }
  if (stat(plugin.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error(AE_ERR_IO,
                source + " " + plugin + ": no such file; build it with 'make plugins' where TensorRT is installed");
  kernel = "library";
  auto entry = reinterpret_cast<AeTrtBackendEntry>(dlsym(trt_module_, AE_TRT_BACKEND_SYMBOL));
  trt_api_ = entry ? entry() : nullptr;
  if (!trt_api_ || trt_api_->abi != AE_TRT_BACKEND_ABI) {
    int abi = trt_api_ ? trt_api_->abi : 0;
    release();
    throw Error(AE_ERR_VERSION, where + ": " + module + " is from another libastroedge build (backend ABI " +
                                    std::to_string(abi) + ", expected " + std::to_string(AE_TRT_BACKEND_ABI) +
                                    "); install the two together");
  }
  std::string cache = params.cache_dir;
  if (cache.empty()) {
    const char* xdg = std::getenv("XDG_CACHE_HOME");
    const char* home = std::getenv("HOME");
    cache = (xdg && *xdg ? std::string(xdg) : std::string(home ? home : "/tmp") + "/.cache") + "/astroedge/tensorrt";
  }
  make_folders(cache);
  std::vector<AeTrtInitializer> inits;
  for (const auto& [name, span] : initializers) inits.push_back({name.c_str(), span.first, span.second});
  std::vector<const char*> ins, outs;
  std::vector<const int64_t*> dims;
  std::vector<size_t> ranks;
  for (const auto& s : manifest.state) {
    ins.push_back(s.input.c_str());
    outs.push_back(s.output.c_str());
    dims.push_back(s.shape.data() + 1);
    ranks.push_back(s.shape.size() - 1);
  }
  AeTrtConfig c{};
  c.onnx = model.data(), c.onnx_size = model.size();
  c.external = external.empty() ? nullptr : external.data(), c.external_size = external.size();
  c.initializers = inits.data(), c.n_initializers = inits.size();
  c.plugin_library = plugin.c_str(), c.cache_dir = cache.c_str(), c.cache_key = manifest.sha256.c_str();
  c.device_id = params.device_id, c.max_batch = 64, c.max_chunk = int32_t(kMaxChunk),
  c.vocab_size = manifest.vocab_size;
  c.tokens_name = manifest.tokens_input.c_str(), c.position_name = manifest.position_input.c_str(),
  c.logits_name = manifest.logits_output.c_str();
  c.n_state = manifest.state.size(), c.state_inputs = ins.data(), c.state_outputs = outs.data(),
  c.state_dims = dims.data(), c.state_ranks = ranks.data();
  char err[512] = "";
  trt_ = trt_api_->create(&c, err, sizeof err);
  if (!trt_) {
    release();
    throw Error(AE_ERR_RUNTIME, where + ": " + err);
  }
}

AeEngine::~AeEngine() { release(); }

void AeEngine::release() {
  if (trt_) trt_api_->destroy(trt_);
  trt_ = nullptr;
  trt_api_ = nullptr;
  if (trt_module_) dlclose(trt_module_);
  trt_module_ = nullptr;
  if (cuda_.handle) dlclose(cuda_.handle);
  cuda_ = {};
  if (!api_) return;
  if (gpu_alloc_) api_->ReleaseAllocator(gpu_alloc_);
  if (gpu_memory_) api_->ReleaseMemoryInfo(gpu_memory_);
  gpu_alloc_ = nullptr;
  gpu_memory_ = nullptr;
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
    check(api_, inputs ? api_->SessionGetInputCount(session_, &count) : api_->SessionGetOutputCount(session_, &count),
          "reading graph I/O");
    std::vector<std::string> out;
    for (size_t i = 0; i < count; ++i) {
      char* name = nullptr;
      check(api_,
            inputs ? api_->SessionGetInputName(session_, i, alloc, &name)
                   : api_->SessionGetOutputName(session_, i, alloc, &name),
            "reading graph I/O");
      out.emplace_back(name);
      alloc->Free(alloc, name);
    }
    return out;
  };
  std::string file = manifest.path("manifest.json");
  std::vector<std::string> graph_inputs = names(true), graph_outputs = names(false);
  std::set<std::string> in_set(graph_inputs.begin(), graph_inputs.end()),
      out_set(graph_outputs.begin(), graph_outputs.end());
  for (const auto& n : input_names_) {
    if (!in_set.erase(n))
      throw Error(AE_ERR_FORMAT,
                  file + ": graph input '" + n + "' is not in " + manifest.onnx_file + "; re-export the package");
  }
  if (!in_set.empty()) {
    throw Error(AE_ERR_FORMAT, manifest.path(manifest.onnx_file) + ": graph input '" + *in_set.begin() +
                                   "' is not described by manifest.json; re-export the package");
  }
  for (const auto& n : output_names_) {
    if (!out_set.count(n))
      throw Error(AE_ERR_FORMAT,
                  file + ": graph output '" + n + "' is not in " + manifest.onnx_file + "; re-export the package");
  }
}

// One graph call through an OrtIoBinding: tokens and positions from host memory, state read from and
// written to the device's memory (host or GPU: it stays there), logits written to host memory.
void AeEngine::run(const int64_t* tokens, size_t batch, size_t n, const int64_t* positions, const float* past,
                   float* present, float* logits) const {
  struct Call {
    const OrtApi* api;
    OrtIoBinding* binding = nullptr;
    std::vector<OrtValue*> values;
    ~Call() {
      for (OrtValue* x : values) api->ReleaseValue(x);
      if (binding) api->ReleaseIoBinding(binding);
    }
  } call{api_, nullptr, {}};
  if (trt_) {
    char err[512] = "";
    if (trt_api_->run(trt_, tokens, batch, n, positions, past, present, logits, err, sizeof err) != 0)
      throw Error(AE_ERR_RUNTIME, "device \"" + device + "\": " + err);
    check_logits(logits, batch * n);
    return;
  }
  auto tensor = [&](const OrtMemoryInfo* where, const void* data, size_t bytes, const std::vector<int64_t>& shape,
                    ONNXTensorElementDataType type) {
    OrtValue* value = nullptr;
    check(api_,
          api_->CreateTensorWithDataAsOrtValue(where, const_cast<void*>(data), bytes, shape.data(), shape.size(), type,
                                               &value),
          "creating a tensor");
    call.values.push_back(value);
    return value;
  };
  const auto f32 = ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  const auto i64 = ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
  const OrtMemoryInfo* state_memory = gpu_memory_ ? gpu_memory_ : memory_;
  const int64_t b = int64_t(batch);
  const size_t vocab = size_t(manifest.vocab_size);
  check(api_, api_->CreateIoBinding(session_, &call.binding), "binding the graph's inputs and outputs");
  auto bind = [&](bool input, const std::string& name, OrtValue* value) {
    check(api_,
          input ? api_->BindInput(call.binding, name.c_str(), value)
                : api_->BindOutput(call.binding, name.c_str(), value),
          "binding " + name);
  };
  bind(true, manifest.tokens_input, tensor(memory_, tokens, batch * n * sizeof(int64_t), {b, int64_t(n)}, i64));
  bind(true, manifest.position_input, tensor(memory_, positions, batch * sizeof(int64_t), {b}, i64));
  bind(false, manifest.logits_output,
       tensor(memory_, logits, batch * n * vocab * sizeof(float), {b, int64_t(n), manifest.vocab_size}, f32));
  for (size_t i = 0; i < manifest.state.size(); ++i) {
    const auto& s = manifest.state[i];
    std::vector<int64_t> shape = s.shape;
    shape[0] = b;
    size_t offset = batch * state_offsets[i], bytes = batch * s.count * sizeof(float);
    bind(true, s.input, tensor(state_memory, past + offset, bytes, shape, f32));
    bind(false, s.output, tensor(state_memory, present + offset, bytes, shape, f32));
  }
  // The inputs are ours and checked, so a failing run means a graph that loads but can't compute (a
  // hostile node attribute, say): the package's fault, reported as such, not the machine's.
  check(api_, api_->RunWithBinding(session_, nullptr, call.binding), run_failed_, AE_ERR_FORMAT);
  check(api_, api_->SynchronizeBoundOutputs(call.binding), run_failed_, AE_ERR_FORMAT);
  check_logits(logits, batch * n);
  // On the GPU the state is not copied back to be checked: a non-finite state shows in the next logits.
  size_t floats = gpu_memory_ ? 0 : batch * state_floats;
  size_t bad = ae::first_non_finite(present, floats);
  if (bad < floats) {
    throw Error(AE_ERR_NON_FINITE,
                manifest.path(manifest.onnx_file) + ": the graph produced a non-finite state value (" +
                    std::to_string(present[bad]) +
                    "); the weights or the state are damaged (reset the stream; re-export the package)");
  }
}

void AeEngine::check_logits(const float* logits, size_t rows) const {
  const size_t count = rows * size_t(manifest.vocab_size);
  size_t bad = ae::first_non_finite(logits, count);
  if (bad < count) {
    throw Error(AE_ERR_NON_FINITE,
                manifest.path(manifest.onnx_file) + ": the graph produced a non-finite logit (" +
                    std::to_string(logits[bad]) +
                    "); the weights or the state are damaged (reset the stream; re-export the package)");
  }
}

float* AeEngine::state_alloc(size_t floats) const {
  if (trt_) {
    void* p = floats ? trt_api_->alloc(trt_, floats * sizeof(float)) : nullptr;
    if (floats && !p) throw std::bad_alloc();
    return static_cast<float*>(p);
  }
  if (!gpu_alloc_) return floats ? new float[floats]() : nullptr;
  if (!floats) return nullptr;
  void* p = gpu_alloc_->Alloc(gpu_alloc_, floats * sizeof(float));
  if (!p) throw std::bad_alloc();
  zero(static_cast<float*>(p), floats);
  return static_cast<float*>(p);
}

void AeEngine::state_free(float* p) const {
  if (!p) return;
  if (trt_) return trt_api_->free(trt_, p);
  if (gpu_alloc_)
    gpu_alloc_->Free(gpu_alloc_, p);
  else
    delete[] p;
}

namespace {
void cuda_check(int rc, const char* what) {
  if (rc != 0)
    throw Error(AE_ERR_RUNTIME,
                std::string("device \"cuda\": ") + what + " failed (CUDA error " + std::to_string(rc) + ")");
}
}  // namespace

void AeEngine::to_host(float* dst, const float* src, size_t floats) const {
  if (trt_)
    cuda_check(floats ? trt_api_->copy(trt_, dst, src, floats * sizeof(float)) : 0, "copying state");
  else if (gpu_alloc_)
    cuda_check(cuda_.memcpy(dst, src, floats * sizeof(float), 4), "copying state to the host");
  else if (floats)
    std::memcpy(dst, src, floats * sizeof(float));
}
void AeEngine::to_device(float* dst, const float* src, size_t floats) const {
  to_host(dst, src, floats);
}  // cudaMemcpyDefault: any direction
void AeEngine::on_device(float* dst, const float* src, size_t floats) const { to_host(dst, src, floats); }

void AeEngine::zero(float* p, size_t floats) const {
  if (trt_)
    cuda_check(floats ? trt_api_->zero(trt_, p, floats * sizeof(float)) : 0, "zeroing state");
  else if (gpu_alloc_)
    cuda_check(cuda_.memset(p, 0, floats * sizeof(float)), "zeroing state");
  else
    std::fill(p, p + floats, 0.0f);
}

ae::StateBuffer::StateBuffer(const AeEngine* e, size_t floats) : e_(e), p_(e->state_alloc(floats)), n_(floats) {}

ae::StateBuffer::StateBuffer(const StateBuffer& other)
    : e_(other.e_), p_(other.e_->state_alloc(other.n_)), n_(other.n_) {
  try {
    e_->on_device(p_, other.p_, n_);
  } catch (...) {
    e_->state_free(p_);
    throw;
  }
}

ae::StateBuffer::~StateBuffer() { e_->state_free(p_); }

void ae::StateBuffer::swap(StateBuffer& other) noexcept {
  std::swap(e_, other.e_);
  std::swap(p_, other.p_);
  std::swap(n_, other.n_);
}

AeStream::AeStream(AeEngine* e)
    : engine(e),
      state(e, e->state_floats),
      next(e, e->state_floats),
      logits(size_t(e->manifest.vocab_size), 0.0f),
      seen(size_t(e->manifest.vocab_size), 0) {}

void AeStream::reset() {
  engine->zero(state.data(), state.size());
  std::fill(logits.begin(), logits.end(), 0.0f);
  std::fill(seen.begin(), seen.end(), uint8_t(0));
  position = 0;
  has_logits = false;
}

void AeStream::check_tokens(const int32_t* tokens, size_t n) const {
  const ae::Manifest& m = engine->manifest;
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= m.vocab_size) {
      throw Error(AE_ERR_INVALID_ARGUMENT, "token " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                               " is outside the vocabulary [0, " + std::to_string(m.vocab_size) + ")");
    }
  }
  if (n > m.max_position || position > m.max_position - n) {
    throw Error(AE_ERR_POSITION, "stream position " + std::to_string(position) + " + " + std::to_string(n) +
                                     " tokens would pass the package's max_position " + std::to_string(m.max_position) +
                                     "; reset the stream");
  }
}

void AeStream::feed(const int32_t* tokens, size_t n) {
  check_tokens(tokens, n);
  if (n == 0) return;
  size_t vocab = size_t(engine->manifest.vocab_size);
  // State flows state -> next (-> spare -> next ... for long prefills); `state` is replaced only
  // after every chunk succeeded, so a failing call leaves the stream as it was.
  ae::StateBuffer spare(engine, n > kMaxChunk ? state.size() : 0);
  const float* src = state.data();
  float* dst = next.data();
  uint64_t pos = position;
  std::vector<int64_t> ids(std::min(n, kMaxChunk));
  for (size_t start = 0; start < n; start += kMaxChunk) {
    size_t len = std::min(kMaxChunk, n - start);
    for (size_t i = 0; i < len; ++i) ids[i] = tokens[start + i];
    scratch.resize(len * vocab);
    int64_t p = int64_t(pos);
    engine->run(ids.data(), 1, len, &p, src, dst, scratch.data());
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

void ae::decode_batch(AeStream* const* streams, const int32_t* tokens, size_t n, float* out_logits) {
  if (n == 0) return;
  AeEngine* e = streams[0]->engine;
  std::set<const AeStream*> distinct;
  for (size_t b = 0; b < n; ++b) {
    if (streams[b]->engine != e)
      throw Error(AE_ERR_MISMATCH,
                  "ae_decode_batch: stream " + std::to_string(b) + " belongs to another engine than stream 0");
    if (!distinct.insert(streams[b]).second)
      throw Error(AE_ERR_INVALID_ARGUMENT, "ae_decode_batch: stream " + std::to_string(b) + " appears twice");
    try {
      streams[b]->check_tokens(tokens + b, 1);
    } catch (const Error& err) {
      throw Error(err.status(), "ae_decode_batch: stream " + std::to_string(b) + ": " + err.what());
    }
  }
  const ae::Manifest& m = e->manifest;
  const size_t vocab = size_t(m.vocab_size), floats = e->state_floats;
  // Stack: tensor i of every stream, then tensor i + 1 ... (the [batch, ...] layout run() expects).
  ae::StateBuffer past(e, n * floats), present(e, n * floats);
  std::vector<float> logits(n * vocab);
  std::vector<int64_t> ids(n), positions(n);
  for (size_t b = 0; b < n; ++b) {
    ids[b] = tokens[b];
    positions[b] = int64_t(streams[b]->position);
    for (size_t i = 0; i < m.state.size(); ++i) {
      size_t count = m.state[i].count, off = e->state_offsets[i];
      e->on_device(past.data() + n * off + b * count, streams[b]->state.data() + off, count);
    }
  }
  e->run(ids.data(), n, 1, positions.data(), past.data(), present.data(), logits.data());
  // Unstack into each stream's spare buffer first, then swap: a copy that fails changes no stream.
  for (size_t b = 0; b < n; ++b) {
    for (size_t i = 0; i < m.state.size(); ++i) {
      size_t count = m.state[i].count, off = e->state_offsets[i];
      e->on_device(streams[b]->next.data() + off, present.data() + n * off + b * count, count);
    }
  }
  for (size_t b = 0; b < n; ++b) {  // nothing below can fail
    AeStream& s = *streams[b];
    s.state.swap(s.next);
    std::memcpy(s.logits.data(), logits.data() + b * vocab, vocab * sizeof(float));
    s.has_logits = true;
    s.position += 1;
    s.seen[size_t(tokens[b])] = 1;
  }
  if (out_logits) std::memcpy(out_logits, logits.data(), logits.size() * sizeof(float));
}
