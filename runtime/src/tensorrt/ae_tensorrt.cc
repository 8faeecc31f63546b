// libastroedge_tensorrt.so: the TensorRT backend of libastroedge (devices "tensorrt" and "jetson").
//
// What it does, given the verified bytes of a package's graph (tensorrt_backend.h):
// - loads our AMSU plugin library into TensorRT's plugin registry (IPluginRegistry::loadLibrary: the
//   library exports getCreators, plugins/amsu/tensorrt/),
// - parses the ONNX graph from memory (external weights handed over tensor by tensor with
//   loadInitializer: nothing is read from disk by name),
// - builds ONE engine with two optimization profiles: 0 = decode (tokens [1..max_batch, 1]),
//   1 = prefill (tokens [1, 1..max_chunk]); fp32 (no reduced-precision flags: the state is fp32, and
//   the weights are whatever precision the package stores),
// - caches the serialized engine on disk (cache_dir/<manifest sha256>-trt<version>-gpu<id>.engine,
//   written to a temp file and renamed), so later runs only deserialize it,
// - runs each call on the profile that fits: an execution context per profile, each under a lock
//   (contexts are not thread-safe; the engine is shared by every stream).
// State stays in GPU memory (allocated here, bound with setTensorAddress); only tokens, positions and
// logits cross to and from the host.
//
// Built only where TensorRT is found; compile-checked elsewhere against TensorRT's public headers
// (runtime/src/tensorrt/check.sh). Every failure is one line in err, never an exception across the ABI.
#include <NvInfer.h>
#include <NvInferVersion.h>
#include <NvOnnxParser.h>
#include <cuda_runtime_api.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tensorrt_backend.h"

namespace {

class Logger final : public nvinfer1::ILogger {
 public:
  void log(Severity severity, nvinfer1::AsciiChar const* msg) noexcept override {
    if (severity <= Severity::kERROR && last_.empty()) last_ = msg ? msg : "";
  }
  std::string take() {
    std::string s = last_;
    last_.clear();
    return s;
  }

 private:
  std::string last_;  // first error since take(): the one worth reporting
};

struct Failure {
  std::string what;
};

std::string one_line(std::string s) {
  for (char& c : s) {
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  }
  return s.size() > 300 ? s.substr(0, 297) + "..." : s;
}

void cuda_ok(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) throw Failure{std::string(what) + ": " + cudaGetErrorString(rc)};
}

nvinfer1::Dims dims_of(std::vector<int64_t> const& d) {
  nvinfer1::Dims out{};
  out.nbDims = static_cast<int32_t>(d.size());
  for (size_t i = 0; i < d.size(); ++i) out.d[i] = d[i];
  return out;
}

template <class T>
struct Deleter {
  void operator()(T* p) const { delete p; }
};
template <class T>
using Owned = std::unique_ptr<T, Deleter<T>>;

struct Context {
  Owned<nvinfer1::IExecutionContext> context;
  std::mutex lock;
  cudaStream_t stream = nullptr;
  void* tokens = nullptr;     // device, int64 [capacity tokens]
  void* positions = nullptr;  // device, int64 [capacity rows]
  void* logits = nullptr;     // device, float [capacity tokens * vocab]
};

}  // namespace

struct AeTrtBackend {
  AeTrtConfig config{};
  std::vector<std::string> state_inputs, state_outputs;
  std::vector<std::vector<int64_t>> state_dims;  // without batch
  std::string tokens_name, position_name, logits_name;
  Logger logger;
  Owned<nvinfer1::IRuntime> runtime;
  Owned<nvinfer1::ICudaEngine> engine;
  Context decode, prefill;

  ~AeTrtBackend() {
    for (Context* c : {&decode, &prefill}) {
      c->context.reset();
      if (c->stream) cudaStreamDestroy(c->stream);
      cudaFree(c->tokens);
      cudaFree(c->positions);
      cudaFree(c->logits);
    }
    engine.reset();
    runtime.reset();
  }

