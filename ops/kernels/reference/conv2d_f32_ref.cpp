// Reference conv2d (direct loops, double accumulation): the oracle for the oneDNN path.
// x [N, C, H, W], w [O, C/G, KH, KW], y/gy [N, O, OH, OW]; input channel c of group g is g*C/G + c.
#include <vector>

#include "ops/kernels/f32_impls.h"

namespace mpq::kernels {
namespace {

// Visits every (n, o, oh, ow, ci, kh, kw) whose input tap (ih, iw) is inside the image, with flat indices
// into x, w and y. ci is the channel within the group.
template <class F>
void for_each_tap(const Conv2dShape& s, F&& f) {
  const int64_t OH = s.OH(), OW = s.OW(), Cg = s.C / s.groups, Og = s.O / s.groups;
  for (int64_t n = 0; n < s.N; ++n)
    for (int64_t o = 0; o < s.O; ++o) {
      const int64_t g = o / Og;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const int64_t yi = ((n * s.O + o) * OH + oh) * OW + ow;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t ih = oh * s.stride_h - s.pad_top + kh * s.dil_h;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                const int64_t iw = ow * s.stride_w - s.pad_left + kw * s.dil_w;
                if (iw < 0 || iw >= s.W) continue;
                const int64_t xi = ((n * s.C + g * Cg + ci) * s.H + ih) * s.W + iw;
                const int64_t wi = ((o * Cg + ci) * s.KH + kh) * s.KW + kw;
                f(xi, wi, yi);
              }
            }
        }
    }
}

}  // namespace

void conv2d_fwd_f32_ref(const Conv2dShape& s, const float* x, const float* w, const float* bias, float* y) {
  check_conv2d_shape(s);
  const int64_t OHW = s.OH() * s.OW();
  std::vector<double> acc(size_t(s.N * s.O * OHW), 0.0);  // [N, O, OH, OW]
  for_each_tap(s, [&](int64_t xi, int64_t wi, int64_t yi) { acc[size_t(yi)] += double(x[xi]) * double(w[wi]); });
  for (int64_t i = 0; i < s.N * s.O * OHW; ++i) {
    const int64_t o = (i / OHW) % s.O;
    y[i] = float(acc[size_t(i)] + (bias ? double(bias[o]) : 0.0));
  }
}

void conv2d_bwd_data_f32_ref(const Conv2dShape& s, const float* gy, const float* w, float* gx) {
  check_conv2d_shape(s);
  std::vector<double> acc(size_t(s.N * s.C * s.H * s.W), 0.0);  // [N, C, H, W]
  for_each_tap(s, [&](int64_t xi, int64_t wi, int64_t yi) { acc[size_t(xi)] += double(gy[yi]) * double(w[wi]); });
  for (size_t i = 0; i < acc.size(); ++i) gx[i] = float(acc[i]);
}

void conv2d_bwd_weight_f32_ref(const Conv2dShape& s, const float* x, const float* gy, float* gw, float* gbias) {
  check_conv2d_shape(s);
  std::vector<double> acc(size_t(s.O * (s.C / s.groups) * s.KH * s.KW), 0.0);  // [O, C/G, KH, KW]
  for_each_tap(s, [&](int64_t xi, int64_t wi, int64_t yi) { acc[size_t(wi)] += double(x[xi]) * double(gy[yi]); });
  for (size_t i = 0; i < acc.size(); ++i) gw[i] = float(acc[i]);
  if (gbias) {
    const int64_t OHW = s.OH() * s.OW();
    for (int64_t o = 0; o < s.O; ++o) {
      double b = 0.0;
      for (int64_t n = 0; n < s.N; ++n)
        for (int64_t p = 0; p < OHW; ++p) b += gy[(n * s.O + o) * OHW + p];
      gbias[o] = float(b);
    }
  }
}

}  // namespace mpq::kernels
