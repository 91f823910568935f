// Compiled BERT (models/native/native.h): weights packed once per layer precision, activations [L, D]
// row-major per sequence (a batch of N runs its sequences one after the other), buffers planned per
// sequence length. This file: compilation (weights, formats, plan, implementation choice); the forward
// pass is in bert_native_run.cpp.
//
// Dtype flow of one encoder layer (f32 unless stated; "fmt(l)" = what layer l reads: f32 for fp32, f16
// for fp16, bf16 for bf16, u8 with l's calibrated scale / zero point for int8 / int4):
//   X f32 [L, D] (layer input, also the residual) + copies of X in fmt(query), fmt(key), fmt(value): the
//     first non-f32 one is written by the layer norm that produced X (its second output), any other
//     distinct one by a conversion pass counted in the reading layer; identical formats share one copy
//     (e.g. int8 Q/K/V with identical input parameters: quantized once). X and H are planned by
//     models/native/format_plan.h, the rule the CNN engine's values follow too.
//   query / key / value GEMMs -> Q, K, V in the format the attention matmuls read:
//     qk fp32: Q, K f32 | fp16: Q f16, K f32 (rounded to f16 while packed) | bf16: Q f32 (rounded to bf16
//     by the GEMM's A packing), K f32 (rounded while packed) | int8 / int4: Q u8 (qk input 0), K u8 (qk
//     input 1); pv int8 / int4: V u8 (pv input 1), else V f32. The GEMM epilogue writes u8 / f16
//     directly when it can (bias fused); fp32 GEMMs write raw f32 and a pass adds the bias and converts.
//   per head (heads split over the threads): S = Q_h K_h^T f32 [L, L] (int8: exact int32 sums, see
//     bert_native.h) -> softmax(S * scale + mask) written as P in fmt(pv) [L, L] (u8 with pv input 0's
//     parameters for int8) -> P V_h -> ctx[:, head] in fmt(attention.output.dense).
//   attention.output.dense (bias + residual X fused in the low-precision epilogue) -> f32 -> layer norm ->
//     H f32 (+ its copy in fmt(intermediate.dense)).
//   intermediate.dense -> f32 [L, F] (+bias) -> gelu pass -> MID in fmt(output.dense) [L, F].
//   output.dense (bias + residual H fused) -> f32 -> layer norm -> next X (+ the next layer's first copy).
// Pooler: row 0 of X -> fmt(pooler) -> f32 (+bias) -> tanh -> fmt(classifier) -> logits f32.
// Embeddings: f32 gather of the word rows + (position + token type 0) rows, layer norm (HF order).
// int4 on an attention matmul is run as int8: the matmuls have no weights, and the fake-quant simulation
// treats both operands of an int4 attention matmul as u8 per-tensor activations, exactly as int8.
#include "models/native/bert_native.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <iterator>

#include "core/error.h"
#include "models/native/format_plan.h"
#include "models/native/measure.h"

