// The format of an activation buffer: the one description that the kernels' epilogues and row kernels, the
// NHWC kernels and both native engines use. The element type is core/dtype.h's DType (one traits table:
// name, bytes) restricted to what activations hold -- f32, f16, bf16 and u8; a u8 buffer carries its
// affine quantization real = (q - zp) * scale.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace mpq::kernels {

// Whether d is an element type an activation buffer can hold.
constexpr bool is_act_dtype(DType d) {
  return d == DType::f32 || d == DType::f16 || d == DType::bf16 || d == DType::u8;
}
// Bytes per element of an activation dtype (the traits table's block of one element).
inline int64_t act_bytes(DType d) { return int64_t(dtype_bytes(d, 1)); }

// Where and how a kernel writes a [rows, cols] result.
struct ActOut {
  DType dt = DType::f32;
  void* p = nullptr;   // [rows, ld] elements of dt
  int64_t ld = 0;      // leading dimension in elements
  float scale = 1.0f;  // u8 only: q = clamp(nearbyint(y / scale) + zp, 0, 255)
  int32_t zp = 0;
};

// The format a value is stored in / a layer reads.
struct ActFormat {
  DType dt = DType::f32;
  float scale = 1.0f;  // u8 only: real = (q - zp) * scale
  int32_t zp = 0;
  bool operator==(const ActFormat& o) const {
    return dt == o.dt && (dt != DType::u8 || (scale == o.scale && zp == o.zp));
  }
  ActOut out(void* p, int64_t ld) const { return {dt, p, ld, scale, zp}; }
};

}  // namespace mpq::kernels
