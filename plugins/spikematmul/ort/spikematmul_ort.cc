// astroedge::SpikeMatMul for ONNX Runtime (op contract astroedge/contract/spikematmul.json), part of
// libastroedge_ort.so (plugins/common/ort_library.cc registers it).
//
// One op object per (spikes type, weight type, execution provider): ONNX Runtime matches kernels by
// exact input types, and a registration with fixed types also lets its type inference give y the
// spikes' type. The classic CustomOpBase API (not the lite one) because `scale` and `bias` are optional
// inputs that may be absent in the middle of the input list. The weight format follows from the
// weight's element type (the contract's weight_formats table); `scale` and `bias` are checked
// against the format and N. Names, port order, ranks, symbolic shapes and attribute names come from
// the generated spikematmul_contract.h. The CPU kernel runs on the session's intra-op thread pool
// (KernelContext::ParallelFor). Every bad input is an ORT error status naming the node and input.
#define ORT_API_MANUAL_INIT
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "contract_shapes.h"
#include "onnxruntime_cxx_api.h"
#include "ort_attrs.h"
#include "ort_ops.h"
#include "spikematmul_contract.h"
#include "spikematmul_kernels.h"

namespace astroedge {  // the contract_shapes.h / ort_attrs.h helpers by their plain names
namespace {

static_assert(SPIKEMATMUL_NUM_INPUTS == 4 && SPIKEMATMUL_NUM_OUTPUTS == 1,
              "SpikeMatMul contract ports changed: update the ORT wrapper");
static_assert(same_text(SPIKEMATMUL_INPUT_SPIKES_DTYPE, "T") && same_text(SPIKEMATMUL_OUTPUT_Y_DTYPE, "T") &&
                  same_text(SPIKEMATMUL_INPUT_WEIGHT_DTYPE, "W") &&
                  SPIKEMATMUL_INPUT_SCALE_ONNX_TYPE == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT &&
                  SPIKEMATMUL_INPUT_BIAS_ONNX_TYPE == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT,
              "SpikeMatMul contract: spikes/y of type T, weight of type W, scale and bias float32");
static_assert(SPIKEMATMUL_NUM_FORMATS == 4 && SPIKEMATMUL_FORMAT_FLOAT32 == SMM_WEIGHT_FLOAT32 &&
                  SPIKEMATMUL_FORMAT_FLOAT16 == SMM_WEIGHT_FLOAT16 && SPIKEMATMUL_FORMAT_INT8 == SMM_WEIGHT_INT8 &&
                  SPIKEMATMUL_FORMAT_INT4 == SMM_WEIGHT_INT4,
              "SpikeMatMul contract weight formats and the kernel ABI's SmmWeightFormat must list the same formats in "
              "the same order");

struct Attrs {
  std::string node;
  int64_t out_features = 0;
  int64_t block_size = SPIKEMATMUL_ATTR_BLOCK_SIZE_DEFAULT;
};

std::string where(const std::string& node) { return node_where(SPIKEMATMUL_OP_NAME, node); }

// Read once at session creation, so a bad model fails to load naming the node and attribute.
Attrs read_attrs(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo ki(info);
  Attrs a;
  a.node = ki.GetNodeName();
  a.out_features = required_attribute<int64_t>(ki, SPIKEMATMUL_OP_NAME, a.node, SPIKEMATMUL_ATTR_OUT_FEATURES, "int",
                                               "astroedge/contract/spikematmul.json");
  int64_t bs = 0;  // optional: the contract's default when absent
  if (OrtStatus* st = Ort::GetApi().KernelInfoGetAttribute_int64(info, SPIKEMATMUL_ATTR_BLOCK_SIZE, &bs))
    Ort::GetApi().ReleaseStatus(st);
  else
    a.block_size = bs;
  if (a.out_features < 0)
    throw bad_attribute(SPIKEMATMUL_OP_NAME, a.node, SPIKEMATMUL_ATTR_OUT_FEATURES, std::to_string(a.out_features),
                        "must be the output width N >= 0");
  return a;
}

// SMM_ACT_* of a spikes element type.
template <typename TA>
constexpr SmmActType act_type() {
  return std::is_same<TA, float>::value ? SMM_ACT_FLOAT32 : SMM_ACT_FLOAT16;
}

template <typename TW>
constexpr ONNXTensorElementDataType onnx_type() {
  if (std::is_same<TW, float>::value) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
  if (std::is_same<TW, Ort::Float16_t>::value) return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
  if (std::is_same<TW, int8_t>::value) return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8;
  return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
}

// The contract's weight format whose weight element type is `type` (-1: none).
int format_of(ONNXTensorElementDataType type) {
  for (int f = 0; f < SPIKEMATMUL_NUM_FORMATS; ++f)
    if (SPIKEMATMUL_FORMAT_SPECS[f].weight_onnx_type == static_cast<int>(type)) return f;
  return -1;
}

std::vector<int64_t> shape_of(const Ort::ConstValue& v) { return v.GetTensorTypeAndShapeInfo().GetShape(); }

std::string vec_str(const std::vector<int64_t>& v) { return shape_str(v.data(), v.size()); }

// SMM ParallelFor runner on the session's intra-op thread pool.
void ort_parallel_for(void* runner, void (*fn)(void*, size_t), void* arg, size_t n) {
  static_cast<const Ort::KernelContext*>(runner)->ParallelFor(fn, n, 0, arg);
}

template <typename TA, typename TW, bool kCuda>
struct SpikeMatMulKernel {
  explicit SpikeMatMulKernel(const OrtKernelInfo* info) : attrs_(read_attrs(info)) {}

