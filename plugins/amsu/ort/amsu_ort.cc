// astroedge::AMSU for ONNX Runtime (op contract astroedge/contract/amsu.json), part of libastroedge_ort.so
// (plugins/common/ort_library.cc registers it).
//
// Adds the op for the CPU execution provider (float and float16 inputs) and, when compiled
// with ASTROEDGE_WITH_CUDA, also for the CUDA execution provider on ORT's compute stream. Names,
// port order and attribute names come from amsu_contract.h, generated from the JSON contract.
// Every bad input becomes an ORT error status (ORT_INVALID_ARGUMENT naming the input and the
// expected shape), never a crash. g++ only: nvcc cannot parse the lite custom-op header.
#define ORT_API_MANUAL_INIT
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "amsu_contract.h"
#include "amsu_kernels.h"
#include "contract_shapes.h"
#include "ort_attrs.h"
#include "ort_ops.h"
#include "onnxruntime_lite_custom_op.h"

namespace astroedge {  // the contract_shapes.h / ort_attrs.h helpers by their plain names
namespace {
using Ort::Custom::Tensor;

// Compute's signature below types each port by hand (Tensor<T> or Tensor<float>): hold it to the contract.
static_assert(AMSU_NUM_INPUTS == 9 && AMSU_NUM_OUTPUTS == 3, "AMSU contract ports changed: update Compute's signature");
static_assert(same_text(AMSU_INPUT_X_DTYPE, "T") && same_text(AMSU_INPUT_Q_DTYPE, "T") &&
                  same_text(AMSU_INPUT_K_DTYPE, "T") && same_text(AMSU_INPUT_V_DTYPE, "T") &&
                  same_text(AMSU_OUTPUT_S_DTYPE, "T"),
              "AMSU contract: x, q, k, v, s must be of type parameter T");
static_assert(same_text(AMSU_INPUT_W_O_DTYPE, "float32") && same_text(AMSU_INPUT_GAMMA_DTYPE, "float32") &&
                  same_text(AMSU_INPUT_BETA_DTYPE, "float32") && same_text(AMSU_INPUT_H_IN_DTYPE, "float32") &&
                  same_text(AMSU_INPUT_U_IN_DTYPE, "float32") && same_text(AMSU_OUTPUT_H_OUT_DTYPE, "float32") &&
                  same_text(AMSU_OUTPUT_U_OUT_DTYPE, "float32"),
              "AMSU contract: weights and state must be float32");

struct Attrs {
  std::string node;
  int64_t num_heads = 0;
  AmsuAttrs kernel{};
};

// Read and check the node's attributes once, at session creation: a bad model fails to load with a
// message naming the node and attribute instead of failing on every run.
Attrs read_attrs(const OrtKernelInfo* info) {
  Ort::ConstKernelInfo ki(info);
  Attrs a;
  a.node = ki.GetNodeName();
  constexpr const char* kContract = "astroedge/contract/amsu.json";
  a.num_heads = required_attribute<int64_t>(ki, AMSU_OP_NAME, a.node, AMSU_ATTR_NUM_HEADS, "int", kContract);
  a.kernel.threshold = required_attribute<float>(ki, AMSU_OP_NAME, a.node, AMSU_ATTR_THRESHOLD, "float", kContract);
  a.kernel.eps = required_attribute<float>(ki, AMSU_OP_NAME, a.node, AMSU_ATTR_EPS, "float", kContract);
  auto bad = [&](const char* name, const std::string& value, const char* why) {
    return bad_attribute(AMSU_OP_NAME, a.node, name, value, why);
  };
  if (a.num_heads < 1)
    throw bad(AMSU_ATTR_NUM_HEADS, std::to_string(a.num_heads), "must be a positive number of heads");
  if (!std::isfinite(a.kernel.threshold))
    throw bad(AMSU_ATTR_THRESHOLD, std::to_string(a.kernel.threshold), "must be finite");
  if (!(a.kernel.eps >= 0.0f) || !std::isfinite(a.kernel.eps))
    throw bad(AMSU_ATTR_EPS, std::to_string(a.kernel.eps), "must be a small non-negative number");
  return a;
}

// Empty string when the shapes follow the contract, else a one-line explanation. The expected shapes
// come from the contract's symbolic dims (amsu_contract.h): B, S, D from x, NH from the attribute.
std::string check_shapes(const Attrs& a, const std::vector<const std::vector<int64_t>*>& in) {
  const std::vector<int64_t>& x = *in[AMSU_INPUT_X];
  const std::string where = "AMSU node '" + a.node + "': input '";
  if (x.size() != AMSU_INPUT_X_RANK)
    return where + AMSU_INPUT_X_NAME + "' has shape " + shape_str(x.data(), x.size()) + "; expected rank " +
           std::to_string(AMSU_INPUT_X_RANK) + " " + AMSU_INPUT_X_SHAPE;
  const int64_t B = x[0], S = x[1], D = x[2], NH = a.num_heads;
  if (D % NH)
    return where + AMSU_INPUT_X_NAME + "' has D = " + std::to_string(D) +
           " channels, not divisible by num_heads = " + std::to_string(NH);
  const Symbols symbols{{"B", B}, {"S", S}, {"D", D}, {"NH", NH}, {"HD", D / NH}};
  for (int i = 0; i < AMSU_NUM_INPUTS; ++i) {
    const AstroedgePortSpec& spec = AMSU_INPUT_SPECS[i];
    const Shape want = resolve(spec.dims, spec.rank, symbols);
    if (!shape_equals(in[i]->data(), in[i]->size(), want))
      return where + spec.name + "' has shape " + shape_str(in[i]->data(), in[i]->size()) + "; expected " + spec.shape +
             " = " + shape_str(want) + " (B, S, D from " + AMSU_INPUT_X_NAME + " " + shape_str(x.data(), x.size()) +
             ", NH = " + AMSU_ATTR_NUM_HEADS + " = " + std::to_string(NH) + ", HD = D / NH)";
  }
  return {};
}

template <typename T, bool kCuda>
struct AmsuKernel {
  AmsuKernel(const OrtApi*, const OrtKernelInfo* info) : attrs_(read_attrs(info)) {}

