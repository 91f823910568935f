// safetensors (https://github.com/huggingface/safetensors) reader and writer.
//
// File layout: u64 little-endian N, then N bytes of UTF-8 JSON (an object), then the data buffer.
// Each JSON key except "__metadata__" is a tensor: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
// with b/e byte offsets relative to the start of the data buffer (not of the file). "__metadata__" is a
// string -> string object. Data is little-endian, row-major, tensors must not overlap.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "models/io/common.h"

namespace mpq::io {

struct SafetensorsFile {
  TensorMap tensors;  // in data-offset order (the order they are laid out in the file)
  std::map<std::string, std::string> metadata;
  uint64_t header_bytes = 0;  // the 8-byte length prefix and the JSON header
  uint64_t file_bytes = 0;
};

// Supported dtypes: F32, F16, BF16, I8, U8, I32 (kept as is); F64 -> f32 and I64 -> i32 (values out of
// range of the target throw). Everything is validated; errors are mpq::Error naming the file and field.
// read_safetensors reads the file by the rules of core/file_io.h (at most max_bytes; `what` names the kind of
// file in those messages), the header first and then each tensor straight into its storage, so the file is
// never held whole beside its tensors; parse_safetensors reads the same format from memory.
SafetensorsFile read_safetensors(const std::string& path, uint64_t max_bytes = kMaxWeightsFileBytes,
                                 std::string_view what = "weights");
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view file);

// safetensors' name of a dtype ("F32", "F16", "BF16", "I8", "U8", "I32"); empty for q4, which has none.
std::string_view st_name(DType t);

// Writes tensors in map order, contiguous, header padded with spaces to a multiple of 8 bytes.
// q4 tensors are rejected (no safetensors dtype).
std::vector<uint8_t> serialize_safetensors(const TensorMap& tensors,
                                           const std::map<std::string, std::string>& metadata = {});
void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace mpq::io
