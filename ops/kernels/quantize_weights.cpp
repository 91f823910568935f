#include "ops/kernels/quantize_weights.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace mpq::kernels {

void check_quantize_rows_args(const QuantizeRowsArgs& a) {
  check(a.rows >= 0 && a.K >= 0, "quantize rows: {} x {} weights", a.rows, a.K);
  check(a.bits >= 2 && a.bits <= 8, "quantize rows: {} bits not supported (2..8)", a.bits);
  const int64_t G = a.group > 0 ? a.group : a.K;
  check(a.group >= 0 && (a.K == 0 || (G > 0 && a.K % G == 0)), "quantize rows: group {} does not divide row length {}",
        a.group, a.K);
  check(a.rows * a.K == 0 || (a.w && a.q && a.scales), "quantize rows: null buffer");
}

const QuantizeRowsList& quantize_rows_list() {
  static constexpr std::array<QuantizeRowsList::Impl, 2> impls{{
      {"quantize_rows_f32_s8__avx512", Isa::avx512, nullptr, quantize_rows__avx512},
      {"quantize_rows_f32_s8_ref", Isa::ref, nullptr, quantize_rows_ref},
  }};
  static const QuantizeRowsList list("quantize_rows", impls);
  return list;
}

void quantize_rows(const QuantizeRowsArgs& a) {
  check_quantize_rows_args(a);
  // a NaN or an infinity has no integer code: refuse it instead of producing an undefined one
  for (int64_t i = 0; i < a.rows * a.K; ++i)
    check(std::isfinite(a.w[i]), "quantize rows: weight {} of row {} is {} (not finite)", i % a.K, i / a.K, a.w[i]);
  quantize_rows_list().select(a).fn(a);
}

bool pack_s4_split(const int8_t* x, int64_t n, uint8_t* packed) {
  check(n >= 0 && (n == 0 || (x && packed)), "pack s4 split: null buffer or negative count {}", n);
  const int64_t half = kSplitNibbleChunk / 2;
  for (int64_t c = 0; c * kSplitNibbleChunk < n; ++c)
    for (int64_t j = 0; j < half; ++j) {
      const int64_t lo = c * kSplitNibbleChunk + j, hi = lo + half;
      const int vlo = lo < n ? x[lo] : 0, vhi = hi < n ? x[hi] : 0;
      if (vlo < -8 || vlo > 7 || vhi < -8 || vhi > 7) return false;
      packed[c * half + j] = uint8_t((vlo & 0xf) | ((vhi & 0xf) << 4));
    }
  return true;
}

void check_widen_s4_args(const WidenS4Args& a) {
  check(a.n >= 0 && (a.n == 0 || (a.packed && a.y)), "widen s4 -> s8: null buffer or negative count {}", a.n);
}

const WidenS4List& widen_s4_s8_list() {
  static constexpr std::array<WidenS4List::Impl, 2> impls{{
      {"widen_s4_s8_c64__avx512", Isa::avx512, nullptr, widen_s4_s8_c64__avx512},
      {"widen_s4_s8_ref", Isa::ref, nullptr, widen_s4_s8_ref},
  }};
  static const WidenS4List list("widen_s4_s8", impls);
  return list;
}

void widen_s4_s8(const WidenS4Args& a) {
  check_widen_s4_args(a);
  widen_s4_s8_list().select(a).fn(a);
}

void widen_s4_s8_team(const WidenS4Args& a) {
  check_widen_s4_args(a);
  const auto fn = widen_s4_s8_list().select(a).fn;
  const int64_t blocks = (a.n + kWidenTeamBlock - 1) / kWidenTeamBlock;
#pragma omp parallel for if (blocks > 1) schedule(static)
  for (int64_t b = 0; b < blocks; ++b)
    fn({a.packed + b * kWidenTeamBlock / 2, std::min(kWidenTeamBlock, a.n - b * kWidenTeamBlock),
        a.y + b * kWidenTeamBlock});
}

}  // namespace mpq::kernels
