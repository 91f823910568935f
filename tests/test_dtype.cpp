// The dtype traits table and the f16 / bf16 conversions, exhaustively.
// References: for f16, the CPU's own F16C instructions (vcvtph2ps / vcvtps2ph with round-to-nearest-even),
// which share no code with ours; for bf16, a decode from sign/exponent/mantissa fields with std::ldexp and
// an encode that picks the nearer of the two neighbouring bf16 values in double precision (ties to even).
#include <doctest/doctest.h>
#include <immintrin.h>

#include <cmath>
#include <random>

#include "core/dtype.h"
#include "core/error.h"
#include "core/quant_blocks.h"
#include "core/tensor.h"

using namespace mpq;

namespace {
bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return f32_bits(a) == f32_bits(b);
}

double bf16_ref_decode(uint16_t b, bool for_rounding = false) {
  const int sign = b >> 15, exp = (b >> 7) & 0xff, man = b & 0x7f;
  double v;
  if (exp == 0)
    v = std::ldexp(double(man), -126 - 7);
  else if (exp == 255 && man != 0)
    v = NAN;
  else if (exp == 255)
    v = for_rounding ? std::ldexp(1.0, 128) : INFINITY;  // rounding: where the next binade would start
  else
    v = std::ldexp(double(128 + man), exp - 127 - 7);
  return sign ? -v : v;
}

// Nearest bf16 by value comparison in double; ties to the even mantissa; overflow past the largest
// finite bf16's rounding boundary goes to infinity.
uint16_t bf16_ref_encode(float f) {
  if (std::isnan(f)) return 0x7fc0;
  const uint32_t u = f32_bits(f);
  const uint16_t lo = uint16_t(u >> 16);  // truncation: toward zero in magnitude
  if ((u & 0xffff) == 0) return lo;
  const uint16_t hi = uint16_t(lo + 1);  // next magnitude up (may be inf)
  const double x = std::fabs(double(f));
  const double dlo = x - std::fabs(bf16_ref_decode(lo, true));
  const double dhi = std::fabs(bf16_ref_decode(hi, true)) - x;
  if (dlo < dhi) return lo;
  if (dhi < dlo) return hi;
  return (lo & 1) ? hi : lo;
}
}  // namespace

TEST_CASE("dtype: traits table facts") {
  CHECK(traits(DType::f32).block_bytes == 4);
  CHECK(traits(DType::f16).bits == 16);
  CHECK(traits(DType::q4).block_size == 2);
  CHECK(dtype_bytes(DType::q4, 7) == 4);
  CHECK(dtype_bytes(DType::i32, 3) == 12);
  DType d;
  CHECK(dtype_from_name("bf16", d));
  CHECK(d == DType::bf16);
  CHECK_FALSE(dtype_from_name("f64", d));
  CHECK(sizeof(BlockQ4x32) == 16);
  // integer saturation and rounding (ties away from zero)
  CHECK(traits(DType::i8).to_float(traits(DType::i8).from_float(200.0f)) == 127.0f);
  CHECK(traits(DType::i8).to_float(traits(DType::i8).from_float(-2.5f)) == -3.0f);
  CHECK(traits(DType::u8).to_float(traits(DType::u8).from_float(-3.0f)) == 0.0f);
  for (int v = -8; v <= 7; ++v) CHECK(traits(DType::q4).to_float(traits(DType::q4).from_float(float(v))) == float(v));
  CHECK(traits(DType::q4).to_float(traits(DType::q4).from_float(9.0f)) == 7.0f);
}

