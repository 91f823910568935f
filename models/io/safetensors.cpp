#include "models/io/safetensors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace mpq::io {
namespace {

using json = nlohmann::json;

// The reference implementation caps the header at 100 MB.
constexpr uint64_t kMaxHeader = 100ull << 20;

struct FileDType {
  std::string_view name;
  int bytes;  // bytes per element in the file
  DType out;  // dtype of the loaded tensor
};
constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::f32}, {"F16", 2, DType::f16}, {"BF16", 2, DType::bf16}, {"I8", 1, DType::i8},
    {"U8", 1, DType::u8},   {"I32", 4, DType::i32}, {"F64", 8, DType::f32},   {"I64", 8, DType::i32},
};

const FileDType* find_dtype(std::string_view s) {
  for (const auto& d : kFileDTypes)
    if (d.name == s) return &d;
  return nullptr;
}

uint64_t read_u64le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

struct Entry {
  std::string name;
  const FileDType* dtype;
  Shape shape;
  uint64_t begin, end;
};

Entry parse_entry(std::string_view file, const std::string& name, const json& j) {
  auto field = [&](const char* key) -> const json& {
    auto it = j.find(key);
    if (it == j.end()) fail("safetensors file '{}': tensor '{}': missing field '{}'", file, name, key);
    return *it;
  };
  check(j.is_object(), "safetensors file '{}': tensor '{}': header entry is not an object", file, name);
  Entry e{name, nullptr, {}, 0, 0};
  const json& dt = field("dtype");
  check(dt.is_string(), "safetensors file '{}': tensor '{}': field 'dtype' is not a string", file, name);
  e.dtype = find_dtype(dt.get_ref<const std::string&>());
  if (!e.dtype)
    fail("safetensors file '{}': tensor '{}': field 'dtype' has unknown/unsupported dtype '{}'", file, name,
         dt.get_ref<const std::string&>());
  const json& sh = field("shape");
  check(sh.is_array(), "safetensors file '{}': tensor '{}': field 'shape' is not an array", file, name);
  for (const json& d : sh) {
    check(d.is_number_integer(), "safetensors file '{}': tensor '{}': field 'shape' has a non-integer dim", file, name);
    check(d.is_number_unsigned() || d.get<int64_t>() >= 0,
          "safetensors file '{}': tensor '{}': field 'shape' has negative dim {}", file, name, d.dump());
    check(d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
          "safetensors file '{}': tensor '{}': field 'shape' dim {} is too large", file, name, d.dump());
    e.shape.push_back(d.get<int64_t>());
  }
  const json& off = field("data_offsets");
  check(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
        "safetensors file '{}': tensor '{}': field 'data_offsets' must be two non-negative integers, got {}", file,
        name, off.dump());
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  check(e.begin <= e.end, "safetensors file '{}': tensor '{}': field 'data_offsets' [{}, {}] has begin > end", file,
        name, e.begin, e.end);
  return e;
}

template <class Src, class Dst>
void convert_checked(const uint8_t* src, Dst* dst, uint64_t n, std::string_view file, const std::string& name) {
  for (uint64_t i = 0; i < n; ++i) {
    Src v;
    std::memcpy(&v, src + i * sizeof(Src), sizeof(Src));
    if constexpr (std::is_floating_point_v<Src>) {
      check(!std::isfinite(v) || std::fabs(v) <= double(std::numeric_limits<float>::max()),
            "safetensors file '{}': tensor '{}': F64 value {} at index {} is out of f32 range", file, name, v, i);
      dst[i] = float(v);
    } else {
      check(v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max(),
            "safetensors file '{}': tensor '{}': I64 value {} at index {} is out of i32 range", file, name, v, i);
      dst[i] = int32_t(v);
    }
  }
}

}  // namespace

std::string_view st_name(DType t) {
  switch (t) {
    case DType::f32:
      return "F32";
    case DType::f16:
      return "F16";
    case DType::bf16:
      return "BF16";
    case DType::i8:
      return "I8";
    case DType::u8:
      return "U8";
    case DType::i32:
      return "I32";
    case DType::q4:
      break;
  }
  return {};
}

