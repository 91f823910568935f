// NHWC im2col by contiguous copies (baseline AVX2 build; no intrinsics needed): per output pixel and
// kernel row, the KW*C window elements are one memcpy when the row is inside the image and ldx == C,
// else one memcpy of C elements per valid tap; taps outside the image get the pad value. Same bytes as
// im2col_nhwc_ref. Output rows are split over the OpenMP threads for large outputs (stem convs).
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "ops/kernels/nhwc.h"

namespace mpq::kernels {
namespace {

// n elements of eb bytes, each = *pad
void fill(uint8_t* dst, const void* pad, size_t eb, int64_t n) {
  if (n <= 0) return;
  std::memcpy(dst, pad, eb);
  size_t done = eb, total = eb * size_t(n);
  while (done < total) {  // doubling copies
    const size_t k = std::min(done, total - done);
    std::memcpy(dst + done, dst, k);
    done += k;
  }
}

}  // namespace

void im2col_nhwc__avx2(const Im2colArgs& a) {
  check_im2col_args(a);
  const ConvGeom& g = a.g;
  const size_t eb = size_t(a.elem_bytes);
  const auto* x = static_cast<const uint8_t*>(a.x);
  auto* col = static_cast<uint8_t*>(a.col);
  const size_t cbytes = size_t(g.C) * eb;  // one tap
  auto row = [&](int64_t oh) {
    const int64_t ih0 = oh * g.stride_h - g.pad_top;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      const int64_t iw0 = ow * g.stride_w - g.pad_left;
      const int64_t kw0 = std::clamp<int64_t>(-iw0, 0, g.KW), kw1 = std::clamp<int64_t>(g.W - iw0, kw0, g.KW);
      uint8_t* dst = col + size_t((oh * g.OW + ow) * a.ldcol) * eb;  // [KH][KW][C] of this pixel
      for (int64_t kh = 0; kh < g.KH; ++kh, dst += size_t(g.KW) * cbytes) {
        const int64_t ih = ih0 + kh;
        if (ih < 0 || ih >= g.H) {
          fill(dst, a.pad_value, eb, g.KW * g.C);
          continue;
        }
        fill(dst, a.pad_value, eb, kw0 * g.C);
        const uint8_t* src = x + size_t((ih * g.W + iw0 + kw0) * g.ldx) * eb;
        if (g.ldx == g.C) {
          std::memcpy(dst + size_t(kw0) * cbytes, src, size_t(kw1 - kw0) * cbytes);
        } else {
          for (int64_t kw = kw0; kw < kw1; ++kw)
            std::memcpy(dst + size_t(kw) * cbytes, src + size_t((kw - kw0) * g.ldx) * eb, cbytes);
        }
        fill(dst + size_t(kw1) * cbytes, a.pad_value, eb, (g.KW - kw1) * g.C);
      }
    }
  };
  const int nt =
      (omp_in_parallel() || g.OH * g.OW * g.KH * g.KW * g.C < (int64_t(1) << 17)) ? 1 : omp_get_max_threads();
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t oh = 0; oh < g.OH; ++oh) row(oh);
}

}  // namespace mpq::kernels
