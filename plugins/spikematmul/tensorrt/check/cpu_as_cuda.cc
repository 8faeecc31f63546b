/* For the host checks only (never part of libastroedge_trt.so): the SpikeMatMul CUDA entry points served
 * by the CPU kernel, so the plugin's enqueue runs on host pointers where no GPU exists. */
#include "spikematmul_kernels.h"

extern "C" int spikematmul_cuda_forward(const SmmShape* shape, SmmActType act, SmmWeightFormat format,
                                        const SmmBuffers* buf, void* /*stream*/) {
  return spikematmul_cpu_forward(shape, act, format, buf, 1);
}

extern "C" const char* spikematmul_cuda_last_error(void) { return "no CUDA in the host check"; }
