// AVX-512 transformer row kernels (ops/kernels/transformer.h): the xsimd templates of transformer_f32_xsimd.h
// instantiated for xsimd::avx512bw (16 lanes), with the primitives of xsimd_prims__avx512.h.
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers as
// "maybe uninitialized" (as ops/kernels/x86/gemm_lowp_driver.h notes): false positives, silenced for this TU.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "ops/kernels/x86/transformer_f32_xsimd.h"
#include "ops/kernels/x86/xsimd_prims__avx512.h"

namespace mpq::kernels {

void layer_norm_rows__avx512(const LayerNormArgs& a, int64_t r0, int64_t r1) {
  xrows::layer_norm_rows<Avx512>(a, r0, r1);
}
void softmax_rows__avx512(const SoftmaxArgs& a, int64_t r0, int64_t r1) { xrows::softmax_rows<Avx512>(a, r0, r1); }
void rows_map__avx512(const RowMapArgs& a, int64_t r0, int64_t r1) { xrows::rows_map<Avx512>(a, r0, r1); }

}  // namespace mpq::kernels
