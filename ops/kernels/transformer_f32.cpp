// Transformer row-wise kernels: argument checks, the shared scalar store, the dispatch lists and the
// threaded entry points (ops/kernels/transformer.h).
//
// Order: the AVX-512 version, the AVX2 version (AVX2-only machines and MPQ_ISA=avx2), then the reference.
#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/kernels/nhwc.h"
#include "ops/kernels/transformer.h"

namespace mpq::kernels {

void act_store_scalar(const ActOut& o, int64_t r, int64_t c, float y) {
  switch (o.dt) {
    case DType::f32:
      static_cast<float*>(o.p)[r * o.ld + c] = y;
      break;
    case DType::f16:
      static_cast<uint16_t*>(o.p)[r * o.ld + c] = f32_to_f16(y);
      break;
    case DType::bf16:
      static_cast<uint16_t*>(o.p)[r * o.ld + c] = f32_to_bf16(y);
      break;
    case DType::u8: {
      static_cast<uint8_t*>(o.p)[r * o.ld + c] = quantize_value(y, o.scale, o.zp);  // NaN -> 0
      break;
    }
    default:  // not an activation format: refused by the argument checks before any store
      break;
  }
}

namespace {
void check_out(const char* op, const char* field, const ActOut& o, int64_t rows, int64_t cols) {
  check(o.p != nullptr, "{}: {} is null (rows={} cols={})", op, field, rows, cols);
  check(o.ld >= cols, "{}: {}.ld={} < cols={}", op, field, o.ld, cols);
  check(is_act_dtype(o.dt), "{}: {} dtype {} is not an activation format (f32, f16, bf16, u8)", op, field,
        dtype_name(o.dt));
  if (o.dt == DType::u8)
    check(o.scale > 0.0f && o.zp >= 0 && o.zp <= 255, "{}: {} u8 scale {} / zero point {} invalid", op, field, o.scale,
          o.zp);
}
void check_in(const char* op, int64_t rows, int64_t cols, const float* x, int64_t ldx) {
  check(rows >= 0 && cols > 0, "{}: need rows >= 0 and cols > 0, got rows={} cols={}", op, rows, cols);
  check(x != nullptr || rows == 0, "{}: x is null", op);
  check(ldx >= cols, "{}: ldx={} < cols={}", op, ldx, cols);
}

// Splits [0, rows) over the threads when rows * cols is large enough (and we are not nested).
template <class Args, class List>
void run_rows(const List& list, const Args& a) {
  if (a.rows == 0) return;
  const auto fn = list.select(a).fn;
  int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
  if (a.rows * a.cols < (1 << 15)) nt = 1;
  nt = int(std::min<int64_t>(nt, a.rows));
  if (nt <= 1) {
    fn(a, 0, a.rows);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
    fn(a, a.rows * t / n, a.rows * (t + 1) / n);
  }
}

constexpr std::array<LayerNormList::Impl, 3> kLnImpls{{
    {"layer_norm_rows__avx512", Isa::avx512, nullptr, &layer_norm_rows__avx512},
    {"layer_norm_rows__avx2", Isa::avx2, nullptr, &layer_norm_rows__avx2},
    {"layer_norm_rows_ref", Isa::ref, nullptr, &layer_norm_rows_ref},
}};
constexpr std::array<SoftmaxList::Impl, 3> kSoftmaxImpls{{
    {"softmax_rows__avx512", Isa::avx512, nullptr, &softmax_rows__avx512},
    {"softmax_rows__avx2", Isa::avx2, nullptr, &softmax_rows__avx2},
    {"softmax_rows_ref", Isa::ref, nullptr, &softmax_rows_ref},
}};
constexpr std::array<RowMapList::Impl, 3> kRowMapImpls{{
    {"rows_map__avx512", Isa::avx512, nullptr, &rows_map__avx512},
    {"rows_map__avx2", Isa::avx2, nullptr, &rows_map__avx2},
    {"rows_map_ref", Isa::ref, nullptr, &rows_map_ref},
}};
}  // namespace

void check_layer_norm_args(const LayerNormArgs& a) {
  check_in("layer_norm_rows", a.rows, a.cols, a.x, a.ldx);
  if (a.rows == 0) return;
  check(a.gamma != nullptr && a.beta != nullptr, "layer_norm_rows: gamma or beta is null (cols={})", a.cols);
  check(a.res == nullptr || a.ldr >= a.cols, "layer_norm_rows: ldr={} < cols={}", a.ldr, a.cols);
  check(a.eps > 0.0f, "layer_norm_rows: eps must be positive, got {}", a.eps);
  check_out("layer_norm_rows", "out", a.out, a.rows, a.cols);
  if (a.out2.p) check_out("layer_norm_rows", "out2", a.out2, a.rows, a.cols);
}

void check_softmax_args(const SoftmaxArgs& a) {
  check_in("softmax_rows", a.rows, a.cols, a.x, a.ldx);
  if (a.rows == 0) return;
  check_out("softmax_rows", "out", a.out, a.rows, a.cols);
}

void check_rows_map_args(const RowMapArgs& a) {
  check_in("rows_map", a.rows, a.cols, a.x, a.ldx);
  if (a.rows == 0) return;
  check_out("rows_map", "out", a.out, a.rows, a.cols);
}

const LayerNormList& layer_norm_rows_list() {
  static const LayerNormList list("layer_norm_rows", kLnImpls);
  return list;
}
const SoftmaxList& softmax_rows_list() {
  static const SoftmaxList list("softmax_rows", kSoftmaxImpls);
  return list;
}
const RowMapList& rows_map_list() {
  static const RowMapList list("rows_map", kRowMapImpls);
  return list;
}

void layer_norm_rows(const LayerNormArgs& a) {
  check_layer_norm_args(a);
  run_rows(layer_norm_rows_list(), a);
}
void softmax_rows(const SoftmaxArgs& a) {
  check_softmax_args(a);
  run_rows(softmax_rows_list(), a);
}
void rows_map(const RowMapArgs& a) {
  check_rows_map_args(a);
  run_rows(rows_map_list(), a);
}

}  // namespace mpq::kernels
