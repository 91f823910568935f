#!/usr/bin/env bash
# Installs the built library into a temporary prefix and uses it as an application would (see api_tests.cmake).
# Usage: install_test.sh BUILD_DIR SOURCE_DIR MPQ_BINARY GENERATOR MOBILENET_TFLITE IMAGENET_DIR
set -euo pipefail
build=$1 src=$2 mpq=$3 gen=$4 tflite=$5 images=$6
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$work/prefix" >/dev/null
prefix=$work/prefix
lib=$(ls "$prefix"/lib*/libmpq.so)
pkgdir=$(dirname "$lib")

# consumers get nothing but the include folder: no compile options, definitions or link options
if grep -nE 'INTERFACE_COMPILE_(OPTIONS|DEFINITIONS)|INTERFACE_LINK_OPTIONS|-m(avx|fma|f16c)|-fopenmp|-W' \
  "$pkgdir"/cmake/mpq/mpqTargets*.cmake; then
  fail "the exported mpq::mpq target hands consumers compile / link flags (above)"
fi
grep -qx 'Cflags: -I${includedir}' "$pkgdir/pkgconfig/mpq.pc" || fail "mpq.pc Cflags: $(grep Cflags "$pkgdir/pkgconfig/mpq.pc")"
cflags=$(PKG_CONFIG_PATH=$pkgdir/pkgconfig pkg-config --cflags mpq)
[[ "$cflags" == -I* && "$(realpath -m "$(xargs <<<"${cflags#-I}")")" == "$(realpath "$prefix/include")" ]] ||
  fail "pkg-config --cflags mpq: '$cflags' (expected -I$prefix/include)"
# only the API is exported (api/exports.map): C functions mpq_*, C++ mpq::api
leaked=$(nm -D --defined-only "$lib" | awk '{print $3}' | c++filt | grep -vE '^(mpq_|mpq::api::|(typeinfo|typeinfo name|vtable) for mpq::api::|MPQ_)' || true)
[[ -z "$leaked" ]] || fail "libmpq.so exports symbols outside the API: $(head -5 <<<"$leaked")"
echo "package ok: $(nm -D --defined-only "$lib" | wc -l) exported symbols, $(du -hL "$lib" | cut -f1) library"

# a model file and an input
"$mpq" export --model mobilenetv2 --weights "$tflite" --precision int8 --rounding nearest --calib 2 \
  --calib-data "$images" --out "$work/m.mpq" >/dev/null
jpegs=("$images"/images/*.JPEG)
"$mpq" preprocess --model-file "$work/m.mpq" --images "${jpegs[0]},${jpegs[1]}" --out "$work/x.npy" 2>/dev/null
"$mpq" infer --model-file "$work/m.mpq" --input "$work/x.npy" --output "$work/ref.npy" 2>/dev/null

for ex in embed embed_c; do
  cmake -S "$src/examples/$ex" -B "$work/$ex" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    >"$work/$ex.log" 2>&1 || { cat "$work/$ex.log"; fail "configuring examples/$ex"; }
  cmake --build "$work/$ex" >>"$work/$ex.log" 2>&1 || { cat "$work/$ex.log"; fail "building examples/$ex"; }
  "$work/$ex/$ex" "$work/m.mpq" "$work/x.npy" "$work/$ex.npy"
  cmp "$work/ref.npy" "$work/$ex.npy" || fail "examples/$ex output differs from mpq infer --model-file"
done
echo "ok: examples/embed and examples/embed_c equal mpq infer --model-file bit for bit"
