// Compiled CNN inference (models/native/native.h) for ResNet50 and MobileNetV2: the activation format plan,
// the per-input-size buffer plans, the autotuner and the step loop.
//
// Activation formats (the rule of native.h, with what each step reads):
//   conv / linear input: its precision's format (u8 with its calibrated params, f16, or f32 for fp32 / bf16);
//   residual add: f32, because the fake-quant forward adds the unquantized tensors (a u8 or f16 residual would
//     add the consumer's quantization error to the sum, which the simulation does not); with
//     CompileOptions::exact_residuals off it asks for nothing (it reads f32 or u8, never f16);
//   global average pool: f32 (the simulation pools the unquantized tensor);
//   max pool: whatever its output is (max commutes with the monotone u8 / f16 roundings, so pooling a rounded
//     tensor equals rounding the pooled one).
// A value takes the format every reader asks for when they all agree and its producer can write it (the input
// image: f32 only; integer and bf16 GEMMs: f32 / u8), else f32; a reader that needs another format converts
// the f32 value itself (counted in its step). The rule is models/native/format_plan.h's, shared with BERT.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "core/autograd/node.h"
#include "core/error.h"
#include "models/native/cnn_native.h"
#include "models/native/cnn_native_onednn.h"
#include "models/native/format_plan.h"
#include "models/native/measure.h"

