/* For plugin_host_check only (never part of libastroedge_trt.so): the CUDA entry point of the kernel ABI
 * served by the CPU kernel, so the plugin's enqueue can run on host pointers where no GPU exists. The
 * stream argument is ignored because the CPU kernel is synchronous. */
#include "amsu_kernels.h"

extern "C" int amsu_cuda_forward(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                                 void* /*stream*/) {
  return amsu_cpu_forward(shape, attrs, dtype, buf, 1);
}

extern "C" int amsu_cuda_forward_ws(const AmsuShape* shape, AmsuAttrs attrs, AmsuDType dtype, const AmsuBuffers* buf,
                                    void* /*workspace*/, size_t /*workspace_bytes*/, void* stream) {
  return amsu_cuda_forward(shape, attrs, dtype, buf, stream);
}

extern "C" size_t amsu_cuda_workspace_bytes(const AmsuShape* /*shape*/) { return 0; }

extern "C" const char* amsu_cuda_last_error(void) { return "no CUDA in the host check"; }
