// The dtype traits table: the single source of truth for every element type (ggml's type_traits).
// Name, bits per element, block size (elements per block), bytes per block, and scalar to/from float.
//
// Rounding: f32 -> f16 and f32 -> bf16 round to nearest, ties to even; NaN stays NaN (quiet),
// overflow goes to +-inf (f16). Integer from_float rounds to nearest, ties away from zero (std::lround),
// and saturates to the type's range. q4 is signed 4-bit [-8, 7], two per byte, element 2i in the low
// nibble and 2i+1 in the high nibble of byte i; its scalar to/from float handle one nibble value.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace mpq {

enum class DType : uint8_t { f32, f16, bf16, i8, u8, i32, q4 };
inline constexpr int kNumDTypes = 7;

// ---- bit-level conversions ----
inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// IEEE binary16 -> binary32, exact (every half is representable as a float).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return f32_from_bits(sign);
    // subnormal half: man * 2^-24, exact in float
    float v = float(man) * 5.9604644775390625e-08f;
    return sign ? -v : v;
  }
  if (exp == 31) return f32_from_bits(sign | 0x7f800000u | (man << 13));
  return f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
}

// binary32 -> binary16, round to nearest even.
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000u);
  const uint32_t abs = u & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // inf or NaN
    if (abs == 0x7f800000u) return sign | 0x7c00u;
    return sign | 0x7e00u | uint16_t((abs >> 13) & 0x3ffu);  // quiet NaN keeps payload top bits
  }
  if (abs >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 rounds to inf
  if (abs < 0x38800000u) {                        // below 2^-14: subnormal half or zero
    if (abs < 0x33000000u) return sign;           // < 2^-25 rounds to 0 (2^-25 itself ties to even 0)
    const uint32_t e = abs >> 23;                 // 102..112
    const uint32_t m = (abs & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126u - e;  // value = m * 2^(e-150); half subnormal unit is 2^-24
    uint32_t q = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return sign | uint16_t(q);
  }
  uint32_t q = ((abs >> 13) - (112u << 10));  // rebias exponent, keep 10 mantissa bits
  const uint32_t rem = abs & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) ++q;  // carry may roll into exponent: correct
  return sign | uint16_t(q);
}

inline float bf16_to_f32(uint16_t b) { return f32_from_bits(uint32_t(b) << 16); }

// binary32 -> bfloat16, round to nearest even; NaN stays a quiet NaN.
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);
  const uint32_t lsb = (u >> 16) & 1u;
  return uint16_t((u + 0x7fffu + lsb) >> 16);
}

template <int Lo, int Hi>
inline int32_t saturate_round(float v) {
  if (!(v >= float(Lo))) return Lo;  // also maps NaN to Lo
  if (v >= float(Hi)) return Hi;
  return int32_t(std::lround(v));
}

// ---- the traits table ----
struct DTypeTraits {
  std::string_view name;
  int bits;         // bits per element
  int block_size;   // elements per block (1 for scalar types)
  int block_bytes;  // bytes per block
  bool is_float;
  // Scalar conversions of one element stored in the low bits of `raw` (q4: one nibble, sign-extended).
  float (*to_float)(uint32_t raw);
  uint32_t (*from_float)(float v);
};

inline constexpr DTypeTraits kDTypeTraits[kNumDTypes] = {
    {"f32", 32, 1, 4, true, [](uint32_t r) { return f32_from_bits(r); }, [](float v) { return f32_bits(v); }},
    {"f16", 16, 1, 2, true, [](uint32_t r) { return f16_to_f32(uint16_t(r)); },
     [](float v) { return uint32_t(f32_to_f16(v)); }},
    {"bf16", 16, 1, 2, true, [](uint32_t r) { return bf16_to_f32(uint16_t(r)); },
     [](float v) { return uint32_t(f32_to_bf16(v)); }},
    {"i8", 8, 1, 1, false, [](uint32_t r) { return float(int8_t(uint8_t(r))); },
     [](float v) { return uint32_t(uint8_t(int8_t(saturate_round<-128, 127>(v)))); }},
    {"u8", 8, 1, 1, false, [](uint32_t r) { return float(uint8_t(r)); },
     [](float v) { return uint32_t(saturate_round<0, 255>(v)); }},
    {"i32", 32, 1, 4, false, [](uint32_t r) { return float(int32_t(r)); },
     [](float v) {
       // 2147483520 is the largest float below 2^31.
       if (!(v >= -2147483648.0f)) return uint32_t(0x80000000u);
       if (v >= 2147483648.0f) return uint32_t(0x7fffffffu);
       return uint32_t(int32_t(std::llround(v)));
     }},
    // q4: blocks of two elements in one byte (low nibble first).
    {"q4", 4, 2, 1, false, [](uint32_t r) { return float(int32_t((r & 0xfu) ^ 0x8u) - 8); },
     [](float v) { return uint32_t(saturate_round<-8, 7>(v)) & 0xfu; }},
};

inline constexpr const DTypeTraits& traits(DType t) { return kDTypeTraits[static_cast<int>(t)]; }
inline constexpr std::string_view dtype_name(DType t) { return traits(t).name; }

// Bytes needed for n elements of type t (rounded up to whole blocks).
inline constexpr size_t dtype_bytes(DType t, size_t n) {
  const auto& tr = traits(t);
  return (n + size_t(tr.block_size) - 1) / size_t(tr.block_size) * size_t(tr.block_bytes);
}

// Parse a dtype name ("f32", ...); returns false when unknown.
inline bool dtype_from_name(std::string_view s, DType& out) {
  for (int i = 0; i < kNumDTypes; ++i)
    if (kDTypeTraits[i].name == s) {
      out = static_cast<DType>(i);
      return true;
    }
  return false;
}

}  // namespace mpq
