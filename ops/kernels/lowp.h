// Raw-pointer low-precision GEMM kernels (no Tensor): W8A8, W4A8, FP16 and BF16.
//
//   C[M,N] = epilogue( A[M,K] * W[N,K]^T )     A row-major [M, lda >= K], W packed once (pack_*),
//                                               C row-major [M, ldc >= N].
//
// Weights are packed ONCE into the kernels' layout: N in panels of 32 columns (two 16-lane zmm
// vectors), K grouped by 4 (int8/int4: one vpdpbusd dword) or 2 (bf16: one vdpbf16ps pair). Every
// implementation of an op reads the same packed struct; the reference reads it through at().
//
// Integer math (W8A8 / W4A8), per output element (m, n), with z = za (u8 A) or za + 128 (s8 A, which
// the kernels turn into u8 by xor 0x80 while packing A: a_s8 + 128 == a_s8 ^ 0x80 as a byte):
//   acc_g = sum_{k in group g} a[m,k] * w[n,k]            exact int32 (vpdpbusd u8 x s8, no saturation)
//   zc_g  = z * colsum_g[n]                                colsum_g precomputed at pack time
//   W8A8 and per-channel W4A8 (one group spanning K):
//     f = float(acc - zc), scale = sa * s[n]               (one IEEE f32 multiply, RNE)
//   per-group W4A8 (group 32/64/128, even when K == group):
//     f = float(acc_0 - zc_0) * s_0[n];  f = fma(float(acc_g - zc_g), s_g[n], f) for g >= 1;  scale = sa
//   then the shared epilogue below with pre-scale f and that scale.
//
// Shared epilogue (f32 ops in exactly this order; the reference does the same ops, so f32 outputs of
// the integer paths are bit-exact across implementations and u8 outputs are bit-exact):
//   y = fma(f, scale, bias[n] or +0)                       (float GEMMs: f = accumulator, scale = 1)
//   y = y + res[m,n]                                        f32 residual, or
//   y = fma(float(res_u8[m,n] - res_zp), res_scale, y)      u8 residual
//   y = min(max(y, clamp_lo), clamp_hi)                     activation in real (dequantized) values:
//                                                           relu = [0, inf), relu6 = [0, 6]
//   f32 out: y;  f16 out: round-to-nearest-even to binary16 (vcvtps2ph imm 0 / f32_to_f16)
//   u8 out:  t = y * (1.0f / out_scale); t = t + float(out_zp); t = min(max(t, 0), 255);
//            q = round-to-nearest-even(t) (cvtps2dq under the default MXCSR / std::nearbyint)
// max/min follow maxps/minps: max(y, lo) = y > lo ? y : lo, so NaN inputs are not propagated.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <vector>

#include "ops/kernels/act_format.h"
#include "ops/kernels/registry.h"

