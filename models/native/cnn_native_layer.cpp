// Compiled CNN layers: weight packing per precision (reproducing quant/quantizer.h and the fake-quant hook
// exactly) and our execution of one layer (GEMM / im2col + GEMM / depthwise with the fused epilogue).
// The documented epilogue rounding (y * (1 / s), then + zp, two roundings) relies on the project-wide
// -ffp-contract=off (CMakeLists.txt MPQ_BASE_FLAGS).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "models/native/cnn_native.h"
#include "models/native/weight_codes.h"
#include "ops/fold_bn.h"
#include "ops/kernels/f32_impls.h"

namespace mpq::native::cnn {

namespace {

// PyTorch row order (c, kh, kw) -> im2col column order (kh, kw, c): dst[o][(kh*k + kw)*C + c] =
// src[o][(c*k + kh)*k + kw]. T: float or int8_t.
template <class T>
std::vector<T> to_hwc_rows(const T* src, int64_t O, int64_t C, int64_t k) {
  std::vector<T> dst(size_t(O * C * k * k));  // [O, k, k, C]
  for (int64_t o = 0; o < O; ++o)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t t = 0; t < k * k; ++t) dst[size_t((o * k * k + t) * C + c)] = src[(o * C + c) * k * k + t];
  return dst;
}

void set_input(Layer& L, const LayerQuant& q) {
  switch (L.prec) {
    case Precision::fp32:
    case Precision::bf16:  // bf16 layers read f32 and round to bf16 at the boundary
      L.in = ActFormat{};
      break;
    case Precision::fp16:
      L.in = ActFormat{DType::f16};
      break;
    case Precision::int8:
    case Precision::int4:
      L.in = integer_input("cnn", L.name, q);
      break;
  }
}

// Packs the GEMM weights of a conv / linear: w [O, K] in PyTorch row order (c, kh, kw). int8 / int4 codes come
// from weight_codes (the assignment's rounded weights, or round-to-nearest); an int4 layer's group is the
// codes' group.
void pack_gemm_weights(Layer& L, const float* w, const LayerQuant& lq, bool kxk) {
  const int64_t O = L.cout, K = L.K, kk = L.kind == Kind::im2col_gemm ? L.k : 1;
  const int64_t C = K / (kk * kk);
  auto hwc = [&](auto* src) { return to_hwc_rows(src, O, C, kk); };
  switch (L.prec) {
    case Precision::fp32:
    case Precision::fp16:
    case Precision::bf16:
      L.w = pack_gemm_float(L.prec, hwc(w).data(), O, K);
      break;
    case Precision::int8: {
      const WeightCodes c = weight_codes(L.name, w, O, K, 8, 0, lq);  // [O, K] PyTorch order, scales [O]
      L.w = pack_gemm_codes(L.prec, hwc(c.q.data()).data(), O, K, 0, c.scales.data(), true);
      add_bias_correction("cnn", L.name, L.bias, c.bias_correction);
      break;
    }
    case Precision::int4: {
      const WeightCodes c = weight_codes(L.name, w, O, K, 4, L.group, lq);  // [O, K], scales [O][K / G]
      L.group = effective_int4_group("cnn", L.name, c.group, K);
      // Per channel: any column order keeps the numerics (one scale per row). Grouped: groups are runs of
      // the PyTorch order, so a KxK layer keeps that order (torch_order im2col) instead of permuting.
      L.torch_order = L.group > 0 && kxk;
      const std::vector<int8_t> cols = L.torch_order ? c.q : hwc(c.q.data());
      L.w = pack_gemm_codes(L.prec, cols.data(), O, K, L.group, c.scales.data(), true);
      add_bias_correction("cnn", L.name, L.bias, c.bias_correction);
      break;
    }
  }
}

// Depthwise weights w [C, 1, k, k].
void pack_dw_weights(Layer& L, const float* w, const LayerQuant& lq) {
  const int64_t C = L.cout, k = L.k;
  switch (L.prec) {
    case Precision::fp32:
      L.dw_f32 = kernels::pack_dw_f32(w, C, k, k);
      break;
    case Precision::bf16: {
      // bf16 depthwise runs the f32 kernel on bf16-rounded weights and inputs: the products of two bf16
      // values are exact in f32 and the f32 accumulation is what the fake-quant conv does too.
      std::vector<float> r(size_t(C * k * k));  // [C, 1, k, k]
      for (size_t i = 0; i < r.size(); ++i) r[i] = bf16_to_f32(f32_to_bf16(w[i]));
      L.dw_f32 = kernels::pack_dw_f32(r.data(), C, k, k);
      break;
    }
    case Precision::fp16:
      L.dw_f16 = kernels::pack_dw_f16(w, C, k, k);
      break;
    case Precision::int8:
    case Precision::int4: {
      // int4 depthwise: the per-channel int4 values (|q| <= 7, row of k*k never divisible by a group) run
      // through the int8 kernel, which holds them exactly in s8.
      const WeightCodes c = weight_codes(L.name, w, C, k * k, L.prec == Precision::int8 ? 8 : 4, 0, lq);
      check(c.group == 0, "native compile: depthwise layer '{}' takes one scale per channel, got group {}", L.name,
            c.group);
      L.dw_q8 = kernels::pack_dw_q8(c.q.data(), c.scales.data(), C, k, k);  // codes [C, k*k], scales [C]
      add_bias_correction("cnn", L.name, L.bias, c.bias_correction);
      break;
    }
  }
}

void set_clamp(Layer& L, models::CnnStep::Act act) {
  const float inf = std::numeric_limits<float>::infinity();
  L.lo = act == models::CnnStep::Act::none ? -inf : 0.0f;
  L.hi = act == models::CnnStep::Act::relu6 ? 6.0f : inf;
}

}  // namespace