namespace mpq::native {
namespace cnn {

using Op = models::CnnStep::Op;

namespace {

constexpr int64_t kDefaultSize = 224;  // the compile-time plan: batch 1 at the models' native resolution
constexpr size_t kMaxPlans = 4;        // input sizes kept planned at once (eval: a full and a last batch)

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

DType to_dtype(DType d) { return d == DType::f32 ? DType::f32 : d == DType::f16 ? DType::f16 : DType::u8; }

// Whether layer L converts its input value of format f before its kernel (bf16 depthwise: always, to round
// the f32 input to bf16 values for the f32 kernel).
bool converts_input(const Layer& L, const ActFormat& f) {
  return !(f == L.in) || (L.prec == Precision::bf16 && L.kind == Kind::depthwise);
}

}  // namespace

void convert_input(const uint8_t* x, ActFormat from, uint8_t* y, ActFormat to, int64_t n) {
  check(from.dt == DType::f32, "native: internal error: conversion from {} (only f32 values are converted)",
        dtype_name(from.dt));
  const float* xf = reinterpret_cast<const float*>(x);
  switch (to.dt) {
    case DType::f32:
      std::memcpy(y, x, size_t(n) * 4);
      break;
    case DType::f16:
      kernels::convert_f32_f16(xf, n, reinterpret_cast<uint16_t*>(y));
      break;
    case DType::u8:
      kernels::quantize_f32_u8(xf, n, to.scale, to.zp, y);  // fake_quant_act's formula, bit for bit
      break;
    default:
      fail("native: internal error: conversion to {} (the CNN engine stores f32, f16 or u8)", dtype_name(to.dt));
  }
}

void round_bf16(const float* x, float* y, int64_t n) {
#pragma omp parallel for if (n >= (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(f32_to_bf16(x[i]));
}

CnnNative::CnnNative(models::CnnModel& m, Assignment a, const CompileOptions& opt) : opt_(opt) {
  model_name_ = m.name();
  classes_ = m.num_classes();
  // compile_*() has refused an assignment naming a layer the model does not have.
  check(opt.autotune_reps >= 1, "native compile: autotune_reps must be >= 1, got {}", opt.autotune_reps);

  autograd::NoGradGuard no_grad;
  const LayerQuant fp32;  // layers missing from the assignment
  auto lookup = [&](const std::string& name) -> const LayerQuant& {
    auto it = a.find(name);
    return it == a.end() ? fp32 : it->second;
  };
  const std::vector<models::CnnStep> cs = m.inference_steps();
  for (size_t i = 0; i < cs.size(); ++i) {
    const models::CnnStep& c = cs[i];
    Step s;
    s.op = c.op, s.in = c.input, s.res = c.residual, s.out = int(i) + 1, s.pool = c.pool;
    check(s.in >= 0 && s.in <= int(i) && s.res <= int(i), "native compile: {} step {} reads a value not yet written",
          model_name_, i);
    switch (c.op) {
      case Op::conv:
        layers_.push_back(make_conv_layer(*c.conv, lookup(c.conv->spec.conv), c.act));
        release_record(a, c.conv->spec.conv);
        break;
      case Op::linear:
        layers_.push_back(make_linear_layer(*c.linear, lookup(c.linear->name)));
        release_record(a, c.linear->name);
        break;
      case Op::max_pool:
        s.name = "maxpool";
        break;
      case Op::global_avg_pool:
        s.name = "avgpool";
        break;
    }
    if (c.op == Op::conv || c.op == Op::linear) {
      s.layer = int(layers_.size()) - 1;
      s.name = layers_.back().name;
    }
    steps_.push_back(s);
  }
  check(!steps_.empty() && steps_.back().op == Op::linear, "native compile: {} does not end in a linear layer",
        model_name_);
  const size_t nv = steps_.size() + 1;
  producer_.assign(nv, -1);
  last_use_.assign(nv, -1);
  for (size_t i = 0; i < steps_.size(); ++i) {
    producer_[size_t(steps_[i].out)] = int(i);
    last_use_[size_t(steps_[i].in)] = int(i);
    if (steps_[i].res >= 0) last_use_[size_t(steps_[i].res)] = int(i);
  }
  last_use_[nv - 1] = int(steps_.size());  // the logits are read after the last step
  plan_formats();
  plan_for(1, kDefaultSize, kDefaultSize);  // the batch-1 latency case, autotuned now
}

bool CnnNative::step_can_write(int step, DType d) const {
  if (step < 0) return d == DType::f32;  // the input image: transposed to NHWC f32
  const Step& s = steps_[size_t(step)];
  switch (s.op) {
    case Op::conv:
    case Op::linear:
      return layers_[size_t(s.layer)].can_write(d);
    case Op::max_pool:
      return true;  // pools its input, converted first when the input has another format
    case Op::global_avg_pool:
      return d == DType::f32;
  }
  return false;
}

void CnnNative::plan_formats() {
  // One FormatValue per value, its reads in step order (format_plan.h decides; no copies: a reader that
  // wants another format converts the stored f32 value itself, see converts_input).
  const int nv = int(steps_.size()) + 1;
  std::vector<FormatValue> values(static_cast<size_t>(nv));  // per value
  for (int v = 0; v < nv; ++v)
    values[size_t(v)].can_write = [this, p = producer_[size_t(v)]](DType d) { return step_can_write(p, d); };
  for (const Step& s : steps_) {
    if (s.res >= 0) {  // the residual epilogue reads f32 or u8, not f16
      FormatRead r;
      r.no_f16 = true;
      if (opt_.exact_residuals) r.want = ActFormat{};
      values[size_t(s.res)].reads.push_back(r);
    }
    FormatRead r;
    switch (s.op) {
      case Op::conv:
      case Op::linear:
        r.want = layers_[size_t(s.layer)].in;
        break;
      case Op::max_pool:
        r.same_as = s.out;  // pools in its output's format
        break;
      case Op::global_avg_pool:
        r.want = ActFormat{};
        break;
    }
    values[size_t(s.in)].reads.push_back(r);
  }
  const std::vector<ValueFormats> plan = native::plan_formats(values);
  fmt_.resize(size_t(nv));
  for (int v = 0; v < nv; ++v) fmt_[size_t(v)] = plan[size_t(v)].stored;
}

Plan& CnnNative::plan_for(int64_t N, int64_t H, int64_t W) {
  for (size_t i = 0; i < plans_.size(); ++i)
    if (plans_[i]->N == N && plans_[i]->H == H && plans_[i]->W == W) {
      last_plan_ = i;
      return *plans_[i];
    }
  if (plans_.size() >= kMaxPlans) plans_.erase(plans_.begin() + 1);  // keep the compile-time plan
  auto p = std::make_unique<Plan>();
  p->N = N, p->H = H, p->W = W;
  build_plan(*p);
  choose_impls(*p);
  plans_.push_back(std::move(p));
  last_plan_ = plans_.size() - 1;
  return *plans_.back();
}

void CnnNative::build_plan(Plan& p) {
  const size_t nv = steps_.size() + 1;
  p.shape.assign(nv, VShape{});
  p.shape[0] = VShape{p.H, p.W, 3};
  p.geom.assign(layers_.size(), Geom{});
  p.run.assign(layers_.size(), LayerRun{});
  size_t conv_in = 0, col = 0, acc = 0, dnn = 0;
  for (const Step& s : steps_) {
    const VShape& si = p.shape[size_t(s.in)];
    VShape& so = p.shape[size_t(s.out)];
    const size_t in_elems = size_t(p.N * si.pixels() * si.c);
    switch (s.op) {
      case Op::conv:
      case Op::linear: {
        const Layer& L = layers_[size_t(s.layer)];
        check(si.c == L.cin && (!L.linear || si.pixels() == 1),
              "native {}: layer '{}' expects {} input channels, the plan has [{}, {}, {}]", model_name_, L.name, L.cin,
              si.h, si.w, si.c);
        const Geom g = conv_geom(L, si.h, si.w);
        p.geom[size_t(s.layer)] = g;
        so = VShape{g.OH, g.OW, L.cout};
        if (converts_input(L, fmt_[size_t(s.in)]))
          conv_in = std::max(conv_in, in_elems * size_t(kernels::act_bytes(L.in.dt)));
        if (L.kind == Kind::im2col_gemm) col = std::max(col, size_t(g.OH * g.OW * L.K * kernels::act_bytes(L.in.dt)));
        if (L.prec == Precision::fp32 && L.kind != Kind::depthwise && fmt_[size_t(s.out)].dt != DType::f32) {
          const int64_t rows = L.kind == Kind::im2col_gemm ? g.OH * g.OW : p.N * g.OH * g.OW;
          acc = std::max(acc, size_t(rows * L.cout) * 4);
        }
        dnn = std::max(dnn, in_elems * 2);  // a bf16 copy of the input for a oneDNN bf16 conv
        break;
      }
      case Op::max_pool: {
        const ops::Pool2dParams& q = s.pool;
        so = VShape{(si.h + q.pad_top + q.pad_bottom - q.kernel_h) / q.stride_h + 1,
                    (si.w + q.pad_left + q.pad_right - q.kernel_w) / q.stride_w + 1, si.c};
        check(so.h > 0 && so.w > 0, "native {}: max pool output is empty for a {}x{} input", model_name_, si.h, si.w);
        if (!(fmt_[size_t(s.in)] == fmt_[size_t(s.out)]))
          conv_in = std::max(conv_in, in_elems * size_t(kernels::act_bytes(fmt_[size_t(s.out)].dt)));
        break;
      }
      case Op::global_avg_pool:
        so = VShape{1, 1, si.c};
        break;
    }
  }
  // Arena offsets: greedy first fit in production order; two values may share bytes only when one is dead
  // (past its last reader) before the other is written. Values are [N, h, w, c] in their formats.
  struct Block {
    size_t off, size;
    int first, last;
  };
  std::vector<Block> placed;
  p.offset.assign(nv, 0);
  size_t total = 0;
  for (size_t v = 0; v < nv; ++v) {
    const size_t bytes = round64(size_t(p.N * p.shape[v].pixels() * p.shape[v].c * kernels::act_bytes(fmt_[v].dt)));
    const int first = producer_[v], last = last_use_[v];
    std::vector<const Block*> live;
    for (const Block& b : placed)
      if (!(b.last < first || last < b.first)) live.push_back(&b);
    std::sort(live.begin(), live.end(), [](const Block* a, const Block* b) { return a->off < b->off; });
    size_t off = 0;
    for (const Block* b : live) {
      if (off + bytes <= b->off) break;
      off = std::max(off, b->off + b->size);
    }
    placed.push_back(Block{off, bytes, first, last});
    p.offset[v] = off;
    total = std::max(total, off + bytes);
  }
  p.arena.alloc(total);
  p.conv_in.alloc(std::max<size_t>(conv_in, 64));
  p.col.alloc(std::max<size_t>(col, 64));
  p.acc.alloc(std::max<size_t>(acc, 64));
  p.dnn_in.alloc(std::max<size_t>(dnn, 64));
}

LayerIO CnnNative::layer_io(Plan& p, const Step& s, const uint8_t* x) {
  LayerIO io;
  io.N = p.N;
  io.x = x;
  io.y = value_ptr(p, s.out);
  io.out = fmt_[size_t(s.out)];
  if (s.res >= 0) io.res = value_ptr(p, s.res), io.res_fmt = fmt_[size_t(s.res)];
  io.col = p.col.data();
  io.acc = reinterpret_cast<float*>(p.acc.data());
  io.dnn_in = p.dnn_in.data();
  io.dnn_w = &p.dnn_w;
  return io;
}

void CnnNative::exec_layer(Plan& p, const Step& s) {
  const Layer& L = layers_[size_t(s.layer)];
  const Geom& g = p.geom[size_t(s.layer)];
  const uint8_t* x = value_ptr(p, s.in);
  const ActFormat& xf = fmt_[size_t(s.in)];
  if (converts_input(L, xf)) {
    const int64_t n = p.N * g.H * g.W * L.cin;
    if (L.prec == Precision::bf16 && L.kind == Kind::depthwise)  // bf16-rounded f32 values for the f32 kernel
      round_bf16(reinterpret_cast<const float*>(x), reinterpret_cast<float*>(p.conv_in.data()), n);
    else
      convert_input(x, xf, p.conv_in.data(), L.in, n);
    x = p.conv_in.data();
  }
  const LayerRun& r = p.run[size_t(s.layer)];
  const LayerIO io = layer_io(p, s, x);
  if (r.impl == Impl::onednn)
    r.dnn->run(io);
  else
    run_layer_ours(L, g, r, io);
}

void CnnNative::exec_step(Plan& p, const Step& s) {
  const VShape& si = p.shape[size_t(s.in)];
  const VShape& so = p.shape[size_t(s.out)];
  const ActFormat& fi = fmt_[size_t(s.in)];
  const ActFormat& fo = fmt_[size_t(s.out)];
  switch (s.op) {
    case Op::conv:
    case Op::linear:
      exec_layer(p, s);
      return;
    case Op::max_pool: {
      const uint8_t* x = value_ptr(p, s.in);
      const int64_t in_img = si.pixels() * si.c, out_img = so.pixels() * so.c;
      if (!(fi == fo)) {
        convert_input(x, fi, p.conv_in.data(), fo, p.N * in_img);
        x = p.conv_in.data();
      }
      const ops::Pool2dParams& q = s.pool;
      const kernels::ConvGeom g = kernels::conv_geom(si.h, si.w, si.c, si.c, q.kernel_h, q.kernel_w, q.stride_h,
                                                     q.stride_w, q.pad_top, q.pad_left, q.pad_bottom, q.pad_right);
      uint8_t* y = value_ptr(p, s.out);
      for (int64_t n = 0; n < p.N; ++n) {
        kernels::MaxPoolArgs a;
        a.dt = to_dtype(fo.dt), a.g = g, a.ldy = so.c;
        a.x = x + n * in_img * kernels::act_bytes(fo.dt);
        a.y = y + n * out_img * kernels::act_bytes(fo.dt);
        kernels::maxpool_nhwc(a);
      }
      return;
    }
    case Op::global_avg_pool: {
      const uint8_t* x = value_ptr(p, s.in);
      float* y = reinterpret_cast<float*>(value_ptr(p, s.out));  // [N, C] f32
      for (int64_t n = 0; n < p.N; ++n) {
        kernels::GapArgs a;
        a.dt = to_dtype(fi.dt), a.HW = si.pixels(), a.C = si.c, a.ldx = si.c, a.scale = fi.scale, a.zp = fi.zp;
        a.x = x + n * si.pixels() * si.c * kernels::act_bytes(fi.dt);
        a.y = y + n * si.c;
        kernels::global_avgpool_nhwc(a);
      }
      return;
    }
  }
}

void CnnNative::choose_impls(Plan& p) {
  for (size_t i = 0; i < steps_.size(); ++i) {
    const Step& s = steps_[i];
    if (s.layer < 0) continue;
    const Layer& L = layers_[size_t(s.layer)];
    const Geom& g = p.geom[size_t(s.layer)];
    LayerRun& r = p.run[size_t(s.layer)];
    const LayerIO io = layer_io(p, s, converts_input(L, fmt_[size_t(s.in)]) ? p.conv_in.data() : value_ptr(p, s.in));
    // Candidates: ours (the dispatcher's choice first, then with autotuning the other entries of the GEMM
    // list), then the oneDNN convolution when it offers this layer.
    std::vector<LayerRun> cands;
    if (L.kind == Kind::depthwise) {
      cands.emplace_back().name = depthwise_impl_name(L, g, io);
    } else {
      const std::string prefix = L.kind == Kind::gemm ? "" : L.torch_order ? "im2col_torch_order+" : "im2col_nhwc+";
      for (const GemmFn& f : gemm_candidates(L, g, io, opt_.autotune)) {
        LayerRun& c = cands.emplace_back();
        c.gemm = f;
        // the int4 implicit-GEMM conv does its own im2col; an int8 kernel on an int4 layer runs widened codes
        c.name = f.q4conv ? f.name : prefix + (L.prec == Precision::int4 && f.q8 ? "q4_as_q8+" : "") + f.name;
      }
    }
    if (opt_.autotune)
      if (std::shared_ptr<OnednnConv> dnn = OnednnConv::make(L, g, io)) {
        LayerRun& c = cands.emplace_back();
        c.impl = Impl::onednn;
        c.dnn = dnn;
        c.name = dnn->name();
      }
    r = cands[0];
    if (cands.size() == 1) continue;
    // Time the candidates on this plan's buffers (their contents do not change the kernels' speed); a
    // candidate that rejects these arguments (e.g. a oneDNN matmul offered a residual) drops out.
    const int best = fastest_candidate(
        cands.size(),
        [&](size_t c) {
          r = cands[c];
          exec_layer(p, s);
        },
        opt_.autotune_reps);
    check(best >= 0, "native {}: layer '{}': every implementation rejected its arguments", model_name_, L.name);
    r = cands[size_t(best)];
  }
}

Tensor CnnNative::execute(const Tensor& images, std::vector<StepTime>* times) {
  check(images.defined() && images.dim() == 4 && images.size(1) == 3 && images.dtype() == DType::f32,
        "native {}: input must be f32 [N, 3, H, W], got {} {}", model_name_,
        images.defined() ? std::string(dtype_name(images.dtype())) : "undefined",
        images.defined() ? shape_str(images.shape()) : "");
  const int64_t N = images.size(0), H = images.size(2), W = images.size(3);
  check(N > 0, "native {}: empty batch", model_name_);
  const Tensor x = images.contiguous();  // [N, 3, H, W]
  Plan& p = plan_for(N, H, W);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  auto lap = [&](const std::string& name, bool quant_layer) {
    if (!times) return;
    const auto t1 = clock::now();
    times->push_back(StepTime{name, quant_layer, std::chrono::duration<double, std::milli>(t1 - t0).count()});
    t0 = t1;
  };
  float* v0 = reinterpret_cast<float*>(value_ptr(p, 0));  // [N, H, W, 3] f32
  for (int64_t n = 0; n < N; ++n) {
    kernels::TransposeArgs a;
    a.x = x.data<float>() + n * 3 * H * W, a.C = 3, a.H = H, a.W = W, a.y = v0 + n * H * W * 3, a.ldy = 3;
    kernels::nchw_to_nhwc_f32(a);
  }
  lap("input", false);
  for (const Step& s : steps_) {
    exec_step(p, s);
    lap(s.name, s.layer >= 0);
  }
  Tensor out = Tensor::empty({N, classes_});  // [N, classes] f32
  std::memcpy(out.data<float>(), value_ptr(p, steps_.back().out), size_t(N * classes_) * 4);
  return out;
}

Tensor CnnNative::run(const models::Batch& batch) { return execute(batch.images, nullptr); }

Tensor CnnNative::run_profiled(const models::Batch& batch, std::vector<StepTime>& steps) {
  steps.clear();
  return execute(batch.images, &steps);
}

// Our packed weights (+ scales and column sums) of every layer; biases (f32 [cout]) are not counted, and a
// layer that oneDNN runs holds oneDNN's reordered copy of the same values besides.
size_t CnnNative::weight_bytes() const {
  size_t b = 0;
  for (const Layer& L : layers_) b += L.weight_bytes();
  return b;
}

std::map<std::string, size_t> CnnNative::layer_weight_bytes() const {
  std::map<std::string, size_t> m;
  for (const Layer& L : layers_) m[L.name] = L.weight_bytes();
  return m;
}

std::map<std::string, std::string> CnnNative::implementations() const {
  std::map<std::string, std::string> out;
  const Plan& p = *plans_[last_plan_];
  for (size_t i = 0; i < layers_.size(); ++i) out[layers_[i].name] = p.run[i].name;
  return out;
}

}  // namespace cnn

std::unique_ptr<NativeModel> compile_cnn(models::Model& model, Assignment a, const CompileOptions& opt) {
  auto* cnn = dynamic_cast<models::CnnModel*>(&model);
  check(cnn != nullptr, "native compile_cnn: model '{}' is not a CNN", model.name());
  check_assignment_layers(model, a);
  return std::make_unique<cnn::CnnNative>(*cnn, std::move(a), opt);
}

}  // namespace mpq::native
