// The structs behind the opaque handles: an engine (manifest + session, immutable after creation,
// so shareable across threads) and a stream (double-buffered fp32 state, position, logits, history).
// A stream's state lives where the device computes: host memory for "cpu", GPU memory for "cuda"
// (every graph call binds it with an OrtIoBinding, so it never leaves the GPU between steps; only
// the logits come back to the host, for sampling).
#ifndef ASTROEDGE_RUNTIME_ENGINE_H_
#define ASTROEDGE_RUNTIME_ENGINE_H_

#include <onnxruntime_c_api.h>

#include <string>
#include <vector>

#include "astroedge.h"
#include "manifest.h"
#include "params.h"
#include "tensorrt_backend.h"

namespace ae {
// The CUDA runtime's copy functions, looked up with dlopen when the device is "cuda" (the CUDA
// execution provider has loaded libcudart already): libastroedge has no link dependency on CUDA.
struct CudaRuntime {
  void* handle = nullptr;
  int (*memcpy)(void* dst, const void* src, size_t bytes, int kind) = nullptr;  // kind 4: cudaMemcpyDefault
  int (*memset)(void* dst, int value, size_t bytes) = nullptr;
  int (*synchronize)() = nullptr;
};
}  // namespace ae

struct AeEngine {
  explicit AeEngine(const AeEngineParams& params);
  ~AeEngine();
  AeEngine(const AeEngine&) = delete;
  AeEngine& operator=(const AeEngine&) = delete;

  // One graph call: `batch` rows of `n` tokens each (tokens [batch, n]), row b at positions[b].
  // `past` / `present` hold the state tensors one after the other, each stacked over the batch
  // ([batch, ...] for tensor 0, then tensor 1, ...); logits [batch, n, vocab]. Throws ae::Error,
  // AE_ERR_NON_FINITE if the logits or the new state hold NaN/Inf.
  void run(const int64_t* tokens, size_t batch, size_t n, const int64_t* positions, const float* past, float* present,
           float* logits) const;

  // State memory of this engine's device: allocated, copied and zeroed here (host memory on "cpu").
  float* state_alloc(size_t floats) const;
  void state_free(float* p) const;
  void to_host(float* dst, const float* src, size_t floats) const;
  void to_device(float* dst, const float* src, size_t floats) const;
  void on_device(float* dst, const float* src, size_t floats) const;
  void zero(float* p, size_t floats) const;
  bool on_gpu() const { return gpu_alloc_ != nullptr || trt_ != nullptr; }

  ae::Manifest manifest;
  std::string kernel;  // "library" or "fallback"
  std::string device;
  std::vector<uint8_t> tokenizer_data;  // verified bytes of the tokenizer file ("hf")
  std::vector<size_t> state_offsets;    // float offset of each state tensor in a stream's buffer
  size_t state_floats = 0;

 private:
  void load_session(const AeEngineParams& params, const std::vector<uint8_t>& model,
                    const std::vector<uint8_t>& external);
  void load_tensorrt(const AeEngineParams& params, const std::vector<uint8_t>& model,
                     const std::vector<uint8_t>& external,
                     const std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>& initializers);
  void check_io() const;
  void check_logits(const float* logits, size_t rows) const;  // AE_ERR_NON_FINITE
  void release();
  std::string run_failed_;  // the message of a failed graph run, built once (not on every decode step)
  const OrtApi* api_ = nullptr;
  OrtEnv* env_ = nullptr;
  OrtSession* session_ = nullptr;
  OrtMemoryInfo* memory_ = nullptr;      // host
  OrtMemoryInfo* gpu_memory_ = nullptr;  // "cuda" only
  OrtAllocator* gpu_alloc_ = nullptr;    // "cuda" only
  ae::CudaRuntime cuda_;
  void* trt_module_ = nullptr;  // "tensorrt"/"jetson": libastroedge_tensorrt.so
  const AeTrtApi* trt_api_ = nullptr;
  AeTrtBackend* trt_ = nullptr;
  std::vector<std::string> input_names_, output_names_;
};

namespace ae {
// `floats` floats of state memory on the engine's device, zeroed; copies stay on the device.
class StateBuffer {
 public:
  StateBuffer(const AeEngine* e, size_t floats);
  StateBuffer(const StateBuffer& other);
  StateBuffer& operator=(const StateBuffer&) = delete;
  ~StateBuffer();
  float* data() const { return p_; }
  size_t size() const { return n_; }
  void swap(StateBuffer& other) noexcept;

 private:
  const AeEngine* e_;
  float* p_ = nullptr;
  size_t n_ = 0;
};
}  // namespace ae

struct AeStream {
  explicit AeStream(AeEngine* e);

  void feed(const int32_t* tokens, size_t n);  // all or nothing: unchanged on failure
  void reset();
  void check_tokens(const int32_t* tokens, size_t n) const;  // AE_ERR_INVALID_ARGUMENT / AE_ERR_POSITION

  AeEngine* engine;
  ae::StateBuffer state, next;  // current state and the buffer the next call writes (device memory)
  uint64_t position = 0;
  std::vector<float> logits;  // after the last consumed token
  bool has_logits = false;
  std::vector<uint8_t> seen;   // [vocab] 1 = consumed since create/reset/set/load (repetition penalty)
  std::vector<float> scratch;  // [chunk, vocab] logits of one graph call
};

namespace ae {
// streams[i] consumes tokens[i] in one graph call; all or nothing.
void decode_batch(AeStream* const* streams, const int32_t* tokens, size_t n, float* logits);
// First non-finite value in data[0..n), or n.
size_t first_non_finite(const float* data, size_t n);
}  // namespace ae

#endif  // ASTROEDGE_RUNTIME_ENGINE_H_