Layer make_conv_layer(const models::ConvUnit& u, const LayerQuant& q, models::CnnStep::Act act) {
  const models::ConvSpec& S = u.spec;
  Layer L;
  L.name = S.conv;
  L.prec = q.precision;
  L.cin = S.in, L.cout = S.out, L.k = S.kernel, L.stride = S.stride, L.pad = S.pad;
  set_clamp(L, act);
  set_input(L, q);
  // The folded conv exactly as ConvUnit::forward computes it in eval mode.
  Tensor w = u.weight, b = u.bias;
  if (u.has_bn()) {
    const ops::FoldedConv f = ops::fold_bn(u.weight, u.bias, u.gamma, u.beta, u.running_mean, u.running_var, S.eps);
    w = f.weight, b = f.bias;
  }
  w = w.contiguous();  // [cout, cin/groups, k, k]
  L.bias.assign(size_t(S.out), 0.0f);
  if (b.defined()) {
    const Tensor bc = b.contiguous();  // [cout]
    std::memcpy(L.bias.data(), bc.data<float>(), sizeof(float) * size_t(S.out));
  }
  if (S.groups != 1) {
    check(S.groups == S.in && S.in == S.out,
          "native compile: conv '{}' has groups {} with {} -> {} channels; only depthwise (groups == channels) "
          "and dense convs are supported",
          S.conv, S.groups, S.in, S.out);
    L.kind = Kind::depthwise;
    L.K = S.kernel * S.kernel;
    pack_dw_weights(L, w.data<float>(), q);
    return L;
  }
  L.kind = S.kernel == 1 && S.stride == 1 ? Kind::gemm : Kind::im2col_gemm;
  L.K = S.in * S.kernel * S.kernel;
  if (L.prec == Precision::int4) L.group = effective_int4_group("cnn", L.name, q.weight_group, L.K);
  pack_gemm_weights(L, w.data<float>(), q, S.kernel > 1);
  return L;
}

