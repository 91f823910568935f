#include "models/io/npy.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <variant>

#include "core/error.h"
#include "models/io/common.h"

namespace mpq::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

struct NpyDType {
  std::string_view code;  // descr without the byte-order character
  int bytes;
  DType out;
};
constexpr NpyDType kNpyDTypes[] = {
    {"f4", 4, DType::f32}, {"f8", 8, DType::f32}, {"i4", 4, DType::i32}, {"i8", 8, DType::i32},
    {"u1", 1, DType::u8},  {"i1", 1, DType::i8},  {"f2", 2, DType::f16},
};

// A value of the header dict: string, bool, or tuple of integers.
struct Value {
  enum Kind { kStr, kBool, kTuple } kind = kStr;
  std::string str;
  bool b = false;
  std::vector<int64_t> tuple;
};

// Minimal parser for the Python dict literal numpy writes (and hand-written variants with "" quotes,
// extra spaces, trailing commas, lists instead of tuples).
class HeaderParser {
 public:
  HeaderParser(std::string_view s, std::string_view file) : s_(s), file_(file) {}

  std::map<std::string, Value> parse_dict() {
    std::map<std::string, Value> out;
    expect('{');
    while (true) {
      skip_ws();
      if (peek() == '}') {
        ++i_;
        break;
      }
      std::string key = parse_string();
      expect(':');
      out[key] = parse_value();
      skip_ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      break;
    }
    return out;
  }

 private:
  [[noreturn]] void error(std::string_view what) {
    fail("npy file '{}': header dict: {} at offset {} in \"{}\"", file_, what, i_, s_);
  }
  char peek() { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  void expect(char c) {
    skip_ws();
    if (peek() != c) error(fmt::format("expected '{}'", c));
    ++i_;
  }
  std::string parse_string() {
    skip_ws();
    const char q = peek();
    if (q != '\'' && q != '"') error("expected a quoted string");
    const size_t start = ++i_;
    while (i_ < s_.size() && s_[i_] != q) ++i_;
    if (i_ >= s_.size()) error("unterminated string");
    return std::string(s_.substr(start, i_++ - start));
  }
  int64_t parse_int() {
    skip_ws();
    int64_t v = 0;
    const size_t start = i_;
    while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') {
      if (v > (std::numeric_limits<int64_t>::max() - 9) / 10) error("integer too large");
      v = v * 10 + (s_[i_++] - '0');
    }
    if (i_ == start) error(peek() == '-' ? "negative dimension" : "expected a non-negative integer");
    if (peek() == 'L') ++i_;  // Python 2 long suffix
    return v;
  }
  Value parse_value() {
    skip_ws();
    Value v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.str = parse_string();
    } else if (s_.substr(i_, 4) == "True") {
      v.kind = Value::kBool, v.b = true, i_ += 4;
    } else if (s_.substr(i_, 5) == "False") {
      v.kind = Value::kBool, v.b = false, i_ += 5;
    } else if (c == '(' || c == '[') {
      const char close = c == '(' ? ')' : ']';
      ++i_;
      v.kind = Value::kTuple;
      while (true) {
        skip_ws();
        if (peek() == close) {
          ++i_;
          break;
        }
        v.tuple.push_back(parse_int());
        skip_ws();
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(close);
        break;
      }
    } else {
      error("expected a string, True/False or a tuple");
    }
    return v;
  }

  std::string_view s_;
  std::string_view file_;
  size_t i_ = 0;
};

template <class Src, class Dst>
void narrow_checked(const uint8_t* src, Dst* dst, uint64_t n, std::string_view file, std::string_view descr) {
  for (uint64_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, src + i * sizeof(Src), sizeof(Src));
    if constexpr (std::is_floating_point_v<Src>) {
      check(!std::isfinite(v) || std::fabs(v) <= double(std::numeric_limits<float>::max()),
            "npy file '{}': {} value {} at index {} is out of f32 range", file, descr, v, i);
    } else {
      check(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
            "npy file '{}': {} value {} at index {} is out of i32 range", file, descr, v, i);
    }
    dst[i] = Dst(v);
  }
}

}  // namespace

