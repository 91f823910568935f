#include "models/io/common.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"
#include "core/file_io.h"

namespace mpq::io {

void TensorMap::insert(std::string name, Tensor t) {
  check(!index_.contains(name), "duplicate tensor name '{}'", name);
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(t));
}

const Tensor* TensorMap::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

bool TensorMap::release(std::string_view name) {
  auto it = index_.find(std::string(name));
  if (it == index_.end()) return false;
  entries_[it->second].second = Tensor();
  return true;
}

int64_t TensorMap::total_elements() const {
  int64_t n = 0;
  for (const auto& e : entries_)
    if (e.second.defined()) n += e.second.numel();
  return n;
}

const Tensor& require(const TensorMap& map, std::string_view name, const Shape& expected_shape, std::string_view file) {
  const Tensor* t = map.find(name);
  if (!t) fail("weights '{}': tensor '{}' is missing ({} tensors in file)", file, name, map.size());
  if (!(t->shape() == expected_shape))
    fail("weights '{}': tensor '{}' has shape {} but {} expected", file, name, shape_str(t->shape()),
         shape_str(expected_shape));
  return *t;
}

const Tensor& require(const TensorMap& map, std::string_view name, const Shape& expected_shape, DType expected_dtype,
                      std::string_view file) {
  const Tensor& t = require(map, name, expected_shape, file);
  check(t.dtype() == expected_dtype, "weights '{}': tensor '{}' has dtype {} but {} expected", file, name,
        dtype_name(t.dtype()), dtype_name(expected_dtype));
  return t;
}

std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes, std::string_view what) {
  return read_regular_file(path, max_bytes, what);
}

void write_file_bytes(const std::string& path, std::span<const uint8_t> bytes) { write_file_atomic(path, bytes); }

bool checked_numel(std::span<const int64_t> dims, uint64_t limit, uint64_t& out) {
  // The product of the non-zero dims must stay within the limit too, so that byte strides of an empty
  // tensor like [0, 2^40, 2^40] cannot overflow.
  uint64_t nonzero = 1;
  bool has_zero = false;
  for (int64_t d : dims) {
    if (d < 0) return false;
    if (d == 0) {
      has_zero = true;
      continue;
    }
    if (uint64_t(d) > limit / nonzero) return false;
    nonzero *= uint64_t(d);
  }
  out = has_zero ? 0 : nonzero;
  return true;
}

size_t json_nesting_depth(std::string_view text) {
  size_t depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return max_depth;
}

std::string base_name(std::string_view path) {
  auto p = path.find_last_of('/');
  return std::string(p == std::string_view::npos ? path : path.substr(p + 1));
}

}  // namespace mpq::io
