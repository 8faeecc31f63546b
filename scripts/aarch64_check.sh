#!/usr/bin/env bash
# make aarch64-check: build the native code for 64-bit Arm (Jetson's CPU) with Debian's cross
# toolchain and run it under qemu-user:
#   1. the C kernel tests (tests/kernels/*_cpu_test.cc: each kernel against its reference),
#   2. the C sample (the installed aarch64 SDK) on the bundled sample's package, greedy, against the
#      libonnxruntime of PyPI's aarch64 onnxruntime wheel: its tokens must equal the x86 build's.
# Installs what it lacks (g++-aarch64-linux-gnu, qemu-user-static) with apt-get when run as root;
# exits 77 ("skipped") with the reason when that is impossible. Output: build/aarch64/.
#
# Environment: PY (host python with torch + onnxruntime, default .venv/bin/python), CMAKE, TOKENS (64),
# AARCH64_INSTALL=0 (never install: skip when the tools are missing; what the pytest wrapper uses).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PY:-$ROOT/.venv/bin/python}
CMAKE=${CMAKE:-$ROOT/.venv/bin/cmake}
TOKENS=${TOKENS:-64}
OUT=$ROOT/build/aarch64
SYSROOT=/usr/aarch64-linux-gnu
PROMPT="ROMEO:"
skip() { echo "aarch64-check skipped: $*" >&2; exit 77; }

# --- tools -----------------------------------------------------------------------------------------
qemu() { command -v qemu-aarch64-static || command -v qemu-aarch64 || true; }
if ! command -v aarch64-linux-gnu-g++ >/dev/null || [[ -z $(qemu) ]]; then
  [[ ${AARCH64_INSTALL:-1} != 0 ]] || skip "g++-aarch64-linux-gnu or qemu-user-static is not installed (make aarch64-check installs them)"
  command -v apt-get >/dev/null || skip "no apt-get to install g++-aarch64-linux-gnu and qemu-user-static"
  [[ $(id -u) -eq 0 ]] || skip "installing g++-aarch64-linux-gnu and qemu-user-static needs root (sudo apt-get install them)"
  echo "installing g++-aarch64-linux-gnu qemu-user-static (apt-get)"
  apt-get update -qq >/dev/null || skip "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu qemu-user-static >/dev/null \
    || skip "apt-get install g++-aarch64-linux-gnu qemu-user-static failed"
fi
QEMU=$(qemu)
[[ -n $QEMU ]] || skip "qemu-aarch64 not found after installing"

# qemu-user's prefix: the cross sysroot's libraries plus an Arm /proc/cpuinfo. qemu-user (before 8.2)
# passes the host's x86 /proc/cpuinfo through, and the cpuinfo library inside onnxruntime then
# dereferences NULL at load time; qemu looks a guest's absolute paths up in its prefix first.
QROOT=$OUT/qemu-root
rm -rf "$QROOT" && mkdir -p "$QROOT/proc" && ln -s "$SYSROOT/lib" "$QROOT/lib"
for ((i = 0; i < $(nproc); i++)); do  # Cortex-A78AE, Jetson Orin's core
  printf 'processor\t: %d\nBogoMIPS\t: 62.50\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\n' "$i"
  printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x1\nCPU part\t: 0xd42\nCPU revision\t: 1\n\n'
done >"$QROOT/proc/cpuinfo"
export QEMU_LD_PREFIX=$QROOT

# --- libonnxruntime for aarch64: from PyPI's onnxruntime wheel, the same version as the host's -----
ORT_VERSION=$("$PY" -c "import onnxruntime; print(onnxruntime.__version__)")
ORT_DIR=$OUT/onnxruntime-$ORT_VERSION
if ! compgen -G "$ORT_DIR/lib/libonnxruntime.so.1*" >/dev/null; then
  echo "fetching onnxruntime $ORT_VERSION for manylinux aarch64 (pip download)"
  rm -rf "$ORT_DIR" && mkdir -p "$ORT_DIR/wheel" "$ORT_DIR/lib"
  "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux2014_aarch64 --platform manylinux_2_28_aarch64 \
    --python-version "$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')" \
    -d "$ORT_DIR/wheel" "onnxruntime==$ORT_VERSION"
  "$PY" - "$ORT_DIR" <<'EOF'
