// Packing of one GEMM layer's weights for both native engines (see packed_gemm.h).
#include "models/native/packed_gemm.h"

#include <cmath>

#include "core/error.h"

namespace mpq::native {

namespace {
// Two's-complement int4 values [N, K] -> q4 bytes [N, (K + 1) / 2] (element 2i in the low nibble; the layout
// kernels::pack_q4w reads).
std::vector<uint8_t> pack_nibbles(const int8_t* q, int64_t N, int64_t K) {
  const int64_t kb = (K + 1) / 2;
  std::vector<uint8_t> out(size_t(N * kb), 0);  // [N, kb]
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const uint8_t nib = uint8_t(q[n * K + k]) & 0xf;
      out[size_t(n * kb + k / 2)] |= k % 2 == 0 ? nib : uint8_t(nib << 4);
    }
  return out;
}
}  // namespace

PackedGemm pack_gemm_float(Precision p, const float* rows, int64_t N, int64_t K) {
  PackedGemm g;
  g.prec = p, g.N = N, g.K = K;
  switch (p) {
    case Precision::fp32:
      g.f32.assign(size_t(K * N), 0.0f);  // [K, N]
      for (int64_t n = 0; n < N; ++n)
        for (int64_t k = 0; k < K; ++k) g.f32[size_t(k * N + n)] = rows[n * K + k];
      break;
    case Precision::fp16:
      g.f16 = kernels::pack_f16w_from_f32(rows, N, K);
      break;
    case Precision::bf16:
      g.bf16 = kernels::pack_bf16w_from_f32(rows, N, K);
      break;
    case Precision::int8:
    case Precision::int4:
      throw Error(fmt::format("pack_gemm_float: {} weights are packed from integer codes", precision_name(p)));
  }
  return g;
}

PackedGemm pack_gemm_codes(Precision p, const int8_t* codes, int64_t N, int64_t K, int64_t group, const float* scales,
                           bool widen) {
  PackedGemm g;
  g.prec = p, g.N = N, g.K = K;
  switch (p) {
    case Precision::int8:
      check(group == 0, "pack_gemm_codes: int8 weights take one scale per output channel, got group {}", group);
      g.q8 = kernels::pack_q8w(codes, N, K, scales);
      break;
    case Precision::int4:
      g.q4 = kernels::pack_q4w(pack_nibbles(codes, N, K).data(), N, K, group, scales);
      if (widen && group == 0 && N * K <= kWidenedInt4MaxWeights)  // the same codes and scales as int8 operands
        g.q8 = kernels::pack_q8w(codes, N, K, scales);
      break;
    default:
      throw Error(fmt::format("pack_gemm_codes: {} weights are packed from floats", precision_name(p)));
  }
  return g;
}

size_t PackedGemm::bytes() const {
  switch (prec) {
    case Precision::fp32:
      return f32.size() * sizeof(float);
    case Precision::fp16:
      return f16.w.bytes;
    case Precision::bf16:
      return bf16.w.bytes;
    case Precision::int8:
      return q8.weight_bytes() + (q8.scale.size() * sizeof(float) + q8.colsum.size() * sizeof(int32_t));
    case Precision::int4:
      return q4.weight_bytes() + (q4.scale.size() * sizeof(float) + q4.colsum.size() * sizeof(int32_t));
  }
  return 0;
}

const kernels::Q8GemmList::Impl& widened_int4_kernel(const kernels::Q8GemmArgs& a) {
  for (const auto& im : kernels::gemm_qu8_qc8w_list().impls())
    if (im.fn != &kernels::gemm_qu8_qc8w__onednn && im.usable(a)) return im;
  throw Error("widened_int4_kernel: no usable int8 kernel of ours (the reference entry is always usable)");
}

kernels::ActFormat integer_input(const char* engine, const std::string& layer, const LayerQuant& lq) {
  auto it = lq.act.find(0);
  check(it != lq.act.end(),
        "native {}: layer '{}' is {} but its input has no calibrated scale / zero point (LayerQuant::act[0]): "
        "calibrate first (quant::calibrate / make_assignment)",
        engine, layer, precision_name(lq.precision));
  const ActQuantParams& a = it->second;
  check(a.scale > 0 && std::isfinite(a.scale) && a.zero_point >= 0 && a.zero_point <= 255,
        "native {}: layer '{}': input scale {} / zero point {} are invalid", engine, layer, a.scale, a.zero_point);
  return kernels::ActFormat{DType::u8, a.scale, a.zero_point};
}

int64_t effective_int4_group(const char* engine, const std::string& layer, int64_t group, int64_t K) {
  if (group <= 0 || K % group != 0) return 0;
  check(group == 32 || group == 64 || group == 128,
        "native {}: layer '{}': int4 weight_group {} is not offered by the int4 kernels (0 = per channel, 32, 64 or "
        "128)",
        engine, layer, group);
  return group;
}

void add_bias_correction(const char* engine, const std::string& layer, std::vector<float>& bias,
                         const std::vector<float>& bc) {
  check(bc.empty() || bc.size() == bias.size(), "native {}: layer '{}' has {} bias corrections for {} outputs", engine,
        layer, bc.size(), bias.size());
  for (size_t i = 0; i < bc.size(); ++i) bias[i] = bias[i] + bc[i];
}

}  // namespace mpq::native