Tensor parse_npy(std::span<const uint8_t> bytes, std::string_view file) {
  check(bytes.size() >= 10 && std::memcmp(bytes.data(), kMagic, 6) == 0,
        "npy file '{}': bad magic (expected \"\\x93NUMPY\" at offset 0)", file);
  const int major = bytes[6];
  check(major >= 1 && major <= 3, "npy file '{}': unsupported format version {}.{}", file, major, int(bytes[7]));
  size_t hlen, hstart;
  if (major == 1) {
    hlen = size_t(bytes[8]) | size_t(bytes[9]) << 8;
    hstart = 10;
  } else {
    check(bytes.size() >= 12, "npy file '{}': file too short for the v{} header length field", file, major);
    hlen = size_t(bytes[8]) | size_t(bytes[9]) << 8 | size_t(bytes[10]) << 16 | size_t(bytes[11]) << 24;
    hstart = 12;
  }
  check(hlen <= bytes.size() - hstart, "npy file '{}': header length {} runs past the end of the file ({} bytes)", file,
        hlen, bytes.size());
  const std::string_view header(reinterpret_cast<const char*>(bytes.data() + hstart), hlen);
  const auto dict = HeaderParser(header, file).parse_dict();

  auto field = [&](const char* key, Value::Kind kind) -> const Value& {
    auto it = dict.find(key);
    if (it == dict.end()) fail("npy file '{}': header dict has no field '{}'", file, key);
    check(it->second.kind == kind, "npy file '{}': header field '{}' has the wrong type", file, key);
    return it->second;
  };
  const std::string& descr = field("descr", Value::kStr).str;
  check(!field("fortran_order", Value::kBool).b,
        "npy file '{}': field 'fortran_order' is True; only C-order arrays are supported", file);
  const std::vector<int64_t>& shape = field("shape", Value::kTuple).tuple;

  std::string_view code = descr;
  char order = '|';
  if (!code.empty() && (code[0] == '<' || code[0] == '>' || code[0] == '|' || code[0] == '=')) {
    order = code[0];
    code.remove_prefix(1);
  }
  const NpyDType* dt = nullptr;
  for (const auto& d : kNpyDTypes)
    if (d.code == code) dt = &d;
  if (!dt) fail("npy file '{}': field 'descr' has unsupported dtype '{}'", file, descr);
  check(order != '>' || dt->bytes == 1,
        "npy file '{}': field 'descr' '{}' is big-endian; only little-endian is supported", file, descr);

  const uint64_t data_size = bytes.size() - hstart - hlen;
  uint64_t n = 0;
  const bool ok = checked_numel(shape, std::numeric_limits<uint64_t>::max() / 16, n);
  if (!ok || n * uint64_t(dt->bytes) != data_size)
    fail("npy file '{}': field 'shape' {} of '{}' needs {} bytes but the file has {} data bytes", file,
         shape_str(shape), descr, ok ? fmt::to_string(n * uint64_t(dt->bytes)) : std::string("more than 2^60"),
         data_size);

  Tensor t = Tensor::zeros(shape, dt->out);
  const uint8_t* src = bytes.data() + hstart + hlen;
  if (code == "f8")
    narrow_checked<double>(src, t.data<float>(), n, file, descr);
  else if (code == "i8")
    narrow_checked<int64_t>(src, t.data<int32_t>(), n, file, descr);
  else if (n)
    std::memcpy(t.raw(), src, data_size);
  return t;
}

Tensor read_npy(const std::string& path) {
  return parse_npy(read_file_bytes(path, kMaxWeightsFileBytes, "npy file"), path);
}

std::vector<uint8_t> serialize_npy(const Tensor& t) {
  std::string_view descr;
  switch (t.dtype()) {
    case DType::f32:
      descr = "<f4";
      break;
    case DType::f16:
      descr = "<f2";
      break;
    case DType::i32:
      descr = "<i4";
      break;
    case DType::u8:
      descr = "|u1";
      break;
    case DType::i8:
      descr = "|i1";
      break;
    case DType::bf16:
    case DType::q4:
      fail("npy: dtype {} has no npy equivalent", dtype_name(t.dtype()));
  }
  std::string shape = "(";
  for (size_t i = 0; i < t.shape().size(); ++i) shape += fmt::format("{}, ", t.shape()[i]);
  if (t.shape().size() > 1)
    shape.resize(shape.size() - 2);  // (2, 3)
  else if (t.shape().size() == 1)
    shape.resize(shape.size() - 1);  // (5,) keeps the comma
  shape += ")";
  std::string header = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr, shape);
  const bool v2 = header.size() + 11 > 65535;
  const size_t prefix = v2 ? 12 : 10;
  header.append((64 - (prefix + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  const Tensor c = t.contiguous();
  std::vector<uint8_t> out(prefix + header.size() + c.nbytes());
  std::memcpy(out.data(), kMagic, 6);
  out[6] = v2 ? 2 : 1;
  out[7] = 0;
  for (size_t i = 0; i < prefix - 8; ++i) out[8 + i] = uint8_t(header.size() >> (8 * i));
  std::memcpy(out.data() + prefix, header.data(), header.size());
  if (c.nbytes()) std::memcpy(out.data() + prefix + header.size(), c.raw(), c.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) { write_file_bytes(path, serialize_npy(t)); }

}  // namespace mpq::io
