// NumPy .npy reader and writer (format versions 1.0, 2.0, 3.0).
//
// Layout: magic "\x93NUMPY", u8 major, u8 minor, header length (u16 LE for v1, u32 LE for v2/v3), then an
// ASCII (v3: UTF-8) Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// padded with spaces and a final '\n' so that the data starts at a multiple of 64 bytes; then the raw data.
// Supported descr: <f4, <f8 (-> f32), <i4, <i8 (-> i32, range checked), |u1, |i1, <f2. C order only.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mpq::io {

Tensor read_npy(const std::string& path);
Tensor parse_npy(std::span<const uint8_t> bytes, std::string_view file);

// Writes f32, f16, i32, u8, i8 (bf16 and q4 have no npy dtype and throw). Version 1.0 unless the header
// needs more than 65535 bytes.
std::vector<uint8_t> serialize_npy(const Tensor& t);
void write_npy(const std::string& path, const Tensor& t);

}  // namespace mpq::io
