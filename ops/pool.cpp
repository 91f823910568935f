// Max, average and global-average pooling over NCHW images.
//
// Both window pools are linear maps once the max positions are fixed, so their backward passes are
// linear ops whose own backward is the forward map again:
//   max_pool2d  = plane_gather(x, argmax)     <->  plane_scatter(g, argmax)   (adjoint pair)
//   avg_pool2d  = avg_pool_fwd(x)             <->  avg_pool_adjoint(g)        (adjoint pair)
// which makes double backward exact (max pool is piecewise linear: zero curvature within a piece).
#include <algorithm>
#include <limits>
#include <memory>

#include "core/autograd/node.h"
#include "core/error.h"
#include "ops/ops.h"

namespace mpq::ops {

namespace {

// Below this many elements an OpenMP region costs more than it saves.
constexpr int64_t kParallelMin = 32768;

struct PoolGeom {
  int64_t N, C, H, W, OH, OW;
};

PoolGeom pool_geom(const char* op, const Tensor& x, const Pool2dParams& p) {
  if (!(x.dim() == 4)) fail("{}: input must be 4-D [N, C, H, W], got {}", op, shape_str(x.shape()));
  if (!(x.dtype() == DType::f32))
    fail("{}: expects f32 input, got shape {} of another dtype", op, shape_str(x.shape()));
  check(p.kernel_h >= 1 && p.kernel_w >= 1 && p.stride_h >= 1 && p.stride_w >= 1 && p.pad_top >= 0 && p.pad_left >= 0 &&
            p.pad_bottom >= 0 && p.pad_right >= 0,
        "{}: invalid parameters kernel ({}, {}) stride ({}, {}) pad (t {}, l {}, b {}, r {})", op, p.kernel_h,
        p.kernel_w, p.stride_h, p.stride_w, p.pad_top, p.pad_left, p.pad_bottom, p.pad_right);
  PoolGeom g{x.size(0), x.size(1), x.size(2), x.size(3), 0, 0};
  const int64_t hp = g.H + p.pad_top + p.pad_bottom, wp = g.W + p.pad_left + p.pad_right;
  if (!(hp >= p.kernel_h && wp >= p.kernel_w))
    fail("{}: kernel ({}, {}) larger than padded input {} (padded {}x{})", op, p.kernel_h, p.kernel_w,
         shape_str(x.shape()), hp, wp);
  g.OH = (hp - p.kernel_h) / p.stride_h + 1;
  g.OW = (wp - p.kernel_w) / p.stride_w + 1;
  return g;
}

// ---- plane gather / scatter with fixed indices (max pool forward / backward) ----
// idx [N*C*OH*OW]: position (h*W + w) inside the input plane of each output element, -1 for none.
using Indices = std::shared_ptr<const std::vector<int32_t>>;

Tensor plane_scatter(const Tensor& g, const Indices& idx, const Shape& in_shape);

Tensor plane_gather(const Tensor& x, const Indices& idx, const Shape& out_shape);

struct PlaneGatherNode : autograd::Node {
  Indices idx;
  Shape in_shape;
  const char* name() const override { return "max_pool2d"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {plane_scatter(g, idx, in_shape)}; }
};

struct PlaneScatterNode : autograd::Node {
  Indices idx;
  Shape out_shape_small;
  const char* name() const override { return "max_pool2d_backward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {plane_gather(g, idx, out_shape_small)}; }
};

// x [N, C, H, W] -> y [N, C, OH, OW], y[n,c,o] = x[n,c,idx[o]]
Tensor plane_gather(const Tensor& x, const Indices& idx, const Shape& out_shape) {
  const Tensor xc = x.contiguous();     // [N, C, H, W]
  Tensor y = Tensor::empty(out_shape);  // [N, C, OH, OW]
  const int64_t planes = out_shape[0] * out_shape[1];
  const int64_t in_plane = x.size(2) * x.size(3), out_plane = out_shape[2] * out_shape[3];
  const float* px = xc.data<float>();
  float* py = y.data<float>();
  const int32_t* pi = idx->data();
#pragma omp parallel for schedule(static) if (planes * (in_plane + out_plane) > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = px + pl * in_plane;
    for (int64_t o = 0; o < out_plane; ++o) {
      const int32_t i = pi[pl * out_plane + o];
      py[pl * out_plane + o] = i >= 0 ? xp[i] : 0.0f;
    }
  }
  if (!autograd::needs_grad({x})) return y;
  auto node = std::make_shared<PlaneGatherNode>();
  node->idx = idx;
  node->in_shape = x.shape();
  return autograd::record(y, node, {x});
}

// g [N, C, OH, OW] -> gx [N, C, H, W], gx[n,c,idx[o]] += g[n,c,o]
Tensor plane_scatter(const Tensor& g, const Indices& idx, const Shape& in_shape) {
  const Tensor gc = g.contiguous();     // [N, C, OH, OW]
  Tensor gx = Tensor::zeros(in_shape);  // [N, C, H, W]
  const int64_t planes = in_shape[0] * in_shape[1];
  const int64_t in_plane = in_shape[2] * in_shape[3], out_plane = g.size(2) * g.size(3);
  const float* pg = gc.data<float>();
  float* px = gx.data<float>();
  const int32_t* pi = idx->data();
#pragma omp parallel for schedule(static) if (planes * (in_plane + out_plane) > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    float* xp = px + pl * in_plane;
    for (int64_t o = 0; o < out_plane; ++o) {
      const int32_t i = pi[pl * out_plane + o];
      if (i >= 0) xp[i] += pg[pl * out_plane + o];
    }
  }
  if (!autograd::needs_grad({g})) return gx;
  auto node = std::make_shared<PlaneScatterNode>();
  node->idx = idx;
  node->out_shape_small = g.shape();
  return autograd::record(gx, node, {g});
}

// ---- average pool and its adjoint ----
// Divisor of output position (oh, ow): full window, or the in-bounds part of it.
inline float avg_divisor(const Pool2dParams& p, int64_t H, int64_t W, int64_t h0, int64_t w0) {
  if (p.count_include_pad) return float(p.kernel_h * p.kernel_w);
  const int64_t hs = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.kernel_h, H);
  const int64_t ws = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.kernel_w, W);
  const int64_t n = std::max<int64_t>(he - hs, 0) * std::max<int64_t>(we - ws, 0);
  return n > 0 ? float(n) : 1.0f;
}

