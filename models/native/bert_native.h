// Private to models/native/bert_native*.cpp and tests/test_native_bert.cpp: the pieces of the compiled
// BERT (models/native/native.h) that are worth testing on their own.
//
//   - weight quantization exactly as quant/quantizer.h fake_quant_weight (integers + scales, so that
//     q * s reproduces the fake-quant weights bit for bit);
//   - Linear: one quantizable linear layer packed for its precision's kernel, with the chosen
//     implementation;
//   - the per-call packing of the attention operands (K and V have no weights: they are packed for the
//     low-precision GEMMs on every call, O(L * head_dim) per head, O(L * D) per layer and matmul) and the
//     exact int8 x int8 attention product built on the u8 x s8 VNNI kernel.
#pragma once
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/precision.h"
#include "models/bert.h"
#include "models/native/embedding_table.h"
#include "models/native/native.h"
#include "models/native/packed_gemm.h"
#include "ops/kernels/f32_impls.h"
#include "ops/kernels/lowp.h"
#include "ops/kernels/transformer.h"

namespace mpq::native::bert {

// ---- weights ----

// Symmetric quantization of W [N, K] with qmax = 2^(bits-1) - 1, one scale per row (group == 0) or per
// `group` consecutive elements of a row (K % group == 0): s = max|w| / qmax (1 for an all-zero group),
// q = clamp(nearbyint(w / s), -qmax, qmax). q: int8 [N, K]; scales: f32 [N][K / group] (or [N]).
void quantize_weight_sym(const float* W, int64_t N, int64_t K, int bits, int64_t group, std::vector<int8_t>& q,
                         std::vector<float>& scales);

using kernels::ActFormat;  // the format a layer reads / a value is stored in (ops/kernels/act_format.h)

// One linear layer y = x W^T + b at its precision:
//   fp32: gemm_f32 on W^T [K, N] (its plain "nn" B operand; that GEMM packs panels itself and has no
//         epilogue, so the bias is added by the pass that reads the raw output);
//   fp16: gemm_f16 (packed f16 W, f16 A); bf16: gemm_bf16 (packed bf16 W, bf16 A);
//   int8: gemm_qu8_qc8w (u8 A with the layer's calibrated scale / zero point, per-channel int8 W);
//   int4: gemm_qu8_qc4w (u8 A, int4 W per channel or per group of 32 / 64 / 128); a small per-channel
//         layer runs gemm_qu8_qc8w on its widened codes instead (packed_gemm.h, kWidenedInt4MaxWeights).
struct Linear {
  std::string name;
  Precision prec = Precision::fp32;
  int64_t N = 0, K = 0;
  std::vector<float> bias;  // [N]
  PackedGemm w;             // W [N, K] packed at prec (fp32: W^T [K, N]); small int4 layers also widened
  ActFormat in;             // what it reads: f32, f16, bf16, or u8 with the calibrated input parameters
  // The implementation that runs (chosen at compile time; autotuned or first usable of the list).
  kernels::GemmFn f32_fn = nullptr;
  kernels::F16GemmFn f16_fn = nullptr;
  kernels::BF16GemmFn bf16_fn = nullptr;
  kernels::Q8GemmFn q8_fn = nullptr;
  kernels::Q4GemmFn q4_fn = nullptr;
  std::string impl;