  std::string cache_path() const {
    int gpu = config.device_id;
    cudaDeviceProp prop{};
    std::string name = cudaGetDeviceProperties(&prop, gpu) == cudaSuccess ? prop.name : "gpu";
    for (char& c : name) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
    return std::string(config.cache_dir) + "/" + config.cache_key + "-trt" + std::to_string(NV_TENSORRT_MAJOR) + "." +
           std::to_string(NV_TENSORRT_MINOR) + "-" + name + "-sm" + std::to_string(prop.major) +
           std::to_string(prop.minor) + ".engine";
  }

  std::vector<char> build() {
    Owned<nvinfer1::IBuilder> builder(nvinfer1::createInferBuilder(logger));
    if (!builder) throw Failure{"createInferBuilder failed: " + logger.take()};
    Owned<nvinfer1::INetworkDefinition> network(builder->createNetworkV2(0U));
    Owned<nvonnxparser::IParser> parser(nvonnxparser::createParser(*network, logger));
    if (!network || !parser) throw Failure{"creating the network/parser failed: " + logger.take()};
    bool ok = false;
    if (config.n_initializers == 0) {
      ok = parser->parse(config.onnx, config.onnx_size);
    } else {
      ok = parser->loadModelProto(config.onnx, config.onnx_size);
      for (size_t i = 0; ok && i < config.n_initializers; ++i) {
        AeTrtInitializer const& t = config.initializers[i];
        ok = t.offset <= config.external_size && t.length <= config.external_size - t.offset &&
             parser->loadInitializer(t.name, config.external + t.offset, static_cast<size_t>(t.length));
      }
      ok = ok && parser->parseModelProto();
    }
    if (!ok) {
      std::string why = parser->getNbErrors() > 0 ? parser->getError(0)->desc() : logger.take();
      throw Failure{"the ONNX parser refused model.onnx: " + why};
    }
    Owned<nvinfer1::IBuilderConfig> cfg(builder->createBuilderConfig());
    auto add_profile = [&](int64_t rows_max, int64_t cols_max) {
      nvinfer1::IOptimizationProfile* p = builder->createOptimizationProfile();
      using S = nvinfer1::OptProfileSelector;
      int64_t rows_opt = rows_max > 1 ? std::min<int64_t>(rows_max, 8) : 1,
              cols_opt = cols_max > 1 ? std::min<int64_t>(cols_max, 64) : 1;
      ok = p->setDimensions(tokens_name.c_str(), S::kMIN, dims_of({1, 1})) &&
           p->setDimensions(tokens_name.c_str(), S::kOPT, dims_of({rows_opt, cols_opt})) &&
           p->setDimensions(tokens_name.c_str(), S::kMAX, dims_of({rows_max, cols_max})) &&
           p->setDimensions(position_name.c_str(), S::kMIN, dims_of({1})) &&
           p->setDimensions(position_name.c_str(), S::kOPT, dims_of({rows_opt})) &&
           p->setDimensions(position_name.c_str(), S::kMAX, dims_of({rows_max}));
      for (size_t i = 0; ok && i < state_inputs.size(); ++i) {
        std::vector<int64_t> lo{1}, opt{rows_opt}, hi{rows_max};
        for (int64_t d : state_dims[i]) lo.push_back(d), opt.push_back(d), hi.push_back(d);
        ok = p->setDimensions(state_inputs[i].c_str(), S::kMIN, dims_of(lo)) &&
             p->setDimensions(state_inputs[i].c_str(), S::kOPT, dims_of(opt)) &&
             p->setDimensions(state_inputs[i].c_str(), S::kMAX, dims_of(hi));
      }
      if (!ok || cfg->addOptimizationProfile(p) < 0)
        throw Failure{"setting up an optimization profile failed: " + logger.take()};
    };
    add_profile(config.max_batch, 1);  // 0: decode
    add_profile(1, config.max_chunk);  // 1: prefill
    Owned<nvinfer1::IHostMemory> plan(builder->buildSerializedNetwork(*network, *cfg));
    if (!plan) throw Failure{"building the engine failed: " + logger.take()};
    auto const* p = static_cast<char const*>(plan->data());
    return std::vector<char>(p, p + plan->size());
  }

