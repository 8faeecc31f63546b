// libastroedge_ort.so's entry point: RegisterCustomOps adds the domain "astroedge" with every op of the
// library (AMSU, SpikeMatMul; op contracts in astroedge/contract/) to a session's options.
#define ORT_API_MANUAL_INIT
#include <exception>
#include <mutex>
#include <string>

#include "amsu_contract.h"
#include "contract_shapes.h"
#include "onnxruntime_lite_custom_op.h"
#include "ort_ops.h"
#include "spikematmul_contract.h"

static_assert(astroedge::same_text(AMSU_OP_DOMAIN, SPIKEMATMUL_OP_DOMAIN),
              "the library registers one domain: the op contracts must agree on it");

namespace {

// Op objects and the domain must outlive every session that uses them, and RegisterCustomOps runs
// once per SessionOptions: create them once and never free them (a static destructor could run
// after onnxruntime itself is gone at process exit).
Ort::CustomOpDomain* domain() {
  static Ort::CustomOpDomain* dom = [] {
    auto* d = new Ort::CustomOpDomain(AMSU_OP_DOMAIN);
    astroedge_add_amsu_ops(*d);
    astroedge_add_spikematmul_ops(*d);
    return d;
  }();
  return dom;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (!api) {  // GetApi(1) exists in every release: enough to report the problem
    const std::string msg = std::string("astroedge custom-op library needs onnxruntime >= 1.") +
                            std::to_string(ORT_API_VERSION) + " (C API version " + std::to_string(ORT_API_VERSION) +
                            "); this process has onnxruntime " + api_base->GetVersionString() + ": upgrade onnxruntime";
    return api_base->GetApi(1)->CreateStatus(ORT_FAIL, msg.c_str());
  }
  static std::once_flag init;
  std::call_once(init, [api] { Ort::InitApi(api); });
  try {
    return api->AddCustomOpDomain(options, *domain());
  } catch (const Ort::Exception& e) {
    return api->CreateStatus(e.GetOrtErrorCode(), e.what());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
}