TEST_CASE("dtype: all 65536 f16 values decode like F16C and round-trip") {
  int bad = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = f16_to_f32(uint16_t(h));
    const float hw = _cvtsh_ss(uint16_t(h));
    if (!same_float(ours, hw)) ++bad;
    if (!std::isnan(ours) && f32_to_f16(ours) != h) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("dtype: f32 -> f16 rounds to nearest even like F16C, at every midpoint and around it") {
  int bad = 0;
  for (uint32_t h = 0; h < 0x7c00; ++h) {  // positive finite halves; negatives are the sign-mirror
    const double a = f16_to_f32(uint16_t(h)), b = f16_to_f32(uint16_t(h + 1));
    const float mid = float((a + b) / 2);  // exact in f32: halves have 11 significant bits
    for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY), -mid}) {
      const uint16_t hw = _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      if (f32_to_f16(x) != hw) {
        if (bad < 5) MESSAGE("f32 " << x << " -> ours " << f32_to_f16(x) << " hw " << hw);
        ++bad;
      }
    }
  }
  std::mt19937 rng(3);
  for (int i = 0; i < 1000000; ++i) {
    const float x = f32_from_bits(rng());
    const uint16_t hw = _cvtss_sh(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const uint16_t ours = f32_to_f16(x);
    if (std::isnan(x) ? !((ours & 0x7c00) == 0x7c00 && (ours & 0x3ff)) : ours != hw) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("dtype: all 65536 bf16 values decode exactly, f32 -> bf16 rounds to nearest even") {
  int bad = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const double ref = bf16_ref_decode(uint16_t(b));
    const float ours = bf16_to_f32(uint16_t(b));
    if (std::isnan(ref) ? !std::isnan(ours) : double(ours) != ref) ++bad;
    if (!std::isnan(ours) && f32_to_bf16(ours) != b) ++bad;
    // the midpoint to the next value, and its neighbours
    if ((b & 0x7f80) != 0x7f80 && b != 0x7fff && b != 0xffff) {
      const float mid = f32_from_bits((b << 16) | 0x8000u);
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, mid * 2)})
        if (f32_to_bf16(x) != bf16_ref_encode(x)) ++bad;
    }
  }
  CHECK(bad == 0);
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST_CASE("tensor: views share storage, contiguous copies, element access") {
  Tensor t = Tensor::from_vector({2, 3, 4}, std::vector<float>(24));
  for (int64_t i = 0; i < 24; ++i) t.set_flat(i, float(i));
  Tensor tr = t.transpose_view(0, 2);  // [4, 3, 2]
  CHECK_FALSE(tr.is_contiguous());
  CHECK(tr.at({3, 1, 1}) == t.at({1, 1, 3}));
  Tensor c = tr.contiguous();
  CHECK(c.is_contiguous());
  CHECK(c.at({3, 1, 1}) == 19.0f);
  Tensor s = t.slice(2, 1, 4, 2);  // [2, 3, 2]: columns 1 and 3
  CHECK(s.to_vector() == std::vector<float>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23});
  s.set_flat(0, 100.0f);
  CHECK(t.at({0, 0, 1}) == 100.0f);  // a view writes through
  CHECK(t.narrow(1, 1, 2).select(0, 1).shape() == Shape{2, 4});
  CHECK(t.reshape_view({6, -1}).shape() == Shape{6, 4});
  CHECK(reinterpret_cast<uintptr_t>(Tensor::zeros({3, 5}).raw()) % 64 == 0);
  Tensor h = t.to(DType::f16);
  CHECK(h.at({1, 2, 3}) == 23.0f);
  Tensor q = Tensor::zeros({2, 5}, DType::q4);
  q.set_flat(6, -3.0f);
  q.set_flat(7, 7.0f);
  CHECK(q.nbytes() == 6);
  CHECK(q.at({1, 1}) == -3.0f);
  CHECK(q.at({1, 2}) == 7.0f);
  CHECK_THROWS_AS(t.reshape_view({5, 5}), mpq::Error);
  CHECK_THROWS_AS(tr.reshape_view({24}), mpq::Error);
  CHECK_THROWS_AS(t.at({2, 0, 0}), mpq::Error);
  CHECK_THROWS_AS(t.slice(1, 2, 5), mpq::Error);
}