  static std::vector<char> read_cache(std::string const& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  static void write_cache(std::string const& dir, std::string const& path, std::vector<char> const& plan) {
    mkdir(dir.c_str(), 0755);  // one level; an existing folder is fine
    std::string tmp = path + ".tmp" + std::to_string(getpid());
    {
      std::ofstream out(tmp, std::ios::binary);
      out.write(plan.data(), static_cast<std::streamsize>(plan.size()));
      if (!out) {
        std::remove(tmp.c_str());
        return;  // an unwritable cache only costs a rebuild next time
      }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) std::remove(tmp.c_str());
  }

  void setup_context(Context& c, int profile, size_t rows, size_t tokens) {
    c.context.reset(engine->createExecutionContext());
    if (!c.context) throw Failure{"creating an execution context failed: " + logger.take()};
    cuda_ok(cudaStreamCreate(&c.stream), "cudaStreamCreate");
    if (!c.context->setOptimizationProfileAsync(profile, c.stream))
      throw Failure{"selecting optimization profile " + std::to_string(profile) + " failed"};
    cuda_ok(cudaMalloc(&c.tokens, tokens * sizeof(int64_t)), "cudaMalloc");
    cuda_ok(cudaMalloc(&c.positions, rows * sizeof(int64_t)), "cudaMalloc");
    cuda_ok(cudaMalloc(&c.logits, tokens * static_cast<size_t>(config.vocab_size) * sizeof(float)), "cudaMalloc");
  }

  void create() {
    cuda_ok(cudaSetDevice(config.device_id), "cudaSetDevice");
    runtime.reset(nvinfer1::createInferRuntime(logger));
    if (!runtime) throw Failure{"createInferRuntime failed: " + logger.take()};
    if (!runtime->getPluginRegistry().loadLibrary(config.plugin_library)) {
      throw Failure{std::string("the AMSU TensorRT plugin library ") + config.plugin_library +
                    " could not be loaded: " + logger.take()};
    }
    std::string path = cache_path();
    std::vector<char> plan = read_cache(path);
    if (!plan.empty()) engine.reset(runtime->deserializeCudaEngine(plan.data(), plan.size()));
    if (!engine) {  // no cache, or one from another TensorRT build: rebuild and replace it
      logger.take();
      plan = build();
      engine.reset(runtime->deserializeCudaEngine(plan.data(), plan.size()));
      if (!engine) throw Failure{"deserializing the engine failed: " + logger.take()};
      write_cache(config.cache_dir, path, plan);
    }
    setup_context(decode, 0, static_cast<size_t>(config.max_batch), static_cast<size_t>(config.max_batch));
    setup_context(prefill, 1, 1, static_cast<size_t>(config.max_chunk));
  }

  void run(int64_t const* tokens, size_t batch, size_t n, int64_t const* positions, float const* past, float* present,
           float* logits) {
    bool one_step = n == 1 && batch <= static_cast<size_t>(config.max_batch);
    if (!one_step && !(batch == 1 && n <= static_cast<size_t>(config.max_chunk))) {
      throw Failure{"a call of " + std::to_string(batch) + " x " + std::to_string(n) +
                    " tokens fits neither the decode profile (up to " + std::to_string(config.max_batch) +
                    " x 1) nor the prefill profile (1 x up to " + std::to_string(config.max_chunk) + ")"};
    }
    Context& c = one_step ? decode : prefill;
    std::lock_guard<std::mutex> hold(c.lock);
    cuda_ok(cudaSetDevice(config.device_id), "cudaSetDevice");
    nvinfer1::IExecutionContext& x = *c.context;
    const int64_t b = static_cast<int64_t>(batch);
    cuda_ok(cudaMemcpyAsync(c.tokens, tokens, batch * n * sizeof(int64_t), cudaMemcpyHostToDevice, c.stream),
            "copying tokens");
    cuda_ok(cudaMemcpyAsync(c.positions, positions, batch * sizeof(int64_t), cudaMemcpyHostToDevice, c.stream),
            "copying positions");
    bool ok =
        x.setInputShape(tokens_name.c_str(), dims_of({b, static_cast<int64_t>(n)})) &&
        x.setInputShape(position_name.c_str(), dims_of({b})) && x.setTensorAddress(tokens_name.c_str(), c.tokens) &&
        x.setTensorAddress(position_name.c_str(), c.positions) && x.setTensorAddress(logits_name.c_str(), c.logits);
    size_t offset = 0;
    for (size_t i = 0; ok && i < state_inputs.size(); ++i) {
      std::vector<int64_t> shape{b};
      size_t count = 1;
      for (int64_t d : state_dims[i]) shape.push_back(d), count *= static_cast<size_t>(d);
      ok = x.setInputShape(state_inputs[i].c_str(), dims_of(shape)) &&
           x.setTensorAddress(state_inputs[i].c_str(), const_cast<float*>(past) + offset) &&
           x.setTensorAddress(state_outputs[i].c_str(), present + offset);
      offset += batch * count;
    }
    if (!ok) throw Failure{"binding the graph's tensors failed: " + logger.take()};
    if (!x.enqueueV3(c.stream)) throw Failure{"enqueueV3 failed: " + logger.take()};
    size_t bytes = batch * n * static_cast<size_t>(config.vocab_size) * sizeof(float);
    cuda_ok(cudaMemcpyAsync(logits, c.logits, bytes, cudaMemcpyDeviceToHost, c.stream), "copying logits");
    cuda_ok(cudaStreamSynchronize(c.stream), "running the engine");
  }
};

namespace {

void set_err(char* err, size_t size, std::string const& what) {
  if (err && size) std::snprintf(err, size, "%s", one_line(what).c_str());
}

AeTrtBackend* create(AeTrtConfig const* config, char* err, size_t err_size) {
  auto* b = new (std::nothrow) AeTrtBackend();
  if (!b) {
    set_err(err, err_size, "out of memory");
    return nullptr;
  }
  try {
    b->config = *config;
    b->tokens_name = config->tokens_name;
    b->position_name = config->position_name;
    b->logits_name = config->logits_name;
    for (size_t i = 0; i < config->n_state; ++i) {
      b->state_inputs.emplace_back(config->state_inputs[i]);
      b->state_outputs.emplace_back(config->state_outputs[i]);
      b->state_dims.emplace_back(config->state_dims[i], config->state_dims[i] + config->state_ranks[i]);
    }
    b->create();
    return b;
  } catch (Failure const& f) {
    set_err(err, err_size,
            "TensorRT " + std::to_string(NV_TENSORRT_MAJOR) + "." + std::to_string(NV_TENSORRT_MINOR) + ": " + f.what);
  } catch (std::exception const& e) {
    set_err(err, err_size, std::string("TensorRT backend: ") + e.what());
  }
  delete b;
  return nullptr;
}

void destroy(AeTrtBackend* b) { delete b; }

int run(AeTrtBackend* b, int64_t const* tokens, size_t batch, size_t n, int64_t const* positions, float const* past,
        float* present, float* logits, char* err, size_t err_size) {
  try {
    b->run(tokens, batch, n, positions, past, present, logits);
    return 0;
  } catch (Failure const& f) {
    set_err(err, err_size, "TensorRT: " + f.what);
  } catch (std::exception const& e) {
    set_err(err, err_size, std::string("TensorRT backend: ") + e.what());
  }
  return 1;
}

void* alloc(AeTrtBackend* b, size_t bytes) {
  void* p = nullptr;
  if (cudaSetDevice(b->config.device_id) != cudaSuccess || cudaMalloc(&p, bytes) != cudaSuccess) return nullptr;
  if (cudaMemset(p, 0, bytes) != cudaSuccess) {
    cudaFree(p);
    return nullptr;
  }
  return p;
}

void free_memory(AeTrtBackend*, void* p) { cudaFree(p); }

int copy(AeTrtBackend*, void* dst, void const* src, size_t bytes) {
  return cudaMemcpy(dst, src, bytes, cudaMemcpyDefault) == cudaSuccess ? 0 : 1;
}

int zero(AeTrtBackend*, void* p, size_t bytes) { return cudaMemset(p, 0, bytes) == cudaSuccess ? 0 : 1; }

constexpr AeTrtApi kApi = {AE_TRT_BACKEND_ABI, create, destroy, run, alloc, free_memory, copy, zero};

}  // namespace

extern "C" __attribute__((visibility("default"))) AeTrtApi const* ae_tensorrt_backend(void) { return &kApi; }