Tensor avg_pool_adjoint(const Tensor& g, const Shape& in_shape, const Pool2dParams& p);

struct AvgPoolNode : autograd::Node {
  Shape in_shape;
  Pool2dParams p;
  const char* name() const override { return "avg_pool2d"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {avg_pool_adjoint(g, in_shape, p)}; }
};

struct AvgPoolAdjointNode : autograd::Node {
  Pool2dParams p;
  const char* name() const override { return "avg_pool2d_backward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {avg_pool2d(g, p)}; }
};

// g [N, C, OH, OW] -> gx [N, C, H, W]: gx[i] = sum over windows o containing i of g[o] / div(o)
Tensor avg_pool_adjoint(const Tensor& g, const Shape& in_shape, const Pool2dParams& p) {
  const Tensor gc = g.contiguous();     // [N, C, OH, OW]
  Tensor gx = Tensor::zeros(in_shape);  // [N, C, H, W]
  const int64_t planes = in_shape[0] * in_shape[1], H = in_shape[2], W = in_shape[3];
  const int64_t OH = g.size(2), OW = g.size(3);
  const float* pg = gc.data<float>();
  float* px = gx.data<float>();
#pragma omp parallel for schedule(static) if (planes * H * W > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    float* xp = px + pl * H * W;
    const float* gp = pg + pl * OH * OW;
    for (int64_t oh = 0; oh < OH; ++oh) {
      const int64_t h0 = oh * p.stride_h - p.pad_top;
      const int64_t hs = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.kernel_h, H);
      for (int64_t ow = 0; ow < OW; ++ow) {
        const int64_t w0 = ow * p.stride_w - p.pad_left;
        const int64_t ws = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.kernel_w, W);
        const float v = gp[oh * OW + ow] / avg_divisor(p, H, W, h0, w0);
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) xp[h * W + w] += v;
      }
    }
  }
  if (!autograd::needs_grad({g})) return gx;
  auto node = std::make_shared<AvgPoolAdjointNode>();
  node->p = p;
  return autograd::record(gx, node, {g});
}

}  // namespace