  OrtStatusPtr ComputeV2(OrtKernelContext* context) const {
    try {
      ComputeOrThrow(context);
      return nullptr;
    } catch (const Ort::Exception& e) {
      return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
    } catch (const std::exception& e) {
      return Ort::GetApi().CreateStatus(ORT_RUNTIME_EXCEPTION, (where(attrs_.node) + e.what()).c_str());
    }
  }

  void ComputeOrThrow(OrtKernelContext* context) const {
    Ort::KernelContext ctx(context);
    const size_t n_in = ctx.GetInputCount();
    const Ort::ConstValue spikes = ctx.GetInput(SPIKEMATMUL_INPUT_SPIKES);
    const Ort::ConstValue weight = ctx.GetInput(SPIKEMATMUL_INPUT_WEIGHT);
    const Ort::ConstValue scale =
        n_in > SPIKEMATMUL_INPUT_SCALE ? ctx.GetInput(SPIKEMATMUL_INPUT_SCALE) : Ort::ConstValue{nullptr};
    const Ort::ConstValue bias =
        n_in > SPIKEMATMUL_INPUT_BIAS ? ctx.GetInput(SPIKEMATMUL_INPUT_BIAS) : Ort::ConstValue{nullptr};

    const int format = format_of(onnx_type<TW>());
    const AstroedgeWeightFormatSpec& fmt = SPIKEMATMUL_FORMAT_SPECS[format];
    const std::string at = where(attrs_.node) + "input '";
    const std::vector<int64_t> s_shape = shape_of(spikes);
    if (static_cast<int>(s_shape.size()) != SPIKEMATMUL_INPUT_SPIKES_RANK)
      throw Ort::Exception(at + SPIKEMATMUL_INPUT_SPIKES_NAME + "' has shape " + vec_str(s_shape) + "; expected rank " +
                               std::to_string(SPIKEMATMUL_INPUT_SPIKES_RANK) + " " + SPIKEMATMUL_INPUT_SPIKES_SHAPE,
                           ORT_INVALID_ARGUMENT);
    if (format == SPIKEMATMUL_FORMAT_INT4 && (attrs_.block_size < 2 || attrs_.block_size % 2))
      throw Ort::Exception(where(attrs_.node) + "attribute '" + SPIKEMATMUL_ATTR_BLOCK_SIZE +
                               "' = " + std::to_string(attrs_.block_size) +
                               ": int4 blocks must be an even number of columns >= 2",
                           ORT_INVALID_ARGUMENT);
    const int64_t B = s_shape[0], T = s_shape[1], K = s_shape[2], N = attrs_.out_features, bs = attrs_.block_size;
    const Symbols symbols{{"B", B},  {"T", T}, {"K", K}, {"N", N}, {"N2", (N + 1) / 2}, {"NB", (N + bs - 1) / bs},
                          {"NW", -1}};
    const std::string context_note = std::string(" (B, T, K from ") + SPIKEMATMUL_INPUT_SPIKES_NAME + " " +
                                     vec_str(s_shape) + ", N = " + SPIKEMATMUL_ATTR_OUT_FEATURES + " = " +
                                     std::to_string(N) + ", " + fmt.name + " weights)";
    auto check = [&](const char* name, const Ort::ConstValue& v, const char* shape_text, const char* const* dims,
                     int rank) {
      const std::vector<int64_t> got = shape_of(v);
      const Shape want = resolve(dims, rank, symbols);
      if (!shape_equals(got.data(), got.size(), want))
        throw Ort::Exception(at + name + "' has shape " + vec_str(got) + "; expected " + shape_text + " = " +
                                 shape_str(want) + context_note,
                             ORT_INVALID_ARGUMENT);
    };
    check(SPIKEMATMUL_INPUT_WEIGHT_NAME, weight, fmt.weight_shape, fmt.weight_dims, 2);
    if (fmt.scale_rank > 0) {
      if (!scale)
        throw Ort::Exception(at + SPIKEMATMUL_INPUT_SCALE_NAME + "' is missing; " + fmt.name +
                                 " weights need it, shape " + fmt.scale_shape,
                             ORT_INVALID_ARGUMENT);
      check(SPIKEMATMUL_INPUT_SCALE_NAME, scale, fmt.scale_shape, fmt.scale_dims, fmt.scale_rank);
    } else if (scale) {
      throw Ort::Exception(at + SPIKEMATMUL_INPUT_SCALE_NAME + "' is given, but " + fmt.name +
                               " weights take no scale; leave the input empty",
                           ORT_INVALID_ARGUMENT);
    }
    if (bias)
      check(SPIKEMATMUL_INPUT_BIAS_NAME, bias, SPIKEMATMUL_INPUT_BIAS_SHAPE, SPIKEMATMUL_INPUT_BIAS_DIMS,
            SPIKEMATMUL_INPUT_BIAS_RANK);

    const astroedge::Shape y_dims = resolve(SPIKEMATMUL_OUTPUT_Y_DIMS, SPIKEMATMUL_OUTPUT_Y_RANK, symbols);
    const std::vector<int64_t> y_shape(y_dims.d, y_dims.d + y_dims.rank);
    Ort::UnownedValue y = ctx.GetOutput(SPIKEMATMUL_OUTPUT_Y, y_shape);
    const SmmShape shape{B, T, K, N, bs};
    const SmmBuffers buf{spikes.GetTensorRawData(), weight.GetTensorRawData(),
                         scale ? scale.GetTensorData<float>() : nullptr, bias ? bias.GetTensorData<float>() : nullptr,
                         y.GetTensorMutableRawData()};
    int rc;
    if constexpr (kCuda) {
      rc = spikematmul_cuda_forward(&shape, act_type<TA>(), static_cast<SmmWeightFormat>(format), &buf,
                                    ctx.GetGPUComputeStream());
    } else {
      const SmmParallel parallel{ort_parallel_for, &ctx,
                                 static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))};
      rc = spikematmul_cpu_forward_parallel(&shape, act_type<TA>(), static_cast<SmmWeightFormat>(format), &buf,
                                            &parallel);
    }
    if (rc != SMM_OK) {
      std::string msg = where(attrs_.node) + "kernel failed: " + spikematmul_error_string(rc);
      if constexpr (kCuda) msg += std::string(": ") + spikematmul_cuda_last_error();
      throw Ort::Exception(std::move(msg),
                           rc == SMM_ERR_INVALID_ARGUMENT ? ORT_INVALID_ARGUMENT : ORT_RUNTIME_EXCEPTION);
    }
  }

