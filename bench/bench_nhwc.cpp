// NHWC depthwise conv on the MobileNetV2 shapes (224x224 input, TF SAME padding): our kernels (f32, f16,
// int8) next to oneDNN 2.6's depthwise convolution (f32 and u8s8; NHWC activations, weights reordered once
// to the primitive's layout before timing), in the same run, alternating per shape.
//
//   build/bench_nhwc --benchmark_min_time=0.2 --benchmark_repetitions=5 --benchmark_report_aggregates_only
//   MPQ_BENCH_THREADS=1 build/bench_nhwc ...      (one core)
//   --benchmark_enable_random_interleaving=true   (recommended on a shared machine: ours and oneDNN see
//                                                  the same background load)
//
// Every variant computes bias + ReLU6: f32 -> f32, f16 -> f16, int8 u8 -> u8 (requantized), which is
// what the MobileNetV2 executor runs between the expansion and projection 1x1 convs. Counters: GMAC/s
// (OH*OW*C*9 per call) and GB/s (input + output bytes per call); the label names the implementation
// (oneDNN: its impl_info_str, e.g. "jit_dw:avx512_core").
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <dnnl.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench_main.h"
#include "bench/bench_util.h"
#include "core/cpu_features.h"
#include "core/dtype.h"
#include "core/threading.h"
#include "ops/kernels/nhwc.h"
#include "ops/kernels/onednn/onednn_context.h"