Layer make_linear_layer(const models::LinearUnit& u, const LayerQuant& q) {
  Layer L;
  L.name = u.name;
  L.prec = q.precision;
  L.linear = true;
  L.kind = Kind::gemm;
  L.cin = u.in, L.cout = u.out, L.K = u.in;
  set_clamp(L, models::CnnStep::Act::none);
  set_input(L, q);
  if (L.prec == Precision::int4) L.group = effective_int4_group("cnn", L.name, q.weight_group, L.K);
  const Tensor w = u.weight.contiguous(), b = u.bias.contiguous();  // [out, in], [out]
  L.bias.assign(b.data<float>(), b.data<float>() + u.out);
  pack_gemm_weights(L, w.data<float>(), q, false);
  return L;
}

size_t Layer::weight_bytes() const {
  switch (kind) {
    case Kind::depthwise:
      if (prec == Precision::fp32 || prec == Precision::bf16) return dw_f32.weight_bytes();
      if (prec == Precision::fp16) return dw_f16.weight_bytes();
      return dw_q8.weight_bytes();
    case Kind::gemm:
    case Kind::im2col_gemm:
      return w.bytes();
  }
  return 0;
}

bool Layer::can_write(DType d) const {
  if (d != DType::f16) return true;  // every path writes f32 and u8
  // f16 output: our fp32 epilogue, the f16 GEMM and the depthwise kernels; the integer and bf16 GEMMs
  // offer only f32 / u8 (ops/kernels/lowp.h).
  return kind == Kind::depthwise || prec == Precision::fp32 || prec == Precision::fp16;
}

Geom conv_geom(const Layer& L, int64_t H, int64_t W) {
  Geom g;
  g.H = H, g.W = W;
  if (L.linear) {
    g.OH = g.OW = 1;
    return g;
  }
  if (L.pad == models::PadMode::symmetric) {
    g.pad_top = g.pad_bottom = g.pad_left = g.pad_right = L.k / 2;
  } else {  // TF SAME (models/cnn_common.cpp): out = ceil(in / s), extra pixel at the bottom / right
    auto same = [&](int64_t in, int64_t& before, int64_t& after) {
      const int64_t out = (in + L.stride - 1) / L.stride;
      const int64_t total = std::max<int64_t>((out - 1) * L.stride + L.k - in, 0);
      before = total / 2, after = total - total / 2;
    };
    same(H, g.pad_top, g.pad_bottom);
    same(W, g.pad_left, g.pad_right);
  }
  g.OH = (H + g.pad_top + g.pad_bottom - L.k) / L.stride + 1;
  g.OW = (W + g.pad_left + g.pad_right - L.k) / L.stride + 1;
  check(g.OH > 0 && g.OW > 0, "native: layer '{}' ({}x{} kernel, stride {}) gets an empty output from a {}x{} input",
        L.name, L.k, L.k, L.stride, H, W);
  return g;
}

kernels::ConvGeom kernel_geom(const Layer& L, const Geom& g) {
  return kernels::conv_geom(g.H, g.W, L.cin, L.cin, L.k, L.k, L.stride, L.stride, g.pad_top, g.pad_left, g.pad_bottom,
                            g.pad_right);
}

