// Embedding lookup and inverted dropout.
//
// embedding = row gather from weight [V, D]; its backward is a row scatter-add into [V, D], whose own
// backward is the row gather again (an adjoint pair of linear maps), so double backward works.
// dropout multiplies by a constant mask (0 or 1/(1-p)) drawn from a counter-based splitmix64 stream, so the
// mask depends only on (seed, element index) and is the same for any thread count.
#include <algorithm>
#include <memory>
#include <string>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/ops.h"

namespace mpq::ops {

namespace {

using Ids = std::shared_ptr<const std::vector<int32_t>>;

Tensor gather_rows_of(const Tensor& weight, const Ids& ids, const Shape& ids_shape);
Tensor scatter_rows(const Tensor& g, const Ids& ids, int64_t V);

struct EmbeddingNode : autograd::Node {
  Ids ids;
  int64_t V = 0;
  const char* name() const override { return "embedding"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {scatter_rows(g, ids, V)}; }
};

struct EmbeddingBackwardNode : autograd::Node {
  Ids ids;
  Shape ids_shape;
  const char* name() const override { return "embedding_backward"; }
  std::vector<Tensor> backward(const Tensor& g) override { return {gather_rows_of(g, ids, ids_shape)}; }
};

// weight [V, D] -> y [ids_shape..., D], y[i] = weight[ids[i]]
Tensor gather_rows_of(const Tensor& weight, const Ids& ids, const Shape& ids_shape) {
  const int64_t D = weight.size(1);
  const Tensor wc = weight.contiguous();  // [V, D]
  Shape out_shape = ids_shape;
  out_shape.push_back(D);
  Tensor y = Tensor::empty(out_shape);  // [ids..., D]
  const float* pw = wc.data<float>();
  float* py = y.data<float>();
  const int64_t n = int64_t(ids->size());
  const int32_t* pi = ids->data();
#pragma omp parallel for schedule(static) if (n * D > 16384)
  for (int64_t i = 0; i < n; ++i) std::copy(pw + int64_t(pi[i]) * D, pw + int64_t(pi[i]) * D + D, py + i * D);
  if (!autograd::needs_grad({weight})) return y;
  auto node = std::make_shared<EmbeddingNode>();
  node->ids = ids;
  node->V = weight.size(0);
  return autograd::record(y, node, {weight});
}

// g [ids..., D] -> gw [V, D], gw[ids[i]] += g[i] (serial over ids: repeated ids accumulate deterministically)
Tensor scatter_rows(const Tensor& g, const Ids& ids, int64_t V) {
  const int64_t D = g.size(-1);
  const Tensor gc = g.contiguous();   // [ids..., D]
  Tensor gw = Tensor::zeros({V, D});  // [V, D]
  const float* pg = gc.data<float>();
  float* pw = gw.data<float>();
  const int64_t n = int64_t(ids->size());
  for (int64_t i = 0; i < n; ++i) {
    float* row = pw + int64_t((*ids)[size_t(i)]) * D;
    const float* src = pg + i * D;
    for (int64_t d = 0; d < D; ++d) row[d] += src[d];
  }
  if (!autograd::needs_grad({g})) return gw;
  auto node = std::make_shared<EmbeddingBackwardNode>();
  node->ids = ids;
  Shape ids_shape(g.shape().begin(), g.shape().end() - 1);
  node->ids_shape = ids_shape;
  return autograd::record(gw, node, {g});
}

}  // namespace

Tensor embedding(const Tensor& weight, const std::vector<int32_t>& ids, const Shape& ids_shape) {
  if (!(weight.defined() && weight.dim() == 2))
    fail("embedding: weight must be 2-D [V, D], got {}",
         weight.defined() ? shape_str(weight.shape()) : std::string("undefined"));
  if (!(weight.dtype() == DType::f32)) fail("embedding: expects f32 weight {}", shape_str(weight.shape()));
  if (!(int64_t(ids.size()) == numel_of(ids_shape)))
    fail("embedding: {} ids for ids shape {} ({} elements)", ids.size(), shape_str(ids_shape), numel_of(ids_shape));
  const int64_t V = weight.size(0);
  for (size_t i = 0; i < ids.size(); ++i)
    if (!(ids[i] >= 0 && ids[i] < V))
      fail("embedding: id {} at position {} out of range for vocabulary size V={} (weight {})", ids[i], i, V,
           shape_str(weight.shape()));
  return gather_rows_of(weight, std::make_shared<const std::vector<int32_t>>(ids), ids_shape);
}

Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed) {
  if (!(p >= 0.0f && p <= 1.0f)) fail("dropout: probability {} outside [0, 1] (input {})", p, shape_str(x.shape()));
  if (!training || p == 0.0f) return x;
  Tensor mask = Tensor::empty(x.shape());  // same shape as x: 0 or 1/(1-p)
  float* pm = mask.data<float>();
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  // keep when a uniform 53-bit draw u >= p
  const double pd = double(p);
  const int64_t n = mask.numel();
  const uint64_t base = splitmix64_at(seed);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const double u = double(splitmix64_at(base ^ (uint64_t(i) * 0xD1B54A32D192ED03ull)) >> 11) * 0x1.0p-53;
    pm[i] = u >= pd ? keep_scale : 0.0f;
  }
  return mul_const(x, mask);
}

}  // namespace mpq::ops
