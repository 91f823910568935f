// Compiled BERT, the forward pass (the dtype flow is described at the top of bert_native.cpp).
#include <omp.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "models/native/bert_native.h"

namespace mpq::native::bert {

using kernels::ActOut;
using Clock = std::chrono::steady_clock;

namespace {
template <class T = float>
T* ptr(kernels::AlignedBytes& b) {
  return reinterpret_cast<T*>(b.data());
}
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// x f32 [rows, ldx] -> out [rows, ld] in f.
void convert(const float* x, int64_t rows, int64_t cols, int64_t ldx, const ActFormat& f, void* out, int64_t ld) {
  kernels::RowMapArgs a;
  a.rows = rows, a.cols = cols, a.x = x, a.ldx = ldx, a.out = f.out(out, ld);
  kernels::rows_map(a);
}

// Epilogue writing `o` (f32 / f16 / u8) with no bias: for the attention P V products.
kernels::LowpEpilogue plain_epilogue(const ActOut& o) {
  kernels::LowpEpilogue ep;
  ep.out = o.dt == DType::f16 || o.dt == DType::u8 ? o.dt : DType::f32;
  ep.out_scale = o.scale, ep.out_zp = o.zp;
  return ep;
}
}  // namespace

void BertNative::call(Linear& l, const void* A, int64_t lda, int64_t M, const ActOut& out, const float* res,
                      int64_t ldr) {
  if (tuning_) l.choose_impl(A, lda, M, out, res, ldr, opt_.autotune, opt_.autotune_reps);
  l.run(A, lda, M, out, res, ldr);
}

void BertNative::linear_out(Linear& l, const void* A, int64_t lda, int64_t M, const ActFormat& dst, void* out,
                            int64_t ld, bool gelu) {
  if (!gelu && l.has_epilogue() && l.can_write(dst.dt)) {
    call(l, A, lda, M, dst.out(out, ld), nullptr, 0);
    return;
  }
  float* s = ptr(S_);  // [M, N] f32: raw (fp32) or biased (epilogue) product
  call(l, A, lda, M, {DType::f32, s, l.N}, nullptr, 0);
  kernels::RowMapArgs a;
  a.rows = M, a.cols = l.N, a.x = s, a.ldx = l.N;
  a.bias = l.has_epilogue() ? nullptr : l.bias.data();
  a.gelu = gelu;
  a.out = dst.out(out, ld);
  kernels::rows_map(a);
}

void BertNative::forward_seq(const int32_t* ids, const int32_t* mask, float* logits, Prof& prof) {
  const int64_t L = L_, D = D_;
  float* S = ptr(S_);
  float* X = ptr(X_);
  float* mk = ptr(mask_);
  prof.start();
  for (int64_t j = 0; j < L; ++j) {
    word_.gather(int64_t(ids[j]), S + j * D);
    mk[j] = (mask ? mask[j] != 0 : ids[j] != 0) ? 0.0f : -10000.0f;  // HF's additive mask
  }
  prof.mark(word_.name, true);
  prof.mark(pos_.name, true);  // folded into pt_ at compile time: the add happens in the layer norm below
  kernels::LayerNormArgs ln;
  ln.rows = L, ln.cols = D, ln.x = S, ln.ldx = D, ln.res = pt_.data(), ln.ldr = D;  // word + (position + type)
  ln.gamma = emb_g_.data(), ln.beta = emb_b_.data(), ln.eps = cfg_.ln_eps;
  ln.out = {DType::f32, X, D};
  if (!layers_.empty() && !layers_[0].slot_fmt.empty()) ln.out2 = layers_[0].slot_fmt[0].out(XC_[0].data(), D);
  kernels::layer_norm_rows(ln);
  prof.mark("embeddings", false);

  for (size_t i = 0; i < layers_.size(); ++i) layer(i, prof);

  // Pooler on the [CLS] row (row 0 of X), tanh, classifier.
  const void* pa = X;
  if (pooler_.in.dt != DType::f32) {
    convert(X, 1, D, D, pooler_.in, pin_.data(), D);
    pa = pin_.data();
  }
  float* pool = ptr(pool_);  // [D]
  linear_out(pooler_, pa, D, 1, ActFormat{}, pool, D, false);
  prof.mark(pooler_.name, true);
  const ActOut cin = cls_.in.out(cin_.data(), D);
  for (int64_t d = 0; d < D; ++d) kernels::act_store_scalar(cin, 0, d, std::tanh(pool[d]));
  prof.mark("pooler.tanh", false);
  linear_out(cls_, cin_.data(), D, 1, ActFormat{}, logits, C_, false);
  prof.mark(cls_.name, true);
}

void BertNative::layer(size_t i, Prof& prof) {
  Layer& p = layers_[i];
  const int64_t L = L_, D = D_, F = F_;
  float* X = ptr(X_);
  float* Hb = ptr(H_buf_);
  float* S = ptr(S_);

  // query / key / value, each reading X or its copy in the layer's input format.
  Linear* qkv[3] = {&p.q, &p.k, &p.v};
  kernels::AlignedBytes* outs[3] = {&Q_, &K_, &V_};
  const ActFormat fmts[3] = {p.qf, p.kf, p.vf};
  for (int c = 0; c < 3; ++c) {
    const void* in = X;
    if (p.in_slot[c] >= 0) {
      void* buf = XC_[p.in_slot[c]].data();
      if (p.convert[c]) convert(X, L, D, D, p.slot_fmt[size_t(p.in_slot[c])], buf, D);
      in = buf;
    }
    linear_out(*qkv[c], in, D, L, fmts[c], outs[c]->data(), D, false);
    prof.mark(qkv[c]->name, true);
  }

  attention(p, prof);

  // linear + residual -> layer norm. Low-precision epilogues add bias and residual; after an fp32 GEMM
  // the layer norm does (same order: (x W^T + b) + residual).
  auto linear_ln = [&](Linear& l, const void* A, int64_t lda, const float* res, const std::vector<float>& g,
                       const std::vector<float>& b, float* out, const ActFormat* out2f, void* out2,
                       const std::string& name) {
    const bool epi = l.has_epilogue();
    call(l, A, lda, L, {DType::f32, S, D}, epi ? res : nullptr, D);
    prof.mark(l.name, true);
    kernels::LayerNormArgs ln;
    ln.rows = L, ln.cols = D, ln.x = S, ln.ldx = D;
    ln.bias = epi ? nullptr : l.bias.data();
    ln.res = epi ? nullptr : res, ln.ldr = D;
    ln.gamma = g.data(), ln.beta = b.data(), ln.eps = cfg_.ln_eps;
    ln.out = {DType::f32, out, D};
    if (out2f) ln.out2 = out2f->out(out2, D);
    kernels::layer_norm_rows(ln);
    prof.mark(name, false);
  };

  const bool fi_f32 = p.h_copy.empty();  // intermediate.dense reads H itself, else HC_ in h_copy[0]
  linear_ln(p.ao, CTX_.data(), D, X, p.ln1_g, p.ln1_b, Hb, fi_f32 ? nullptr : &p.h_copy[0], HC_.data(), p.ln1_name);

  // intermediate.dense -> f32 [L, F] -> gelu (+ bias after an fp32 GEMM) -> MID in output.dense's format
  const bool epi = p.fi.has_epilogue();
  call(p.fi, fi_f32 ? static_cast<const void*>(Hb) : HC_.data(), D, L, {DType::f32, S, F}, nullptr, 0);
  prof.mark(p.fi.name, true);
  kernels::RowMapArgs g;
  g.rows = L, g.cols = F, g.x = S, g.ldx = F, g.bias = epi ? nullptr : p.fi.bias.data(), g.gelu = true;
  g.out = p.fo.in.out(MID_.data(), F);
  kernels::rows_map(g);
  prof.mark(p.gelu_name, false);

  const ActFormat* next =
      i + 1 < layers_.size() && !layers_[i + 1].slot_fmt.empty() ? &layers_[i + 1].slot_fmt[0] : nullptr;
  linear_ln(p.fo, MID_.data(), F, Hb, p.ln2_g, p.ln2_b, X, next, XC_[0].data(), p.ln2_name);
}

void BertNative::attention(Layer& p, Prof& prof) {
  if (tuning_) choose_attention(p);
  const int nt = int(std::min<int64_t>(threads_, H_));
  const bool timed = prof.on();
  for (HeadScratch& hs : heads_) hs.t[0] = hs.t[1] = hs.t[2] = 0;
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int64_t h = 0; h < H_; ++h) head(p, h, heads_[size_t(omp_get_thread_num())], timed);
  if (!timed) return;
  // Wall time of the parallel region, split between the three steps in proportion to the per-thread
  // time each took (they interleave per head, so they cannot be timed separately on the wall clock).
  const Clock::time_point t = Clock::now();
  const double wall = ms_between(prof.t0, t);
  double sum[3] = {0, 0, 0};
  for (const HeadScratch& hs : heads_)
    for (int k = 0; k < 3; ++k) sum[k] += hs.t[k];
  const double total = sum[0] + sum[1] + sum[2];
  const auto share = [&](int k) { return total > 0 ? wall * sum[k] / total : wall / 3; };
  prof.add(p.qk_name, true, share(0));
  prof.add(p.softmax_name, false, share(1));
  prof.add(p.pv_name, true, share(2));
  prof.t0 = t;
}

