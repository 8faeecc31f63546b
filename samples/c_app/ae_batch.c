/* ae_batch: N streams decoded together, one graph call per step (ae_decode_batch).
 *
 *   ae_batch PKG N [steps] [--library PATH] [--threads N]
 *
 * Stream i is primed with its own prompt ("i " + one of six phrases, so each sits at its own position), then all N
 * streams decode `steps` greedy tokens (default 32) in lock-step: every step is ONE ae_decode_batch call for all of
 * them. Then each stream is checked against a twin stream decoded alone with ae_stream_step: same tokens and
 * bit-identical logits, or the exit status is 3. stdout: one line per stream, "i: id id id ...". stderr: one line of
 * statistics, or "error: ...". Exit status: 0 on success, 2 on every refusal, 1 for runtime failures, 3 if batched !=
 * single.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astroedge.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(AeStatus status) {
  fprintf(stderr, "error: %s\n", ae_last_error());
  return status == AE_ERR_RUNTIME || status == AE_ERR_OUT_OF_MEMORY ? 1 : 2;
}

static int parse_count(const char* s, long lo, long hi, long* out) {
  char* end = NULL;
  errno = 0;
  *out = strtol(s, &end, 10);
  return s[0] != '\0' && *end == '\0' && errno == 0 && *out >= lo && *out <= hi;
}

/* Greedy: the first maximum (the lowest id wins ties), as the library's temperature-0 sampler. */
static int32_t argmax(const float* logits, int32_t vocab) {
  int32_t best = 0;
  for (int32_t i = 1; i < vocab; ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

int main(int argc, char** argv) {
  const char* package = NULL;
  long n = 0, steps = 32, v = 0;
  int positional = 0, rc = 0;
  AeStatus st = AE_OK;
  AeEngineParams* ep = NULL;
  AeEngine* engine = NULL;
  AeStream** batch = NULL;  /* decoded together */
  AeStream** single = NULL; /* the same streams decoded one by one */
  int32_t *next = NULL, *ids = NULL;
  float *logits = NULL, *one = NULL;

  if ((st = ae_engine_params_create(&ep)) != AE_OK) goto failed;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      puts("usage: ae_batch PKG N [steps] [--library PATH] [--threads N]");
      goto done;
    } else if ((strcmp(a, "--library") == 0 || strcmp(a, "--threads") == 0) && i + 1 < argc) {
      if (strcmp(a, "--library") == 0) {
        st = ae_engine_params_set_amsu_library(ep, argv[++i]);
      } else if (!parse_count(argv[++i], 0, 1024, &v)) {
        fprintf(stderr, "error: --threads %s: must be a count in 0..1024\n", argv[i]);
        rc = 2;
        goto done;
      } else {
        st = ae_engine_params_set_num_threads(ep, (int32_t)v);
      }
      if (st != AE_OK) goto failed;
    } else if (strncmp(a, "--", 2) == 0) {
      fprintf(stderr, "error: unknown option or missing value: %s (ae_batch --help shows the usage)\n", a);
      rc = 2;
      goto done;
    } else if (positional == 0) {
      package = a;
      positional++;
    } else if (positional == 1) {
      if (!parse_count(a, 1, 4096, &n)) {
        fprintf(stderr, "error: N %s: must be a stream count in 1..4096\n", a);
        rc = 2;
        goto done;
      }
      positional++;
    } else if (positional == 2) {
      if (!parse_count(a, 0, 1 << 20, &steps)) {
        fprintf(stderr, "error: steps %s: must be a count in 0..1048576\n", a);
        rc = 2;
        goto done;
      }
      positional++;
    } else {
      fprintf(stderr, "error: unexpected argument %s (ae_batch --help shows the usage)\n", a);
      rc = 2;
      goto done;
    }
  }
  if (positional < 2) {
    fprintf(stderr, "error: PKG and N are required (ae_batch --help shows the usage)\n");
    rc = 2;
    goto done;
  }
  if ((st = ae_engine_params_set_package_dir(ep, package)) != AE_OK || (st = ae_engine_create(ep, &engine)) != AE_OK)
    goto failed;

  const int32_t vocab = ae_engine_vocab_size(engine);
  batch = calloc((size_t)n, sizeof *batch);
  single = calloc((size_t)n, sizeof *single);
  next = calloc((size_t)n, sizeof *next);
  ids = calloc((size_t)n * (size_t)(steps ? steps : 1), sizeof *ids);
  logits = malloc((size_t)n * (size_t)vocab * sizeof *logits);
  one = malloc((size_t)vocab * sizeof *one);
  if (!batch || !single || !next || !ids || !logits || !one) {
    fprintf(stderr, "error: out of memory for %ld streams\n", n);
    rc = 1;
    goto done;
  }
  for (long i = 0; i < n; ++i) {
    /* Different prompts of different lengths: the streams sit at different positions. */
    static const char* const kWords[] = {"To be",         "or not to be",        "that is",
                                         "the question:", "Whether 'tis nobler", "in the mind"};
    char text[64];
    int32_t prompt[64];
    size_t len = (size_t)snprintf(text, sizeof text, "%ld %s", i, kWords[i % 6]), n_prompt = 0;
    if ((st = ae_stream_create(engine, &batch[i])) != AE_OK ||
        (st = ae_tokenize(engine, text, len, prompt, 64, &n_prompt)) != AE_OK ||
        (st = ae_stream_feed(batch[i], prompt, n_prompt, logits + i * vocab)) != AE_OK ||
        (st = ae_stream_clone(batch[i], &single[i])) != AE_OK) {
      goto failed;
    }
    next[i] = argmax(logits + i * vocab, vocab);
  }

  double t0 = now_seconds();
  for (long s = 0; s < steps; ++s) {
    for (long i = 0; i < n; ++i) ids[i * steps + s] = next[i];
    if ((st = ae_decode_batch(batch, next, (size_t)n, logits)) != AE_OK) goto failed;
    for (long i = 0; i < n; ++i) next[i] = argmax(logits + i * vocab, vocab);
  }
  double t1 = now_seconds();

  /* The same tokens, one stream at a time: logits must be identical bit for bit. */
  long mismatches = 0;
  for (long i = 0; i < n; ++i) {
    for (long s = 0; s < steps; ++s) {
      if ((st = ae_stream_step(single[i], ids[i * steps + s], one)) != AE_OK) goto failed;
    }
    if (steps > 0) {
      float* row = malloc((size_t)vocab * sizeof *row);
      if (!row || ae_stream_logits(batch[i], row) != AE_OK || memcmp(row, one, (size_t)vocab * sizeof *one) != 0)
        mismatches++;
      free(row);
    }
    printf("%ld:", i);
    for (long s = 0; s < steps; ++s) printf(" %d", (int)ids[i * steps + s]);
    putchar('\n');
  }
  fprintf(stderr, "[%ld streams x %ld steps in %.3f s, %.1f tok/s batched | AMSU %s | batched == single: %s]\n", n,
          steps, t1 - t0, t1 > t0 ? (double)(n * steps) / (t1 - t0) : 0.0, ae_engine_kernel(engine),
          mismatches ? "NO" : "bitwise");
  if (mismatches) {
    fprintf(stderr, "error: %ld of %ld streams differ between batched and single decoding\n", mismatches, n);
    rc = 3;
  }
  goto done;

failed:
  rc = fail(st);
done:
  for (long i = 0; batch && i < n; ++i) ae_stream_destroy(batch[i]);
  for (long i = 0; single && i < n; ++i) ae_stream_destroy(single[i]);
  free(batch);
  free(single);
  free(next);
  free(ids);
  free(logits);
  free(one);
  ae_engine_destroy(engine);
  ae_engine_params_destroy(ep);
  return rc;
}
