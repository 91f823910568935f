// What a deployed model stores per quantizable layer (the .mpq model file written by `mpq export`), as a
// byte count the search can optimise and the export must match:
//   fp32        weights [O, K] f32                                   4 O K
//   fp16 / bf16 weights [O, K] binary16 / bfloat16                   2 O K
//   int8        codes [O, K] s8 + scales [O] f32                     O K + 4 O
//   int4        codes [O, ceil(K / 2)] (two per byte, each row starting on a byte) + scales [O][K / G] f32
//               (G = the group, or K per output channel)              O ceil(K / 2) + 4 O K / G
// plus, for every precision, the f32 bias [O] of a conv / linear (all convs of the three networks have one
// once batch norm is folded into them) and, for int8 / int4, each activation operand's uint8 scale (f32) and
// zero point (i32): 8 bytes per operand. Embedding tables ([V, D] rows, gathered, no activation) store
// their rows the same way with O = V, K = D and no bias. Packing padding, column sums and kernel-specific
// layouts are rebuilt when the file is loaded and are not part of the count.
#pragma once
#include <cstdint>

#include "core/precision.h"

namespace mpq::native {

struct StoredLayer {
  int64_t out = 0, in = 0;  // O, K (0 for the weightless attention matmuls)
  bool bias = false;        // an f32 bias [O]
  int operands = 0;         // activation operands quantized at int8 / int4 (embeddings: 0)
};

// Bytes of one layer at precision p with int4 weight group `group` (0 or one that does not divide K: per
// output channel).
int64_t stored_layer_bytes(const StoredLayer& l, Precision p, int64_t group);

}  // namespace mpq::native