namespace {

using namespace mpq::kernels;
using mpq::bench::threads;  // MPQ_BENCH_THREADS, else 2

struct DwShape {
  const char* name;
  int64_t H, C, stride;
};
// MobileNetV2's 17 depthwise layers reduce to these 10 distinct (input size, channels, stride) shapes.
const DwShape kShapes[] = {
    {"112x112x32_s1", 112, 32, 1}, {"112x112x96_s2", 112, 96, 2}, {"56x56x144_s1", 56, 144, 1},
    {"56x56x144_s2", 56, 144, 2},  {"28x28x192_s1", 28, 192, 1},  {"28x28x192_s2", 28, 192, 2},
    {"14x14x384_s1", 14, 384, 1},  {"14x14x576_s1", 14, 576, 1},  {"14x14x576_s2", 14, 576, 2},
    {"7x7x960_s1", 7, 960, 1},
};

using mpq::bench::rand_f;
std::vector<uint8_t> rand_u8(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(d(rng));
  return v;
}

void counters(benchmark::State& st, const ConvGeom& g, size_t in_bytes, size_t out_bytes) {
  const double it = double(st.iterations());
  st.counters["GMAC/s"] =
      benchmark::Counter(double(g.OH * g.OW * g.C * g.KH * g.KW) * it * 1e-9, benchmark::Counter::kIsRate);
  st.counters["GB/s"] = benchmark::Counter(double(in_bytes + out_bytes) * it * 1e-9, benchmark::Counter::kIsRate);
}

template <class Fn>
void loop(benchmark::State& st, Fn fn) {
  fn();  // warm-up
  for (auto _ : st) {
    fn();
    benchmark::ClobberMemory();
  }
}

template <class List>
typename List::Impl find_impl(const List& list, const std::string& name) {
  for (const auto& i : list.impls())
    if (name == i.name) return i;
  return list.impls().back();
}

// kind: f32 | f16 | q8; impl: a list entry name.
void bm_ours(benchmark::State& st, DwShape s, std::string kind, std::string impl) {
  mpq::set_num_threads(threads());
  const ConvGeom g = conv_geom_same(s.H, s.H, s.C, 0, 3, 3, s.stride, s.stride);
  const size_t nin = size_t(s.H * s.H * s.C), nout = size_t(g.OH * g.OW * s.C);
  const auto wf = rand_f(size_t(s.C * 9), 2, -1.0f, 1.0f);  // [C, 1, 3, 3]
  const auto bias = rand_f(size_t(s.C), 3, -1.0f, 1.0f);    // [C]
  LowpEpilogue ep;
  ep.bias = bias.data(), ep.clamp_lo = 0.0f, ep.clamp_hi = 6.0f;
  if (kind == "f32") {
    const auto x = rand_f(nin, 1, -1.0f, 1.0f);  // [H, W, C]
    std::vector<float> y(nout);                  // [OH, OW, C]
    const PackedDwF32 p = pack_dw_f32(wf.data(), s.C, 3, 3);
    DwF32Args a;
    a.g = g, a.x = x.data(), a.w = &p, a.y = y.data(), a.ldy = s.C, a.ep = ep;
    const auto i = find_impl(dwconv_f32_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    st.SetLabel(i.name);
    loop(st, [&] { i.fn(a); });
    counters(st, g, nin * 4, nout * 4);
  } else if (kind == "f16") {
    const auto xf = rand_f(nin, 1, -1.0f, 1.0f);
    std::vector<uint16_t> x(nin), y(nout);  // [H, W, C], [OH, OW, C] f16
    for (size_t j = 0; j < nin; ++j) x[j] = mpq::f32_to_f16(xf[j]);
    const PackedDwF16 p = pack_dw_f16(wf.data(), s.C, 3, 3);
    DwF16Args a;
    ep.out = mpq::DType::f16;
    a.g = g, a.x = x.data(), a.w = &p, a.y = y.data(), a.ldy = s.C, a.ep = ep;
    const auto i = find_impl(dwconv_f16_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    st.SetLabel(i.name);
    loop(st, [&] { i.fn(a); });
    counters(st, g, nin * 2, nout * 2);
  } else {
    const auto x = rand_u8(nin, 1);  // [H, W, C]
    std::vector<uint8_t> y(nout);    // [OH, OW, C]
    std::vector<int8_t> wq(wf.size());
    for (size_t j = 0; j < wq.size(); ++j) wq[j] = int8_t(wf[j] * 127.0f);
    const std::vector<float> ws(size_t(s.C), 0.01f);
    const PackedDwQ8 p = pack_dw_q8(wq.data(), ws.data(), s.C, 3, 3);
    DwQ8Args a;
    ep.out = mpq::DType::u8, ep.out_scale = 6.0f / 255.0f, ep.out_zp = 0;
    a.g = g, a.x = x.data(), a.w = &p, a.y = y.data(), a.ldy = s.C, a.sa = 0.02f, a.za = 128, a.ep = ep;
    const auto i = find_impl(dwconv_qu8_qc8w_list(), impl);
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    st.SetLabel(i.name);
    loop(st, [&] { i.fn(a); });
    counters(st, g, nin, nout);
  }
}

// oneDNN depthwise convolution: groups = C, weights [C, 1, 1, 3, 3] reordered once to the primitive's
// layout; NHWC src / dst; f32 (bias + clip post-op) or u8 src x s8 weights -> u8 dst with per-channel
// output scales, src zero point, bias and clip (oneDNN adds the bias before the output scale).
void bm_onednn(benchmark::State& st, DwShape s, std::string kind) {
  using dnnl::memory;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  mpq::set_num_threads(threads());
  const ConvGeom g = conv_geom_same(s.H, s.H, s.C, 0, 3, 3, s.stride, s.stride);
  const bool q = kind == "q8";
  const size_t nin = size_t(s.H * s.H * s.C), nout = size_t(g.OH * g.OW * s.C);
  const auto wf = rand_f(size_t(s.C * 9), 2, -1.0f, 1.0f);  // [C, 1, 1, 3, 3]
  const auto bias = rand_f(size_t(s.C), 3, -1.0f, 1.0f);    // [C]
  std::vector<int8_t> wq(wf.size());
  for (size_t j = 0; j < wq.size(); ++j) wq[j] = int8_t(wf[j] * 127.0f);
  const auto xf = rand_f(nin, 1, -1.0f, 1.0f);
  const auto xq = rand_u8(nin, 1);
  std::vector<uint8_t> y(nout * (q ? 1 : 4));
  auto& eng = mpq::onednn::engine();
  auto& strm = mpq::onednn::stream();
  const dt adt = q ? dt::u8 : dt::f32;
  const memory::desc src_md({1, s.C, s.H, s.H}, adt, tag::nhwc), dst_md({1, s.C, g.OH, g.OW}, adt, tag::nhwc);
  const memory::desc wei_any({s.C, 1, 1, 3, 3}, q ? dt::s8 : dt::f32, tag::any), bias_md({s.C}, dt::f32, tag::a);
  dnnl::primitive_attr attr;
  dnnl::post_ops po;
  const float out_scale = 6.0f / 255.0f;
  if (q) {
    attr.set_output_scales(1 << 1, std::vector<float>(size_t(s.C), 0.02f * 0.01f / out_scale));
    attr.set_zero_points(DNNL_ARG_SRC, 0, {128});
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, 0.0f, 255.0f);
  } else {
    po.append_eltwise(1.0f, dnnl::algorithm::eltwise_clip_v2, 0.0f, 6.0f);
  }
  attr.set_post_ops(po);
  const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                          src_md, wei_any, bias_md, dst_md, {s.stride, s.stride},
                                          {g.pad_top, g.pad_left}, {g.pad_bottom, g.pad_right});
  const dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  const dnnl::convolution_forward prim(pd);
  memory user_w({{s.C, 1, 1, 3, 3}, q ? dt::s8 : dt::f32, tag::goihw}, eng,
                q ? static_cast<void*>(wq.data()) : const_cast<float*>(wf.data()));
  memory wts(pd.weights_desc(), eng);
  dnnl::reorder(user_w, wts).execute(strm, user_w, wts);
  strm.wait();
  memory src(src_md, eng, q ? static_cast<void*>(const_cast<uint8_t*>(xq.data())) : const_cast<float*>(xf.data()));
  memory dst(dst_md, eng, y.data());
  memory b(bias_md, eng, const_cast<float*>(bias.data()));
  st.SetLabel(std::string("onednn ") + pd.impl_info_str());
  loop(st, [&] {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wts}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, dst}});
    strm.wait();
  });
  counters(st, g, nin * (q ? 1 : 4), nout * (q ? 1 : 4));
}

