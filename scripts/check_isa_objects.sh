#!/bin/sh
# Usage: check_isa_objects.sh OBJECT...
# Fails when a per-ISA object (a name containing __avx, __sse, __fma or __amx: one translation unit per ISA,
# compiled with its own -m flags) defines a weak or unique symbol. Such a symbol is an inline function or
# template instantiation (std::vector, an exception's destructor, ...) that other objects define too; the
# linker keeps one copy for the whole program, and if it keeps this one, code compiled for AVX-512 runs on every
# call, on any CPU. Allowed: DW.ref.__gxx_personality_v0 (a data word) and __clang_call_terminate (two calls,
# no vector code).
status=0
checked=0
for obj in "$@"; do
  case "$(basename "$obj")" in
    *__avx* | *__sse* | *__fma* | *__amx*) ;;
    *) continue ;;
  esac
  checked=$((checked + 1))
  bad=$(nm -C --defined-only "$obj" | awk '$2 == "W" || $2 == "V" || $2 == "u" || $2 == "v" {
          $1 = ""; $2 = ""; sub(/^  /, ""); print }' |
        grep -v -x -e 'DW.ref.__gxx_personality_v0' -e '__clang_call_terminate')
  if [ -n "$bad" ]; then
    echo "$obj defines shared (weak) symbols compiled with its ISA flags:"
    echo "$bad" | sed 's/^/  /'
    status=1
  fi
done
if [ "$checked" -eq 0 ]; then
  echo "no per-ISA object among the $# arguments"
  exit 2
fi
echo "$checked per-ISA objects checked"
exit $status