namespace mpq::native {

std::unique_ptr<NativeModel> compile_bert(models::Model& model, Assignment a, const CompileOptions& opt) {
  auto* bert = dynamic_cast<models::Bert*>(&model);
  check(bert != nullptr, "compile_bert: model '{}' is not BERT", model.name());
  check_assignment_layers(model, a);
  return std::make_unique<bert::BertNative>(*bert, std::move(a), opt);
}

namespace bert {

namespace {
ActQuantParams operand(const LayerQuant& q, const std::string& layer, int op) {
  auto it = q.act.find(op);
  check(it != q.act.end(),
        "native bert: attention matmul '{}' is {} but its input {} has no calibrated scale / zero point "
        "(LayerQuant::act[{}]); calibrate it first",
        layer, precision_name(q.precision), op, op);
  check(it->second.scale > 0.0f && it->second.zero_point >= 0 && it->second.zero_point <= 255,
        "native bert: attention matmul '{}': bad input {} scale {} / zero point {}", layer, op, it->second.scale,
        it->second.zero_point);
  return it->second;
}

ActFormat u8_fmt(const ActQuantParams& p) { return {DType::u8, p.scale, p.zero_point}; }
}  // namespace

void Prof::add(const std::string& name, bool quant, double ms) {
  if (next < steps->size()) {
    (*steps)[next].ms += ms;
  } else {
    steps->push_back({name, quant, ms});
  }
  ++next;
}

void Prof::mark(const std::string& name, bool quant) {
  if (!on()) return;
  const auto t = std::chrono::steady_clock::now();
  add(name, quant, std::chrono::duration<double, std::milli>(t - t0).count());
  t0 = t;
}

// The formats of one encoder layer's activations: what the attention matmuls read (Q, K, V, P) from their
// precisions and operand parameters, and X / H from format_plan.h. (The attention context and the gelu output
// have one reader each and producers that write every format: by the same rule they are stored as that reader
// computes, attention.output.dense's and output.dense's `in`, used directly.)
void BertNative::plan_layer_formats(Layer& L) const {
  switch (L.qk) {
    case Precision::fp16:
      L.qf = {DType::f16};
      break;
    case Precision::int8:
    case Precision::int4:
      L.qf = u8_fmt(L.qk_a), L.kf = u8_fmt(L.qk_b);
      break;
    default:  // fp32: f32; bf16: f32 rounded to bf16 by the GEMM's A packing
      break;
  }
  switch (L.pv) {
    case Precision::fp16:
      L.pf = {DType::f16};
      break;
    case Precision::bf16:
      L.pf = {DType::bf16};
      break;
    case Precision::int8:
    case Precision::int4:
      L.pf = u8_fmt(L.pv_a), L.vf = u8_fmt(L.pv_b);
      break;
    default:
      break;
  }
  // X and H are f32 (each is a residual: of attention.output.dense / output.dense) plus one copy per
  // distinct other format their readers ask for, the first written by the layer norm that produces the
  // value as its second output (format_plan.h). X is read by query / key / value, H by intermediate.dense.
  auto residual_value = [](std::initializer_list<const Linear*> readers, size_t max_copies, const char* what) {
    FormatValue v;
    v.can_write = [](DType) { return true; };  // kernels::layer_norm_rows writes every activation format
    v.copies = true, v.direct_copies = 1;
    for (const Linear* l : readers) v.reads.push_back(FormatRead{l->in});
    v.reads.push_back(FormatRead{ActFormat{}});  // the residual add
    ValueFormats f = plan_formats({v})[0];
    check(f.stored.dt == DType::f32 && f.copies.size() <= max_copies,
          "native bert: internal error: {} planned as {} with {} copies", what, dtype_name(f.stored.dt),
          f.copies.size());
    return f;
  };
  const ValueFormats x = residual_value({&L.q, &L.k, &L.v}, std::size(XC_), "X");
  L.slot_fmt = x.copies;
  for (size_t c = 0; c < 3; ++c) L.in_slot[c] = x.reads[c].buffer - 1, L.convert[c] = x.reads[c].converts;
  L.h_copy = residual_value({&L.fi}, 1, "H").copies;
}

BertNative::BertNative(models::Bert& m, Assignment a, const CompileOptions& opt) : cfg_(m.config()), opt_(opt) {
  D_ = cfg_.hidden, H_ = cfg_.heads, dh_ = cfg_.head_dim(), F_ = cfg_.ffn, C_ = cfg_.num_labels;
  // compile_*() has refused an assignment naming a layer the model does not have.
  std::map<std::string, Tensor*> t;
  for (auto& [name, p] : m.named_tensors()) t[name] = p;
  auto W = [&](const std::string& name) -> const float* {
    auto it = t.find(name);
    check(it != t.end(), "native bert: tensor '{}' missing from the model", name);
    check(it->second->dtype() == DType::f32 && it->second->is_contiguous(),
          "native bert: tensor '{}' must be contiguous f32", name);
    return it->second->data<float>();
  };
  auto lq = [&](const std::string& name) {
    auto it = a.find(name);
    return it == a.end() ? LayerQuant{} : it->second;
  };
  auto vec = [&](const std::string& name, int64_t n) { return std::vector<float>(W(name), W(name) + n); };

  const std::string e = "bert.embeddings.";
  word_.build(models::kWordEmbeddings, W(std::string(models::kWordEmbeddings) + ".weight"), cfg_.vocab_size, D_,
              lq(models::kWordEmbeddings));
  release_record(a, models::kWordEmbeddings);
  pos_.build(models::kPositionEmbeddings, W(std::string(models::kPositionEmbeddings) + ".weight"), cfg_.max_pos, D_,
             lq(models::kPositionEmbeddings));
  release_record(a, models::kPositionEmbeddings);
  pt_.assign(size_t(cfg_.max_pos * D_), 0.0f);                 // [max_pos, D]
  const float* type0 = W(e + "token_type_embeddings.weight");  // row 0 of [T, D]
  for (int64_t p = 0; p < cfg_.max_pos; ++p) {
    float* row = pt_.data() + p * D_;
    pos_.gather(p, row);
    for (int64_t d = 0; d < D_; ++d) row[d] = row[d] + type0[d];
  }
  emb_g_ = vec(e + "LayerNorm.weight", D_);
  emb_b_ = vec(e + "LayerNorm.bias", D_);

  auto build = [&](Linear& l, const std::string& name, int64_t n, int64_t k) {
    l.build(name, W(name + ".weight"), W(name + ".bias"), n, k, lq(name));
    release_record(a, name);
  };
  layers_.resize(size_t(cfg_.layers));
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& L = layers_[i];
    const std::string p = "bert.encoder.layer." + std::to_string(i) + ".";
    build(L.q, p + "attention.self.query", D_, D_);
    build(L.k, p + "attention.self.key", D_, D_);
    build(L.v, p + "attention.self.value", D_, D_);
    build(L.ao, p + "attention.output.dense", D_, D_);
    build(L.fi, p + "intermediate.dense", F_, D_);
    build(L.fo, p + "output.dense", D_, F_);
    L.ln1_g = vec(p + "attention.output.LayerNorm.weight", D_);
    L.ln1_b = vec(p + "attention.output.LayerNorm.bias", D_);
    L.ln2_g = vec(p + "output.LayerNorm.weight", D_);
    L.ln2_b = vec(p + "output.LayerNorm.bias", D_);

    L.qk_name = p + "attention.self.qk", L.pv_name = p + "attention.self.pv";
    const std::string step = "layer." + std::to_string(i) + ".";
    L.softmax_name = step + "softmax", L.ln1_name = step + "layernorm1", L.gelu_name = step + "gelu";
    L.ln2_name = step + "layernorm2";
    const LayerQuant qk = lq(L.qk_name), pv = lq(L.pv_name);
    L.qk = qk.precision, L.pv = pv.precision;
    if (precision_is_integer(L.qk)) {
      L.qk_a = operand(qk, L.qk_name, 0), L.qk_b = operand(qk, L.qk_name, 1);
      check(dh_ <= kAttnQ8MaxK, "native bert: '{}': head dim {} exceeds {} for the int8 attention matmul", L.qk_name,
            dh_, kAttnQ8MaxK);
    }
    if (precision_is_integer(L.pv)) L.pv_a = operand(pv, L.pv_name, 0), L.pv_b = operand(pv, L.pv_name, 1);
    plan_layer_formats(L);
  }
  build(pooler_, "bert.pooler.dense", D_, D_);
  build(cls_, "classifier", C_, D_);

