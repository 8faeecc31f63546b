#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ headers that the AMSU custom-op library and libastroedge compile against.
#
# No pip wheel ships them; Debian's libonnxruntime-dev does (MIT). cmake/OnnxRuntimeHeaders.cmake,
# the one place that knows the package's URL and sha256, downloads that .deb and unpacks it with
# CMake's own archive support into DEPS_DIR/onnxruntime/usr/include/onnxruntime: no apt, no keyring,
# nothing installed, so it works on Debian, Ubuntu and JetPack alike. Idempotent, non-interactive.
# A configure of the root CMakeLists.txt does the same by itself (or uses -DONNXRUNTIME_ROOT=...).
#
# Usage: plugins/scripts/get_ort_headers.sh [DEPS_DIR]      (default: <repo>/.deps; $CMAKE picks cmake)
# Prints the include directory on the last line of stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=$(mkdir -p "${1:-$ROOT/.deps}" && cd "${1:-$ROOT/.deps}" && pwd)
CMAKE=${CMAKE:-$(command -v cmake || echo "$ROOT/.venv/bin/cmake")}
"$CMAKE" -DDEPS_DIR="$DEPS" -P "$ROOT/cmake/OnnxRuntimeHeaders.cmake"
