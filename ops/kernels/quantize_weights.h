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

// ---- int4 codes of any int8 stream, widened back per call ----
// A stream of n int8 values in [-8, 7] in whatever order its consumer wants (e.g. a oneDNN convolution's
// blocked weight buffer) kept in 4 bits, "split nibbles": chunk c of 64 values is 32 bytes, byte j of the
// chunk holds value 64c + j in its low nibble and value 64c + 32 + j in its high nibble, two's complement;
// a short last chunk is padded with zero nibbles. That order widens 32 bytes to 64 values with two masks and
// no byte shuffles, so a consumer can afford to widen a layer's weights on every call.
inline constexpr int64_t kSplitNibbleChunk = 64;
inline constexpr int64_t split_nibble_bytes(int64_t n) { return (n + kSplitNibbleChunk - 1) / kSplitNibbleChunk * 32; }
// Packs x [n] into packed [split_nibble_bytes(n)]; false (packed unspecified) when a value is outside [-8, 7].
bool pack_s4_split(const int8_t* x, int64_t n, uint8_t* packed);

struct WidenS4Args {
  const uint8_t* packed = nullptr;  // [split_nibble_bytes(n)]: the values [begin, begin + n) of a stream
  int64_t n = 0;                    // values to write; begin (implicit) must be a multiple of 64
  int8_t* y = nullptr;              // [n] exactly n bytes written
};
void widen_s4_s8(const WidenS4Args& a);  // dispatch: first usable implementation, reference last
// The same split over the OpenMP team in blocks of kWidenTeamBlock values (one dispatched call each).
void widen_s4_s8_team(const WidenS4Args& a);
inline constexpr int64_t kWidenTeamBlock = int64_t(64) << 10;  // a multiple of kSplitNibbleChunk
void widen_s4_s8_ref(const WidenS4Args& a);
void widen_s4_s8_c64__avx512(const WidenS4Args& a);
using WidenS4Fn = void (*)(const WidenS4Args&);
using WidenS4List = KernelList<WidenS4Args, WidenS4Fn>;
const WidenS4List& widen_s4_s8_list();
void check_widen_s4_args(const WidenS4Args& a);

}  // namespace mpq::kernels
