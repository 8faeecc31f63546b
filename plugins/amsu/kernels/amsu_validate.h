/* Argument checks shared by the CPU and CUDA entry points of amsu_kernels.h (internal header). */
#ifndef ASTROEDGE_AMSU_VALIDATE_H_
#define ASTROEDGE_AMSU_VALIDATE_H_

#include "amsu_kernels.h"

/* AMSU_OK: run the call; 1: valid but nothing to do (batch 0); or a negative AMSU_ERR_* code. */
static inline int amsu_validate_call(const AmsuShape* shape, AmsuDType dtype, const AmsuBuffers* buf) {
  if (!shape || !buf) return AMSU_ERR_INVALID_ARGUMENT;
  if (shape->batch < 0 || shape->seq < 0 || shape->dim < 1 || shape->heads < 1 || shape->dim % shape->heads)
    return AMSU_ERR_INVALID_ARGUMENT;
  if (dtype != AMSU_FLOAT32 && dtype != AMSU_FLOAT16) return AMSU_ERR_INVALID_ARGUMENT;
  if (shape->batch == 0) return 1;
  if (!buf->w_o || !buf->gamma || !buf->beta || !buf->h_in || !buf->u_in || !buf->h_out || !buf->u_out)
    return AMSU_ERR_INVALID_ARGUMENT;
  if (shape->seq > 0 && (!buf->x || !buf->q || !buf->k || !buf->v || !buf->s)) return AMSU_ERR_INVALID_ARGUMENT;
  return AMSU_OK;
}

#endif /* ASTROEDGE_AMSU_VALIDATE_H_ */