namespace mpq::kernels {

inline constexpr int kLowpNR = 32;  // columns per packed weight panel

// Owning 64-byte-aligned, zero-initialised byte buffer.
struct AlignedBytes {
  struct Free {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<uint8_t[], Free> p;
  size_t bytes = 0;
  void alloc(size_t n);
  uint8_t* data() { return p.get(); }
  const uint8_t* data() const { return p.get(); }
};

// ---- packed weights ----

// int8 per-output-channel weights. Np = N rounded up to 32, Kp = K rounded up to 4.
struct PackedQ8W {
  int64_t N = 0, K = 0, Np = 0, Kp = 0;
  uint64_t id = 0;              // unique per pack_q8w call (oneDNN cache key)
  AlignedBytes w;               // int8 [Np/32][Kp/4][32][4]; (n, k) at ((n/32)*(Kp/4) + k/4)*128 + (n%32)*4 + k%4
  std::vector<float> scale;     // [Np] weight scale per output channel (padding 0)
  std::vector<int32_t> colsum;  // [Np] sum_k W[n,k] (padding 0)
  int8_t at(int64_t n, int64_t k) const {
    return int8_t(w.data()[((n / 32) * (Kp / 4) + k / 4) * 128 + (n % 32) * 4 + k % 4]);
  }
  size_t weight_bytes() const { return w.bytes; }
};
// W: int8 [N, K] row-major; scales: f32 [N].
PackedQ8W pack_q8w(const int8_t* W, int64_t N, int64_t K, const float* scales);

// int4 weights, per output channel (group == 0) or per group of 32/64/128 along K (K % group == 0).
// Byte j of the 64-byte chunk of (panel p, k-step s): low nibble = (n = 32p + j/4, k = 4s + j%4),
// high nibble = (n = 32p + 16 + j/4, same k); nibbles are two's complement [-8, 7].
struct PackedQ4W {
  int64_t N = 0, K = 0, Np = 0, Kp = 0;
  int64_t group = 0;    // 0 = per channel; else 32, 64 or 128
  int64_t ngroups = 1;  // K / group, or 1
  uint64_t id = 0;
  AlignedBytes w;               // nibbles [Np/32][Kp/4][64 bytes]
  std::vector<float> scale;     // [ngroups][Np]
  std::vector<int32_t> colsum;  // [ngroups][Np] sum over the group's k of W[n,k]
  int8_t at(int64_t n, int64_t k) const {
    const uint8_t b = w.data()[((n / 32) * (Kp / 4) + k / 4) * 64 + (n % 16) * 4 + k % 4];
    const int nib = (n % 32) < 16 ? (b & 0xf) : (b >> 4);
    return int8_t((nib ^ 8) - 8);
  }
  int64_t steps_per_group() const { return group == 0 ? Kp / 4 : group / 4; }
  size_t weight_bytes() const { return w.bytes; }
};
// W: q4 [N, (K+1)/2] bytes (core/dtype.h: element 2i low nibble of byte i); scales: f32 [N] when
// group == 0, else f32 [N][K/group].
PackedQ4W pack_q4w(const uint8_t* W, int64_t N, int64_t K, int64_t group, const float* scales);

// f16 weights: [Np/32][K][32] binary16 (padding columns 0).
struct PackedF16W {
  int64_t N = 0, K = 0, Np = 0;
  uint64_t id = 0;
  AlignedBytes w;
  uint16_t at(int64_t n, int64_t k) const {
    return reinterpret_cast<const uint16_t*>(w.data())[((n / 32) * K + k) * 32 + n % 32];
  }
};
PackedF16W pack_f16w(const uint16_t* W, int64_t N, int64_t K);        // W f16 [N, K]
PackedF16W pack_f16w_from_f32(const float* W, int64_t N, int64_t K);  // rounds RNE (f32_to_f16)

// bf16 weights: [Np/32][Kp/2][32][2] (Kp = K rounded up to 2; padding 0), one vdpbf16ps pair per dword.
struct PackedBF16W {
  int64_t N = 0, K = 0, Np = 0, Kp = 0;
  uint64_t id = 0;
  AlignedBytes w;
  uint16_t at(int64_t n, int64_t k) const {
    return reinterpret_cast<const uint16_t*>(w.data())[((n / 32) * (Kp / 2) + k / 2) * 64 + (n % 32) * 2 + k % 2];
  }
};
PackedBF16W pack_bf16w(const uint16_t* W, int64_t N, int64_t K);        // W bf16 [N, K]
PackedBF16W pack_bf16w_from_f32(const float* W, int64_t N, int64_t K);  // rounds RNE (f32_to_bf16)

// ---- epilogue ----

struct LowpEpilogue {
  const float* bias = nullptr;                               // [N] or null
  float clamp_lo = -std::numeric_limits<float>::infinity();  // activation bounds (real values)
  float clamp_hi = std::numeric_limits<float>::infinity();
  DType out = DType::f32;
  float out_scale = 1.0f;  // u8 output quantization
  int32_t out_zp = 0;
  const void* residual = nullptr;  // [M, ld_res] f32 or u8, or null
  bool residual_u8 = false;
  int64_t ld_res = 0;
  float res_scale = 1.0f;  // u8 residual dequantization
  int32_t res_zp = 0;
};
// Refuses an epilogue no kernel can run (mpq::Error naming op): a residual row shorter than N, an output
// format other than f32 / f16 / u8, a u8 output scale <= 0 or zero point outside [0, 255].
void check_lowp_epilogue(const char* op, const LowpEpilogue& ep, int64_t N);

// ---- GEMM arguments ----
template <class PW>
struct QGemmArgs {
  int64_t M = 0;
  const uint8_t* A = nullptr;  // [M, lda] u8, or s8 bytes when a_signed
  int64_t lda = 0;
  bool a_signed = false;
  float sa = 1.0f;  // activation scale
  int32_t za = 0;   // activation zero point (in A's own domain: u8 or s8)
  const PW* w = nullptr;
  void* C = nullptr;  // [M, ldc] f32, u8 or f16 per ep.out
  int64_t ldc = 0;
  LowpEpilogue ep;
};
using Q8GemmArgs = QGemmArgs<PackedQ8W>;
using Q4GemmArgs = QGemmArgs<PackedQ4W>;

template <class PW>
struct FGemmArgs {
  int64_t M = 0;
  const void* A = nullptr;  // [M, lda] f32 when a_f32, else f16 (gemm_f16) / bf16 (gemm_bf16) bits
  int64_t lda = 0;
  bool a_f32 = false;  // f32 A is rounded (RNE) to the weight format at the boundary for bf16;
                       // for f16 GEMMs f32 A is used as is (the FMAs are f32)
  const PW* w = nullptr;
  void* C = nullptr;  // [M, ldc] f32, or f16 when ep.out == f16 (gemm_f16 only)
  int64_t ldc = 0;
  LowpEpilogue ep;  // sa is 1: y = acc + bias, residual, clamp
};
using F16GemmArgs = FGemmArgs<PackedF16W>;
using BF16GemmArgs = FGemmArgs<PackedBF16W>;

// ---- entry points (dispatch: first usable implementation of the list, reference last) ----
void gemm_qu8_qc8w(const Q8GemmArgs& g);
void gemm_qu8_qc4w(const Q4GemmArgs& g);
void gemm_f16(const F16GemmArgs& g);
void gemm_bf16(const BF16GemmArgs& g);

// Reference twins (plain loops; same float ops as documented above).
void gemm_qu8_qc8w_ref(const Q8GemmArgs& g);
void gemm_qu8_qc4w_ref(const Q4GemmArgs& g);
void gemm_f16_ref(const F16GemmArgs& g);    // double accumulation
void gemm_bf16_ref(const BF16GemmArgs& g);  // double accumulation

// Implementations.
void gemm_qu8_qc8w_14x32c4__avx512vnni(const Q8GemmArgs& g);
void gemm_qu8_qc8w_1x32c4__avx2(const Q8GemmArgs& g);         // AVX2 fallback (vpmaddwd), scalar epilogue
void gemm_qu8_qc4w_12x32c4__avx512vnni(const Q4GemmArgs& g);  // per-channel and per-group
// Nibbles unpacked once per panel into a per-thread int8 scratch panel, then a 14x32 W8A8-style tile;
// per channel and per group.
void gemm_qu8_qc4w_14x32c4_panel__avx512vnni(const Q4GemmArgs& g);
void gemm_f16_14x32__avx512(const F16GemmArgs& g);
void gemm_bf16_14x32c2__avx512bf16(const BF16GemmArgs& g);
void gemm_qu8_qc8w__onednn(const Q8GemmArgs& g);
void gemm_bf16__onednn(const BF16GemmArgs& g);

using Q8GemmFn = void (*)(const Q8GemmArgs&);
using Q4GemmFn = void (*)(const Q4GemmArgs&);
using F16GemmFn = void (*)(const F16GemmArgs&);
using BF16GemmFn = void (*)(const BF16GemmArgs&);
using Q8GemmList = KernelList<Q8GemmArgs, Q8GemmFn>;
using Q4GemmList = KernelList<Q4GemmArgs, Q4GemmFn>;
using F16GemmList = KernelList<F16GemmArgs, F16GemmFn>;
using BF16GemmList = KernelList<BF16GemmArgs, BF16GemmFn>;
const Q8GemmList& gemm_qu8_qc8w_list();
const Q4GemmList& gemm_qu8_qc4w_list();
const F16GemmList& gemm_f16_list();
const BF16GemmList& gemm_bf16_list();

// Argument validation (throws mpq::Error naming the bad field).
void check_q8_args(const Q8GemmArgs& g);
void check_q4_args(const Q4GemmArgs& g);
void check_f16_args(const F16GemmArgs& g);
void check_bf16_args(const BF16GemmArgs& g);

// Scalar shared epilogue (the reference's exact op sequence); f is the pre-scale value.
void lowp_epilogue_scalar(const LowpEpilogue& ep, float scale, float f, int64_t m, int64_t n, void* C, int64_t ldc);

}  // namespace mpq::kernels
