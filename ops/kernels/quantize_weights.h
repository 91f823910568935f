// The one round-to-nearest weight quantizer: symmetric per row (output channel) or per group of G
// consecutive elements of a row. The fake-quant simulation (quant/quantizer.h), both native engines' packing
// and the embedding tables use it, so the simulated weights and the packed ones are the same numbers.
//
//   s = max|w| / qmax over the group (1 for an all-zero group), qmax = 2^(bits-1) - 1 (127 / 7: symmetric,
//   -2^(bits-1) unused so negation is exact);   q = clamp(nearbyint(w / s), -qmax, qmax)
// with IEEE f32 division and round half to even (the default rounding mode); the dequantized value is the
// single f32 product q * s.
#pragma once
#include <cstdint>

#include "ops/kernels/registry.h"

namespace mpq::kernels {

struct QuantizeRowsArgs {
  const float* w = nullptr;  // [rows, K] row-major
  int64_t rows = 0, K = 0;
  int64_t group = 0;        // G: 0 = one group per row (G = K); else G divides K
  int bits = 8;             // 2..8
  int8_t* q = nullptr;      // [rows, K]
  float* scales = nullptr;  // [rows][K / G]
};

void quantize_rows(const QuantizeRowsArgs& a);  // dispatch: first usable implementation, reference last
void quantize_rows_ref(const QuantizeRowsArgs& a);
void quantize_rows__avx512(const QuantizeRowsArgs& a);

using QuantizeRowsFn = void (*)(const QuantizeRowsArgs&);
using QuantizeRowsList = KernelList<QuantizeRowsArgs, QuantizeRowsFn>;
const QuantizeRowsList& quantize_rows_list();

void check_quantize_rows_args(const QuantizeRowsArgs& a);  // throws naming the bad field

}  // namespace mpq::kernels