void BertNative::head(const Layer& p, int64_t h, HeadScratch& hs, bool timed) {
  const int64_t L = L_, D = D_, dh = dh_, c0 = h * dh;
  const Clock::time_point t0 = timed ? Clock::now() : Clock::time_point{};
  float* S = ptr(hs.S);  // [L, L]
  const int32_t* corr = nullptr;
  float scale = 1.0f / std::sqrt(float(dh));  // as models/bert.cpp
  switch (p.qk) {
    case Precision::fp32:
      p.qk_f32({L, L, dh, ptr(Q_) + c0, D, false, ptr(K_) + c0, D, true, S, L, 0.0f});
      break;
    case Precision::fp16: {
      pack_attn_f16_rows(ptr(K_) + c0, D, hs.kf16);
      kernels::F16GemmArgs g;
      g.M = L, g.A = ptr<uint16_t>(Q_) + c0, g.lda = D, g.w = &hs.kf16, g.C = S, g.ldc = L;
      p.qk_f16(g);
      break;
    }
    case Precision::bf16: {
      pack_attn_bf16_rows(ptr(K_) + c0, D, hs.kbf16);
      kernels::BF16GemmArgs g;
      g.M = L, g.A = ptr(Q_) + c0, g.lda = D, g.a_f32 = true, g.w = &hs.kbf16, g.C = S, g.ldc = L;
      p.qk_bf16(g);
      break;
    }
    default:
      pack_attn_q8_rows(ptr<uint8_t>(K_) + c0, D, hs.kq8);
      attn_q8_gemm(p.qk_q8, ptr<uint8_t>(Q_) + c0, D, L, p.qk_a.zero_point, hs.kq8, p.qk_b.zero_point, S, L,
                   hs.cqk.data());
      corr = hs.cqk.data();
      scale = p.qk_a.scale * p.qk_b.scale * scale;
      break;
  }
  const Clock::time_point t1 = timed ? Clock::now() : Clock::time_point{};

  kernels::SoftmaxArgs sm;
  sm.rows = L, sm.cols = L, sm.x = S, sm.ldx = L, sm.row_corr = corr, sm.scale = scale, sm.mask = ptr(mask_);
  sm.out = p.pf.out(hs.P.data(), L);
  kernels::softmax_rows(sm);
  const Clock::time_point t2 = timed ? Clock::now() : Clock::time_point{};

  const ActFormat& cf = p.ao.in;  // ctx is written in attention.output.dense's input format
  const ActOut cto = cf.out(CTX_.data() + c0 * kernels::act_bytes(cf.dt), D);
  float* O = ptr(hs.O);  // [L, dh]
  bool direct = false;
  switch (p.pv) {
    case Precision::fp32:
      direct = cf.dt == DType::f32;
      p.pv_f32({L, dh, L, ptr(hs.P), L, false, ptr(V_) + c0, D, false, direct ? static_cast<float*>(cto.p) : O,
                direct ? D : dh, 0.0f});
      break;
    case Precision::fp16: {
      pack_attn_f16_cols(ptr(V_) + c0, D, hs.vf16);
      direct = cf.dt != DType::bf16;
      kernels::F16GemmArgs g;
      g.M = L, g.A = hs.P.data(), g.lda = L, g.w = &hs.vf16;
      g.C = direct ? cto.p : O, g.ldc = direct ? D : dh;
      if (direct) g.ep = plain_epilogue(cto);
      p.pv_f16(g);
      break;
    }
    case Precision::bf16: {
      pack_attn_bf16_cols(ptr(V_) + c0, D, hs.vbf16);
      direct = cf.dt == DType::f32 || cf.dt == DType::u8;
      kernels::BF16GemmArgs g;
      g.M = L, g.A = hs.P.data(), g.lda = L, g.w = &hs.vbf16;
      g.C = direct ? cto.p : O, g.ldc = direct ? D : dh;
      if (direct) g.ep = plain_epilogue(cto);
      p.pv_bf16(g);
      break;
    }
    default: {
      pack_attn_q8_cols(ptr<uint8_t>(V_) + c0, D, hs.vq8);
      attn_q8_gemm(p.pv_q8, hs.P.data(), L, L, p.pv_a.zero_point, hs.vq8, p.pv_b.zero_point, O, dh, hs.cpv.data());
      kernels::RowMapArgs a;  // ctx = float(acc + row term) * (s_p * s_v), in cf
      a.rows = L, a.cols = dh, a.x = O, a.ldx = dh, a.row_corr = hs.cpv.data(), a.scale = p.pv_a.scale * p.pv_b.scale;
      a.out = cto;
      kernels::rows_map(a);
      direct = true;
      break;
    }
  }
  if (!direct) convert(O, L, dh, dh, cf, cto.p, D);
  if (timed) {
    const Clock::time_point t3 = Clock::now();
    hs.t[0] += ms_between(t0, t1), hs.t[1] += ms_between(t1, t2), hs.t[2] += ms_between(t2, t3);
  }
}