namespace {

// The header's tensors, checked against a data buffer of `data_size` bytes and sorted by offset, and its
// metadata. `header` is the JSON text after the length prefix.
struct Header {
  std::vector<Entry> entries;
  std::map<std::string, std::string> metadata;
};

void check_length_prefix(uint64_t file_bytes, std::string_view file) {
  check(file_bytes >= 8, "safetensors file '{}': file is {} bytes, shorter than the 8-byte header length", file,
        file_bytes);
}

void check_header_length(uint64_t hlen, uint64_t file_bytes, std::string_view file) {
  check(hlen <= kMaxHeader, "safetensors file '{}': header length {} is absurd (limit {} bytes)", file, hlen,
        kMaxHeader);
  check(hlen <= file_bytes - 8, "safetensors file '{}': header length {} runs past the end of the file ({} bytes)",
        file, hlen, file_bytes);
}

Header parse_header(std::string_view header, uint64_t data_size, std::string_view file) {
  const size_t depth = json_nesting_depth(header);
  check(depth <= kMaxJsonDepth, "safetensors file '{}': header JSON nests {} levels deep (limit {})", file, depth,
        kMaxJsonDepth);
  json j;
  try {
    j = json::parse(header.begin(), header.end());
  } catch (const json::exception& e) {
    fail("safetensors file '{}': header is not valid JSON: {}", file, e.what());
  }
  check(j.is_object(), "safetensors file '{}': header is not a JSON object", file);

  Header out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      check(it->is_object(), "safetensors file '{}': field '__metadata__' is not an object", file);
      for (auto m = it->begin(); m != it->end(); ++m) {
        check(m->is_string(), "safetensors file '{}': field '__metadata__.{}' is not a string", file, m.key());
        out.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    out.entries.push_back(parse_entry(file, it.key(), *it));
  }
  for (const Entry& e : out.entries) {
    check(e.end <= data_size,
          "safetensors file '{}': tensor '{}': data_offsets [{}, {}] out of range of the {}-byte data buffer", file,
          e.name, e.begin, e.end, data_size);
    uint64_t n = 0;
    const uint64_t span = e.end - e.begin;
    const bool ok = checked_numel(e.shape, std::numeric_limits<uint64_t>::max() / 16, n);
    if (!ok || n * uint64_t(e.dtype->bytes) != span)
      fail("safetensors file '{}': tensor '{}': data_offsets [{}, {}] span {} bytes but shape {} of {} needs {}", file,
           e.name, e.begin, e.end, span, shape_str(e.shape), e.dtype->name,
           ok ? fmt::to_string(n * uint64_t(e.dtype->bytes)) : std::string("more than 2^60"));
  }
  std::sort(out.entries.begin(), out.entries.end(),
            [](const Entry& a, const Entry& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  for (size_t i = 1; i < out.entries.size(); ++i) {
    const Entry& a = out.entries[i - 1];
    const Entry& b = out.entries[i];
    check(a.end <= b.begin,
          "safetensors file '{}': tensor '{}' data_offsets [{}, {}] overlap tensor '{}' data_offsets [{}, {}]", file,
          b.name, b.begin, b.end, a.name, a.begin, a.end);
  }
  return out;
}

// Every tensor of `h`, its bytes delivered by read(begin, dst, n) (offsets into the data buffer), in offset order.
template <class Read>
SafetensorsFile load_tensors(Header h, Read read, std::string_view file) {
  SafetensorsFile out;
  out.metadata = std::move(h.metadata);
  std::vector<uint8_t> wide;  // [span] file bytes of one F64 / I64 tensor
  for (const Entry& e : h.entries) {
    Tensor t = Tensor::zeros(e.shape, e.dtype->out);
    const uint64_t n = uint64_t(t.numel()), span = e.end - e.begin;
    if (e.dtype->name == "F64" || e.dtype->name == "I64") {
      wide.resize(size_t(span));
      read(e.begin, wide.data(), span);
      if (e.dtype->name == "F64")
        convert_checked<double>(wide.data(), t.data<float>(), n, file, e.name);
      else
        convert_checked<int64_t>(wide.data(), t.data<int32_t>(), n, file, e.name);
    } else if (n) {
      read(e.begin, static_cast<uint8_t*>(t.raw()), span);
    }
    out.tensors.insert(e.name, std::move(t));
  }
  return out;
}

}  // namespace

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view file) {
  check_length_prefix(bytes.size(), file);
  const uint64_t hlen = read_u64le(bytes.data());
  check_header_length(hlen, bytes.size(), file);
  const uint8_t* data = bytes.data() + 8 + hlen;  // [data_size] bytes
  Header h = parse_header(std::string_view(reinterpret_cast<const char*>(bytes.data() + 8), hlen),
                          bytes.size() - 8 - hlen, file);
  SafetensorsFile out = load_tensors(
      std::move(h), [&](uint64_t begin, uint8_t* dst, uint64_t n) { std::memcpy(dst, data + begin, n); }, file);
  out.header_bytes = 8 + hlen, out.file_bytes = bytes.size();
  return out;
}

SafetensorsFile read_safetensors(const std::string& path, uint64_t max_bytes, std::string_view what) {
  const RegularFileReader f(path, max_bytes, what);
  check_length_prefix(f.size(), path);
  uint8_t len[8];
  f.read_at(0, len, 8);
  const uint64_t hlen = read_u64le(len);
  check_header_length(hlen, f.size(), path);
  std::string header(size_t(hlen), '\0');  // [hlen] JSON text
  f.read_at(8, reinterpret_cast<uint8_t*>(header.data()), hlen);
  Header h = parse_header(header, f.size() - 8 - hlen, path);
  std::string().swap(header);
  // each tensor straight from the file into its storage: the file is never held whole beside its tensors
  SafetensorsFile out = load_tensors(
      std::move(h), [&](uint64_t begin, uint8_t* dst, uint64_t n) { f.read_at(8 + hlen + begin, dst, n); }, path);
  f.check_unchanged();
  out.header_bytes = 8 + hlen, out.file_bytes = f.size();
  return out;
}

std::vector<uint8_t> serialize_safetensors(const TensorMap& tensors,
                                           const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    check(name != "__metadata__", "safetensors: a tensor cannot be named '__metadata__'");
    const std::string_view dt = st_name(t.dtype());
    check(!dt.empty(), "safetensors: tensor '{}' has dtype {} which safetensors cannot store", name,
          dtype_name(t.dtype()));
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", dt}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  // nlohmann's object is sorted by key; the data order is map order, which readers must not assume anyway.
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::vector<uint8_t> out(8 + h.size() + offset);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(uint64_t(h.size()) >> (8 * i));
  std::memcpy(out.data() + 8, h.data(), h.size());
  uint8_t* dst = out.data() + 8 + h.size();
  for (const auto& [name, t] : tensors) {
    const Tensor c = t.contiguous();
    if (c.nbytes()) std::memcpy(dst, c.raw(), c.nbytes());
    dst += c.nbytes();
  }
  return out;
}

void write_safetensors(const std::string& path, const TensorMap& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_file_bytes(path, serialize_safetensors(tensors, metadata));
}

}  // namespace mpq::io
