// Plain-loop twin of the row quantizer (ops/kernels/quantize_weights.h): the definition the others match.
#include <algorithm>
#include <cmath>

#include "ops/kernels/quantize_weights.h"

namespace mpq::kernels {

void quantize_rows_ref(const QuantizeRowsArgs& a) {
  const int64_t G = a.group > 0 ? a.group : a.K;
  if (G == 0) return;
  const float qmax = float((1 << (a.bits - 1)) - 1);
  const int64_t ng = a.K / G;
  for (int64_t r = 0; r < a.rows; ++r)
    for (int64_t g = 0; g < ng; ++g) {
      const float* s = a.w + r * a.K + g * G;
      int8_t* d = a.q + r * a.K + g * G;
      float amax = 0;
      for (int64_t i = 0; i < G; ++i) amax = std::max(amax, std::fabs(s[i]));
      const float scale = amax > 0 ? amax / qmax : 1.0f;
      for (int64_t i = 0; i < G; ++i) d[i] = int8_t(std::clamp(std::nearbyint(s[i] / scale), -qmax, qmax));
      a.scales[r * ng + g] = scale;
    }
}

void widen_s4_s8_ref(const WidenS4Args& a) {
  const int64_t half = kSplitNibbleChunk / 2;
  for (int64_t i = 0; i < a.n; ++i) {
    const int64_t c = i / kSplitNibbleChunk, j = i % kSplitNibbleChunk;
    const uint8_t b = a.packed[c * half + j % half];
    const int nib = j < half ? (b & 0xf) : (b >> 4);
    a.y[i] = int8_t((nib ^ 8) - 8);  // two's complement 4 bits -> [-8, 7]
  }
}

}  // namespace mpq::kernels
