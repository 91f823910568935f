// AVX2 element-wise NHWC kernels (ops/kernels/nhwc.h): the xsimd templates of nhwc_convert_xsimd.h
// instantiated with the primitives of xsimd_prims__avx2.h (8 lanes); bit-exact with the reference twins.
#include "ops/kernels/x86/nhwc_convert_xsimd.h"
#include "ops/kernels/x86/xsimd_prims__avx2.h"

namespace mpq::kernels {

void quantize_f32_u8__avx2(const CvtArgs& a) {
  check_cvt_args(a, "quantize_f32_u8");
  xrows::quantize_f32_u8<Avx2>(a);
}
void dequantize_u8_f32__avx2(const CvtArgs& a) {
  check_cvt_args(a, "dequantize_u8_f32");
  xrows::dequantize_u8_f32<Avx2>(a);
}
void requantize_u8_u8__avx2(const CvtArgs& a) {
  check_cvt_args(a, "requantize_u8_u8");
  xrows::requantize_u8_u8<Avx2>(a);
}
void convert_f32_f16__avx2(const CvtArgs& a) {
  check_cvt_args(a, "convert_f32_f16");
  xrows::convert_f32_f16<Avx2>(a);
}
void convert_f16_f32__avx2(const CvtArgs& a) {
  check_cvt_args(a, "convert_f16_f32");
  xrows::convert_f16_f32<Avx2>(a);
}
void add_clamp_nhwc__avx2(const AddArgs& a) {
  check_add_args(a);
  xrows::add_clamp_nhwc<Avx2>(a);
}

}  // namespace mpq::kernels
