// The ops of libastroedge_ort.so: each op's wrapper adds its kernels (one per execution provider and
// type combination) to the library's one custom-op domain, created in ort_library.cc.
// Include after defining ORT_API_MANUAL_INIT, like every file of the library.
#ifndef ASTROEDGE_ORT_OPS_H_
#define ASTROEDGE_ORT_OPS_H_

#include "onnxruntime_cxx_api.h"

void astroedge_add_amsu_ops(Ort::CustomOpDomain& domain);         // plugins/amsu/ort/amsu_ort.cc
void astroedge_add_spikematmul_ops(Ort::CustomOpDomain& domain);  // plugins/spikematmul/ort/spikematmul_ort.cc

#endif  // ASTROEDGE_ORT_OPS_H_
