#include "models/native/weight_codes.h"

#include "core/error.h"
#include "ops/kernels/quantize_weights.h"

namespace mpq::native {

WeightCodes weight_codes(const std::string& layer, const float* w, int64_t O, int64_t K, int bits, int64_t group,
                         const LayerQuant& lq) {
  WeightCodes c;
  if (lq.weights) {
    const QuantizedWeight& r = *lq.weights;
    r.validate(layer);
    check(r.rows == O && r.cols == K && r.bits == bits,
          "native compile: layer '{}' has rounded {}-bit weights of {} x {}, the layer needs {}-bit {} x {}", layer,
          r.bits, r.rows, r.cols, bits, O, K);
    // One scale per row is per output channel, unless the caller asked for int4 groups of exactly K (a row of
    // one group, e.g. 32 inputs at group 32): then the grouped kernel runs, as it does for round-to-nearest.
    c.group = r.group == K && group != K ? 0 : r.group;
    check(bits == 4 || c.group == 0,
          "native compile: layer '{}' has int8 rounded weights with group {} (int8 is per "
          "output channel)",
          layer, r.group);
    c.q = r.q;
    c.scales = r.scale;
    c.bias_correction = r.bias_correction;
    return c;
  }
  check(w != nullptr, "native compile: layer '{}' has neither float nor rounded weights", layer);
  c.group = group;
  const int64_t G = group > 0 ? group : K;
  c.q.assign(size_t(O * K), 0);
  c.scales.assign(size_t(O * (K / G)), 0.0f);
  kernels::quantize_rows({w, O, K, group, bits, c.q.data(), c.scales.data()});
  return c;
}

}  // namespace mpq::native
