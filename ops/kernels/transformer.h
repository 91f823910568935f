// Raw-pointer row-wise f32 kernels of the transformer block (no Tensor): layer norm with a fused residual
// add, softmax with an additive key mask, gelu (erf form) with a fused bias, and a bias / rescale /
// format-conversion pass. Every kernel reads f32 rows and writes its result in one of four activation
// formats (ActOut), so quantize / round-to-half happens in the pass that produces the value anyway.
//
// Shared conventions (the reference twins perform exactly these f32 ops in this order):
//   rows r in [0, rows), columns c in [0, cols); every matrix is row-major with a leading dimension in
//   ELEMENTS of its own type.
//   "int input": when row_corr is given, x holds exact integers (int32 GEMM accumulators that a GEMM wrote
//   as f32; |x| < 2^24) and the value is v = float(int32(x) + row_corr[r]) -- the add is done in int32,
//   exact; otherwise v = x.
//   ActOut store of a final f32 value y:
//     f32  : y
//     f16  : round to nearest even binary16 (vcvtps2ph imm 0 / core/dtype.h f32_to_f16)
//     bf16 : round to nearest even bfloat16 (core/dtype.h f32_to_bf16)
//     u8   : q = clamp(nearbyint(y / scale) + zp, 0, 255): a true division and round half to even, the
//            exact expression of quant/observers.h fake_quant_act, so u8 outputs equal the fake-quant
//            simulation's integers for the same y; a NaN y stores 0 (nhwc.h quantize_value; the SIMD
//            twins' max(NaN, 0) gives the same), +-inf clamp to 255 / 0.
//
// Ops and their precision against the reference (which uses std::exp / std::erf and the same order):
//   layer_norm : v = x (+ bias[c]) (+ res[r,c])   (f32 adds, in this order)
//                mean = float(sum_double(v) / cols); var = sum_double(double(v - mean)^2) / cols;
//                inv = float(1 / sqrt(var + eps)) (double); y = ((v - mean) * inv) * gamma[c] + beta[c]
//                (f32 multiplies and add, no FMA): the op sequence of ops/norm.cpp's layer_norm, so only
//                the order of the double sums differs. Optional second output out2 (any format).
//   softmax    : v = int-input(x) * scale (+ mask[c]); e = exp(v - max); y = e * (1 / sum(e)).
//   rows_map   : v = int-input(x) * scale (+ bias[c]); gelu ? (0.5 * v) * (1 + erf(v * 0.70710678f)) : v
//                (ops/activation.cpp's gelu expression).
//                (scale is skipped when it is 1: multiplying by 1 is exact either way.)
#pragma once
#include <cstdint>

#include "ops/kernels/act_format.h"
#include "ops/kernels/registry.h"

namespace mpq::kernels {

struct LayerNormArgs {
  int64_t rows = 0, cols = 0;
  const float* x = nullptr;  // [rows, ldx]
  int64_t ldx = 0;
  const float* bias = nullptr;  // [cols] or null (the bias of an fp32 GEMM whose raw output x is)
  const float* res = nullptr;   // [rows, ldr] f32 residual or null
  int64_t ldr = 0;
  const float* gamma = nullptr;  // [cols]
  const float* beta = nullptr;   // [cols]
  float eps = 1e-12f;
  ActOut out;   // f32 normally (may alias x only if x is not read again: rows are read before written)
  ActOut out2;  // optional second copy (out2.p == null: none)
};

struct SoftmaxArgs {
  int64_t rows = 0, cols = 0;
  const float* x = nullptr;  // [rows, ldx]
  int64_t ldx = 0;
  const int32_t* row_corr = nullptr;  // [rows] or null (int input, see above)
  float scale = 1.0f;
  const float* mask = nullptr;  // [cols] additive key mask or null
  ActOut out;
};

struct RowMapArgs {
  int64_t rows = 0, cols = 0;
  const float* x = nullptr;  // [rows, ldx]
  int64_t ldx = 0;
  const int32_t* row_corr = nullptr;  // [rows] or null (int input)
  float scale = 1.0f;
  const float* bias = nullptr;  // [cols] or null
  bool gelu = false;
  ActOut out;
};

// Entry points: validate, then split the rows over the OpenMP threads (when the work is large enough and
// not already inside a parallel region) and run the first usable implementation of the op's list.
void layer_norm_rows(const LayerNormArgs& a);
void softmax_rows(const SoftmaxArgs& a);
void rows_map(const RowMapArgs& a);

// Implementations process rows [r0, r1) on the calling thread.
using LayerNormFn = void (*)(const LayerNormArgs&, int64_t r0, int64_t r1);
using SoftmaxFn = void (*)(const SoftmaxArgs&, int64_t r0, int64_t r1);
using RowMapFn = void (*)(const RowMapArgs&, int64_t r0, int64_t r1);

void layer_norm_rows_ref(const LayerNormArgs& a, int64_t r0, int64_t r1);
void softmax_rows_ref(const SoftmaxArgs& a, int64_t r0, int64_t r1);
void rows_map_ref(const RowMapArgs& a, int64_t r0, int64_t r1);
void layer_norm_rows__avx512(const LayerNormArgs& a, int64_t r0, int64_t r1);
void softmax_rows__avx512(const SoftmaxArgs& a, int64_t r0, int64_t r1);
void rows_map__avx512(const RowMapArgs& a, int64_t r0, int64_t r1);
void layer_norm_rows__avx2(const LayerNormArgs& a, int64_t r0, int64_t r1);
void softmax_rows__avx2(const SoftmaxArgs& a, int64_t r0, int64_t r1);
void rows_map__avx2(const RowMapArgs& a, int64_t r0, int64_t r1);

using LayerNormList = KernelList<LayerNormArgs, LayerNormFn>;
using SoftmaxList = KernelList<SoftmaxArgs, SoftmaxFn>;
using RowMapList = KernelList<RowMapArgs, RowMapFn>;
const LayerNormList& layer_norm_rows_list();
const SoftmaxList& softmax_rows_list();
const RowMapList& rows_map_list();

// Argument validation (throws mpq::Error naming the field).
void check_layer_norm_args(const LayerNormArgs& a);
void check_softmax_args(const SoftmaxArgs& a);
void check_rows_map_args(const RowMapArgs& a);

// The scalar store of one value (the reference's exact rounding), shared by the implementations' tails.
void act_store_scalar(const ActOut& o, int64_t r, int64_t c, float y);

}  // namespace mpq::kernels
