// Tensor: shared 64-byte-aligned storage + shape + byte strides + byte offset + dtype.
//
// Layout conventions (the whole project follows them):
//   - shapes are row-major, outermost first; strides are in BYTES (so views of packed/odd types stay exact);
//   - images are NCHW in the autograd (fp32) path; conv weights are OIHW (O, I/groups, KH, KW);
//   - linear weights are [out, in] (y = x W^T + b, PyTorch / Hugging Face convention);
//   - matmul C[M,N] = A[M,K] * B[K,N], batched over leading dims.
// Views (slice, narrow, reshape of contiguous data, transpose/permute) share storage and never copy.
// q4 tensors are always contiguous (two elements per byte), so views of them are restricted to whole rows.
//
// Autograd state lives in the impl: requires_grad, the accumulated .grad, and the node that produced it.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace mpq {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
size_t storage_nbytes(const Shape& shape, DType dtype);
int64_t numel_of(const Shape& s);

// Aligned byte buffer shared by tensors and views (zero-filled unless asked not to be).
struct Storage {
  static constexpr size_t kAlign = 64;  // one cache line; also the widest (AVX-512) vector
  explicit Storage(size_t bytes, bool zero_fill = true);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  uint8_t* data = nullptr;  // kAlign-aligned, inside the block at base
  size_t bytes = 0;

 private:
  void* base = nullptr;  // what malloc returned (data - base < kAlign)
};

namespace autograd {
struct Node;
}

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  // New zero-filled contiguous tensor.
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  // New contiguous tensor with UNINITIALISED contents: for outputs that a kernel overwrites entirely
  // (saves the zero-fill pass over memory that the kernel writes anyway).
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, float value);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor scalar(float v) { return full({}, v); }

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const std::vector<int64_t>& strides() const;  // bytes
  int64_t dim() const { return int64_t(shape().size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  DType dtype() const;
  int64_t offset() const;  // bytes into storage
  bool is_contiguous() const;
  // Bytes of a contiguous tensor of this shape and dtype (q4 rows are padded to whole bytes).
  size_t nbytes() const { return storage_nbytes(shape(), dtype()); }

  // Raw pointers (to the first element of this view).
  uint8_t* raw() const;
  template <class T>
  T* data() const {
    return reinterpret_cast<T*>(raw());
  }
  const std::shared_ptr<Storage>& storage() const;

  // Element access for tests and small glue code: flat row-major index over the view, converted via the
  // dtype traits. Not for hot loops.
  float item() const;
  float at(std::initializer_list<int64_t> idx) const;
  float flat(int64_t i) const;
  void set_flat(int64_t i, float v);
  std::vector<float> to_vector() const;

  // ---- views (no copy) ----
  Tensor view_as_strided(const Shape& shape, const std::vector<int64_t>& byte_strides, int64_t byte_offset) const;
  Tensor reshape_view(const Shape& shape) const;  // requires contiguous; one dim may be -1
  Tensor narrow(int64_t d, int64_t start, int64_t length) const;
  Tensor slice(int64_t d, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t d, int64_t index) const;  // drops dimension d
  Tensor permute_view(const std::vector<int64_t>& perm) const;
  Tensor transpose_view(int64_t a, int64_t b) const;

  // ---- copies ----
  Tensor contiguous() const;          // returns *this when already contiguous
  Tensor clone() const;               // always a fresh contiguous copy (no autograd history)
  Tensor to(DType dtype) const;       // converting copy via the traits table
  void copy_from(const Tensor& src);  // same shape, any strides/dtypes; in place, no autograd

  // ---- autograd ----
  bool requires_grad() const;
  Tensor& set_requires_grad(bool r = true);
  const Tensor& grad() const;  // undefined until a backward reached this leaf
  Tensor& mutable_grad();
  void zero_grad();
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<autograd::Node> fn);
  Tensor detach() const;  // shares storage, no history
  bool is_leaf() const { return !grad_fn(); }

  TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
  friend struct TensorImpl;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  std::vector<int64_t> strides;  // bytes
  int64_t offset = 0;            // bytes
  DType dtype = DType::f32;
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
  static Tensor wrap(std::shared_ptr<TensorImpl> impl) {
    Tensor t;
    t.impl_ = std::move(impl);
    return t;
  }
};

// Contiguous byte strides for a shape and dtype (q4: innermost stride is reported as 0 bytes per
// element and must not be used for addressing; q4 tensors are addressed by block).
std::vector<int64_t> contiguous_strides(const Shape& shape, DType dtype);

}  // namespace mpq
