#!/usr/bin/env bash
# Proves that scripts/setup.sh's Debian package list is enough to configure the project on a clean Debian 12,
# without a fresh machine: a minbase bookworm root file system (debootstrap, cached as a tarball) gets ONLY
# the listed packages and their hard Depends (apt-get --no-install-recommends, as setup.sh installs them),
# then, chrooted into it:
#   1. cmake configure of the source tree (a copy of the working tree's tracked + unignored files), Release;
#   2. cmake configure of the libFuzzer build (clang, MPQ_FUZZ=ON, MPQ_SANITIZE=ON) as scripts/test.sh does;
#   3. a one-file libFuzzer + ASan + UBSan link with clang++ (the sanitizer runtimes come from a package
#      that nothing else pulls in: libclang-rt-14-dev).
# A failure prints the step's log and names the step. The package list is read from `scripts/setup.sh
# --print-packages` (the one source of truth).
#
# Usage: scripts/check_packages.sh [--drop PKG]...
#   --drop PKG   leave PKG out of the list (to show the check catches a missing package)
# Needs root (debootstrap, chroot, mount) and the Debian mirror. When it cannot run, it says so loudly and
# exits 77; under CI (CI=true) it exits 1 instead, so a CI run never passes without the check.
# Cache: ${MPQ_CACHE:-$HOME/.cache/mpq}/check_packages/ (the minbase tarball and apt's downloaded .debs).
set -euo pipefail
cd "$(dirname "$0")/.."
readonly SRC=$(pwd)
readonly SUITE=bookworm
readonly MIRROR=${MPQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}
readonly CACHE=${MPQ_CACHE:-$HOME/.cache/mpq}/check_packages
readonly BASE_TAR=$CACHE/$SUITE-minbase.tar.gz

cannot_run() {
  {
    echo "################################################################################"
    echo "## PACKAGE CHECK NOT RUN: $*"
    echo "## scripts/setup.sh's package list was NOT verified on this machine."
    echo "################################################################################"
  } >&2
  [[ "${CI:-}" == "true" ]] && exit 1
  exit 77
}

drop=()
while (($#)); do
  case "$1" in
    --drop)
      drop+=("$2")
      shift 2
      ;;
    *)
      echo "check_packages.sh: unknown argument '$1' (usage: scripts/check_packages.sh [--drop PKG]...)" >&2
      exit 2
      ;;
  esac
done

[[ $(id -u) -eq 0 ]] || cannot_run "needs root for debootstrap / chroot / mount"
if ! command -v debootstrap >/dev/null; then
  echo "check_packages: installing debootstrap" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap \
    >/dev/null || cannot_run "debootstrap is missing and could not be installed"
fi

packages=()
while read -r p; do
  keep=1
  for d in "${drop[@]}"; do [[ "$p" == "$d" ]] && keep=0; done
  ((keep)) && packages+=("$p")
done < <(scripts/setup.sh --print-packages)
((${#packages[@]})) || { echo "check_packages: setup.sh --print-packages printed no package" >&2; exit 1; }
((${#drop[@]})) && echo "check_packages: leaving out ${drop[*]}" >&2

mkdir -p "$CACHE/archives/partial"
if [[ ! -f "$BASE_TAR" ]]; then
  echo "check_packages: debootstrap --variant=minbase $SUITE from $MIRROR (cached afterwards in $BASE_TAR)" >&2
  boot=$(mktemp -d /tmp/mpq-debootstrap.XXXXXX)
  if ! debootstrap --variant=minbase "$SUITE" "$boot" "$MIRROR" >"$boot.log" 2>&1; then
    tail -20 "$boot.log" >&2
    rm -rf "$boot" "$boot.log"
    cannot_run "debootstrap of $SUITE from $MIRROR failed (no network to the mirror?)"
  fi
  chroot "$boot" apt-get clean
  tar -C "$boot" -czf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
  rm -rf "$boot" "$boot.log"
fi

root=$(mktemp -d /tmp/mpq-check-packages.XXXXXX)
log=$root.log
cleanup() {
  for m in "$root/var/cache/apt/archives" "$root/proc"; do mountpoint -q "$m" && umount "$m"; done
  rm -rf "$root" "$log"
}
trap cleanup EXIT
tar -C "$root" -xzf "$BASE_TAR"
mount -t proc proc "$root/proc"
mount --bind "$CACHE/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"

step() {  # step NAME CMD...: runs CMD in the chroot, output to the log; on failure shows the log and exits 1
  local name=$1
  shift
  echo "check_packages: $name" >&2
  if ! chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root DEBIAN_FRONTEND=noninteractive \
    "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    echo "check_packages: FAILED at '$name' with only scripts/setup.sh's packages${drop[*]:+ (left out: ${drop[*]})}" >&2
    exit 1
  fi
}

step "apt-get update" apt-get update -q
step "install ${#packages[@]} packages, no Recommends" apt-get install -y -q --no-install-recommends "${packages[@]}"
echo "check_packages: $(chroot "$root" dpkg-query -W -f='.\n' | wc -l) packages in the chroot" >&2

# The working tree as CI would clone it: tracked files plus untracked unignored ones (no build trees).
mkdir -p "$root/src"
git ls-files -z --cached --others --exclude-standard | (cd "$SRC" && tar --null -T - -cf - 2>/dev/null) |
  tar -C "$root/src" -xf -
step "cmake configure (Release, g++)" cmake -S /src -B /tmp/build -G Ninja -DCMAKE_BUILD_TYPE=Release
step "cmake configure (libFuzzer build, clang)" /usr/bin/env CC=clang CXX=clang++ cmake -S /src -B /tmp/build-fuzz \
  -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPQ_FUZZ=ON -DMPQ_SANITIZE=ON -DMPQ_BENCH=OFF
cat >"$root/tmp/fuzz_probe.cpp" <<'EOF'
#include <cstddef>
#include <cstdint>
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { return size > 0 && data[0] == 1; }
EOF
step "clang++ libFuzzer + ASan + UBSan link" clang++ -fsanitize=fuzzer,address,undefined -o /tmp/fuzz_probe \
  /tmp/fuzz_probe.cpp
step "libFuzzer probe runs" /tmp/fuzz_probe -runs=100
echo "check_packages: OK: configure (Release and fuzz) and a libFuzzer link succeed with only scripts/setup.sh's" \
  "${#packages[@]} packages and their hard dependencies" >&2