  // Packs W [N, K] and b [N] for precision lq.precision (int4 group per lq.weight_group).
  void build(const std::string& layer, const float* W, const float* b, int64_t n, int64_t k, const LayerQuant& lq);
  bool has_epilogue() const { return prec != Precision::fp32; }
  // Can the GEMM's epilogue write this format directly?
  bool can_write(DType f) const;
  // C = A W^T. fp32: raw product only (bias and residual are the caller's). Others: + bias, + residual
  // res [M, ldr] f32 (may be null), written in out's format (can_write(out.dt) must hold).
  void run(const void* A, int64_t lda, int64_t M, const kernels::ActOut& out, const float* res, int64_t ldr) const;
  // Picks the implementation for M rows reading A / writing out (autotune: time every usable
  // non-reference entry `reps` times and keep the fastest).
  void choose_impl(const void* A, int64_t lda, int64_t M, const kernels::ActOut& out, const float* res, int64_t ldr,
                   bool autotune, int reps);
  size_t bytes() const;  // packed weights + scales + column sums + bias
};

// ---- attention operands (packed per call into buffers allocated once) ----

// Buffers for an operand with N columns (rows of W) and K depth. q8: scales 1 (the attention product is
// returned unscaled), column sums recomputed by every pack.
kernels::PackedQ8W alloc_attn_q8(int64_t N, int64_t K);
kernels::PackedF16W alloc_attn_f16(int64_t N, int64_t K);
kernels::PackedBF16W alloc_attn_bf16(int64_t N, int64_t K);

// "rows": W[n][k] = B[n * ldb + k] (K operand of Q K^T: keys are the columns n, head dims the depth k).
// "cols": W[n][k] = B[k * ldb + n] (V operand of P V: head dims are the columns, keys the depth).
// u8 sources become s8 W = B - 128 (exact); f32 sources are rounded to nearest even f16 / bf16. They forward
// to the kernel ops of ops/kernels/pack_attn.h (pack_attn_qu8_*, pack_attn_f32_f16_*, pack_attn_f32_bf16_*).
void pack_attn_q8_rows(const uint8_t* B, int64_t ldb, kernels::PackedQ8W& w);
void pack_attn_q8_cols(const uint8_t* B, int64_t ldb, kernels::PackedQ8W& w);
void pack_attn_f16_rows(const float* B, int64_t ldb, kernels::PackedF16W& w);
void pack_attn_f16_cols(const float* B, int64_t ldb, kernels::PackedF16W& w);
void pack_attn_bf16_rows(const float* B, int64_t ldb, kernels::PackedBF16W& w);
void pack_attn_bf16_cols(const float* B, int64_t ldb, kernels::PackedBF16W& w);

// Exact asymmetric u8 x u8 product T[m, n] = sum_k (A[m,k] - za) * (B[n,k] - zb), B packed by
// pack_attn_q8_* as W = B - 128. The u8 x s8 kernel gives acc[m,n] = sum_k (A - za) * W (its za column-sum
// correction); since B - zb = W + (128 - zb):
//   T[m, n] = acc[m, n] + (128 - zb) * (sum_k A[m,k] - K * za)        (all int32, exact)
// The kernel runs with unit scales and no bias, so it writes acc as an f32 holding an exact integer
// (|acc| <= 255 * 128 * K < 2^24 for K <= 514: checked). Writes acc to C [M, ldc] and the row term to
// row_corr [M]; consumers form T = int32(C) + row_corr (kernels' "int input").
void attn_q8_gemm(kernels::Q8GemmFn fn, const uint8_t* A, int64_t lda, int64_t M, int32_t za,
                  const kernels::PackedQ8W& w, int32_t zb, float* C, int64_t ldc, int32_t* row_corr);
// Largest depth K for which attn_q8_gemm's f32 accumulator transport is exact.
inline constexpr int64_t kAttnQ8MaxK = 514;

// The first usable non-oneDNN implementation of a list: per-call packed operands reuse one buffer, and
// the oneDNN entries cache reordered weights by the packed struct's id.
kernels::Q8GemmFn attn_q8_fn(const kernels::Q8GemmArgs& g, std::string* name = nullptr);
kernels::F16GemmFn attn_f16_fn(const kernels::F16GemmArgs& g, std::string* name = nullptr);
kernels::BF16GemmFn attn_bf16_fn(const kernels::BF16GemmArgs& g, std::string* name = nullptr);

// ---- the compiled model ----

// Wall-clock step timer of run_profiled (inactive in run()).
struct Prof {
  std::vector<StepTime>* steps = nullptr;
  size_t next = 0;  // index of the next step (sequences after the first add to the same entries)
  std::chrono::steady_clock::time_point t0;
  bool on() const { return steps != nullptr; }
  void start() {
    if (on()) t0 = std::chrono::steady_clock::now();
  }
  void add(const std::string& name, bool quant, double ms);
  void mark(const std::string& name, bool quant);  // the step since the last mark / start
};

class BertNative : public NativeModel {
 public:
  BertNative(models::Bert& m, Assignment a, const CompileOptions& opt);  // a: as native::compile
  Tensor run(const models::Batch& batch) override;
  Tensor run_profiled(const models::Batch& batch, std::vector<StepTime>& steps) override;
  size_t weight_bytes() const override;
  std::map<std::string, size_t> layer_weight_bytes() const override;
  std::map<std::string, std::string> implementations() const override;

