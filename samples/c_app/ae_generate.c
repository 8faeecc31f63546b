/* ae_generate: stream a model's continuation of a prompt with the astroedge C API.
 *
 *   ae_generate PKG "prompt" [max_tokens] [--library PATH] [--device D] [--threads N] [--temperature T]
 *               [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]... [--ids]
 *               [--load-state FILE] [--save-state FILE]
 *
 * Defaults are the library's (AE_DEFAULT_*: 200 tokens, temperature 0.8, top_k 0, top_p 1, seed 0).
 * stdout: the generated text (or, with --ids, the generated token ids), then a newline.
 * stderr: one line of statistics (prefill and decode tokens/s), or one "error: ..." line.
 * Exit status: 0 on success, 2 on every refusal (usage, package, graph, library, state file, device),
 * 1 only for failures of the machine (AE_ERR_RUNTIME: CUDA/TensorRT failing; out of memory).
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "astroedge.h"

static const char kUsage[] =
    "usage: ae_generate PKG \"prompt\" [max_tokens] [--library PATH] [--device D] [--threads N] [--temperature T]\n"
    "                   [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S] [--stop TEXT]... [--ids]\n"
    "                   [--load-state FILE] [--save-state FILE]\n";

typedef struct Output {
  int ids; /* print ids instead of text */
  size_t count;
} Output;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int on_token(int32_t token, const char* piece, size_t piece_len, void* user_data) {
  Output* out = (Output*)user_data;
  if (out->ids || piece == NULL) {
    printf(out->count ? " %d" : "%d", (int)token);
  } else {
    fwrite(piece, 1, piece_len, stdout);
  }
  fflush(stdout);
  out->count++;
  return 0;
}

/* Prints the library's message for a failed call and returns the exit status for it. */
static int fail(AeStatus status) {
  fprintf(stderr, "error: %s\n", ae_last_error());
  return status == AE_ERR_RUNTIME || status == AE_ERR_OUT_OF_MEMORY ? 1 : 2;
}

static int usage_error(const char* what, const char* value) {
  fprintf(stderr, "error: %s%s%s (ae_generate --help shows the usage)\n", what, value ? " " : "", value ? value : "");
  return 2;
}

/* Parses a whole-string integer in [lo, hi]; returns 0 on failure (also on overflow). */
static int parse_long(const char* s, long long lo, long long hi, long long* out) {
  char* end = NULL;
  errno = 0;
  *out = strtoll(s, &end, 10);
  return s[0] != '\0' && *end == '\0' && errno == 0 && *out >= lo && *out <= hi;
}

static int parse_u64(const char* s, uint64_t* out) {
  char* end = NULL;
  errno = 0;
  if (s[0] == '-' || s[0] == '\0') return 0;
  *out = (uint64_t)strtoull(s, &end, 10);
  return *end == '\0' && errno == 0;
}

static int parse_float(const char* s, float* out) {
  char* end = NULL;
  errno = 0;
  *out = strtof(s, &end);
  return s[0] != '\0' && *end == '\0' && errno == 0;
}

