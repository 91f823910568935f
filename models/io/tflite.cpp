#include "models/io/tflite.h"

#include <fmt/format.h>

#include <array>
#include <cstring>

#include "core/error.h"
#include "models/io/common.h"

namespace mpq::io {
namespace {

// Bounds-checked flatbuffer access. `what` names the schema path being read, for the error message.
class Flatbuffer {
 public:
  struct Table {
    size_t pos = 0;  // table start (its soffset)
    size_t vt = 0;   // vtable start
    uint16_t vt_size = 0;
  };
  struct Vec {
    size_t first = 0;  // position of element 0
    uint32_t count = 0;
  };

  Flatbuffer(std::span<const uint8_t> buf, std::string_view file)
      : buf_(buf), file_(file), budget_(4 * uint64_t(buf.size()) + 4096) {}

  template <class T>
  T read(size_t pos, std::string_view what) const {
    check(pos <= buf_.size() && sizeof(T) <= buf_.size() - pos,
          "tflite file '{}': {}: {}-byte read at offset {} is out of bounds (file size {})", file_, what, sizeof(T),
          pos, buf_.size());
    T v;
    std::memcpy(&v, buf_.data() + pos, sizeof(T));
    return v;
  }

  // Follows the u32 relative offset stored at `pos`.
  size_t deref(size_t pos, std::string_view what) const {
    const uint64_t target = uint64_t(pos) + read<uint32_t>(pos, what);
    check(target < buf_.size(), "tflite file '{}': {}: offset {} points past the end of the file (size {})", file_,
          what, target, buf_.size());
    return size_t(target);
  }

  Table table_at(size_t pos, std::string_view what) const {
    Table t;
    t.pos = pos;
    const int64_t vt = int64_t(pos) - int64_t(read<int32_t>(pos, what));
    check(vt >= 0 && uint64_t(vt) < buf_.size(), "tflite file '{}': {}: vtable offset {} is out of bounds", file_, what,
          vt);
    t.vt = size_t(vt);
    t.vt_size = read<uint16_t>(t.vt, what);
    check(t.vt_size >= 4 && t.vt_size % 2 == 0 && t.vt_size <= buf_.size() - t.vt,
          "tflite file '{}': {}: corrupt vtable (size {} at offset {})", file_, what, t.vt_size, t.vt);
    return t;
  }

  // Absolute position of field `id`, or 0 when absent.
  size_t field(const Table& t, int id, std::string_view what) const {
    const size_t slot = 4 + 2 * size_t(id);
    if (slot + 2 > t.vt_size) return 0;
    const uint16_t off = read<uint16_t>(t.vt + slot, what);
    return off ? t.pos + off : 0;
  }

  template <class T>
  T scalar(const Table& t, int id, T def, std::string_view what) const {
    const size_t p = field(t, id, what);
    return p ? read<T>(p, what) : def;
  }

  bool has(const Table& t, int id) const { return field(t, id, "vtable") != 0; }

  Table sub_table(const Table& t, int id, std::string_view what) const {
    const size_t p = field(t, id, what);
    check(p != 0, "tflite file '{}': {}: required table is missing", file_, what);
    return table_at(deref(p, what), what);
  }

  Vec vec(const Table& t, int id, size_t elem_size, std::string_view what) {
    const size_t p = field(t, id, what);
    if (!p) return {};
    return vec_at(deref(p, what), elem_size, what);
  }

  Vec vec_at(size_t v, size_t elem_size, std::string_view what) {
    Vec out;
    out.count = read<uint32_t>(v, what);
    out.first = v + 4;
    check(out.count <= (buf_.size() - out.first) / elem_size,
          "tflite file '{}': {}: vector of {} elements at offset {} runs past the end of the file", file_, what,
          out.count, v);
    // Different offsets may point at the same vector; cap the total decoded so such a file cannot blow up.
    check(out.count <= budget_, "tflite file '{}': {}: decoded data exceeds {}x the file size (corrupt offsets?)",
          file_, what, 4);
    budget_ -= out.count;
    return out;
  }

  template <class T>
  std::vector<T> scalars(const Table& t, int id, std::string_view what) {
    const Vec v = vec(t, id, sizeof(T), what);
    std::vector<T> out(v.count);
    if (v.count) std::memcpy(out.data(), buf_.data() + v.first, v.count * sizeof(T));
    return out;
  }