  Ort::Status Compute(OrtKernelContext* context, const Tensor<T>& x, const Tensor<T>& q, const Tensor<T>& k,
                      const Tensor<T>& v, const Tensor<float>& w_o, const Tensor<float>& gamma,
                      const Tensor<float>& beta, const Tensor<float>& h_in, const Tensor<float>& u_in, Tensor<T>& s,
                      Tensor<float>& h_out, Tensor<float>& u_out) {
    const std::string err = check_shapes(attrs_, {&x.Shape(), &q.Shape(), &k.Shape(), &v.Shape(), &w_o.Shape(),
                                                  &gamma.Shape(), &beta.Shape(), &h_in.Shape(), &u_in.Shape()});
    if (!err.empty()) return Ort::Status(err.c_str(), ORT_INVALID_ARGUMENT);
    const AmsuShape shape{x.Shape()[0], x.Shape()[1], x.Shape()[2], attrs_.num_heads};
    const AmsuBuffers buf{x.DataRaw(),
                          q.DataRaw(),
                          k.DataRaw(),
                          v.DataRaw(),
                          w_o.Data(),
                          gamma.Data(),
                          beta.Data(),
                          h_in.Data(),
                          u_in.Data(),
                          s.Allocate(x.Shape()),
                          h_out.Allocate(h_in.Shape()),
                          u_out.Allocate(u_in.Shape())};
    const AmsuDType dtype = std::is_same<T, float>::value ? AMSU_FLOAT32 : AMSU_FLOAT16;
    int rc;
    if constexpr (kCuda) {
      rc = amsu_cuda_forward(&shape, attrs_.kernel, dtype, &buf, Ort::KernelContext(context).GetGPUComputeStream());
    } else {
      (void)context;
      rc = amsu_cpu_forward(&shape, attrs_.kernel, dtype, &buf, 0);
    }
    if (rc == AMSU_OK) return Ort::Status{nullptr};
    std::string msg = "AMSU node '" + attrs_.node + "': kernel failed: " + amsu_error_string(rc);
    if constexpr (kCuda) msg += std::string(": ") + amsu_cuda_last_error();
    return Ort::Status(msg.c_str(), rc == AMSU_ERR_INVALID_ARGUMENT ? ORT_INVALID_ARGUMENT : ORT_RUNTIME_EXCEPTION);
  }

  Attrs attrs_;
};

}  // namespace
}  // namespace astroedge

void astroedge_add_amsu_ops(Ort::CustomOpDomain& domain) {
  domain.Add(Ort::Custom::CreateLiteCustomOp<astroedge::AmsuKernel<float, false>>(AMSU_OP_NAME, "CPUExecutionProvider",
                                                                                  AMSU_OP_VERSION));
  domain.Add(Ort::Custom::CreateLiteCustomOp<astroedge::AmsuKernel<Ort::Float16_t, false>>(
      AMSU_OP_NAME, "CPUExecutionProvider", AMSU_OP_VERSION));
#ifdef ASTROEDGE_WITH_CUDA
  domain.Add(Ort::Custom::CreateLiteCustomOp<astroedge::AmsuKernel<float, true>>(AMSU_OP_NAME, "CUDAExecutionProvider",
                                                                                 AMSU_OP_VERSION));
  domain.Add(Ort::Custom::CreateLiteCustomOp<astroedge::AmsuKernel<Ort::Float16_t, true>>(
      AMSU_OP_NAME, "CUDAExecutionProvider", AMSU_OP_VERSION));
#endif
}
