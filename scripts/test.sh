#!/usr/bin/env bash
# The whole test suite, as CI runs it: set-up + Release build, a clang-format check, the proof that
# setup.sh's package list is enough on a clean Debian 12 (scripts/check_packages.sh), the doctest suite
# through ctest, the same suite under AddressSanitizer + UndefinedBehaviorSanitizer, and a short libFuzzer
# run of every parser (MPQ_FUZZ_SECONDS each, default 20).
# Quick local loop instead: ctest --test-dir build -j2
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

scripts/setup.sh
echo "== Format (.clang-format)" >&2
git ls-files '*.cpp' '*.h' | xargs clang-format --dry-run --Werror
echo "== Package list (scripts/check_packages.sh: configure in a minbase Debian 12 chroot)" >&2
# Exit 77: it could not run here (not root, no mirror); it has already said so loudly. Under CI=true it
# exits 1 instead, so CI never passes without the check.
rc=0
scripts/check_packages.sh || rc=$?
if ((rc == 77)); then
  echo "== WARNING: the package-list check did not run (see above); continuing because CI is not set" >&2
elif ((rc != 0)); then
  exit "$rc"
fi
echo "== Release suite" >&2
# Tests run two processes of two OpenMP threads each on 2 cores: passive waiting keeps the
# oversubscribed threads from spinning against each other (several times faster here).
export OMP_WAIT_POLICY=passive
ctest --test-dir build -j"$jobs" --output-on-failure

echo "== ASan + UBSan suite" >&2
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPQ_SANITIZE=ON -DMPQ_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs" --target mpq_tests mpq
# oneDNN's JIT and libgomp's thread pool keep allocations for the process lifetime: leak checking is
# off, every other ASan/UBSan check is on and fatal.
# -LE install: the install + embed test (tests/api) builds applications against the library, which under
# the sanitizers would need their runtime too; it runs in the Release stage above.
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  MPQ_SANITIZED=1 ctest --test-dir build-asan -j"$jobs" --output-on-failure -LE install

echo "== libFuzzer smoke run" >&2
CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPQ_FUZZ=ON \
  -DMPQ_SANITIZE=ON -DMPQ_BENCH=OFF >/dev/null
fuzzers=()
for f in fuzz/fuzz_*.cpp; do fuzzers+=("$(basename "$f" .cpp)"); done
cmake --build build-fuzz -j"$jobs" --target "${fuzzers[@]}"
# the per-ISA objects of this clang build share no code either (the ctest isa.objects_share_no_code checks
# the GCC builds)
sh scripts/check_isa_objects.sh build-fuzz/CMakeFiles/mpq_kernels.dir/ops/kernels/x86/*.o
for f in "${fuzzers[@]}"; do
  corpus="fuzz/corpus/$f"
  work=$(mktemp -d)
  [[ -d "$corpus" ]] && cp -r "$corpus"/. "$work"/
  ASAN_OPTIONS=detect_leaks=0 "build-fuzz/$f" -max_total_time="${MPQ_FUZZ_SECONDS:-20}" -rss_limit_mb=4096 \
    "$work" 2>"$work.log" || { tail -40 "$work.log"; echo "fuzzer $f found a crash" >&2; exit 1; }
  echo "fuzz $f: $(grep -E '^#[0-9]+' "$work.log" | tail -1 | tr -s ' '), no crash" >&2
  rm -rf "$work" "$work.log"
done
echo "all test stages passed" >&2
