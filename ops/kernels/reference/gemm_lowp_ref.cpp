// Reference low-precision GEMMs: plain loops over the packed weights (read through at()), the oracles
// for every other implementation. The integer twins perform exactly the f32 op sequence documented in
// ops/kernels/lowp.h (int32 accumulation is exact), so the SIMD kernels must match them bit for bit.
// The float twins accumulate in double (tests compare within format-derived tolerances).
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/dtype.h"
#include "ops/kernels/lowp.h"
#include "ops/kernels/nhwc.h"

namespace mpq::kernels {
namespace {

// Activation value as the kernels see it: u8, or s8 shifted by +128 (== byte ^ 0x80).
inline int32_t act(const uint8_t* A, int64_t i, bool a_signed) {
  return a_signed ? int32_t(int8_t(A[i])) + 128 : int32_t(A[i]);
}

// per_channel: y = fma(float(acc - zc), sa * s[n], bias); else (groups) f = float(acc_0 - zc_0) * s_0,
// f = fma(float(acc_g - zc_g), s_g, f), y = fma(f, sa, bias).
template <class PW>
void q_ref(const QGemmArgs<PW>& g, int64_t ngroups, int64_t gsize, bool per_channel) {
  const PW& w = *g.w;
  const int32_t z = g.a_signed ? g.za + 128 : g.za;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < w.N; ++n) {
      float f = 0.0f;
      for (int64_t gi = 0; gi < ngroups; ++gi) {
        int32_t acc = 0;
        const int64_t k0 = gi * gsize, k1 = std::min(w.K, k0 + gsize);
        for (int64_t k = k0; k < k1; ++k) acc += act(g.A, m * g.lda + k, g.a_signed) * int32_t(w.at(n, k));
        const int32_t zc = z * w.colsum[size_t(gi * w.Np + n)];
        const float s = w.scale[size_t(gi * w.Np + n)];
        if (per_channel)
          f = float(acc - zc);
        else
          f = gi == 0 ? float(acc - zc) * s : std::fma(float(acc - zc), s, f);
      }
      lowp_epilogue_scalar(g.ep, per_channel ? g.sa * w.scale[size_t(n)] : g.sa, f, m, n, g.C, g.ldc);
    }
}

}  // namespace

void gemm_qu8_qc8w_ref(const Q8GemmArgs& g) {
  check_q8_args(g);
  q_ref(g, 1, g.w->K, true);
}

void gemm_qu8_qc4w_ref(const Q4GemmArgs& g) {
  check_q4_args(g);
  q_ref(g, g.w->ngroups, g.w->group == 0 ? g.w->K : g.w->group, g.w->group == 0);
}

// The im2col matrix materialised by the reference im2col, then the reference GEMM.
void conv_qu8_qc4w_ref(const Q4ConvArgs& a) {
  check_q4_conv_args(a);
  const int64_t M = a.g.OH * a.g.OW, K = a.w->K;
  std::vector<uint8_t> col(size_t(M * K));  // [OH*OW, K] u8
  const uint8_t pad = uint8_t(a.za);
  Im2colArgs ia;
  ia.x = a.x, ia.elem_bytes = 1, ia.g = a.g, ia.pad_value = &pad, ia.col = col.data(), ia.ldcol = K;
  im2col_nhwc_ref(ia);
  gemm_qu8_qc4w_ref(q4_conv_gemm_args(a, col.data()));
}

void gemm_f16_ref(const F16GemmArgs& g) {
  check_f16_args(g);
  const PackedF16W& w = *g.w;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < w.N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < w.K; ++k) {
        const double a = g.a_f32 ? double(static_cast<const float*>(g.A)[m * g.lda + k])
                                 : double(f16_to_f32(static_cast<const uint16_t*>(g.A)[m * g.lda + k]));
        acc += a * double(f16_to_f32(w.at(n, k)));
      }
      lowp_epilogue_scalar(g.ep, 1.0f, float(acc), m, n, g.C, g.ldc);
    }
}

void gemm_bf16_ref(const BF16GemmArgs& g) {
  check_bf16_args(g);
  const PackedBF16W& w = *g.w;
  for (int64_t m = 0; m < g.M; ++m)
    for (int64_t n = 0; n < w.N; ++n) {
      double acc = 0.0;
      for (int64_t k = 0; k < w.K; ++k) {
        const uint16_t a = g.a_f32 ? f32_to_bf16(static_cast<const float*>(g.A)[m * g.lda + k])
                                   : static_cast<const uint16_t*>(g.A)[m * g.lda + k];
        acc += double(bf16_to_f32(a)) * double(bf16_to_f32(w.at(n, k)));
      }
      lowp_epilogue_scalar(g.ep, 1.0f, float(acc), m, n, g.C, g.ldc);
    }
}

}  // namespace mpq::kernels