  std::string str(const Table& t, int id, std::string_view what) {
    const Vec v = vec(t, id, 1, what);
    return std::string(reinterpret_cast<const char*>(buf_.data() + v.first), v.count);
  }

  // Element i of a vector of tables.
  Table table_elem(const Vec& v, uint32_t i, std::string_view what) const {
    return table_at(deref(v.first + 4 * size_t(i), what), what);
  }

  std::span<const uint8_t> bytes() const { return buf_; }
  std::string_view file() const { return file_; }

 private:
  std::span<const uint8_t> buf_;
  std::string_view file_;
  uint64_t budget_;
};

using Table = Flatbuffer::Table;

constexpr std::array<std::string_view, 128> kOpNames = {"ADD",
                                                        "AVERAGE_POOL_2D",
                                                        "CONCATENATION",
                                                        "CONV_2D",
                                                        "DEPTHWISE_CONV_2D",
                                                        "DEPTH_TO_SPACE",
                                                        "DEQUANTIZE",
                                                        "EMBEDDING_LOOKUP",
                                                        "FLOOR",
                                                        "FULLY_CONNECTED",
                                                        "HASHTABLE_LOOKUP",
                                                        "L2_NORMALIZATION",
                                                        "L2_POOL_2D",
                                                        "LOCAL_RESPONSE_NORMALIZATION",
                                                        "LOGISTIC",
                                                        "LSH_PROJECTION",
                                                        "LSTM",
                                                        "MAX_POOL_2D",
                                                        "MUL",
                                                        "RELU",
                                                        "RELU_N1_TO_1",
                                                        "RELU6",
                                                        "RESHAPE",
                                                        "RESIZE_BILINEAR",
                                                        "RNN",
                                                        "SOFTMAX",
                                                        "SPACE_TO_DEPTH",
                                                        "SVDF",
                                                        "TANH",
                                                        "CONCAT_EMBEDDINGS",
                                                        "SKIP_GRAM",
                                                        "CALL",
                                                        "CUSTOM",
                                                        "EMBEDDING_LOOKUP_SPARSE",
                                                        "PAD",
                                                        "UNIDIRECTIONAL_SEQUENCE_RNN",
                                                        "GATHER",
                                                        "BATCH_TO_SPACE_ND",
                                                        "SPACE_TO_BATCH_ND",
                                                        "TRANSPOSE",
                                                        "MEAN",
                                                        "SUB",
                                                        "DIV",
                                                        "SQUEEZE",
                                                        "UNIDIRECTIONAL_SEQUENCE_LSTM",
                                                        "STRIDED_SLICE",
                                                        "BIDIRECTIONAL_SEQUENCE_RNN",
                                                        "EXP",
                                                        "TOPK_V2",
                                                        "SPLIT",
                                                        "LOG_SOFTMAX",
                                                        "DELEGATE",
                                                        "BIDIRECTIONAL_SEQUENCE_LSTM",
                                                        "CAST",
                                                        "PRELU",
                                                        "MAXIMUM",
                                                        "ARG_MAX",
                                                        "MINIMUM",
                                                        "LESS",
                                                        "NEG",
                                                        "PADV2",
                                                        "GREATER",
                                                        "GREATER_EQUAL",
                                                        "LESS_EQUAL",
                                                        "SELECT",
                                                        "SLICE",
                                                        "SIN",
                                                        "TRANSPOSE_CONV",
                                                        "SPARSE_TO_DENSE",
                                                        "TILE",
                                                        "EXPAND_DIMS",
                                                        "EQUAL",
                                                        "NOT_EQUAL",
                                                        "LOG",
                                                        "SUM",
                                                        "SQRT",
                                                        "RSQRT",
                                                        "SHAPE",
                                                        "POW",
                                                        "ARG_MIN",
                                                        "FAKE_QUANT",
                                                        "REDUCE_PROD",
                                                        "REDUCE_MAX",
                                                        "PACK",
                                                        "LOGICAL_OR",
                                                        "ONE_HOT",
                                                        "LOGICAL_AND",
                                                        "LOGICAL_NOT",
                                                        "UNPACK",
                                                        "REDUCE_MIN",
                                                        "FLOOR_DIV",
                                                        "REDUCE_ANY",
                                                        "SQUARE",
                                                        "ZEROS_LIKE",
                                                        "FILL",
                                                        "FLOOR_MOD",
                                                        "RANGE",
                                                        "RESIZE_NEAREST_NEIGHBOR",
                                                        "LEAKY_RELU",
                                                        "SQUARED_DIFFERENCE",
                                                        "MIRROR_PAD",
                                                        "ABS",
                                                        "SPLIT_V",
                                                        "UNIQUE",
                                                        "CEIL",
                                                        "REVERSE_V2",
                                                        "ADD_N",
                                                        "GATHER_ND",
                                                        "COS",
                                                        "WHERE",
                                                        "RANK",
                                                        "ELU",
                                                        "REVERSE_SEQUENCE",
                                                        "MATRIX_DIAG",
                                                        "QUANTIZE",
                                                        "MATRIX_SET_DIAG",
                                                        "ROUND",
                                                        "HARD_SWISH",
                                                        "IF",
                                                        "WHILE",
                                                        "NON_MAX_SUPPRESSION_V4",
                                                        "NON_MAX_SUPPRESSION_V5",
                                                        "SCATTER_ND",
                                                        "SELECT_V2",
                                                        "DENSIFY",
                                                        "SEGMENT_SUM",
                                                        "BATCH_MATMUL",
                                                        "PLACEHOLDER_FOR_GREATER_OP_CODES"};

// BuiltinOptions union tags.
enum : uint8_t {
  kConv2D = 1,
  kDepthwiseConv2D = 2,
  kPool2D = 5,
  kFullyConnected = 8,
  kSoftmax = 9,
  kConcatenation = 10,
  kAdd = 11,
  kReshape = 17,
  kMul = 21,
  kReducer = 27,
  kSub = 28,
};

TfliteOptions parse_options(Flatbuffer& fb, const Table& op, const std::string& where) {
  TfliteOptions o;
  o.options_type = fb.scalar<uint8_t>(op, 3, 0, where + ".builtin_options_type");
  if (o.options_type == 0 || !fb.has(op, 4)) return o;
  const std::string w = where + ".builtin_options";
  const Table t = fb.sub_table(op, 4, w);
  auto act = [&](int id) { return TfliteActivation(fb.scalar<int8_t>(t, id, 0, w + ".fused_activation_function")); };
  auto i32 = [&](int id, int32_t def, const char* name) { return fb.scalar<int32_t>(t, id, def, w + "." + name); };
  switch (o.options_type) {
    case kConv2D:  // padding, stride_w, stride_h, fused_activation_function, dilation_w, dilation_h
      o.padding = TflitePadding(fb.scalar<int8_t>(t, 0, 0, w + ".padding"));
      o.stride_w = i32(1, 0, "stride_w"), o.stride_h = i32(2, 0, "stride_h");
      o.activation = act(3);
      o.dilation_w = i32(4, 1, "dilation_w_factor"), o.dilation_h = i32(5, 1, "dilation_h_factor");
      break;
    case kDepthwiseConv2D:  // padding, stride_w, stride_h, depth_multiplier, activation, dilation_w, dilation_h
      o.padding = TflitePadding(fb.scalar<int8_t>(t, 0, 0, w + ".padding"));
      o.stride_w = i32(1, 0, "stride_w"), o.stride_h = i32(2, 0, "stride_h");
      o.depth_multiplier = i32(3, 0, "depth_multiplier");
      o.activation = act(4);
      o.dilation_w = i32(5, 1, "dilation_w_factor"), o.dilation_h = i32(6, 1, "dilation_h_factor");
      break;
    case kPool2D:  // padding, stride_w, stride_h, filter_width, filter_height, activation
      o.padding = TflitePadding(fb.scalar<int8_t>(t, 0, 0, w + ".padding"));
      o.stride_w = i32(1, 0, "stride_w"), o.stride_h = i32(2, 0, "stride_h");
      o.filter_w = i32(3, 0, "filter_width"), o.filter_h = i32(4, 0, "filter_height");
      o.activation = act(5);
      break;
    case kFullyConnected:  // activation, weights_format, keep_num_dims
      o.activation = act(0);
      o.keep_dims = fb.scalar<uint8_t>(t, 2, 0, w + ".keep_num_dims") != 0;
      break;
    case kSoftmax:
      o.beta = fb.scalar<float>(t, 0, 0.f, w + ".beta");
      break;
    case kConcatenation:
      o.axis = i32(0, 0, "axis"), o.activation = act(1);
      break;
    case kAdd:
    case kMul:
    case kSub:
      o.activation = act(0);
      break;
    case kReshape:
      o.new_shape = fb.scalars<int32_t>(t, 0, w + ".new_shape");
      break;
    case kReducer:
      o.keep_dims = fb.scalar<uint8_t>(t, 0, 0, w + ".keep_dims") != 0;
      break;
    default:
      break;
  }
  return o;
}

TfliteQuant parse_quant(Flatbuffer& fb, const Table& tensor, const std::string& where) {
  TfliteQuant q;
  if (!fb.has(tensor, 4)) return q;
  const std::string w = where + ".quantization";
  const Table t = fb.sub_table(tensor, 4, w);
  q.min = fb.scalars<float>(t, 0, w + ".min");
  q.max = fb.scalars<float>(t, 1, w + ".max");
  q.scale = fb.scalars<float>(t, 2, w + ".scale");
  q.zero_point = fb.scalars<int64_t>(t, 3, w + ".zero_point");
  q.quantized_dimension = fb.scalar<int32_t>(t, 6, 0, w + ".quantized_dimension");
  return q;
}

TfliteSubgraph parse_subgraph(Flatbuffer& fb, const Table& sg, const std::string& where,
                              const std::vector<std::pair<int32_t, std::string>>& opcodes) {
  TfliteSubgraph s;
  s.name = fb.str(sg, 4, where + ".name");
  s.inputs = fb.scalars<int32_t>(sg, 1, where + ".inputs");
  s.outputs = fb.scalars<int32_t>(sg, 2, where + ".outputs");
  const auto tensors = fb.vec(sg, 0, 4, where + ".tensors");
  for (uint32_t i = 0; i < tensors.count; ++i) {
    const std::string w = fmt::format("{}.tensors[{}]", where, i);
    const Table t = fb.table_elem(tensors, i, w);
    TfliteTensor tt;
    tt.shape = fb.scalars<int32_t>(t, 0, w + ".shape");
    tt.type = TfliteType(fb.scalar<int8_t>(t, 1, 0, w + ".type"));
    tt.buffer = fb.scalar<uint32_t>(t, 2, 0, w + ".buffer");
    tt.name = fb.str(t, 3, w + ".name");
    tt.quant = parse_quant(fb, t, w);
    s.tensors.push_back(std::move(tt));
  }
  const int64_t nt = int64_t(s.tensors.size());
  auto check_indices = [&](const std::vector<int32_t>& idx, const std::string& w, bool allow_missing) {
    for (int32_t i : idx)
      check((i >= 0 && i < nt) || (allow_missing && i == -1),
            "tflite file '{}': {}: tensor index {} out of range ({} tensors)", fb.file(), w, i, nt);
  };
  check_indices(s.inputs, where + ".inputs", false);
  check_indices(s.outputs, where + ".outputs", false);
  const auto ops = fb.vec(sg, 3, 4, where + ".operators");
  for (uint32_t i = 0; i < ops.count; ++i) {
    const std::string w = fmt::format("{}.operators[{}]", where, i);
    const Table t = fb.table_elem(ops, i, w);
    TfliteOperator op;
    op.opcode_index = fb.scalar<uint32_t>(t, 0, 0, w + ".opcode_index");
    check(op.opcode_index < opcodes.size(), "tflite file '{}': {}.opcode_index {} out of range ({} operator codes)",
          fb.file(), w, op.opcode_index, opcodes.size());
    op.opcode = opcodes[op.opcode_index].first;
    op.custom_code = opcodes[op.opcode_index].second;
    op.inputs = fb.scalars<int32_t>(t, 1, w + ".inputs");
    op.outputs = fb.scalars<int32_t>(t, 2, w + ".outputs");
    check_indices(op.inputs, w + ".inputs", true);
    check_indices(op.outputs, w + ".outputs", false);
    op.options = parse_options(fb, t, w);
    s.operators.push_back(std::move(op));
  }
  return s;
}

}  // namespace

std::string_view tflite_type_name(TfliteType t) {
  static constexpr std::string_view kNames[] = {"FLOAT32", "FLOAT16", "INT32",     "UINT8", "INT64",  "STRING",
                                                "BOOL",    "INT16",   "COMPLEX64", "INT8",  "FLOAT64"};
  const int i = int(t);
  return i >= 0 && i < int(std::size(kNames)) ? kNames[i] : std::string_view("UNKNOWN");
}

std::string_view tflite_op_name(int32_t code) {
  return code >= 0 && code < int32_t(kOpNames.size()) ? kOpNames[size_t(code)] : std::string_view("UNKNOWN");
}

std::string_view tflite_activation_name(TfliteActivation a) {
  static constexpr std::string_view kNames[] = {"NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"};
  const int i = int(a);
  return i >= 0 && i < int(std::size(kNames)) ? kNames[i] : std::string_view("UNKNOWN");
}

TfliteModel parse_tflite(std::span<const uint8_t> bytes, std::string_view file) {
  Flatbuffer fb(bytes, file);
  TfliteModel m;
  m.file = std::string(file);
  check(bytes.size() >= 8, "tflite file '{}': file is {} bytes, too short for a flatbuffer", file, bytes.size());
  const Table root = fb.table_at(fb.deref(0, "root table offset"), "Model");
  m.version = fb.scalar<uint32_t>(root, 0, 0, "Model.version");
  m.description = fb.str(root, 3, "Model.description");

  std::vector<std::pair<int32_t, std::string>> opcodes;
  const auto codes = fb.vec(root, 1, 4, "Model.operator_codes");
  for (uint32_t i = 0; i < codes.count; ++i) {
    const std::string w = fmt::format("Model.operator_codes[{}]", i);
    const Table t = fb.table_elem(codes, i, w);
    // Old files only set the i8 deprecated code; new ones set both (deprecated saturates at 127).
    const int32_t dep = fb.scalar<int8_t>(t, 0, 0, w + ".deprecated_builtin_code");
    const int32_t code = fb.scalar<int32_t>(t, 3, 0, w + ".builtin_code");
    opcodes.emplace_back(std::max(dep, code), fb.str(t, 1, w + ".custom_code"));
  }

  const auto bufs = fb.vec(root, 4, 4, "Model.buffers");
  for (uint32_t i = 0; i < bufs.count; ++i) {
    const std::string w = fmt::format("Model.buffers[{}]", i);
    const Table t = fb.table_elem(bufs, i, w);
    const auto data = fb.vec(t, 0, 1, w + ".data");
    const uint64_t off = fb.scalar<uint64_t>(t, 1, 0, w + ".offset");
    const uint64_t size = fb.scalar<uint64_t>(t, 2, 0, w + ".size");
    if (off > 1) {  // data stored after the flatbuffer (models > 2 GB); offset is from the file start
      check(off <= bytes.size() && size <= bytes.size() - off,
            "tflite file '{}': {}: offset {} size {} out of range of the {}-byte file", file, w, off, size,
            bytes.size());
      m.buffers.emplace_back(bytes.begin() + ptrdiff_t(off), bytes.begin() + ptrdiff_t(off + size));
    } else {
      m.buffers.emplace_back(bytes.begin() + ptrdiff_t(data.first), bytes.begin() + ptrdiff_t(data.first + data.count));
    }
  }

  const auto sgs = fb.vec(root, 2, 4, "Model.subgraphs");
  check(sgs.count >= 1, "tflite file '{}': Model.subgraphs is empty", file);
  for (uint32_t i = 0; i < sgs.count; ++i) {
    const std::string w = fmt::format("subgraphs[{}]", i);
    m.subgraphs.push_back(parse_subgraph(fb, fb.table_elem(sgs, i, w), w, opcodes));
    for (const auto& t : m.subgraphs.back().tensors)
      check(t.buffer < m.buffers.size() || (t.buffer == 0 && m.buffers.empty()),
            "tflite file '{}': {}: tensor '{}' field 'buffer' {} out of range ({} buffers)", file, w, t.name, t.buffer,
            m.buffers.size());
  }
  return m;
}

TfliteModel read_tflite(const std::string& path) { return parse_tflite(read_file_bytes(path), path); }

Tensor tflite_tensor_data(const TfliteModel& m, const TfliteSubgraph& sg, int32_t tensor_index) {
  check(tensor_index >= 0 && size_t(tensor_index) < sg.tensors.size(), "tflite file '{}': tensor index {} out of range",
        m.file, tensor_index);
  const TfliteTensor& t = sg.tensors[size_t(tensor_index)];
  DType dt;
  switch (t.type) {
    case TfliteType::float32:
      dt = DType::f32;
      break;
    case TfliteType::float16:
      dt = DType::f16;
      break;
    case TfliteType::int32:
      dt = DType::i32;
      break;
    case TfliteType::uint8:
      dt = DType::u8;
      break;
    case TfliteType::int8:
      dt = DType::i8;
      break;
    default:
      fail("tflite file '{}': tensor '{}': type {} is not supported", m.file, t.name, tflite_type_name(t.type));
  }
  Shape shape(t.shape.begin(), t.shape.end());
  uint64_t n = 0;
  if (!(checked_numel(shape, uint64_t(1) << 40, n)))
    fail("tflite file '{}': tensor '{}': invalid shape {}", m.file, t.name, shape_str(shape));
  check(t.buffer < m.buffers.size() && !m.buffers[t.buffer].empty(),
        "tflite file '{}': tensor '{}' has no constant data (buffer {})", m.file, t.name, t.buffer);
  const auto& buf = m.buffers[t.buffer];
  if (!(buf.size() == dtype_bytes(dt, n)))
    fail("tflite file '{}': tensor '{}': buffer {} has {} bytes but shape {} of {} needs {}", m.file, t.name, t.buffer,
         buf.size(), shape_str(shape), tflite_type_name(t.type), dtype_bytes(dt, n));
  Tensor out = Tensor::zeros(shape, dt);
  if (n) std::memcpy(out.raw(), buf.data(), buf.size());
  return out;
}

Tensor tflite_dequantize(const TfliteModel& m, const TfliteSubgraph& sg, int32_t tensor_index) {
  Tensor raw = tflite_tensor_data(m, sg, tensor_index);
  const TfliteTensor& t = sg.tensors[size_t(tensor_index)];
  if (raw.dtype() == DType::f32) return raw;
  check(raw.dtype() == DType::u8 || raw.dtype() == DType::i8 || raw.dtype() == DType::i32,
        "tflite file '{}': tensor '{}': cannot dequantize type {}", m.file, t.name, tflite_type_name(t.type));
  const TfliteQuant& q = t.quant;
  const size_t nch = q.scale.size();
  check(nch >= 1, "tflite file '{}': tensor '{}': field 'quantization.scale' is empty", m.file, t.name);
  check(q.zero_point.empty() || q.zero_point.size() == nch,
        "tflite file '{}': tensor '{}': field 'quantization.zero_point' has {} entries but scale has {}", m.file,
        t.name, q.zero_point.size(), nch);
  // Element i belongs to channel (i / inner) % nch, where inner = product of dims after quantized_dimension.
  int64_t inner = 1;
  if (nch > 1) {
    const int64_t qd = q.quantized_dimension;
    if (!(qd >= 0 && qd < raw.dim() && raw.size(qd) == int64_t(nch)))
      fail(
          "tflite file '{}': tensor '{}': field 'quantization.quantized_dimension' {} with {} scales does not match "
          "shape {}",
          m.file, t.name, qd, nch, shape_str(raw.shape()));
    for (int64_t d = qd + 1; d < raw.dim(); ++d) inner *= raw.size(d);
  }
  Tensor out = Tensor::zeros(raw.shape(), DType::f32);
  float* dst = out.data<float>();
  const int64_t n = raw.numel();
  for (int64_t i = 0; i < n; ++i) {
    const size_t c = nch > 1 ? size_t((i / inner) % int64_t(nch)) : 0;
    const double zp = q.zero_point.empty() ? 0.0 : double(q.zero_point[c]);
    double v;
    switch (raw.dtype()) {
      case DType::u8:
        v = raw.data<uint8_t>()[i];
        break;
      case DType::i8:
        v = raw.data<int8_t>()[i];
        break;
      default:
        v = raw.data<int32_t>()[i];
        break;
    }
    dst[i] = float((v - zp) * double(q.scale[c]));
  }
  return out;
}

}  // namespace mpq::io
