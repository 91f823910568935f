// The oneDNN convolution alternative of a compiled CNN layer (see cnn_native_onednn.h).
#include "models/native/cnn_native_onednn.h"

#include <fmt/format.h>

#include <cstring>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/kernels/onednn/onednn_context.h"
#include "ops/kernels/quantize_weights.h"

namespace mpq::native::cnn {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

class DnnConv final : public OnednnConv {
 public:
  dnnl::convolution_forward prim;
  memory::desc src_md, dst_md, res_md, bias_md;
  mutable memory wts;  // weights in the primitive's layout (owned; an int4 layer: io.dnn_w at run)
  // int4 layer above the widening limit: the primitive's s8 weight buffer kept as split nibbles, widened into
  // io.dnn_w on every call; the buffer's bytes past the s8 values (oneDNN's zero-point compensation) are
  // kept as they are
  kernels::AlignedBytes w4;    // split nibbles of [w4_n] s8 values
  int64_t w4_n = 0;            // padded weight elements of the primitive's layout
  std::vector<uint8_t> extra;  // [weights_desc size - w4_n] bytes
  std::vector<float> bias;     // [cout] f32 (int8: in the accumulator domain)
  bool bf16_src = false;
  int64_t src_elems = 0;  // N * H * W * cin
  bool zp_src = false, zp_dst = false, has_res = false;
  int32_t src_zp = 0, dst_zp = 0;
  // Execution arguments built once; run() only points src / dst / residual at this call's buffers, so a run
  // allocates nothing. run() is not reentrant (as CnnNative::run).
  mutable memory src, dst, res;
  mutable std::unordered_map<int, memory> args;

  void bind() {
    auto& eng = onednn::engine();
    src = memory(src_md, eng, DNNL_MEMORY_NONE);
    dst = memory(dst_md, eng, DNNL_MEMORY_NONE);
    args = {{DNNL_ARG_SRC, src},
            {DNNL_ARG_WEIGHTS, wts},
            {DNNL_ARG_BIAS, memory(bias_md, eng, bias.data())},
            {DNNL_ARG_DST, dst}};
    if (zp_src) args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC, memory({{1}, dt::s32, tag::x}, eng, &src_zp));
    if (zp_dst) args.emplace(DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST, memory({{1}, dt::s32, tag::x}, eng, &dst_zp));
    if (has_res) {
      res = memory(res_md, eng, DNNL_MEMORY_NONE);
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, res);
    }
  }

  // Widens the int4 weights into io.dnn_w and points the primitive at them. One thread below
  // kWidenTeamMinValues: waking the team for a parallel region cost more than it saved there (bench_q4conv,
  // Zen 5, 2 threads: ResNet50 stage-3 3x3, 590 Ki values, one thread 161 us vs team 169 us per conv call;
  // stage 4, 2.4 Mi values, 237 vs 225 us).
  void widen_weights(const LayerIO& io) const {
    int8_t* w = reinterpret_cast<int8_t*>(io.dnn_w->data());  // [w4_n + extra.size()] the primitive's layout
    constexpr int64_t kWidenTeamMinValues = int64_t(1) << 20;
    if (w4_n < kWidenTeamMinValues)
      kernels::widen_s4_s8({w4.data(), w4_n, w});
    else
      kernels::widen_s4_s8_team({w4.data(), w4_n, w});
    if (!extra.empty()) std::memcpy(w + w4_n, extra.data(), extra.size());
    wts.set_data_handle(w);
  }

  void run(const LayerIO& io) const override {
    const void* x = io.x;
    if (bf16_src) {  // RNE to bf16, the rounding our bf16 GEMM applies to its f32 A at the boundary
      const float* xf = reinterpret_cast<const float*>(io.x);
      uint16_t* y = reinterpret_cast<uint16_t*>(io.dnn_in);  // [N, H, W, cin] bf16
      const int64_t n = src_elems;
#pragma omp parallel for if (n >= (1 << 16)) schedule(static)
      for (int64_t i = 0; i < n; ++i) y[i] = f32_to_bf16(xf[i]);
      x = io.dnn_in;
    }
    src.set_data_handle(const_cast<void*>(x));
    dst.set_data_handle(io.y);
    const FixedTeam team;  // the team size the primitive was created for (see make)
    if (w4_n > 0) widen_weights(io);
    if (has_res) res.set_data_handle(const_cast<uint8_t*>(io.res));
    prim.execute(onednn::stream(), args);
    onednn::stream().wait();
  }
};