// The other NHWC kernels on model shapes, each list entry (fast first, reference last) in the same run:
// ResNet50's stem max pool (112x112x64, 3x3 stride 2, SAME), its global average pool (7x7x2048), and the
// precision-boundary conversions and the residual add on MobileNetV2's largest activation (112x112x96), every
// implementation of each dispatch list (benchmark name misc/OP/IMPL). Counter: GB/s.
void bm_misc(benchmark::State& st, std::string op, size_t impl_index) {
  mpq::set_num_threads(threads());
  const int64_t n = 112 * 112 * 96;
  const auto xf = rand_f(size_t(n), 1, -3.0f, 3.0f);  // [n] f32
  const auto xq = rand_u8(size_t(n), 2);              // [n] u8
  std::vector<uint16_t> xh(static_cast<size_t>(n));   // [n] f16
  for (int64_t i = 0; i < n; ++i) xh[size_t(i)] = mpq::f32_to_f16(xf[size_t(i)]);
  std::vector<uint8_t> out(static_cast<size_t>(n) * 4);  // large enough for every output below
  auto run = [&](const auto& list, auto args, size_t bytes) {
    const auto& impls = list.impls();
    if (impl_index >= impls.size()) return st.SkipWithError("no such entry");
    const auto& i = impls[impl_index];
    if (!mpq::isa_detected(i.isa)) return st.SkipWithError("ISA not available");
    st.SetLabel(i.name);
    loop(st, [&] { i.fn(args); });
    st.counters["GB/s"] =
        benchmark::Counter(double(bytes) * double(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
  };
  if (op == "maxpool_f32" || op == "maxpool_u8") {
    const bool q = op == "maxpool_u8";
    const ConvGeom g = conv_geom_same(112, 112, 64, 0, 3, 3, 2, 2);
    const MaxPoolArgs a{q ? mpq::DType::u8 : mpq::DType::f32, q ? static_cast<const void*>(xq.data()) : xf.data(), g,
                        out.data(), 64};
    run(maxpool_nhwc_list(), a, size_t(112 * 112 * 64 + 56 * 56 * 64) * (q ? 1 : 4));
  } else if (op == "gap_f32") {
    const GapArgs a{mpq::DType::f32, xf.data(), 49, 2048, 2048, 1.0f, 0, reinterpret_cast<float*>(out.data())};
    run(global_avgpool_nhwc_list(), a, size_t(49 * 2048) * 4);
  } else if (op == "quantize") {
    run(quantize_f32_u8_list(), CvtArgs{n, xf.data(), out.data(), 0.03f, 128}, size_t(n) * 5);
  } else if (op == "dequantize") {
    run(dequantize_u8_f32_list(), CvtArgs{n, xq.data(), out.data(), 0.03f, 128}, size_t(n) * 5);
  } else if (op == "f32_to_f16") {
    run(convert_f32_f16_list(), CvtArgs{n, xf.data(), out.data()}, size_t(n) * 6);
  } else if (op == "f16_to_f32") {
    run(convert_f16_f32_list(), CvtArgs{n, xh.data(), out.data()}, size_t(n) * 6);
  } else if (op == "requantize") {
    run(requantize_u8_u8_list(), CvtArgs{n, xq.data(), out.data(), 0.03f, 128, 0.05f, 100}, size_t(n) * 2);
  } else if (op == "add_f32" || op == "add_f16") {  // a residual add of MobileNetV2 (56x56x24 ... as 112x112x96)
    const bool h = op == "add_f16";
    AddArgs a;
    a.dt = h ? mpq::DType::f16 : mpq::DType::f32, a.rows = 112 * 112, a.C = 96, a.lda = a.ldb = a.ldy = 96;
    a.a = h ? static_cast<const void*>(xh.data()) : xf.data();
    a.b = h ? static_cast<const void*>(xh.data()) : xf.data();
    a.y = out.data(), a.lo = 0.0f, a.hi = 6.0f;
    run(add_clamp_nhwc_list(), a, size_t(n) * (h ? 6 : 12));
  }
}

// The implementation names of op's dispatch list, fastest first, the reference last.
std::vector<std::string> impl_names(const std::string& op) {
  std::vector<std::string> names;
  auto take = [&](const auto& list) {
    for (const auto& i : list.impls()) names.push_back(i.name);
  };
  if (op.rfind("maxpool", 0) == 0) take(maxpool_nhwc_list());
  if (op == "gap_f32") take(global_avgpool_nhwc_list());
  if (op == "quantize") take(quantize_f32_u8_list());
  if (op == "dequantize") take(dequantize_u8_f32_list());
  if (op == "requantize") take(requantize_u8_u8_list());
  if (op == "f32_to_f16") take(convert_f32_f16_list());
  if (op == "f16_to_f32") take(convert_f16_f32_list());
  if (op.rfind("add_", 0) == 0) take(add_clamp_nhwc_list());
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  for (const DwShape& s : kShapes) {
    auto reg = [&](const std::string& name, auto fn) { mpq::bench::register_us(std::string(s.name) + "/" + name, fn); };
    reg("f32/ours", [s](benchmark::State& st) { bm_ours(st, s, "f32", "dwconv_f32_c16__avx512"); });
    reg("f32/onednn", [s](benchmark::State& st) { bm_onednn(st, s, "f32"); });
    reg("f16/ours", [s](benchmark::State& st) { bm_ours(st, s, "f16", "dwconv_f16_c16__avx512"); });
    reg("q8/ours", [s](benchmark::State& st) { bm_ours(st, s, "q8", "dwconv_qu8_qc8w_c16__avx512vnni"); });
    reg("q8/onednn", [s](benchmark::State& st) { bm_onednn(st, s, "q8"); });
  }
  for (const char* op : {"maxpool_f32", "maxpool_u8", "gap_f32", "quantize", "dequantize", "requantize", "f32_to_f16",
                         "f16_to_f32", "add_f32", "add_f16"}) {
    const std::vector<std::string> names = impl_names(op);
    for (size_t i = 0; i < names.size(); ++i)
      mpq::bench::register_us(std::string("misc/") + op + "/" + names[i],
                              [op, i](benchmark::State& st) { bm_misc(st, op, i); });
  }
  return mpq::bench::run_main(argc, argv);
}