  Attrs attrs_;
};

template <typename TA, typename TW, bool kCuda>
struct SpikeMatMulOp : Ort::CustomOpBase<SpikeMatMulOp<TA, TW, kCuda>, SpikeMatMulKernel<TA, TW, kCuda>, true> {
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
    try {
      *kernel = new SpikeMatMulKernel<TA, TW, kCuda>(info);
      return nullptr;
    } catch (const Ort::Exception& e) {
      return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), e.what());
    }
  }
  const char* GetName() const { return SPIKEMATMUL_OP_NAME; }
  const char* GetExecutionProviderType() const { return kCuda ? "CUDAExecutionProvider" : "CPUExecutionProvider"; }
  size_t GetInputTypeCount() const { return SPIKEMATMUL_NUM_INPUTS; }
  ONNXTensorElementDataType GetInputType(size_t i) const {
    if (i == SPIKEMATMUL_INPUT_SPIKES) return onnx_type<TA>();
    if (i == SPIKEMATMUL_INPUT_WEIGHT) return onnx_type<TW>();
    return static_cast<ONNXTensorElementDataType>(SPIKEMATMUL_INPUT_SPECS[i].onnx_type);
  }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t i) const {
    return SPIKEMATMUL_INPUT_SPECS[i].optional ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
  }
  size_t GetOutputTypeCount() const { return SPIKEMATMUL_NUM_OUTPUTS; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return onnx_type<TA>(); }
  int start_ver_ = SPIKEMATMUL_OP_VERSION;
};

template <bool kCuda>
void add_all(Ort::CustomOpDomain& domain) {
  // Objects live as long as the domain (forever, see ort_library.cc).
  domain.Add(new SpikeMatMulOp<float, float, kCuda>());
  domain.Add(new SpikeMatMulOp<float, Ort::Float16_t, kCuda>());
  domain.Add(new SpikeMatMulOp<float, int8_t, kCuda>());
  domain.Add(new SpikeMatMulOp<float, uint8_t, kCuda>());
  domain.Add(new SpikeMatMulOp<Ort::Float16_t, float, kCuda>());
  domain.Add(new SpikeMatMulOp<Ort::Float16_t, Ort::Float16_t, kCuda>());
  domain.Add(new SpikeMatMulOp<Ort::Float16_t, int8_t, kCuda>());
  domain.Add(new SpikeMatMulOp<Ort::Float16_t, uint8_t, kCuda>());
}

}  // namespace
}  // namespace astroedge

void astroedge_add_spikematmul_ops(Ort::CustomOpDomain& domain) {
  astroedge::add_all<false>(domain);
#ifdef ASTROEDGE_WITH_CUDA
  astroedge::add_all<true>(domain);
#endif
}
