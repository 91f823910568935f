// AVX2 (+ FMA, F16C) transformer row kernels (ops/kernels/transformer.h) for AVX2-only machines and
// MPQ_ISA=avx2: the xsimd templates of transformer_f32_xsimd.h instantiated for xsimd::fma3<xsimd::avx2>
// (8 lanes), with the primitives of xsimd_prims__avx2.h.
// Against the reference twins: rows_map without gelu and layer_norm are bit-exact in the sweeps; softmax f32
// within 2^-19 relative up to 768 columns (the reference's in-order f32 row sum dominates).
#include "ops/kernels/x86/transformer_f32_xsimd.h"
#include "ops/kernels/x86/xsimd_prims__avx2.h"

namespace mpq::kernels {

void layer_norm_rows__avx2(const LayerNormArgs& a, int64_t r0, int64_t r1) { xrows::layer_norm_rows<Avx2>(a, r0, r1); }
void softmax_rows__avx2(const SoftmaxArgs& a, int64_t r0, int64_t r1) { xrows::softmax_rows<Avx2>(a, r0, r1); }
void rows_map__avx2(const RowMapArgs& a, int64_t r0, int64_t r1) { xrows::rows_map<Avx2>(a, r0, r1); }

}  // namespace mpq::kernels