Tensor BertNative::run_impl(const models::Batch& batch, std::vector<StepTime>* steps) {
  const int64_t L = batch.seq_len;
  check(L > 0 && !batch.ids.empty() && int64_t(batch.ids.size()) % L == 0,
        "native bert: batch has {} ids for sequence length {}", batch.ids.size(), L);
  check(L <= cfg_.max_pos, "native bert: sequence length {} exceeds max_position_embeddings {}", L, cfg_.max_pos);
  check(batch.mask.empty() || batch.mask.size() == batch.ids.size(), "native bert: mask has {} entries for {} ids",
        batch.mask.size(), batch.ids.size());
  for (size_t j = 0; j < batch.ids.size(); ++j)
    check(batch.ids[j] >= 0 && batch.ids[j] < cfg_.vocab_size,
          "native bert: token id {} at position {} is outside the vocabulary [0, {})", batch.ids[j], j,
          cfg_.vocab_size);
  if (L != L_ || omp_get_max_threads() != threads_) plan(L);
  const int64_t N = int64_t(batch.ids.size()) / L;
  Tensor out = Tensor::empty({N, C_});  // [N, C]
  Prof prof;
  prof.steps = steps;
  if (steps) steps->clear();
  for (int64_t s = 0; s < N; ++s) {
    prof.next = 0;
    forward_seq(batch.ids.data() + s * L, batch.mask.empty() ? nullptr : batch.mask.data() + s * L,
                out.data<float>() + s * C_, prof);
  }
  return out;
}

Tensor BertNative::run(const models::Batch& batch) { return run_impl(batch, nullptr); }

Tensor BertNative::run_profiled(const models::Batch& batch, std::vector<StepTime>& steps) {
  return run_impl(batch, &steps);
}

}  // namespace mpq::native::bert