  // Plan for the configured sequence length, then one dry run on it: every GEMM call site picks its
  // implementation with its real arguments (autotuned when asked).
  plan(std::min(cfg_.seq_len, cfg_.max_pos));
  std::vector<int32_t> ids(size_t(L_), int32_t(std::min<int64_t>(1, cfg_.vocab_size - 1)));  // [L]
  std::vector<float> logits(static_cast<size_t>(C_));                                        // [C]
  Prof none;
  tuning_ = true;
  forward_seq(ids.data(), nullptr, logits.data(), none);
  tuning_ = false;
}

void BertNative::plan(int64_t L) {
  check(L > 0 && L <= cfg_.max_pos, "native bert: sequence length {} outside [1, {}]", L, cfg_.max_pos);
  for (const Layer& p : layers_)
    if (precision_is_integer(p.pv))
      check(L <= kAttnQ8MaxK, "native bert: '{}': sequence length {} exceeds {} for the int8 attention matmul",
            p.pv_name, L, kAttnQ8MaxK);
  L_ = L;
  threads_ = omp_get_max_threads();
  const size_t LD = size_t(L * D_), LF = size_t(L * F_);
  X_.alloc(LD * 4);
  H_buf_.alloc(LD * 4);
  for (auto& b : XC_) b.alloc(LD * 2);
  HC_.alloc(LD * 2);
  Q_.alloc(LD * 4), K_.alloc(LD * 4), V_.alloc(LD * 4), CTX_.alloc(LD * 4);
  S_.alloc(size_t(L * std::max(D_, F_)) * 4);
  MID_.alloc(LF * 4);
  mask_.alloc(size_t(L) * 4);
  pin_.alloc(size_t(D_) * 4), pool_.alloc(size_t(D_) * 4), cin_.alloc(size_t(D_) * 4);
  bool qk_q8 = false, pv_q8 = false, qk_f16 = false, pv_f16 = false, qk_bf16 = false, pv_bf16 = false;
  for (const Layer& p : layers_) {
    qk_q8 |= precision_is_integer(p.qk), pv_q8 |= precision_is_integer(p.pv);
    qk_f16 |= p.qk == Precision::fp16, pv_f16 |= p.pv == Precision::fp16;
    qk_bf16 |= p.qk == Precision::bf16, pv_bf16 |= p.pv == Precision::bf16;
  }
  heads_.clear();
  heads_.resize(size_t(threads_));
  for (HeadScratch& h : heads_) {
    h.S.alloc(size_t(L * L) * 4);
    h.P.alloc(size_t(L * L) * 4);
    h.O.alloc(size_t(L * dh_) * 4);
    h.cqk.assign(size_t(L), 0);
    h.cpv.assign(size_t(L), 0);
    if (qk_q8) h.kq8 = alloc_attn_q8(L, dh_);
    if (pv_q8) h.vq8 = alloc_attn_q8(dh_, L);
    if (qk_f16) h.kf16 = alloc_attn_f16(L, dh_);
    if (pv_f16) h.vf16 = alloc_attn_f16(dh_, L);
    if (qk_bf16) h.kbf16 = alloc_attn_bf16(L, dh_);
    if (pv_bf16) h.vbf16 = alloc_attn_bf16(dh_, L);
  }
}

namespace {
// Fastest usable non-reference f32 GEMM for the per-head calls, timed the way they run: every thread
// multiplies its own head at once (the GEMM inside the parallel region runs on its calling thread).
template <class MakeArgs>
kernels::GemmFn pick_attn_f32(const MakeArgs& make, int threads, bool autotune, int reps, std::string& name) {
  const auto& list = kernels::gemm_f32_list();
  if (!autotune) {
    const auto& impl = list.select(make(0));
    name = impl.name;
    return impl.fn;
  }
  const std::vector<const kernels::KernelImpl<kernels::GemmArgs, kernels::GemmFn>*> cands =
      list.candidates(make(0), true);  // as every other autotuned layer of both engines
  const int best = fastest_candidate(
      cands.size(),
      [&](size_t i) {
#pragma omp parallel num_threads(threads)
        cands[size_t(i)]->fn(make(omp_get_thread_num()));
      },
      reps);
  if (best >= 0) {
    name = cands[size_t(best)]->name;
    return cands[size_t(best)]->fn;
  }
  const auto& impl = list.select(make(0));
  name = impl.name;
  return impl.fn;
}
}  // namespace

void BertNative::choose_attention(Layer& p) {
  const int64_t L = L_, D = D_, dh = dh_;
  HeadScratch& h0 = heads_[0];
  const int nt = int(std::min<int64_t>(threads_, H_));
  switch (p.qk) {
    case Precision::fp32:
      p.qk_f32 = pick_attn_f32(
          [&](int t) {
            return kernels::GemmArgs{L,
                                     L,
                                     dh,
                                     reinterpret_cast<const float*>(Q_.data()),
                                     D,
                                     false,
                                     reinterpret_cast<const float*>(K_.data()),
                                     D,
                                     true,
                                     reinterpret_cast<float*>(heads_[size_t(t)].S.data()),
                                     L,
                                     0.0f};
          },
          nt, opt_.autotune, opt_.autotune_reps, p.qk_impl);
      break;
    case Precision::fp16: {
      kernels::F16GemmArgs g;
      g.M = L, g.A = Q_.data(), g.lda = D, g.w = &h0.kf16, g.C = h0.S.data(), g.ldc = L;
      p.qk_f16 = attn_f16_fn(g, &p.qk_impl);
      break;
    }
    case Precision::bf16: {
      kernels::BF16GemmArgs g;
      g.M = L, g.A = Q_.data(), g.lda = D, g.a_f32 = true, g.w = &h0.kbf16, g.C = h0.S.data(), g.ldc = L;
      p.qk_bf16 = attn_bf16_fn(g, &p.qk_impl);
      break;
    }
    default: {
      kernels::Q8GemmArgs g;
      g.M = L, g.A = Q_.data(), g.lda = D, g.za = p.qk_a.zero_point, g.w = &h0.kq8, g.C = h0.S.data(), g.ldc = L;
      p.qk_q8 = attn_q8_fn(g, &p.qk_impl);
      break;
    }
  }
  switch (p.pv) {
    case Precision::fp32:
      p.pv_f32 = pick_attn_f32(
          [&](int t) {
            return kernels::GemmArgs{L,
                                     dh,
                                     L,
                                     reinterpret_cast<const float*>(heads_[size_t(t)].P.data()),
                                     L,
                                     false,
                                     reinterpret_cast<const float*>(V_.data()),
                                     D,
                                     false,
                                     reinterpret_cast<float*>(heads_[size_t(t)].O.data()),
                                     dh,
                                     0.0f};
          },
          nt, opt_.autotune, opt_.autotune_reps, p.pv_impl);
      break;
    case Precision::fp16: {
      kernels::F16GemmArgs g;
      g.M = L, g.A = h0.P.data(), g.lda = L, g.w = &h0.vf16, g.C = h0.O.data(), g.ldc = dh;
      p.pv_f16 = attn_f16_fn(g, &p.pv_impl);
      break;
    }
    case Precision::bf16: {
      kernels::BF16GemmArgs g;
      g.M = L, g.A = h0.P.data(), g.lda = L, g.w = &h0.vbf16, g.C = h0.O.data(), g.ldc = dh;
      p.pv_bf16 = attn_bf16_fn(g, &p.pv_impl);
      break;
    }
    default: {
      kernels::Q8GemmArgs g;
      g.M = L, g.A = h0.P.data(), g.lda = L, g.za = p.pv_a.zero_point, g.w = &h0.vq8, g.C = h0.O.data(), g.ldc = dh;
      p.pv_q8 = attn_q8_fn(g, &p.pv_impl);
      break;
    }
  }
}

// Everything the compiled model keeps to run: packed linear weights with their scales, column sums and
// f32 biases, the layer norm parameters, and the word and position tables at their precisions (the f32
// position + token-type sum built from them at compile time is a cache of max_pos x D floats, not counted).
size_t BertNative::weight_bytes() const {
  size_t b = word_.bytes() + pos_.bytes() + (emb_g_.size() + emb_b_.size()) * sizeof(float);
  for (const Layer& p : layers_) {
    for (const Linear* l : {&p.q, &p.k, &p.v, &p.ao, &p.fi, &p.fo}) b += l->bytes();
    b += (p.ln1_g.size() + p.ln1_b.size() + p.ln2_g.size() + p.ln2_b.size()) * sizeof(float);
  }
  return b + pooler_.bytes() + cls_.bytes();
}

std::map<std::string, size_t> BertNative::layer_weight_bytes() const {
  std::map<std::string, size_t> m;
  m[word_.name] = word_.bytes();
  m[pos_.name] = pos_.bytes();
  for (const Layer& p : layers_) {
    for (const Linear* l : {&p.q, &p.k, &p.v, &p.ao, &p.fi, &p.fo}) m[l->name] = l->bytes();
    m[p.qk_name] = 0;
    m[p.pv_name] = 0;
  }
  m[pooler_.name] = pooler_.bytes();
  m[cls_.name] = cls_.bytes();
  return m;
}

std::map<std::string, std::string> BertNative::implementations() const {
  std::map<std::string, std::string> m;
  m[word_.name] = std::string("embedding_gather_") + precision_name(word_.prec) + "_ref";
  m[pos_.name] = std::string("embedding_fold_") + precision_name(pos_.prec) + "_at_compile";
  for (const Layer& p : layers_) {
    for (const Linear* l : {&p.q, &p.k, &p.v, &p.ao, &p.fi, &p.fo}) m[l->name] = l->impl;
    m[p.qk_name] = p.qk_impl;
    m[p.pv_name] = p.pv_impl;
  }
  m[pooler_.name] = pooler_.impl;
  m[cls_.name] = cls_.impl;
  return m;
}

}  // namespace bert
}  // namespace mpq::native