namespace {

DType lowp_out(DType d) { return d == DType::f32 ? DType::f32 : d == DType::f16 ? DType::f16 : DType::u8; }

// The fused epilogue of layer L writing `out`; residual rows start at element `res_off` of io.res.
kernels::LowpEpilogue make_ep(const Layer& L, const LayerIO& io, int64_t res_off) {
  kernels::LowpEpilogue ep;
  ep.bias = L.bias.data();
  ep.clamp_lo = L.lo, ep.clamp_hi = L.hi;
  ep.out = lowp_out(io.out.dt);
  ep.out_scale = io.out.scale, ep.out_zp = io.out.zp;
  if (io.res) {
    check(io.res_fmt.dt != DType::f16, "native: layer '{}' residual is f16 (the epilogue reads f32 or u8)", L.name);
    ep.residual = io.res + res_off * kernels::act_bytes(io.res_fmt.dt);
    ep.residual_u8 = io.res_fmt.dt == DType::u8;
    ep.ld_res = L.cout;
    ep.res_scale = io.res_fmt.scale, ep.res_zp = io.res_fmt.zp;
  }
  return ep;
}

// The epilogue of ops/kernels/lowp.h (same f32 operations in the same order as lowp_epilogue_scalar) over an
// f32 accumulator acc [M, N] (fp32 layers: gemm_f32 has no epilogue). C [M, N] may alias acc.
template <class Store>
void epilogue_loop(const float* acc, int64_t M, int64_t N, const kernels::LowpEpilogue& ep, Store store) {
  const float lo = ep.clamp_lo, hi = ep.clamp_hi;
#pragma omp parallel for if (M * N >= (1 << 15)) schedule(static)
  for (int64_t m = 0; m < M; ++m) {
    const float* a = acc + m * N;
    const float* rf = ep.residual && !ep.residual_u8 ? static_cast<const float*>(ep.residual) + m * ep.ld_res : nullptr;
    const uint8_t* ru =
        ep.residual && ep.residual_u8 ? static_cast<const uint8_t*>(ep.residual) + m * ep.ld_res : nullptr;
    for (int64_t n = 0; n < N; ++n) {
      float y = a[n] + ep.bias[n];  // fma(f, 1, bias) == f + bias
      if (rf) y = y + rf[n];
      if (ru) y = std::fma(float(int32_t(ru[n]) - ep.res_zp), ep.res_scale, y);
      y = y > lo ? y : lo;
      y = y < hi ? y : hi;
      store(m * N + n, y);
    }
  }
}

void epilogue_f32(const float* acc, int64_t M, int64_t N, const kernels::LowpEpilogue& ep, void* C) {
  switch (ep.out) {
    case DType::f32: {
      float* y = static_cast<float*>(C);
      epilogue_loop(acc, M, N, ep, [y](int64_t i, float v) { y[i] = v; });
      break;
    }
    case DType::f16: {
      uint16_t* y = static_cast<uint16_t*>(C);
      epilogue_loop(acc, M, N, ep, [y](int64_t i, float v) { y[i] = f32_to_f16(v); });
      break;
    }
    case DType::u8: {
      uint8_t* y = static_cast<uint8_t*>(C);
      const float inv = 1.0f / ep.out_scale, zp = float(ep.out_zp);
      epilogue_loop(acc, M, N, ep, [y, inv, zp](int64_t i, float v) {
        float t = v * inv + 0.0f;
        t = t + zp;
        t = t > 0.0f ? t : 0.0f;
        t = t < 255.0f ? t : 255.0f;
        y[i] = uint8_t(std::nearbyint(t));
      });
      break;
    }
    default:  // refused by the GEMM argument checks before any store
      break;
  }
}

// The arguments of one GEMM of layer L: C [M, cout] = epilogue(A [M, lda] * W^T); only the member of L's
// precision is filled. fp32: gemm_f32 writes `acc` (C itself when the output is f32), the epilogue follows.
struct AnyGemmArgs {
  kernels::GemmArgs f32{};
  kernels::F16GemmArgs f16;
  kernels::BF16GemmArgs bf16;
  kernels::Q8GemmArgs q8;
  kernels::Q4GemmArgs q4;
};

AnyGemmArgs gemm_args(const Layer& L, int64_t M, const uint8_t* A, int64_t lda, uint8_t* C,
                      const kernels::LowpEpilogue& ep, float* acc) {
  AnyGemmArgs a;
  switch (L.prec) {
    case Precision::fp32: {
      float* out = ep.out == DType::f32 ? reinterpret_cast<float*>(C) : acc;
      a.f32 = kernels::GemmArgs{
          M,   L.cout, L.K, reinterpret_cast<const float*>(A), lda, false, L.w.f32.data(), L.cout, false,
          out, L.cout, 0.0f};
      break;
    }
    case Precision::fp16: {
      kernels::F16GemmArgs& g = a.f16;
      g.M = M, g.A = A, g.lda = lda, g.a_f32 = false, g.w = &L.w.f16, g.C = C, g.ldc = L.cout, g.ep = ep;
      break;
    }
    case Precision::bf16: {
      kernels::BF16GemmArgs& g = a.bf16;  // f32 A, rounded RNE to bf16 in the kernel (= the fake-quant rounding)
      g.M = M, g.A = A, g.lda = lda, g.a_f32 = true, g.w = &L.w.bf16, g.C = C, g.ldc = L.cout, g.ep = ep;
      break;
    }
    case Precision::int8: {
      kernels::Q8GemmArgs& g = a.q8;
      g.M = M, g.A = A, g.lda = lda, g.sa = L.in.scale, g.za = L.in.zp, g.w = &L.w.q8, g.C = C, g.ldc = L.cout;
      g.ep = ep;
      break;
    }
    case Precision::int4: {
      kernels::Q4GemmArgs& g = a.q4;
      g.M = M, g.A = A, g.lda = lda, g.sa = L.in.scale, g.za = L.in.zp, g.w = &L.w.q4, g.C = C, g.ldc = L.cout;
      g.ep = ep;
      if (L.w.q8.N > 0) {  // widened codes: the int8 kernels can run this layer too
        kernels::Q8GemmArgs& h = a.q8;
        h.M = M, h.A = A, h.lda = lda, h.sa = L.in.scale, h.za = L.in.zp, h.w = &L.w.q8, h.C = C, h.ldc = L.cout;
        h.ep = ep;
      }
      break;
    }
  }
  return a;
}

void gemm(const Layer& L, const GemmFn& fn, int64_t M, const uint8_t* A, int64_t lda, uint8_t* C,
          const kernels::LowpEpilogue& ep, float* acc) {
  const AnyGemmArgs a = gemm_args(L, M, A, lda, C, ep, acc);
  switch (L.prec) {
    case Precision::fp32:
      fn.f32(a.f32);
      epilogue_f32(a.f32.C, M, L.cout, ep, C);
      break;
    case Precision::fp16:
      fn.f16(a.f16);
      break;
    case Precision::bf16:
      fn.bf16(a.bf16);
      break;
    case Precision::int8:
      fn.q8(a.q8);
      break;
    case Precision::int4:
      if (fn.q8)
        fn.q8(a.q8);  // an int8 kernel on the widened int4 codes
      else
        fn.q4(a.q4);
      break;
  }
}

// The arguments of the first GEMM call of run_layer_ours (what the dispatcher's choice depends on).
AnyGemmArgs first_gemm_args(const Layer& L, const Geom& g, const LayerIO& io) {
  const bool col = L.kind == Kind::im2col_gemm;
  const int64_t M = col ? g.OH * g.OW : io.N * g.OH * g.OW;
  return gemm_args(L, M, col ? io.col : io.x, col ? L.K : L.cin, io.y, make_ep(L, io, 0), io.acc);
}

// The list's autotune candidates for `args` (KernelList::candidates) as GemmFn entries.
template <class List, class Args, class Set>
std::vector<GemmFn> list_entries(const List& list, const Args& args, bool all, Set set,
                                 const typename List::Impl* first_entry = nullptr) {
  std::vector<GemmFn> out;
  for (const auto* impl : list.candidates(args, all, first_entry)) {
    GemmFn& f = out.emplace_back();
    f.name = impl->name;
    set(f, impl->fn);
  }
  return out;
}

// im2col of a u8 NHWC image with columns in PyTorch order: col [OH*OW, C*KH*KW], column (c*KH + kh)*KW + kw
// of row oh*OW + ow = x[oh*sh - pt + kh, ow*sw - pl + kw, c], or `pad` (the zero point) outside the image.
void im2col_torch_order_u8(const uint8_t* x, const kernels::ConvGeom& g, uint8_t pad, uint8_t* col) {
  const int64_t KK = g.KH * g.KW, K = g.C * KK;
#pragma omp parallel for if (g.OH * g.OW * K >= (1 << 16)) schedule(static)
  for (int64_t oh = 0; oh < g.OH; ++oh)
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      uint8_t* row = col + (oh * g.OW + ow) * K;
      for (int64_t kh = 0; kh < g.KH; ++kh)
        for (int64_t kw = 0; kw < g.KW; ++kw) {
          const int64_t ih = oh * g.stride_h - g.pad_top + kh, iw = ow * g.stride_w - g.pad_left + kw;
          const int64_t t = kh * g.KW + kw;
          if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) {
            for (int64_t c = 0; c < g.C; ++c) row[c * KK + t] = pad;
          } else {
            const uint8_t* src = x + (ih * g.W + iw) * g.ldx;
            for (int64_t c = 0; c < g.C; ++c) row[c * KK + t] = src[c];
          }
        }
    }
}

