// TensorFlow Lite flatbuffer (.tflite) reader, parsed by hand (no flatbuffers library).
//
// Flatbuffer facts used here: the file starts with a u32 offset to the root table (optionally followed by
// the 4-byte identifier "TFL3"). A table at position t begins with an i32 `soffset`; its vtable is at
// t - soffset: u16 vtable size, u16 table size, then one u16 per field id = offset of the field from t
// (0 = absent, use the default). Reference fields (tables, vectors, strings) hold a u32 offset relative to
// the field's own position. A vector is a u32 element count followed by the elements (vectors of tables
// hold u32 relative offsets); a string is a vector of bytes plus a trailing NUL. All little-endian.
// Every read is bounds-checked: corrupt files throw mpq::Error, never crash.
//
// Field ids used (tensorflow/lite/schema/schema.fbs):
//   Model{0 version, 1 operator_codes, 2 subgraphs, 3 description, 4 buffers}
//   SubGraph{0 tensors, 1 inputs, 2 outputs, 3 operators, 4 name}
//   Tensor{0 shape, 1 type, 2 buffer, 3 name, 4 quantization}
//   QuantizationParameters{0 min, 1 max, 2 scale, 3 zero_point (i64), 4 details_type, 5 details,
//                          6 quantized_dimension}
//   Operator{0 opcode_index, 1 inputs, 2 outputs, 3 builtin_options_type, 4 builtin_options}
//   OperatorCode{0 deprecated_builtin_code (i8), 1 custom_code, 2 version, 3 builtin_code (i32)}
//   Buffer{0 data, 1 offset (u64, from file start, for >2 GB models), 2 size}
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mpq::io {

// tflite::TensorType values.
enum class TfliteType : int8_t {
  float32 = 0,
  float16 = 1,
  int32 = 2,
  uint8 = 3,
  int64 = 4,
  string = 5,
  boolean = 6,
  int16 = 7,
  complex64 = 8,
  int8 = 9,
  float64 = 10,
};
std::string_view tflite_type_name(TfliteType t);

// tflite::BuiltinOperator values used by the models we import (others keep their numeric code).
namespace tflite_op {
inline constexpr int32_t ADD = 0, AVERAGE_POOL_2D = 1, CONCATENATION = 2, CONV_2D = 3, DEPTHWISE_CONV_2D = 4,
                         DEQUANTIZE = 6, FULLY_CONNECTED = 9, LOGISTIC = 14, MAX_POOL_2D = 17, MUL = 18, RELU = 19,
                         RELU6 = 21, RESHAPE = 22, SOFTMAX = 25, PAD = 34, MEAN = 40, SUB = 41, SQUEEZE = 43,
                         QUANTIZE = 114, HARD_SWISH = 117;
}
std::string_view tflite_op_name(int32_t builtin_code);  // "CONV_2D"; "UNKNOWN" for unlisted codes

enum class TflitePadding : int8_t { same = 0, valid = 1 };
enum class TfliteActivation : int8_t { none = 0, relu = 1, relu_n1_to_1 = 2, relu6 = 3, tanh = 4, sign_bit = 5 };
std::string_view tflite_activation_name(TfliteActivation a);

struct TfliteQuant {
  std::vector<float> min, max, scale;
  std::vector<int64_t> zero_point;
  int32_t quantized_dimension = 0;
  bool empty() const { return scale.empty(); }
};

struct TfliteTensor {
  std::string name;
  std::vector<int32_t> shape;
  TfliteType type = TfliteType::float32;
  uint32_t buffer = 0;  // index into TfliteModel::buffers; buffer 0 is the empty sentinel
  TfliteQuant quant;
};

// The builtin options of one operator, flattened: which fields are meaningful depends on `options_type`
// (tflite::BuiltinOptions union tag: 1 Conv2D, 2 DepthwiseConv2D, 5 Pool2D, 8 FullyConnected, 9 Softmax,
// 10 Concatenation, 11 Add, 17 Reshape, 21 Mul, 27 Reducer, 28 Sub). Defaults follow the schema.
struct TfliteOptions {
  uint8_t options_type = 0;
  TflitePadding padding = TflitePadding::same;
  int32_t stride_w = 0, stride_h = 0;
  int32_t dilation_w = 1, dilation_h = 1;
  int32_t depth_multiplier = 0;
  int32_t filter_w = 0, filter_h = 0;
  TfliteActivation activation = TfliteActivation::none;
  std::vector<int32_t> new_shape;  // Reshape
  float beta = 0.f;                // Softmax
  int32_t axis = 0;                // Concatenation
  bool keep_dims = false;          // Reducer (MEAN), FullyConnected keep_num_dims
};

struct TfliteOperator {
  int32_t opcode = 0;  // resolved BuiltinOperator code
  uint32_t opcode_index = 0;
  std::string custom_code;               // for CUSTOM ops
  std::vector<int32_t> inputs, outputs;  // tensor indices; -1 = optional input omitted
  TfliteOptions options;
};

struct TfliteSubgraph {
  std::string name;
  std::vector<TfliteTensor> tensors;
  std::vector<int32_t> inputs, outputs;
  std::vector<TfliteOperator> operators;
};

struct TfliteModel {
  std::string file;  // for error messages
  uint32_t version = 0;
  std::string description;
  std::vector<TfliteSubgraph> subgraphs;
  std::vector<std::vector<uint8_t>> buffers;
};

TfliteModel read_tflite(const std::string& path);
TfliteModel parse_tflite(std::span<const uint8_t> bytes, std::string_view file);

// Raw tensor contents (constant tensors) as a Tensor of the matching dtype: float32 -> f32, float16 -> f16,
// int32 -> i32, uint8 -> u8, int8 -> i8. Throws when the buffer is empty or its size does not match.
Tensor tflite_tensor_data(const TfliteModel& m, const TfliteSubgraph& sg, int32_t tensor_index);

// Dequantizes a uint8/int8/int32 tensor to f32: (q - zero_point) * scale, per tensor (one scale) or per
// channel along quant.quantized_dimension. float32 tensors are returned as is.
Tensor tflite_dequantize(const TfliteModel& m, const TfliteSubgraph& sg, int32_t tensor_index);

}  // namespace mpq::io
