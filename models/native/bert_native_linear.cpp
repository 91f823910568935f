// The linear layers of the compiled BERT: weight quantization / packing per precision, the GEMM call with
// its fused epilogue, and the per-layer implementation choice (models/native/bert_native.h).
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "models/native/bert_native.h"
#include "models/native/measure.h"
#include "models/native/weight_codes.h"
#include "ops/kernels/quantize_weights.h"

namespace mpq::native::bert {

using kernels::ActOut;

void quantize_weight_sym(const float* W, int64_t N, int64_t K, int bits, int64_t group, std::vector<int8_t>& q,
                         std::vector<float>& scales) {
  const int64_t G = group > 0 ? group : K;
  check(G > 0 && K % G == 0, "quantize_weight_sym: group {} does not divide K={}", G, K);
  q.assign(size_t(N * K), 0);                // [N, K]
  scales.assign(size_t(N * (K / G)), 0.0f);  // [N][K / G]
  kernels::quantize_rows({W, N, K, group, bits, q.data(), scales.data()});
}

void Linear::build(const std::string& layer, const float* W, const float* b, int64_t n, int64_t k,
                   const LayerQuant& lq) {
  name = layer, prec = lq.precision, N = n, K = k;
  bias.assign(b, b + N);
  switch (prec) {
    case Precision::fp32:
      w = pack_gemm_float(prec, W, N, K);
      in = {DType::f32};
      break;
    case Precision::fp16:
    case Precision::bf16:
      w = pack_gemm_float(prec, W, N, K);
      in = {prec == Precision::fp16 ? DType::f16 : DType::bf16};
      break;
    case Precision::int8: {
      in = integer_input("bert", layer, lq);
      const WeightCodes c = weight_codes(layer, W, N, K, 8, 0, lq);  // codes [N, K], scales [N]
      w = pack_gemm_codes(prec, c.q.data(), N, K, 0, c.scales.data(), true);
      add_bias_correction("bert", layer, bias, c.bias_correction);
      break;
    }
    case Precision::int4: {
      in = integer_input("bert", layer, lq);
      const int64_t group = effective_int4_group("bert", layer, lq.weight_group, K);
      const WeightCodes c = weight_codes(layer, W, N, K, 4, group, lq);  // codes [N, K], scales [N][K / G]
      effective_int4_group("bert", layer, c.group, K);  // a rounded record's group must be one the kernels take
      w = pack_gemm_codes(prec, c.q.data(), N, K, c.group, c.scales.data(), true);
      add_bias_correction("bert", layer, bias, c.bias_correction);
      break;
    }
  }
}

bool Linear::can_write(DType f) const {
  switch (prec) {
    case Precision::fp32:
      return f == DType::f32;
    case Precision::fp16:
      return f != DType::bf16;
    default:
      return f == DType::f32 || f == DType::u8;
  }
}

namespace {
kernels::LowpEpilogue epilogue(const Linear& l, const ActOut& out, const float* res, int64_t ldr) {
  kernels::LowpEpilogue ep;
  ep.bias = l.bias.data();
  ep.residual = res;
  ep.ld_res = ldr;
  check(out.dt == DType::f32 || out.dt == DType::f16 || out.dt == DType::u8,
        "native bert: layer '{}': its GEMM cannot write {}", l.name, dtype_name(out.dt));
  ep.out = out.dt;
  if (out.dt == DType::u8) ep.out_scale = out.scale, ep.out_zp = out.zp;
  return ep;
}

// The argument structs of one call, for the layer's precision.
struct Call {
  kernels::GemmArgs f32{};
  kernels::F16GemmArgs f16;
  kernels::BF16GemmArgs bf16;
  kernels::Q8GemmArgs q8;
  kernels::Q4GemmArgs q4;
};
Call make_call(const Linear& l, const void* A, int64_t lda, int64_t M, const ActOut& out, const float* res,
               int64_t ldr) {
  Call c;
  switch (l.prec) {
    case Precision::fp32: {
      check(out.dt == DType::f32 && res == nullptr, "native bert: layer '{}': fp32 GEMM writes raw f32 only", l.name);
      const float* wt = l.w.f32.data();  // W^T [K, N]
      c.f32 = {M,  l.N, l.K,   static_cast<const float*>(A), lda,    false,
               wt, l.N, false, static_cast<float*>(out.p),   out.ld, 0.0f};
      break;
    }
    case Precision::fp16:
      c.f16.M = M, c.f16.A = A, c.f16.lda = lda, c.f16.a_f32 = false, c.f16.w = &l.w.f16;
      c.f16.C = out.p, c.f16.ldc = out.ld, c.f16.ep = epilogue(l, out, res, ldr);
      break;
    case Precision::bf16:
      c.bf16.M = M, c.bf16.A = A, c.bf16.lda = lda, c.bf16.a_f32 = false, c.bf16.w = &l.w.bf16;
      c.bf16.C = out.p, c.bf16.ldc = out.ld, c.bf16.ep = epilogue(l, out, res, ldr);
      break;
    case Precision::int8:
    case Precision::int4:
      // int8, and a widened int4 layer's codes (the same integers and scales) for the int8 kernels
      if (l.prec == Precision::int8 || l.w.widened()) {
        c.q8.M = M, c.q8.A = static_cast<const uint8_t*>(A), c.q8.lda = lda, c.q8.sa = l.in.scale, c.q8.za = l.in.zp;
        c.q8.w = &l.w.q8, c.q8.C = out.p, c.q8.ldc = out.ld, c.q8.ep = epilogue(l, out, res, ldr);
      }
      if (l.prec == Precision::int4) {
        c.q4.M = M, c.q4.A = static_cast<const uint8_t*>(A), c.q4.lda = lda, c.q4.sa = l.in.scale, c.q4.za = l.in.zp;
        c.q4.w = &l.w.q4, c.q4.C = out.p, c.q4.ldc = out.ld, c.q4.ep = epilogue(l, out, res, ldr);
      }
      break;
  }
  return c;
}

// Whether a oneDNN entry can run these arguments at all (its own capability limits, not a preference).
bool onednn_capable(const kernels::Q8GemmArgs& g) { return g.ep.residual == nullptr; }
bool onednn_capable(const kernels::BF16GemmArgs& g) {
  return !g.a_f32 && g.ep.residual == nullptr && g.ep.out == DType::f32;
}

// Chooses from `list` for args g: the first usable entry, or (autotune) the fastest of the list's autotune
// candidates (KernelList::candidates, as the CNN engine's) that `capable` accepts, timed by the autotuner of
// both engines (models/native/measure.h).
template <class List, class Args, class Capable>
typename List::Impl pick(const List& list, const Args& g, bool autotune, int reps, Capable capable) {
  if (!autotune) return list.select(g);
  std::vector<typename List::Impl> cands;
  for (const auto* impl : list.candidates(g, true))
    if (capable(*impl)) cands.push_back(*impl);
  if (cands.empty()) return list.select(g);
  if (cands.size() == 1) return cands[0];
  const int best = fastest_candidate(
      cands.size(), [&](size_t i) { cands[i].fn(g); }, reps);
  return best < 0 ? list.select(g) : cands[size_t(best)];
}
}  // namespace

void Linear::run(const void* A, int64_t lda, int64_t M, const ActOut& out, const float* res, int64_t ldr) const {
  const Call c = make_call(*this, A, lda, M, out, res, ldr);
  switch (prec) {
    case Precision::fp32:
      f32_fn(c.f32);
      break;
    case Precision::fp16:
      f16_fn(c.f16);
      break;
    case Precision::bf16:
      bf16_fn(c.bf16);
      break;
    case Precision::int8:
      q8_fn(c.q8);
      break;
    case Precision::int4:
      if (w.widened())
        q8_fn(c.q8);
      else
        q4_fn(c.q4);
      break;
  }
}

void Linear::choose_impl(const void* A, int64_t lda, int64_t M, const ActOut& out, const float* res, int64_t ldr,
                         bool autotune, int reps) {
  const Call c = make_call(*this, A, lda, M, out, res, ldr);
  switch (prec) {
    case Precision::fp32: {
      const auto i = pick(kernels::gemm_f32_list(), c.f32, autotune, reps, [](const auto&) { return true; });
      f32_fn = i.fn, impl = i.name;
      break;
    }
    case Precision::fp16: {
      const auto i = pick(kernels::gemm_f16_list(), c.f16, autotune, reps, [](const auto&) { return true; });
      f16_fn = i.fn, impl = i.name;
      break;
    }
    case Precision::bf16: {
      const auto i = pick(kernels::gemm_bf16_list(), c.bf16, autotune, reps, [&](const auto& im) {
        return im.fn != &kernels::gemm_bf16__onednn || onednn_capable(c.bf16);
      });
      bf16_fn = i.fn, impl = i.name;
      break;
    }
    case Precision::int8:
    case Precision::int4: {
      if (prec == Precision::int4 && !w.widened()) {
        const auto i = pick(kernels::gemm_qu8_qc4w_list(), c.q4, autotune, reps, [](const auto&) { return true; });
        q4_fn = i.fn, impl = i.name;
        break;
      }
      const bool widened = prec == Precision::int4;
      const auto& i = widened && !autotune
                          ? widened_int4_kernel(c.q8)
                          : pick(kernels::gemm_qu8_qc8w_list(), c.q8, autotune, reps, [&](const auto& im) {
                              return im.fn != &kernels::gemm_qu8_qc8w__onednn || onednn_capable(c.q8);
                            });
      q8_fn = i.fn, impl = std::string(widened ? "q4_as_q8+" : "") + i.name;
      break;
    }
  }
}

size_t Linear::bytes() const { return bias.size() * sizeof(float) + w.bytes(); }

}  // namespace mpq::native::bert