// The implicit-GEMM conv of int4 layer L on image n of io (L.kind == im2col_gemm, column order (kh, kw, c)).
kernels::Q4ConvArgs q4_conv_args(const Layer& L, const Geom& g, const LayerIO& io, int64_t n) {
  const int64_t out_img = g.OH * g.OW * L.cout;
  kernels::Q4ConvArgs a;
  a.g = kernel_geom(L, g), a.x = io.x + n * g.H * g.W * L.cin, a.sa = L.in.scale, a.za = L.in.zp, a.w = &L.w.q4;
  a.C = io.y + n * out_img * kernels::act_bytes(io.out.dt), a.ldc = L.cout, a.ep = make_ep(L, io, n * out_img);
  return a;
}

}  // namespace

std::vector<GemmFn> gemm_candidates(const Layer& L, const Geom& g, const LayerIO& io, bool all) {
  const AnyGemmArgs a = first_gemm_args(L, g, io);
  switch (L.prec) {
    case Precision::fp32:
      return list_entries(kernels::gemm_f32_list(), a.f32, all, [](GemmFn& f, kernels::GemmFn fn) { f.f32 = fn; });
    case Precision::fp16:
      return list_entries(kernels::gemm_f16_list(), a.f16, all, [](GemmFn& f, kernels::F16GemmFn fn) { f.f16 = fn; });
    case Precision::bf16:
      return list_entries(kernels::gemm_bf16_list(), a.bf16, all,
                          [](GemmFn& f, kernels::BF16GemmFn fn) { f.bf16 = fn; });
    case Precision::int8:
      return list_entries(kernels::gemm_qu8_qc8w_list(), a.q8, all, [](GemmFn& f, kernels::Q8GemmFn fn) { f.q8 = fn; });
    case Precision::int4: {
      if (L.w.widened()) {  // widened codes: the int8 kernels, as fast as int8
        return list_entries(
            kernels::gemm_qu8_qc8w_list(), a.q8, all, [](GemmFn& f, kernels::Q8GemmFn fn) { f.q8 = fn; },
            &widened_int4_kernel(a.q8));
      }
      std::vector<GemmFn> out;
      if (L.kind == Kind::im2col_gemm && !L.torch_order) {  // the implicit-GEMM conv first, then im2col + GEMM
        out = list_entries(kernels::conv_qu8_qc4w_list(), q4_conv_args(L, g, io, 0), all,
                           [](GemmFn& f, kernels::Q4ConvFn fn) { f.q4conv = fn; });
        if (!all) return out;
      }
      for (const GemmFn& f :
           list_entries(kernels::gemm_qu8_qc4w_list(), a.q4, all, [](GemmFn&f, kernels::Q4GemmFn fn) { f.q4 = fn; }))
        out.push_back(f);
      return out;
    }
  }
  return {};
}

