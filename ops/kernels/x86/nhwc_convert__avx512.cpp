// AVX512 element-wise NHWC kernels (ops/kernels/nhwc.h): the xsimd templates of nhwc_convert_xsimd.h
// instantiated with the primitives of xsimd_prims__avx512.h (16 lanes); bit-exact with the reference twins.
// GCC 12 reports the intentionally undefined `__Y` operand inside its own AVX-512 intrinsic headers as
// "maybe uninitialized" (as ops/kernels/x86/gemm_lowp_driver.h notes): false positives, silenced for this TU.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include "ops/kernels/x86/nhwc_convert_xsimd.h"
#include "ops/kernels/x86/xsimd_prims__avx512.h"

namespace mpq::kernels {

void quantize_f32_u8__avx512(const CvtArgs& a) {
  check_cvt_args(a, "quantize_f32_u8");
  xrows::quantize_f32_u8<Avx512>(a);
}
void dequantize_u8_f32__avx512(const CvtArgs& a) {
  check_cvt_args(a, "dequantize_u8_f32");
  xrows::dequantize_u8_f32<Avx512>(a);
}
void requantize_u8_u8__avx512(const CvtArgs& a) {
  check_cvt_args(a, "requantize_u8_u8");
  xrows::requantize_u8_u8<Avx512>(a);
}
void convert_f32_f16__avx512(const CvtArgs& a) {
  check_cvt_args(a, "convert_f32_f16");
  xrows::convert_f32_f16<Avx512>(a);
}
void convert_f16_f32__avx512(const CvtArgs& a) {
  check_cvt_args(a, "convert_f16_f32");
  xrows::convert_f16_f32<Avx512>(a);
}
void add_clamp_nhwc__avx512(const AddArgs& a) {
  check_add_args(a);
  xrows::add_clamp_nhwc<Avx512>(a);
}

}  // namespace mpq::kernels
