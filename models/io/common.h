// Shared pieces of the weight/array file readers: an insertion-ordered name -> Tensor map, whole-file
// reading/writing (core/file_io.h rules), and overflow-checked shape arithmetic. Every reader also has a from-memory
// entry point (used by the fuzzers); `file` arguments are only used to name the source in error messages.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/file_io.h"
#include "core/tensor.h"

namespace mpq::io {

// Insertion-ordered map; names are unique (insert throws on a duplicate).
class TensorMap {
 public:
  using Entry = std::pair<std::string, Tensor>;
  void insert(std::string name, Tensor t);
  const Tensor* find(std::string_view name) const;
  // Drops the storage of tensor `name` (it stays listed, undefined), so that a reader that has copied or
  // converted it does not hold both copies at once; false when there is no such tensor.
  bool release(std::string_view name);
  bool contains(std::string_view name) const { return find(name) != nullptr; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  const Entry& operator[](size_t i) const { return entries_[i]; }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }
  int64_t total_elements() const;

 private:
  std::vector<Entry> entries_;
  std::unordered_map<std::string, size_t> index_;
};

// Looks a tensor up by name and checks its shape (and dtype); the error names the file, the tensor and
// what differs, e.g. "weights 'm.safetensors': tensor 'fc.weight' has shape [10, 3] but [10, 4] expected".
const Tensor& require(const TensorMap& map, std::string_view name, const Shape& expected_shape, std::string_view file);
const Tensor& require(const TensorMap& map, std::string_view name, const Shape& expected_shape, DType expected_dtype,
                      std::string_view file);

// Whole-file reading and writing by the rules of core/file_io.h: regular files only, at most `max_bytes`
// (checked before allocating); writes are atomic (temporary file beside the target, fsync, rename).
std::vector<uint8_t> read_file_bytes(const std::string& path, uint64_t max_bytes = kMaxWeightsFileBytes,
                                     std::string_view what = "weights");
void write_file_bytes(const std::string& path, std::span<const uint8_t> bytes);

// Product of dims; false when a dim is negative or the product exceeds `limit`.
bool checked_numel(std::span<const int64_t> dims, uint64_t limit, uint64_t& out);

// Maximum bracket nesting of JSON text (strings skipped). nlohmann::json copies, compares and dumps
// recursively, so headers nested deeper than a sane limit are rejected before parsing.
size_t json_nesting_depth(std::string_view text);
inline constexpr size_t kMaxJsonDepth = 128;

// Final path component, for messages about in-memory buffers named by path.
std::string base_name(std::string_view path);

}  // namespace mpq::io
