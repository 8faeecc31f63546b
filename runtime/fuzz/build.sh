#!/usr/bin/env bash
# Builds the libFuzzer targets of libastroedge's readers into OUT (default build/libfuzzer):
#   manifest_fuzzer (manifest.json: strict JSON + manifest rules), onnx_fuzzer (model.onnx walker + graph check).
# Needs clang with libFuzzer (Debian: apt-get install clang). Exit 3 when clang is missing, so that
# callers can skip with that reason. Run a target: OUT/manifest_fuzzer -max_total_time=20 CORPUS_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../src"
out="${1:-$here/../../build/libfuzzer}"
CXX="${CLANGXX:-clang++}"
if ! command -v "$CXX" >/dev/null; then
  echo "runtime/fuzz/build.sh: $CXX not found; install clang (Debian: apt-get install clang)" >&2
  exit 3
fi
mkdir -p "$out"
flags=(-std=c++17 -g -O1 -Wall -Wextra -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I "$src" -I "$here/../include")
common=("$src/json.cc" "$src/manifest.cc" "$src/fs.cc" "$src/text.cc")
"$CXX" "${flags[@]}" "$here/manifest_fuzzer.cc" "${common[@]}" -o "$out/manifest_fuzzer"
"$CXX" "${flags[@]}" "$here/onnx_fuzzer.cc" "$src/onnx_graph.cc" "${common[@]}" -o "$out/onnx_fuzzer"
echo "$out/manifest_fuzzer $out/onnx_fuzzer"