// Plain weights [cout][cin][k][k] (dense) or [C][1][1][k][k] (depthwise) from L's packed weights, as T.
template <class T, class Get>
std::vector<T> plain_weights(const Layer& L, Get get) {
  std::vector<T> w(size_t(L.cout * (L.kind == Kind::depthwise ? 1 : L.cin) * L.k * L.k));
  if (L.kind == Kind::depthwise) {  // get(tap, channel)
    for (int64_t c = 0; c < L.cout; ++c)
      for (int64_t t = 0; t < L.k * L.k; ++t) w[size_t(c * L.k * L.k + t)] = get(t, c);
    return w;
  }
  for (int64_t o = 0; o < L.cout; ++o)  // get(o, column) with column (kh*k + kw)*cin + c
    for (int64_t c = 0; c < L.cin; ++c)
      for (int64_t t = 0; t < L.k * L.k; ++t) w[size_t((o * L.cin + c) * L.k * L.k + t)] = get(o, t * L.cin + c);
  return w;
}

// An int4 layer's weights, reordered into the primitive's s8 layout in c.wts: keeps them as split nibbles and
// lets c.wts point at io.dnn_w from now on. False when the layout is not a dense run of s8 values in [-8, 7]
// followed by extra bytes (a layout that scaled or offset the codes cannot be held in 4 bits).
bool keep_int4(DnnConv& c, const LayerIO& io) {
  const memory::desc md = c.wts.get_desc();
  int64_t n = 1;
  for (int i = 0; i < md.data.ndims; ++i) n *= md.data.padded_dims[i];
  const int64_t total = int64_t(md.get_size());
  if (md.data.offset0 != 0 || n > total) return false;
  const int8_t* w = static_cast<const int8_t*>(c.wts.get_data_handle());  // [total] bytes
  c.w4.alloc(size_t(kernels::split_nibble_bytes(n)));
  if (!kernels::pack_s4_split(w, n, c.w4.data())) return false;
  c.w4_n = n;
  c.extra.assign(reinterpret_cast<const uint8_t*>(w) + n, reinterpret_cast<const uint8_t*>(w) + total);
  if (io.dnn_w->bytes < size_t(total)) io.dnn_w->alloc(size_t(total));
  c.wts = memory(md, onednn::engine(), io.dnn_w->data());
  return true;
}

}  // namespace

