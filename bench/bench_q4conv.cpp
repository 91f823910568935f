// The dense convs of ResNet50 / MobileNetV2 that run as im2col GEMMs (the stems, the 3x3 convs), batch 1,
// u8 -> u8 with bias + ReLU: our W4A8 implicit-GEMM conv (conv_qu8_qc4w list entries), our W4A8 im2col +
// GEMM, and oneDNN 2.6's u8s8 int8 convolution (what uniform int8 runs on these layers after autotuning;
// NHWC activations, weights reordered once to the primitive's layout), in the same run, shape by shape; and
// that oneDNN convolution on int4 codes whose weights are kept in 4 bits (split nibbles) and widened on every
// call, by one thread (q4/onednn_widen1) or by the team (q4/onednn_widen_team), as the CNN executor's
// OnednnConv does for a per-channel int4 layer; and that widening alone (q4/widen_team_alone).
//
//   build/bench_q4conv --benchmark_min_time=0.2 --benchmark_repetitions=5 --benchmark_report_aggregates_only
//   MPQ_BENCH_THREADS=1 build/bench_q4conv ...     (one core)
//
// Counter: GOP/s = 2 * OH*OW * N * K per call over real time.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/threading.h"
#include "ops/kernels/nhwc.h"
#include "ops/kernels/onednn/onednn_context.h"
#include "ops/kernels/quantize_weights.h"

