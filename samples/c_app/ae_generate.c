/* ae_generate: stream a model's continuation of a prompt with the astroedge C API.
 *
 *   ae_generate PKG "prompt" [max_tokens] [--library PATH] [--threads N] [--temperature T]
 *               [--top-k K] [--top-p P] [--seed S] [--ids] [--load-state FILE] [--save-state FILE]
 *
 * stdout: the generated text (or, with --ids, the generated token ids), then a newline.
 * stderr: one line of statistics (prefill and decode tokens/s), or one "error: ..." line.
 * Exit status: 0 on success, 2 for bad input (usage, package, state file), 1 for runtime failures.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "astroedge.h"

static const char kUsage[] =
    "usage: ae_generate PKG \"prompt\" [max_tokens] [--library PATH] [--threads N] [--temperature T]\n"
    "                   [--top-k K] [--top-p P] [--seed S] [--ids] [--load-state FILE] [--save-state FILE]\n";

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

/* Parses a whole-string number; returns 0 on failure. */
static int parse_long(const char* s, long long* out) {
  char* end = NULL;
  *out = strtoll(s, &end, 10);
  return s[0] != '\0' && *end == '\0';
}

static int parse_float(const char* s, float* out) {
  char* end = NULL;
  *out = strtof(s, &end);
  return s[0] != '\0' && *end == '\0';
}

int main(int argc, char** argv) {
  AeEngineConfig engine_cfg = ae_engine_config_default();
  AeGenerateConfig gen_cfg = ae_generate_config_default();
  const char* prompt = NULL;
  const char* load_state = NULL;
  const char* save_state = NULL;
  Output out = {0, 0};
  int positional = 0;
  gen_cfg.max_tokens = 64;

  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    long long n = 0;
    int has_value = i + 1 < argc;
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(kUsage, stdout);
      return 0;
    } else if (strcmp(a, "--ids") == 0) {
      out.ids = 1;
    } else if (strncmp(a, "--", 2) == 0 && !has_value) {
      return usage_error("missing value after", a);
    } else if (strcmp(a, "--library") == 0) {
      engine_cfg.amsu_library = argv[++i];
    } else if (strcmp(a, "--threads") == 0) {
      if (!parse_long(argv[++i], &n) || n < 0 || n > 1024) return usage_error("--threads needs a count in 0..1024, got", argv[i]);
      engine_cfg.num_threads = (int32_t)n;
    } else if (strcmp(a, "--temperature") == 0) {
      if (!parse_float(argv[++i], &gen_cfg.temperature)) return usage_error("--temperature needs a number, got", argv[i]);
    } else if (strcmp(a, "--top-k") == 0) {
      if (!parse_long(argv[++i], &n) || n < 0 || n > 1 << 30) return usage_error("--top-k needs a count >= 0, got", argv[i]);
      gen_cfg.top_k = (int32_t)n;
    } else if (strcmp(a, "--top-p") == 0) {
      if (!parse_float(argv[++i], &gen_cfg.top_p)) return usage_error("--top-p needs a number in (0, 1], got", argv[i]);
    } else if (strcmp(a, "--seed") == 0) {
      if (!parse_long(argv[++i], &n) || n < 0) return usage_error("--seed needs an integer >= 0, got", argv[i]);
      gen_cfg.seed = (uint64_t)n;
    } else if (strcmp(a, "--load-state") == 0) {
      load_state = argv[++i];
    } else if (strcmp(a, "--save-state") == 0) {
      save_state = argv[++i];
    } else if (strncmp(a, "--", 2) == 0) {
      return usage_error("unknown option", a);
    } else if (positional == 0) {
      engine_cfg.package_dir = a;
      positional++;
    } else if (positional == 1) {
      prompt = a;
      positional++;
    } else if (positional == 2) {
      if (!parse_long(a, &n) || n < 0 || n > 1 << 30) return usage_error("max_tokens must be a count >= 0, got", a);
      gen_cfg.max_tokens = (int32_t)n;
      positional++;
    } else {
      return usage_error("unexpected argument", a);
    }
  }
  if (positional < 2) return usage_error("PKG and prompt are required", NULL);

  AeStatus st = ae_engine_config_validate(&engine_cfg);
  if (st == AE_OK) st = ae_generate_config_validate(&gen_cfg);
  if (st != AE_OK) return fail(st);

  AeEngine* engine = NULL;
  AeStream* stream = NULL;
  int32_t* tokens = NULL;
  int rc = 0;
  size_t n_prompt = 0, n_generated = 0;
  double t_prefill = 0.0, t_decode = 0.0;

  if ((st = ae_engine_create(&engine_cfg, &engine)) != AE_OK || (st = ae_stream_create(engine, &stream)) != AE_OK) goto failed;
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
  if ((st = ae_generate(stream, NULL, 0, &gen_cfg, on_token, &out, &n_generated)) != AE_OK) goto failed;
  double t2 = now_seconds();
  t_prefill = t1 - t0;
  t_decode = t2 - t1;
  putchar('\n');
  fflush(stdout);
  if (save_state && (st = ae_stream_save_state(stream, save_state)) != AE_OK) goto failed;

  fprintf(stderr, "[prefill %zu tokens %.1f tok/s | generated %zu tokens in %.3f s, %.1f tok/s | AMSU %s | state %zu bytes]\n", n_prompt,
          t_prefill > 0 ? (double)n_prompt / t_prefill : 0.0, n_generated, t_decode, t_decode > 0 ? (double)n_generated / t_decode : 0.0,
          ae_engine_kernel(engine), ae_engine_state_size(engine));
  goto done;

failed:
  rc = fail(st);
done:
  free(tokens);
  ae_stream_destroy(stream);
  ae_engine_destroy(engine);
  return rc;
}
