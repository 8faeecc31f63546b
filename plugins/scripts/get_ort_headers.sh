#!/usr/bin/env bash
# Fetch the ONNX Runtime C/C++ headers that the AMSU custom-op library compiles against.
#
# No pip wheel or npm package ships them; Debian sid's libonnxruntime-dev 1.23.2 does (MIT). We
# download that one .deb with apt using a PRIVATE sources list, state and cache under .deps/apt (the
# system's apt configuration is never touched, nothing is installed: its dependency chain is sid's)
# and unpack it with dpkg-deb -x into .deps/onnxruntime. Idempotent, non-interactive (CI has no stdin).
#
# Usage: plugins/scripts/get_ort_headers.sh [DEPS_DIR]      (default: <repo>/.deps)
# Prints the include directory on the last line of stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=$(mkdir -p "${1:-$ROOT/.deps}" && cd "${1:-$ROOT/.deps}" && pwd)
DEST="$DEPS/onnxruntime"
INCLUDE="$DEST/usr/include/onnxruntime"
PACKAGE=libonnxruntime-dev
VERSION_GLOB='1.23.2*'

if [[ -f "$INCLUDE/onnxruntime_lite_custom_op.h" ]]; then
  echo "$INCLUDE"
  exit 0
fi

for tool in apt-get dpkg-deb; do
  command -v "$tool" >/dev/null || { echo "error: $tool not found: the ORT headers come from a Debian package; install them by hand into $INCLUDE" >&2; exit 1; }
done

# Same mirror host the system uses (deb822 'URIs:' or one-line 'deb URL suite'), never its security mirror.
MIRROR=$(grep -rhoE '(URIs:[[:space:]]*|^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
  /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
  | grep -oE 'https?://[^[:space:]]+' | grep -E '/debian/?$' | head -n1 || true)
MIRROR=${MIRROR:-http://deb.debian.org/debian}

APT="$DEPS/apt"
mkdir -p "$APT/state/lists/partial" "$APT/cache/archives/partial" "$APT/etc/sources.list.d" \
  "$APT/etc/preferences.d" "$APT/etc/apt.conf.d" "$APT/debs"
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
echo "deb [signed-by=$KEYRING] ${MIRROR%/} sid main" > "$APT/etc/sources.list"
: > "$APT/state/status"

apt_opts=(
  -o "Dir::Etc=$APT/etc" -o "Dir::Etc::SourceList=$APT/etc/sources.list" -o "Dir::Etc::SourceParts=$APT/etc/sources.list.d"
  -o "Dir::Etc::Parts=$APT/etc/apt.conf.d" -o "Dir::Etc::PreferencesParts=$APT/etc/preferences.d"
  -o "Dir::State=$APT/state" -o "Dir::State::status=$APT/state/status" -o "Dir::Cache=$APT/cache"
  -o "Debug::NoLocking=1" -o "APT::Sandbox::User=$(id -un)" -o "Acquire::Languages=none"
  -o "APT::Get::List-Cleanup=0" -q -y
)

echo "fetching $PACKAGE $VERSION_GLOB from ${MIRROR%/} sid (private apt state in $APT)" >&2
if ! apt-get "${apt_opts[@]}" update >&2; then
  echo "error: cannot reach ${MIRROR%/} sid (see above); the ORT headers are needed for the onnxruntime library" >&2
  exit 1
fi
(cd "$APT/debs" && rm -f ./*.deb && apt-get "${apt_opts[@]}" download "$PACKAGE=$VERSION_GLOB" >&2) || {
  echo "error: $PACKAGE $VERSION_GLOB is not in ${MIRROR%/} sid any more; pick the version it has and update VERSION_GLOB" >&2
  exit 1
}
tmp=$(mktemp -d "$DEPS/.onnxruntime.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"  # mktemp makes it private; the headers are for every user of the checkout
dpkg-deb -x "$APT"/debs/${PACKAGE}_*.deb "$tmp"
[[ -f "$tmp/usr/include/onnxruntime/onnxruntime_lite_custom_op.h" ]] || { echo "error: $PACKAGE has no onnxruntime_lite_custom_op.h" >&2; exit 1; }
rm -rf "$DEST"
mv "$tmp" "$DEST"
trap - EXIT
rm -rf "$APT/state/lists" "$APT/cache"  # 20+ MB of package indexes; only the headers are kept
echo "$INCLUDE"