const char* depthwise_impl_name(const Layer& L, const Geom& g, const LayerIO& io) {
  const kernels::ConvGeom kg = kernel_geom(L, g);
  const kernels::LowpEpilogue ep = make_ep(L, io, 0);
  switch (L.prec) {
    case Precision::fp32:
    case Precision::bf16: {
      kernels::DwF32Args a;
      a.g = kg, a.x = io.x, a.w = &L.dw_f32, a.y = io.y, a.ldy = L.cout, a.ep = ep;
      return kernels::dwconv_f32_list().select(a).name;
    }
    case Precision::fp16: {
      kernels::DwF16Args a;
      a.g = kg, a.x = io.x, a.w = &L.dw_f16, a.y = io.y, a.ldy = L.cout, a.ep = ep;
      return kernels::dwconv_f16_list().select(a).name;
    }
    case Precision::int8:
    case Precision::int4: {
      kernels::DwQ8Args a;
      a.g = kg, a.x = io.x, a.w = &L.dw_q8, a.y = io.y, a.ldy = L.cout, a.ep = ep, a.sa = L.in.scale, a.za = L.in.zp;
      return kernels::dwconv_qu8_qc8w_list().select(a).name;
    }
  }
  return "";
}

void run_layer_ours(const Layer& L, const Geom& g, const LayerRun& r, const LayerIO& io) {
  const int64_t ib = kernels::act_bytes(L.in.dt), ob = kernels::act_bytes(io.out.dt);
  const int64_t in_img = g.H * g.W * L.cin, out_img = g.OH * g.OW * L.cout;  // elements per image
  switch (L.kind) {
    case Kind::gemm:
      gemm(L, r.gemm, io.N * g.OH * g.OW, io.x, L.cin, io.y, make_ep(L, io, 0), io.acc);
      return;
    case Kind::im2col_gemm: {
      const kernels::ConvGeom kg = kernel_geom(L, g);
      const uint8_t pad_u8 = uint8_t(L.in.zp);
      const uint16_t pad_f16 = 0;
      const float pad_f32 = 0.0f;
      const void* pad = L.in.dt == DType::u8    ? static_cast<const void*>(&pad_u8)
                        : L.in.dt == DType::f16 ? static_cast<const void*>(&pad_f16)
                                                : static_cast<const void*>(&pad_f32);
      for (int64_t n = 0; n < io.N; ++n) {
        if (r.gemm.q4conv) {  // int4: im2col rows gathered inside the conv kernel
          r.gemm.q4conv(q4_conv_args(L, g, io, n));
          continue;
        }
        const uint8_t* xn = io.x + n * in_img * ib;
        if (L.torch_order)
          im2col_torch_order_u8(xn, kg, pad_u8, io.col);
        else
          kernels::im2col_nhwc(xn, ib, kg, pad, io.col);
        gemm(L, r.gemm, g.OH * g.OW, io.col, L.K, io.y + n * out_img * ob, make_ep(L, io, n * out_img), io.acc);
      }
      return;
    }
    case Kind::depthwise: {
      const kernels::ConvGeom kg = kernel_geom(L, g);
      for (int64_t n = 0; n < io.N; ++n) {
        const kernels::LowpEpilogue ep = make_ep(L, io, n * out_img);
        const uint8_t* xn = io.x + n * in_img * ib;
        uint8_t* yn = io.y + n * out_img * ob;
        switch (L.prec) {
          case Precision::fp32:
          case Precision::bf16: {  // bf16: the input was rounded to bf16 by the caller
            kernels::DwF32Args a;
            a.g = kg, a.x = xn, a.w = &L.dw_f32, a.y = yn, a.ldy = L.cout, a.ep = ep;
            kernels::dwconv_f32(a);
            break;
          }
          case Precision::fp16: {
            kernels::DwF16Args a;
            a.g = kg, a.x = xn, a.w = &L.dw_f16, a.y = yn, a.ldy = L.cout, a.ep = ep;
            kernels::dwconv_f16(a);
            break;
          }
          case Precision::int8:
          case Precision::int4: {
            kernels::DwQ8Args a;
            a.g = kg, a.x = xn, a.w = &L.dw_q8, a.y = yn, a.ldy = L.cout, a.ep = ep;
            a.sa = L.in.scale, a.za = L.in.zp;
            kernels::dwconv_qu8_qc8w(a);
            break;
          }
        }
      }
      return;
    }
  }
}

}  // namespace mpq::native::cnn