Tensor max_pool2d(const Tensor& x, const Pool2dParams& p) {
  const PoolGeom G = pool_geom("max_pool2d", x, p);
  if (!(G.H * G.W <= std::numeric_limits<int32_t>::max()))
    fail("max_pool2d: plane of {} too large", shape_str(x.shape()));
  const Tensor xc = x.contiguous();                                                    // [N, C, H, W]
  auto idx = std::make_shared<std::vector<int32_t>>(size_t(G.N * G.C * G.OH * G.OW));  // [N, C, OH, OW]
  const float* px = xc.data<float>();
  int32_t* pi = idx->data();
  const int64_t planes = G.N * G.C;
#pragma omp parallel for schedule(static) if (planes * G.H * G.W > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = px + pl * G.H * G.W;
    int32_t* ip = pi + pl * G.OH * G.OW;
    for (int64_t oh = 0; oh < G.OH; ++oh) {
      const int64_t h0 = oh * p.stride_h - p.pad_top;
      const int64_t hs = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.kernel_h, G.H);
      for (int64_t ow = 0; ow < G.OW; ++ow) {
        const int64_t w0 = ow * p.stride_w - p.pad_left;
        const int64_t ws = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.kernel_w, G.W);
        int32_t best = -1;
        float bv = -std::numeric_limits<float>::infinity();
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) {
            const float v = xp[h * G.W + w];
            if (best < 0 || v > bv || (v != v && bv == bv)) {  // first maximum wins; NaN propagates
              best = int32_t(h * G.W + w);
              bv = v;
            }
          }
        ip[oh * G.OW + ow] = best;  // -1 only when the window lies entirely in the padding (output 0)
      }
    }
  }
  return plane_gather(x, idx, {G.N, G.C, G.OH, G.OW});
}

Tensor avg_pool2d(const Tensor& x, const Pool2dParams& p) {
  const PoolGeom G = pool_geom("avg_pool2d", x, p);
  const Tensor xc = x.contiguous();                  // [N, C, H, W]
  Tensor y = Tensor::empty({G.N, G.C, G.OH, G.OW});  // [N, C, OH, OW]
  const float* px = xc.data<float>();
  float* py = y.data<float>();
  const int64_t planes = G.N * G.C;
#pragma omp parallel for schedule(static) if (planes * G.H * G.W > kParallelMin)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const float* xp = px + pl * G.H * G.W;
    float* yp = py + pl * G.OH * G.OW;
    for (int64_t oh = 0; oh < G.OH; ++oh) {
      const int64_t h0 = oh * p.stride_h - p.pad_top;
      const int64_t hs = std::max<int64_t>(h0, 0), he = std::min<int64_t>(h0 + p.kernel_h, G.H);
      for (int64_t ow = 0; ow < G.OW; ++ow) {
        const int64_t w0 = ow * p.stride_w - p.pad_left;
        const int64_t ws = std::max<int64_t>(w0, 0), we = std::min<int64_t>(w0 + p.kernel_w, G.W);
        float s = 0.0f;
        for (int64_t h = hs; h < he; ++h)
          for (int64_t w = ws; w < we; ++w) s += xp[h * G.W + w];
        yp[oh * G.OW + ow] = s / avg_divisor(p, G.H, G.W, h0, w0);
      }
    }
  }
  if (!autograd::needs_grad({x})) return y;
  auto node = std::make_shared<AvgPoolNode>();
  node->in_shape = x.shape();
  node->p = p;
  return autograd::record(y, node, {x});
}

Tensor global_avg_pool(const Tensor& x) {
  if (!(x.dim() == 4)) fail("global_avg_pool: input must be 4-D [N, C, H, W], got {}", shape_str(x.shape()));
  return mean(x, {2, 3}, false);  // [N, C]
}

}  // namespace mpq::ops