import glob, os, sys, zipfile
d = sys.argv[1]
(whl,) = glob.glob(os.path.join(d, "wheel", "onnxruntime-*.whl"))
with zipfile.ZipFile(whl) as z:
    (name,) = [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so.1")]
    with open(os.path.join(d, "lib", os.path.basename(name)), "wb") as f:
        f.write(z.read(name))
EOF
fi
ORT_LIB=$(ls "$ORT_DIR"/lib/libonnxruntime.so.1* | head -n1)

# --- cross build + SDK install -------------------------------------------------------------------
echo "cross-compiling kernels, libastroedge_ort, libastroedge, the C sample and the kernel tests (aarch64)"
"$CMAKE" -S "$ROOT" -B "$OUT/build" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
  -DORT_LIBRARY="$ORT_LIB" -DASTROEDGE_WITH_CUDA=OFF -DASTROEDGE_KERNEL_TESTS=ON -DPython3_EXECUTABLE="$PY" >/dev/null
"$CMAKE" --build "$OUT/build" -j2 >/dev/null
rm -rf "$OUT/sdk"
"$CMAKE" --install "$OUT/build" --prefix "$OUT/sdk" >/dev/null
file -L "$OUT/sdk/lib/libastroedge.so.1" | grep -q "ARM aarch64" || { echo "error: $OUT/sdk/lib/libastroedge.so.1 is not an aarch64 library" >&2; exit 1; }

# --- 1. kernel tests under qemu -------------------------------------------------------------------
shopt -s nullglob
tests=("$OUT"/build/kernel_tests/*_cpu_test)
[[ ${#tests[@]} -gt 0 ]] || { echo "error: no kernel tests were built" >&2; exit 1; }
for t in "${tests[@]}"; do
  echo "qemu-aarch64: $(basename "$t")"
  "$QEMU" "$t" | tail -n 3 | sed 's/^/  /'
done

# --- 2. the C sample: aarch64 under qemu vs the x86 build, same package, greedy -------------------
PKG=$OUT/shakespeare.aepkg
if [[ ! -f $PKG/manifest.json ]]; then
  "$ROOT/.venv/bin/astroedge" export samples/shakespeare/model.pt -o "$PKG" --force >/dev/null
fi
X86_APP=$ROOT/build/runtime/ae_generate
X86_LIB=$ROOT/build/plugins/libastroedge_ort.so
[[ -x $X86_APP && -f $X86_LIB ]] || { echo "error: build the x86 reference first (make setup)" >&2; exit 1; }
x86=$("$X86_APP" "$PKG" "$PROMPT" "$TOKENS" --ids --temperature 0 --library "$X86_LIB" 2>/dev/null)
arm=$("$QEMU" "$OUT/sdk/bin/ae_generate" "$PKG" "$PROMPT" "$TOKENS" --ids --temperature 0 --library "$OUT/sdk/lib/libastroedge_ort.so" 2>"$OUT/sample.err")
arm_fallback=$("$QEMU" "$OUT/sdk/bin/ae_generate" "$PKG" "$PROMPT" "$TOKENS" --ids --temperature 0 2>/dev/null)
grep -q "AMSU library" "$OUT/sample.err" || { echo "error: the aarch64 sample did not run the native library: $(cat "$OUT/sample.err")" >&2; exit 1; }
echo "x86     greedy ids: $x86"
echo "aarch64 greedy ids: $arm"
if [[ "$x86" != "$arm" || "$arm" != "$arm_fallback" ]]; then
  echo "error: aarch64 tokens differ from x86 (or from the aarch64 fallback: $arm_fallback)" >&2
  exit 1
fi
echo "aarch64-check passed: kernel tests, and $TOKENS greedy tokens identical on x86 and aarch64 (native library and fallback), onnxruntime $ORT_VERSION"