std::shared_ptr<OnednnConv> OnednnConv::make(const Layer& L, const Geom& g, const LayerIO& io) {
  const bool dw = L.kind == Kind::depthwise;
  if (L.linear || L.torch_order) return nullptr;
  // int4 runs as int8 on the same codes: depthwise layers always hold them in dw_q8, small GEMM layers in
  // w.q8 (kWidenedInt4MaxWeights), larger per-channel ones keep the primitive's weights in 4 bits and widen
  // them on every call (io.dnn_w); one scale per group of inputs is not an int8 layer
  if (L.prec == Precision::fp16) return nullptr;
  const bool q4_per_call = L.prec == Precision::int4 && !dw && L.w.q8.N == 0;
  if (q4_per_call && (L.group != 0 || io.dnn_w == nullptr)) return nullptr;
  if (io.res && io.res_fmt.dt != DType::f32) return nullptr;
  const bool q8 = precision_is_integer(L.prec);
  if (io.out.dt == DType::f16 || (!q8 && io.out.dt != DType::f32)) return nullptr;
  const bool u8_out = io.out.dt == DType::u8;
  if (u8_out && io.res) return nullptr;  // the residual would have to be added in the u8 output's scaled domain

  const FixedTeam team;  // oneDNN plans the primitive's work for this team; run() pins the same
  auto c = std::make_shared<DnnConv>();
  auto& eng = onednn::engine();
  const dt src_dt = q8 ? dt::u8 : L.prec == Precision::bf16 ? dt::bf16 : dt::f32;
  const dt wei_dt = q8 ? dt::s8 : L.prec == Precision::bf16 ? dt::bf16 : dt::f32;
  const memory::dims src_dims{io.N, L.cin, g.H, g.W}, dst_dims{io.N, L.cout, g.OH, g.OW};
  const memory::dims wdims = dw ? memory::dims{L.cout, 1, 1, L.k, L.k} : memory::dims{L.cout, L.cin, L.k, L.k};
  c->src_md = memory::desc(src_dims, src_dt, tag::nhwc);
  c->dst_md = memory::desc(dst_dims, u8_out ? dt::u8 : dt::f32, tag::nhwc);
  c->bias_md = memory::desc({L.cout}, dt::f32, tag::x);
  c->bf16_src = L.prec == Precision::bf16;
  c->src_elems = io.N * g.H * g.W * L.cin;

  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  float inv_os = 1.0f;
  c->bias = L.bias;
  if (q8) {
    const float* ws = dw ? L.dw_q8.scale.data() : q4_per_call ? L.w.q4.scale.data() : L.w.q8.scale.data();  // [cout]
    inv_os = u8_out ? 1.0f / io.out.scale : 1.0f;
    std::vector<float> osc(size_t(L.cout));  // [cout]
    for (int64_t o = 0; o < L.cout; ++o) {
      osc[size_t(o)] = L.in.scale * ws[o] * inv_os;
      c->bias[size_t(o)] = L.bias[size_t(o)] / (L.in.scale * ws[o]);  // accumulator domain
    }
    attr.set_output_scales(1 << 1, osc);
    c->src_zp = L.in.zp, c->zp_src = L.in.zp != 0;
    if (c->zp_src) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    c->dst_zp = io.out.zp, c->zp_dst = u8_out && io.out.zp != 0;
    if (c->zp_dst) attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
  }
  if (io.res) {
    c->res_md = memory::desc(dst_dims, dt::f32, tag::nhwc);
    c->has_res = true;
    ops.append_binary(dnnl::algorithm::binary_add, c->res_md);
  }
  const float inf = std::numeric_limits<float>::infinity();
  if (L.lo == 0.0f && L.hi == inf)
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  else if (!(L.lo == -inf && L.hi == inf))
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, L.lo * inv_os, L.hi * inv_os);
  attr.set_post_ops(ops);

  using F = dnnl::convolution_forward;
  const memory::desc w_any(wdims, wei_dt, tag::any);
  const F::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, c->src_md, w_any, c->bias_md,
                  c->dst_md, {L.stride, L.stride}, {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right});
  std::unique_ptr<F::primitive_desc> pd;
  try {
    pd = std::make_unique<F::primitive_desc>(d, attr, eng);
  } catch (const dnnl::error&) {
    return nullptr;  // no implementation for this combination
  }
  const std::string impl = pd->impl_info_str();
  if (impl.rfind("ref", 0) == 0) return nullptr;  // oneDNN's reference code: never the faster one
  c->prim = F(*pd);

  // Weights: L's packed values -> plain -> the primitive's layout, once.
  const memory::desc plain_md(wdims, wei_dt, dw ? tag::goihw : tag::oihw);
  c->wts = memory(pd->weights_desc(), eng);
  auto reorder_in = [&](void* data) {
    memory src(plain_md, eng, data);
    dnnl::reorder(src, c->wts).execute(onednn::stream(), src, c->wts);
    onednn::stream().wait();
  };
  if (q8) {
    std::vector<int8_t> w = dw ? plain_weights<int8_t>(L, [&](int64_t t, int64_t ch) { return L.dw_q8.at(t, ch); })
                            : q4_per_call
                                ? plain_weights<int8_t>(L, [&](int64_t o, int64_t k) { return L.w.q4.at(o, k); })
                                : plain_weights<int8_t>(L, [&](int64_t o, int64_t k) { return L.w.q8.at(o, k); });
    reorder_in(w.data());
    if (q4_per_call && !keep_int4(*c, io)) return nullptr;
  } else if (L.prec == Precision::bf16) {
    std::vector<uint16_t> w =
        dw ? plain_weights<uint16_t>(L, [&](int64_t t, int64_t ch) { return f32_to_bf16(L.dw_f32.at(t, ch)); })
           : plain_weights<uint16_t>(L, [&](int64_t o, int64_t k) { return L.w.bf16.at(o, k); });
    reorder_in(w.data());
  } else {
    std::vector<float> w =
        dw ? plain_weights<float>(L, [&](int64_t t, int64_t ch) { return L.dw_f32.at(t, ch); })
           : plain_weights<float>(L, [&](int64_t o, int64_t k) { return L.w.f32[size_t(k * L.cout + o)]; });
    reorder_in(w.data());
  }
  c->bind();
  c->name_ = fmt::format("{}conv_{}{}__onednn({})", q4_per_call ? "q4_widened_per_call+" : "",
                         q8                          ? "u8s8"
                         : L.prec == Precision::bf16 ? "bf16"
                                                     : "f32",
                         dw ? "_dw" : "", impl);
  return c;
}

}  // namespace mpq::native::cnn