 private:
  struct Layer {
    Linear q, k, v, ao, fi, fo;
    std::vector<float> ln1_g, ln1_b, ln2_g, ln2_b;  // [D] attention.output.LayerNorm, output.LayerNorm
    std::string qk_name, pv_name;
    std::string softmax_name, ln1_name, gelu_name, ln2_name;  // profiled steps "layer.i.softmax", ...
    Precision qk = Precision::fp32, pv = Precision::fp32;
    ActQuantParams qk_a, qk_b, pv_a, pv_b;  // int attention operands (Q, K; P, V)
    ActFormat qf, kf, vf, pf;               // formats of the Q, K, V buffers and of the softmax output (pv's A operand)
    // The layer input X is f32; q / k / v read X itself (slot -1) or a converted copy XC[slot]. Slot 0 is
    // written by the layer norm that produces X; the others by a conversion pass before the first reader
    // (convert[c]: reader c runs it). Planned by format_plan.h.
    std::vector<ActFormat> slot_fmt;  // distinct non-f32 input formats of q, k, v, in first-reader order
    int in_slot[3] = {-1, -1, -1};
    bool convert[3] = {false, false, false};
    // H (f32) is read by intermediate.dense itself (empty) or as HC_ in h_copy[0], written by layer norm 1.
    std::vector<ActFormat> h_copy;
    // Attention GEMM implementations (per head, on the calling thread).
    kernels::GemmFn qk_f32 = nullptr, pv_f32 = nullptr;
    kernels::F16GemmFn qk_f16 = nullptr, pv_f16 = nullptr;
    kernels::BF16GemmFn qk_bf16 = nullptr, pv_bf16 = nullptr;
    kernels::Q8GemmFn qk_q8 = nullptr, pv_q8 = nullptr;
    std::string qk_impl, pv_impl;
  };
  // Per-thread attention scratch (one head at a time).
  struct HeadScratch {
    kernels::AlignedBytes S;            // f32 [L, L] scores (raw int32 sums for int8)
    kernels::AlignedBytes P;            // [L, L] probabilities in the layer's pf (<= 4 bytes each)
    kernels::AlignedBytes O;            // f32 [L, dh] P V before the conversion into ctx
    std::vector<int32_t> cqk, cpv;      // [L] int8 row corrections of Q K^T and P V
    kernels::PackedQ8W kq8, vq8;        // K_h [L keys x dh], V_h^T [dh x L keys], s8 = u8 - 128
    kernels::PackedF16W kf16, vf16;     // same operands, f16
    kernels::PackedBF16W kbf16, vbf16;  // same operands, bf16
    double t[3] = {0, 0, 0};            // profiled: qk, softmax, pv milliseconds
  };

  void plan(int64_t L);  // (re)allocates every buffer for sequence length L and the current thread count
  void forward_seq(const int32_t* ids, const int32_t* mask, float* logits, Prof& prof);
  void layer(size_t i, Prof& prof);
  void attention(Layer& p, Prof& prof);
  void head(const Layer& p, int64_t h, HeadScratch& hs, bool timed);
  void choose_attention(Layer& p);
  void plan_layer_formats(Layer& L) const;  // attention operand formats, X / H copies
  // y = A W^T + b (+ gelu) in dst's format; uses S for raw / f32 intermediates.
  void linear_out(Linear& l, const void* A, int64_t lda, int64_t M, const ActFormat& dst, void* out, int64_t ld,
                  bool gelu);
  void call(Linear& l, const void* A, int64_t lda, int64_t M, const kernels::ActOut& out, const float* res,
            int64_t ldr);
  Tensor run_impl(const models::Batch& batch, std::vector<StepTime>* steps);

  models::BertConfig cfg_;
  int64_t D_ = 0, H_ = 0, dh_ = 0, F_ = 0, C_ = 0;
  CompileOptions opt_;
  EmbeddingTable word_;               // [V, D] at the word embedding layer's precision
  EmbeddingTable pos_;                // [max_pos, D] at the position embedding layer's precision
  std::vector<float> pt_;             // [max_pos, D] f32: pos_'s rows + token_type[0] (added once, as HF)
  std::vector<float> emb_g_, emb_b_;  // [D]
  std::vector<Layer> layers_;
  Linear pooler_, cls_;

  // ---- plan (per sequence length L and thread count) ----
  int64_t L_ = 0;
  int threads_ = 0;
  bool tuning_ = false;                     // compile-time dry run: choose implementations on the real calls
  kernels::AlignedBytes X_, H_buf_;         // f32 [L, D] layer input / attention block output
  kernels::AlignedBytes XC_[3], HC_;        // [L, D] converted copies (<= 2 bytes each)
  kernels::AlignedBytes Q_, K_, V_;         // [L, D] in the layer's qf / kf / vf (<= 4 bytes)
  kernels::AlignedBytes CTX_;               // [L, D] attention context in attention.output.dense's input format
  kernels::AlignedBytes S_;                 // f32 [L, max(D, F)] raw GEMM outputs / pre-LN / pre-gelu values
  kernels::AlignedBytes MID_;               // [L, F] gelu output in output.dense's input format
  kernels::AlignedBytes mask_;              // f32 [L] additive key mask (0 / -10000)
  kernels::AlignedBytes pin_, pool_, cin_;  // [D] pooler input, f32 [D] pooler output, [D] classifier input
  std::vector<HeadScratch> heads_;          // [threads]
};

}  // namespace mpq::native::bert