namespace {

using namespace mpq::kernels;

using mpq::bench::threads;  // MPQ_BENCH_THREADS, else 2

struct ConvShape {
  const char* name;
  int64_t H, C, k, stride, N;
  bool same;  // TF SAME padding (MobileNetV2), else symmetric k / 2 (torchvision / Keras ResNet50 via pads)
};

const ConvShape kShapes[] = {
    {"rn50_stem_7x7s2", 224, 3, 7, 2, 64, false}, {"mnv2_stem_3x3s2", 224, 3, 3, 2, 32, true},
    {"rn50_s1_3x3", 56, 64, 3, 1, 64, false},     {"rn50_s2_3x3", 28, 128, 3, 1, 128, false},
    {"rn50_s3_3x3", 14, 256, 3, 1, 256, false},   {"rn50_s4_3x3", 7, 512, 3, 1, 512, false},
};

ConvGeom geom(const ConvShape& s) {
  return s.same ? conv_geom_same(s.H, s.H, s.C, 0, s.k, s.k, s.stride, s.stride)
                : conv_geom(s.H, s.H, s.C, 0, s.k, s.k, s.stride, s.stride, s.k / 2, s.k / 2, s.k / 2, s.k / 2);
}

std::vector<uint8_t> rand_bytes(size_t n, unsigned seed, int lo, int hi) {
  return mpq::bench::rand_vec<uint8_t>(n, seed, lo, hi);
}

template <class Fn>
void loop(benchmark::State& st, const ConvGeom& g, int64_t N, Fn fn) {
  fn();  // warm-up (oneDNN: primitive creation is outside; our scratch buffers are sized here)
  for (auto _ : st) {
    fn();
    benchmark::ClobberMemory();
  }
  st.counters["GOP/s"] = benchmark::Counter(
      2e-9 * double(g.OH * g.OW * N * g.KH * g.KW * g.C) * double(st.iterations()), benchmark::Counter::kIsRate);
}

// variant: an entry name of conv_qu8_qc4w_list(), or "im2col+gemm" (im2col_nhwc, then the gemm_qu8_qc4w
// dispatcher's choice on the materialised matrix).
void bm_q4(benchmark::State& st, ConvShape s, std::string variant) {
  mpq::set_num_threads(threads());
  const ConvGeom g = geom(s);
  const int64_t K = s.k * s.k * s.C, M = g.OH * g.OW;
  const auto x = rand_bytes(size_t(s.H * s.H * s.C), 1, 0, 255);       // [H, W, C] u8
  const auto wq = rand_bytes(size_t(s.N * ((K + 1) / 2)), 2, 0, 255);  // q4 [N, ceil(K/2)]
  const std::vector<float> sw(size_t(s.N), 0.01f), bias(size_t(s.N), 0.5f);
  const PackedQ4W pw = pack_q4w(wq.data(), s.N, K, 0, sw.data());
  std::vector<uint8_t> y(size_t(M * s.N)), col(size_t(M * K));  // [OH*OW, N] u8, [OH*OW, K] u8
  Q4ConvArgs a;
  a.g = g, a.x = x.data(), a.sa = 0.02f, a.za = 128, a.w = &pw, a.C = y.data(), a.ldc = s.N;
  a.ep.bias = bias.data(), a.ep.clamp_lo = 0.0f, a.ep.out = mpq::DType::u8, a.ep.out_scale = 0.05f;
  if (variant == "im2col+gemm") {
    const Q4GemmArgs ga = q4_conv_gemm_args(a, col.data());
    const uint8_t pad = 128;
    st.SetLabel(std::string("im2col_nhwc+") + gemm_qu8_qc4w_list().select(ga).name);
    loop(st, g, s.N, [&] {
      im2col_nhwc(x.data(), 1, g, &pad, col.data());
      gemm_qu8_qc4w(ga);
    });
    return;
  }
  for (const auto& i : conv_qu8_qc4w_list().impls())
    if (variant == i.name) {
      if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
      st.SetLabel(i.name);
      loop(st, g, s.N, [&] { i.fn(a); });
      return;
    }
  st.SkipWithError("no such implementation");
}

// How an int4 layer's weights reach the oneDNN int8 convolution.
enum class Widen { none, one_thread, team, team_alone };  // team_alone: the widening without the conv

// oneDNN u8 x s8 -> u8 convolution with per-channel output scales, source zero point, bias and ReLU: the
// primitive the CNN executor's autotuner picks for most of these layers in uniform int8. Weights are codes
// in [-8, 7] (an int4 layer's; the speed of an int8 one does not depend on the values).
void bm_onednn_q8(benchmark::State& st, ConvShape s, Widen widen) {
  using dnnl::memory;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  mpq::set_num_threads(threads());
  const ConvGeom g = geom(s);
  const auto x = rand_bytes(size_t(s.H * s.H * s.C), 1, 0, 255);  // [H, W, C] u8
  auto wq = rand_bytes(size_t(s.N * s.C * s.k * s.k), 2, 0, 15);  // [N, C, k, k] s8 bytes
  for (auto& v : wq) v = uint8_t(int8_t(int(v) - 8));
  std::vector<uint8_t> y(size_t(g.OH * g.OW * s.N));  // [OH, OW, N] u8
  const std::vector<float> bias(size_t(s.N), 0.5f);   // [N]
  auto& eng = mpq::onednn::engine();
  auto& strm = mpq::onednn::stream();
  const memory::desc src_md({1, s.C, s.H, s.H}, dt::u8, tag::nhwc), dst_md({1, s.N, g.OH, g.OW}, dt::u8, tag::nhwc);
  const memory::desc wei_any({s.N, s.C, s.k, s.k}, dt::s8, tag::any), bias_md({s.N}, dt::f32, tag::a);
  dnnl::primitive_attr attr;
  attr.set_output_scales(1 << 1, std::vector<float>(size_t(s.N), 0.02f * 0.01f / 0.05f));
  attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
  dnnl::post_ops po;
  po.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
  attr.set_post_ops(po);
  const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                          src_md, wei_any, bias_md, dst_md, {s.stride, s.stride},
                                          {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right});
  const dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  const dnnl::convolution_forward prim(pd);
  memory user_w({{s.N, s.C, s.k, s.k}, dt::s8, tag::oihw}, eng, const_cast<uint8_t*>(wq.data()));
  memory wts(pd.weights_desc(), eng);
  dnnl::reorder(user_w, wts).execute(strm, user_w, wts);
  strm.wait();
  memory src(src_md, eng, const_cast<uint8_t*>(x.data())), dst(dst_md, eng, y.data());
  memory b(bias_md, eng, const_cast<float*>(bias.data()));
  // the s8 values of the weight buffer in split nibbles; its zero-point compensation after them stays in
  // place, as in the executor
  const memory::desc wmd = pd.weights_desc();
  int64_t n = 1;
  for (int i = 0; i < wmd.data.ndims; ++i) n *= wmd.data.padded_dims[i];
  std::vector<uint8_t> w4(size_t(split_nibble_bytes(n)));
  const int8_t* w8 = static_cast<const int8_t*>(wts.get_data_handle());
  if (widen != Widen::none && !pack_s4_split(w8, n, w4.data()))
    return st.SkipWithError("the primitive's weight buffer holds values outside [-8, 7]");
  st.SetLabel(widen == Widen::team_alone
                  ? std::string("the widening alone (GOP/s counts the conv it feeds)")
                  : std::string(widen == Widen::none ? "onednn " : "onednn, int4 widened per call, ") +
                        pd.impl_info_str());
  loop(st, g, s.N, [&] {
    if (widen == Widen::one_thread) widen_s4_s8({w4.data(), n, static_cast<int8_t*>(wts.get_data_handle())});
    if (widen == Widen::team || widen == Widen::team_alone)
      widen_s4_s8_team({w4.data(), n, static_cast<int8_t*>(wts.get_data_handle())});
    if (widen == Widen::team_alone) return;
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}});
    strm.wait();
  });
}

}  // namespace

int main(int argc, char** argv) {
  for (const ConvShape& s : kShapes) {
    const std::string n = s.name;
    mpq::bench::register_us(n + "/q8/onednn", [s](benchmark::State& st) { bm_onednn_q8(st, s, Widen::none); });
    mpq::bench::register_us(n + "/q4/onednn_widen1",
                            [s](benchmark::State& st) { bm_onednn_q8(st, s, Widen::one_thread); });
    mpq::bench::register_us(n + "/q4/onednn_widen_team",
                            [s](benchmark::State& st) { bm_onednn_q8(st, s, Widen::team); });
    mpq::bench::register_us(n + "/q4/widen_team_alone",
                            [s](benchmark::State& st) { bm_onednn_q8(st, s, Widen::team_alone); });
    for (const auto& i : conv_qu8_qc4w_list().impls())
      if (i.isa != mpq::Isa::ref)
        mpq::bench::register_us(n + "/q4/" + i.name,
                                [s, v = std::string(i.name)](benchmark::State& st) { bm_q4(st, s, v); });
    mpq::bench::register_us(n + "/q4/im2col+gemm", [s](benchmark::State& st) { bm_q4(st, s, "im2col+gemm"); });
  }
  return mpq::bench::run_main(argc, argv);
}
