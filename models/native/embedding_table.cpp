#include "models/native/embedding_table.h"

#include "core/dtype.h"
#include "core/error.h"
#include "models/native/weight_codes.h"

namespace mpq::native {

void EmbeddingTable::build(const std::string& layer, const float* W, int64_t n, int64_t d, const LayerQuant& lq) {
  name = layer, prec = lq.precision, rows = n, D = d, group = 0;
  const size_t count = size_t(n * d);
  switch (prec) {
    case Precision::fp32:
      f32.assign(W, W + count);
      return;
    case Precision::fp16:
    case Precision::bf16:
      h.resize(count);
      for (size_t i = 0; i < count; ++i) h[i] = prec == Precision::fp16 ? f32_to_f16(W[i]) : f32_to_bf16(W[i]);
      return;
    case Precision::int8:
    case Precision::int4: {
      const int bits = prec == Precision::int8 ? 8 : 4;
      // the simulation's rule: a group that does not divide the row falls back to one scale per row
      group = prec == Precision::int4 && lq.weight_group > 0 && d % lq.weight_group == 0 ? lq.weight_group : 0;
      check(prec == Precision::int8 || d % 2 == 0, "native: embedding table '{}' at int4 needs an even width, got {}",
            layer, d);
      WeightCodes c = weight_codes(layer, W, n, d, bits, group, lq);  // codes [V, D], scales [V][D / G]
      check(c.bias_correction.empty(), "native: embedding table '{}' has no bias to correct", layer);
      group = c.group;
      check(bits == 4 || group == 0, "native: embedding table '{}' at int8 takes one scale per row", layer);
      std::vector<int8_t> q = std::move(c.q);
      scales = std::move(c.scales);
      if (bits == 8) {
        q8 = std::move(q);
        return;
      }
      q4.assign(count / 2, 0);
      for (size_t i = 0; i < count; i += 2) q4[i / 2] = uint8_t((uint8_t(q[i]) & 0xf) | (uint8_t(q[i + 1]) << 4));
      return;
    }
  }
}

void EmbeddingTable::gather(int64_t row, float* dst) const {
  const int64_t G = group > 0 ? group : D, ng = D / std::max<int64_t>(G, 1);
  switch (prec) {
    case Precision::fp32:
      for (int64_t d = 0; d < D; ++d) dst[d] = f32[size_t(row * D + d)];
      return;
    case Precision::fp16:
      for (int64_t d = 0; d < D; ++d) dst[d] = f16_to_f32(h[size_t(row * D + d)]);
      return;
    case Precision::bf16:
      for (int64_t d = 0; d < D; ++d) dst[d] = bf16_to_f32(h[size_t(row * D + d)]);
      return;
    case Precision::int8:
      for (int64_t d = 0; d < D; ++d) dst[d] = float(q8[size_t(row * D + d)]) * scales[size_t(row * ng + d / G)];
      return;
    case Precision::int4:
      for (int64_t d = 0; d < D; ++d) {
        const uint8_t b = q4[size_t((row * D + d) / 2)];
        const int nib = d % 2 == 0 ? (b & 0xf) : (b >> 4);
        dst[d] = float((nib ^ 8) - 8) * scales[size_t(row * ng + d / G)];
      }
      return;
  }
}

size_t EmbeddingTable::bytes() const {
  return f32.size() * 4 + h.size() * 2 + q8.size() + q4.size() + scales.size() * 4;
}

}  // namespace mpq::native
