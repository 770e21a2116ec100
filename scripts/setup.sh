#!/usr/bin/env bash
# Hope Lab set-up: idempotent. Installs Debian packages, the pinned LibTorch (PyPI torch wheel)
# into a venv cached OUTSIDE the checkout, then configures and builds.
#   scripts/setup.sh            # packages + torch + configure + build
#   SKIP_APT=1 scripts/setup.sh # skip apt (already installed)
# Environment:
#   HOPELAB_TORCH_VENV   venv location (default: ${XDG_CACHE_HOME:-$HOME/.cache}/hopelab/torch-<ver>)
#   HOPELAB_TORCH_PREFIX use an existing LibTorch (>= 2.7, C++11 ABI) instead of the venv: its cmake prefix
#   BUILD_DIR            build folder (default: build)
#   SKIP_BUILD=1         configure only
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_VERSION="${HOPELAB_TORCH_VERSION:-2.14.1}"
BUILD_DIR="${BUILD_DIR:-build}"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

APT_PKGS=(build-essential cmake ninja-build ccache pkg-config python3-venv python3-pip
  qt6-base-dev qt6-base-dev-tools qt6-svg-dev libqt6svg6 libgl-dev
  libqcustomplot-dev libqcustomplot2.1-qt6
  libsqlite3-dev sqlite3 nlohmann-json3-dev libcli11-dev libsentencepiece-dev sentencepiece
  libbenchmark-dev libcurl4-openssl-dev xvfb xauth xdotool fonts-dejavu-core x11-apps imagemagick clang-format
  clang libclang-rt-dev  # clang + libFuzzer's runtime: scripts/fuzz.sh and the CTest label fuzz
  desktop-file-utils appstream  # these two: test_package validates the .desktop and AppStream files
  slurmctld slurmd slurm-client munge)  # test_slurm runs sweep --slurm on a private single-node Slurm

if [[ "${SKIP_APT:-0}" != 1 ]]; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    log "installing Debian packages: ${missing[*]}"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    log "Debian packages present"
  fi
fi

if [[ -n "${HOPELAB_TORCH_PREFIX:-}" ]]; then
  TORCH_PREFIX="$HOPELAB_TORCH_PREFIX"
else
  VENV="${HOPELAB_TORCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/hopelab/torch-$TORCH_VERSION}"
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0]!='$TORCH_VERSION')" 2>/dev/null; then
    log "installing torch==$TORCH_VERSION into $VENV (once; reused by every clone)"
    # pick a python with venv support: system python3 first
    PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
    $PY -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
  else
    log "torch $TORCH_VERSION venv present at $VENV"
  fi
  TORCH_PREFIX="$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
fi
log "LibTorch cmake prefix: $TORCH_PREFIX"

export PATH="/usr/local/cuda/bin:$PATH"
if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
  log "configuring $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" ${HOPELAB_CMAKE_ARGS:-}
fi
[[ "${SKIP_BUILD:-0}" == 1 ]] && { log "configured (SKIP_BUILD=1: not building)"; exit 0; }
log "building"
cmake --build "$BUILD_DIR" -j "$(nproc)"
log "done"
