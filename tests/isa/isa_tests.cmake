# Per-ISA translation units (ops/kernels/x86/*__<isa>.cpp, compiled with their own -m flags) must not emit weak
# symbols: the linker would keep one copy of an inline function for the whole program, possibly the AVX-512 one
# (scripts/check_isa_objects.sh). The control compiles a probe that does emit one, named like an ISA object,
# and the check must name it, so the test cannot pass by finding no objects or by a broken nm.
set(MPQ_ISA_PROBE_DIR ${CMAKE_BINARY_DIR}/isa_probe)
file(MAKE_DIRECTORY ${MPQ_ISA_PROBE_DIR})
file(WRITE ${MPQ_ISA_PROBE_DIR}/probe.cpp
     "inline __attribute__((noinline)) int shared_inline_probe(int x) { return x * 3; }\n"
     "int probe_user(int x) { return shared_inline_probe(x); }\n")
add_test(NAME isa.objects_share_no_code
         COMMAND sh ${PROJECT_SOURCE_DIR}/scripts/check_isa_objects.sh $<TARGET_OBJECTS:mpq_kernels>)
add_test(NAME isa.check_names_a_shared_symbol
         COMMAND sh -c "${CMAKE_CXX_COMPILER} -c ${MPQ_ISA_PROBE_DIR}/probe.cpp -o ${MPQ_ISA_PROBE_DIR}/probe__avx512.o \
&& sh ${PROJECT_SOURCE_DIR}/scripts/check_isa_objects.sh ${MPQ_ISA_PROBE_DIR}/probe__avx512.o")
set_tests_properties(isa.check_names_a_shared_symbol PROPERTIES
                     PASS_REGULAR_EXPRESSION "probe__avx512[.]o defines shared.*shared_inline_probe")
