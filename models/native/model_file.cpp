#include "models/native/model_file.h"

#include "core/error.h"

namespace mpq::native {

int64_t stored_layer_bytes(const StoredLayer& l, Precision p, int64_t group) {
  check(l.out >= 0 && l.in >= 0 && l.operands >= 0, "stored bytes: negative layer sizes ({} x {}, {} operands)", l.out,
        l.in, l.operands);
  const int64_t O = l.out, K = l.in;
  int64_t b = l.bias ? 4 * O : 0;
  switch (p) {
    case Precision::fp32:
      return b + 4 * O * K;
    case Precision::fp16:
    case Precision::bf16:
      return b + 2 * O * K;
    case Precision::int8:
      return b + O * K + (K > 0 ? 4 * O : 0) + 8 * l.operands;
    case Precision::int4: {
      const int64_t groups = group > 0 && K > 0 && K % group == 0 ? K / group : 1;
      return b + O * ((K + 1) / 2) + (K > 0 ? 4 * O * groups : 0) + 8 * l.operands;
    }
  }
  return b;
}

}  // namespace mpq::native
