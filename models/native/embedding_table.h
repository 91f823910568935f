// An embedding table stored at its layer's precision (LayerKind::embedding) and its row gather:
//   fp32       rows f32 [V, D]
//   fp16/bf16  rows binary16 / bfloat16 [V, D] (round to nearest even, as the simulation rounds the table)
//   int8       codes s8 [V, D] + scales f32 [V][D / G] (ops/kernels/quantize_weights.h, G = D or the group)
//   int4       codes packed two per byte [V, D / 2] (element 2i low nibble, two's complement) + the same scales
// gather(row, dst) writes the f32 values the fake-quant simulation computes for that row: the exact widening
// of a 16-bit value, or the one f32 product q * s. Tables are small next to the per-token work (one row of D
// per token), so the gather is a plain loop.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/precision.h"

namespace mpq::native {

struct EmbeddingTable {
  std::string name;
  Precision prec = Precision::fp32;
  int64_t rows = 0, D = 0, group = 0;  // group: int4 / int8 scale group along D (0: per row)
  std::vector<float> f32;              // [V, D] fp32
  std::vector<uint16_t> h;             // [V, D] fp16 / bf16 bits
  std::vector<int8_t> q8;              // [V, D] int8 codes
  std::vector<uint8_t> q4;             // [V, D / 2] int4 codes, two per byte
  std::vector<float> scales;           // [V][D / G] int8 / int4

  // W: f32 [rows, D]. int4 needs an even D (two codes per byte of a row).
  void build(const std::string& layer, const float* W, int64_t rows, int64_t D, const LayerQuant& lq);
  void gather(int64_t row, float* dst) const;  // dst [D]
  size_t bytes() const;                        // what it stores (models/native/model_file.h)
};

}  // namespace mpq::native