int main(int argc, char** argv) {
  AeEngineParams* ep = NULL;
  AeGenerateParams* gp = NULL;
  AeEngine* engine = NULL;
  AeStream* stream = NULL;
  int32_t* tokens = NULL;
  const char* package = NULL;
  const char* prompt = NULL;
  const char* load_state = NULL;
  const char* save_state = NULL;
  Output out = {0, 0};
  int positional = 0, rc = 0;
  AeStatus st = AE_OK;
  size_t n_prompt = 0, n_generated = 0;
  int32_t stop_index = -1;

  if ((st = ae_engine_params_create(&ep)) != AE_OK || (st = ae_generate_params_create(&gp)) != AE_OK) goto failed;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    long long n = 0;
    float f = 0.0f;
    uint64_t u = 0;
    int has_value = i + 1 < argc;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(kUsage, stdout);
      goto done;
    } else if (strcmp(a, "--ids") == 0) {
      out.ids = 1;
      continue;
    } else if (strncmp(a, "--", 2) == 0 && !has_value) {
      rc = usage_error("missing value after", a);
      goto done;
    }
    /* Every value is checked by the library's setters: their message names the value. */
    if (strcmp(a, "--library") == 0) {
      st = ae_engine_params_set_amsu_library(ep, argv[++i]);
    } else if (strcmp(a, "--device") == 0) {
      st = ae_engine_params_set_device(ep, argv[++i]);
    } else if (strcmp(a, "--threads") == 0) {
      if (!parse_long(argv[++i], 0, 1024, &n)) {
        rc = usage_error("--threads needs a count in 0..1024, got", argv[i]);
        goto done;
      }
      st = ae_engine_params_set_num_threads(ep, (int32_t)n);
    } else if (strcmp(a, "--temperature") == 0 || strcmp(a, "--top-p") == 0 || strcmp(a, "--repetition-penalty") == 0) {
      if (!parse_float(argv[++i], &f)) {
        rc = usage_error(a, argv[i]);
        goto done;
      }
      st = strcmp(a, "--temperature") == 0 ? ae_generate_params_set_temperature(gp, f)
           : strcmp(a, "--top-p") == 0     ? ae_generate_params_set_top_p(gp, f)
                                           : ae_generate_params_set_repetition_penalty(gp, f);
    } else if (strcmp(a, "--top-k") == 0) {
      if (!parse_long(argv[++i], 0, 1 << 30, &n)) {
        rc = usage_error("--top-k needs a count >= 0, got", argv[i]);
        goto done;
      }
      st = ae_generate_params_set_top_k(gp, (int32_t)n);
    } else if (strcmp(a, "--seed") == 0) {
      if (!parse_u64(argv[++i], &u)) {
        rc = usage_error("--seed needs an integer in 0..2^64-1, got", argv[i]);
        goto done;
      }
      st = ae_generate_params_set_seed(gp, u);
    } else if (strcmp(a, "--stop") == 0) {
      ++i;
      st = ae_generate_params_add_stop(gp, argv[i], strlen(argv[i]));
    } else if (strcmp(a, "--load-state") == 0) {
      load_state = argv[++i];
    } else if (strcmp(a, "--save-state") == 0) {
      save_state = argv[++i];
    } else if (strncmp(a, "--", 2) == 0) {
      rc = usage_error("unknown option", a);
      goto done;
    } else if (positional == 0) {
      package = a;
      positional++;
    } else if (positional == 1) {
      prompt = a;
      positional++;
    } else if (positional == 2) {
      if (!parse_long(a, -(1LL << 62), 1LL << 62, &n) || n < 0 || n > AE_MAX_GENERATE_TOKENS) {
        fprintf(stderr, "error: max_tokens %s: must be a count in 0..%d\n", a, AE_MAX_GENERATE_TOKENS);
        rc = 2;
        goto done;
      }
      st = ae_generate_params_set_max_tokens(gp, (int32_t)n);
      positional++;
    } else {
      rc = usage_error("unexpected argument", a);
      goto done;
    }
    if (st != AE_OK) goto failed;
  }
  if (positional < 2) {
    rc = usage_error("PKG and prompt are required", NULL);
    goto done;
  }
  if ((st = ae_engine_params_set_package_dir(ep, package)) != AE_OK) goto failed;
  struct stat save_stat;
  if (save_state && stat(save_state, &save_stat) == 0 && S_ISDIR(save_stat.st_mode)) {
    fprintf(stderr, "error: --save-state %s: is a folder; give a file path\n",
            save_state); /* before generating, not after */
    rc = 2;
    goto done;
  }

  if ((st = ae_engine_create(ep, &engine)) != AE_OK || (st = ae_stream_create(engine, &stream)) != AE_OK) goto failed;
  if (load_state && (st = ae_stream_load_state(stream, load_state)) != AE_OK) goto failed;

  size_t len = strlen(prompt);
  tokens = (int32_t*)malloc((len ? len : 1) * sizeof(int32_t));
  if (!tokens) {
    fprintf(stderr, "error: out of memory\n");
    rc = 1;
    goto done;
  }
  if ((st = ae_tokenize(engine, prompt, len, tokens, len, &n_prompt)) != AE_OK) goto failed;

  double t0 = now_seconds();
  if ((st = ae_stream_feed(stream, tokens, n_prompt, NULL)) != AE_OK) goto failed;
  double t1 = now_seconds();
  if ((st = ae_generate(stream, NULL, 0, gp, on_token, &out, &n_generated, &stop_index)) != AE_OK) goto failed;
  double t2 = now_seconds();
  putchar('\n');
  fflush(stdout);
  if (save_state && (st = ae_stream_save_state(stream, save_state)) != AE_OK) goto failed;

  fprintf(stderr,
          "[prefill %zu tokens %.1f tok/s | generated %zu tokens in %.3f s, %.1f tok/s%s | AMSU %s | %s | state %zu "
          "bytes]\n",
          n_prompt, t1 > t0 ? (double)n_prompt / (t1 - t0) : 0.0, n_generated, t2 - t1,
          t2 > t1 ? (double)n_generated / (t2 - t1) : 0.0, stop_index >= 0 ? ", stopped at a stop string" : "",
          ae_engine_kernel(engine), ae_engine_device(engine), ae_engine_state_size(engine));
  goto done;

failed:
  rc = fail(st);
done:
  free(tokens);
  ae_stream_destroy(stream);
  ae_engine_destroy(engine);
  ae_generate_params_destroy(gp);
  ae_engine_params_destroy(ep);
  return rc;
}
