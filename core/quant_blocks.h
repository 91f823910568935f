// Packed quantized block structs. Each carries a static_assert on its size: the kernels index them
// by byte arithmetic, so a padding change would silently corrupt every weight.
#pragma once
#include <cstdint>

namespace mpq {

// 32 signed 4-bit weights, two per byte: qs[i] holds element 2i (low nibble) and 2i+1 (high nibble),
// value = nibble - 8 after the xor-8 sign trick, i.e. stored as two's complement nibbles.
// One f32 scale per group; the group size of a tensor (32/64/128) is a multiple of this block.
struct BlockQ4x32 {
  uint8_t qs[16];
};
static_assert(sizeof(BlockQ4x32) == 16, "BlockQ4x32 must be 16 bytes: 32 nibbles");

}  // namespace mpq
