#include "core/tensor.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <numeric>

#include "core/error.h"

namespace mpq {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t numel_of(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) n *= d;
  return n;
}

// Plain malloc of rounded + kAlign bytes, aligned by hand, rather than aligned_alloc: glibc's memalign asks
// its bins for more than it returns, so a freed block never fits the next request of the same size and the
// heap grows instead (core/memory_policy.h); identical malloc sizes reuse the freed block exactly.
Storage::Storage(size_t n, bool zero_fill) : bytes(n) {
  // checked before rounding: n + kAlign - 1 must not wrap (a huge n would otherwise allocate a few bytes)
  check(n <= SIZE_MAX - 2 * kAlign, "out of memory allocating {} bytes", n);
  const size_t rounded = std::max<size_t>((n + kAlign - 1) / kAlign * kAlign, kAlign);
  // Zeros through calloc, not malloc + memset: glibc hands out memory fresh from the kernel (an mmapped block,
  // or heap just grown) without writing it, so a zero tensor nobody touches costs neither time nor resident
  // memory. Loading a model file builds the fp32 network first and never reads an integer layer's f32 weight
  // (deploy/model_file_read.cpp); a reused heap block is cleared as before.
  base = zero_fill ? std::calloc(1, rounded + kAlign) : std::malloc(rounded + kAlign);
  if (!base) fail("out of memory allocating {} bytes", n);
  const uintptr_t b = reinterpret_cast<uintptr_t>(base);
  data = reinterpret_cast<uint8_t*>((b + kAlign - 1) / kAlign * kAlign);
}
Storage::~Storage() { std::free(base); }

std::vector<int64_t> contiguous_strides(const Shape& shape, DType dtype) {
  std::vector<int64_t> st(shape.size());
  if (dtype == DType::q4) {
    // q4 is addressed by rows: rows of the last dimension are padded to whole bytes.
    int64_t row = shape.empty() ? 1 : int64_t(dtype_bytes(dtype, size_t(shape.back())));
    int64_t acc = row;
    for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
      if (i == int64_t(shape.size()) - 1) {
        st[size_t(i)] = 0;
        continue;
      }
      st[size_t(i)] = acc;
      acc *= shape[size_t(i)];
    }
    return st;
  }
  int64_t acc = traits(dtype).block_bytes;
  for (int64_t i = int64_t(shape.size()) - 1; i >= 0; --i) {
    st[size_t(i)] = acc;
    acc *= shape[size_t(i)];
  }
  return st;
}

size_t storage_nbytes(const Shape& shape, DType dtype) {
  if (dtype == DType::q4) {
    int64_t rows = shape.empty() ? 1 : numel_of(shape) / std::max<int64_t>(shape.back(), 1);
    int64_t row = shape.empty() ? 1 : int64_t(dtype_bytes(dtype, size_t(shape.back())));
    return size_t(rows * row);
  }
  return dtype_bytes(dtype, size_t(numel_of(shape)));
}

static Tensor new_tensor(const Shape& shape, DType dtype, bool zero_fill) {
  for (auto d : shape)
    if (d < 0) fail("negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(storage_nbytes(shape, dtype), zero_fill);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape, dtype);
  impl->dtype = dtype;
  return TensorImpl::wrap(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) { return new_tensor(shape, dtype, true); }
Tensor Tensor::empty(const Shape& shape, DType dtype) { return new_tensor(shape, dtype, false); }

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = zeros(shape, DType::f32);
  float* p = t.data<float>();
  std::fill(p, p + t.numel(), value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  if (!(int64_t(values.size()) == numel_of(shape)))
    fail("from_vector: {} values for shape {}", values.size(), shape_str(shape));
  Tensor t = zeros(shape, DType::f32);
  std::memcpy(t.data<float>(), values.data(), values.size() * sizeof(float));
  return t;
}

static TensorImpl& must(TensorImpl* p) {
  if (!p) fail("use of an undefined tensor");
  return *p;
}

const Shape& Tensor::shape() const { return must(impl_.get()).shape; }
const std::vector<int64_t>& Tensor::strides() const { return must(impl_.get()).strides; }
DType Tensor::dtype() const { return must(impl_.get()).dtype; }
int64_t Tensor::offset() const { return must(impl_.get()).offset; }
int64_t Tensor::numel() const { return numel_of(shape()); }
int64_t Tensor::size(int64_t d) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  if (!(d >= 0 && d < n)) fail("size({}) out of range for shape {}", d, shape_str(shape()));
  return shape()[size_t(d)];
}
uint8_t* Tensor::raw() const { return must(impl_.get()).storage->data + impl_->offset; }
const std::shared_ptr<Storage>& Tensor::storage() const { return must(impl_.get()).storage; }

bool Tensor::is_contiguous() const {
  if (dtype() == DType::q4) return impl_->strides == contiguous_strides(shape(), dtype());
  int64_t expect = traits(dtype()).block_bytes;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[size_t(i)] != 1 && strides()[size_t(i)] != expect) return false;
    expect *= shape()[size_t(i)];
  }
  return true;
}

// Byte offset of the flat (row-major) element index within this view; q4 handled by the caller.
static int64_t byte_offset_of(const TensorImpl& t, int64_t flat) {
  int64_t off = 0;
  for (int64_t d = int64_t(t.shape.size()) - 1; d >= 0; --d) {
    const int64_t n = t.shape[size_t(d)];
    off += (flat % n) * t.strides[size_t(d)];
    flat /= n;
  }
  return off;
}

static uint32_t load_raw(const uint8_t* p, DType dt) {
  uint32_t r = 0;
  std::memcpy(&r, p, size_t(traits(dt).block_bytes));
  return r;
}

float Tensor::flat(int64_t i) const {
  if (!(i >= 0 && i < numel())) fail("flat index {} out of range for shape {}", i, shape_str(shape()));
  const auto& t = must(impl_.get());
  if (t.dtype == DType::q4) {
    check(is_contiguous(), "q4 element access needs a contiguous tensor");
    const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
    const int64_t row = i / cols, col = i % cols;
    const int64_t rowbytes = int64_t(dtype_bytes(DType::q4, size_t(cols)));
    const uint8_t b = raw()[row * rowbytes + col / 2];
    return traits(DType::q4).to_float((col & 1) ? (b >> 4) : (b & 0xf));
  }
  return traits(t.dtype).to_float(load_raw(raw() + byte_offset_of(t, i), t.dtype));
}

void Tensor::set_flat(int64_t i, float v) {
  if (!(i >= 0 && i < numel())) fail("flat index {} out of range for shape {}", i, shape_str(shape()));
  const auto& t = must(impl_.get());
  const uint32_t r = traits(t.dtype).from_float(v);
  if (t.dtype == DType::q4) {
    check(is_contiguous(), "q4 element access needs a contiguous tensor");
    const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
    const int64_t row = i / cols, col = i % cols;
    const int64_t rowbytes = int64_t(dtype_bytes(DType::q4, size_t(cols)));
    uint8_t& b = raw()[row * rowbytes + col / 2];
    b = (col & 1) ? uint8_t((b & 0x0f) | (r << 4)) : uint8_t((b & 0xf0) | r);
    return;
  }
  std::memcpy(raw() + byte_offset_of(t, i), &r, size_t(traits(t.dtype).block_bytes));
}

float Tensor::item() const {
  if (!(numel() == 1)) fail("item() on a tensor of shape {}", shape_str(shape()));
  return flat(0);
}

float Tensor::at(std::initializer_list<int64_t> idx) const {
  if (!(int64_t(idx.size()) == dim())) fail("at(): {} indices for shape {}", idx.size(), shape_str(shape()));
  int64_t f = 0, d = 0;
  for (int64_t i : idx) {
    if (!(i >= 0 && i < shape()[size_t(d)]))
      fail("at(): index {} out of range in dim {} of shape {}", i, d, shape_str(shape()));
    f = f * shape()[size_t(d)] + i;
    ++d;
  }
  return flat(f);
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<size_t>(numel()));
  if (dtype() == DType::f32 && is_contiguous()) {
    std::memcpy(v.data(), raw(), v.size() * 4);
    return v;
  }
  for (int64_t i = 0; i < numel(); ++i) v[size_t(i)] = flat(i);
  return v;
}

// ---- views ----
static Tensor make_view(const Tensor& base, Shape shape, std::vector<int64_t> strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return TensorImpl::wrap(std::move(impl));
}

Tensor Tensor::view_as_strided(const Shape& shape, const std::vector<int64_t>& st, int64_t off) const {
  if (!(shape.size() == st.size())) fail("view_as_strided: shape {} has {} strides", shape_str(shape), st.size());
  check(dtype() != DType::q4, "strided views of q4 tensors are not supported");
  // bounds check: the furthest byte touched must lie inside the storage
  int64_t lo = off, hi = off;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0) return make_view(*this, shape, st, off);
    const int64_t ext = (shape[i] - 1) * st[i];
    (ext < 0 ? lo : hi) += ext;
  }
  if (!(lo >= 0 && hi + traits(dtype()).block_bytes <= int64_t(storage()->bytes)))
    fail("view_as_strided: view {} at offset {} exceeds storage of {} bytes", shape_str(shape), off, storage()->bytes);
  return make_view(*this, shape, st, off);
}

static Shape infer_shape(Shape shape, int64_t n, const Shape& from) {
  int64_t known = 1, neg = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (!(neg < 0)) fail("reshape: more than one -1 in {}", shape_str(shape));
      neg = int64_t(i);
    } else {
      known *= shape[i];
    }
  }
  if (neg >= 0) {
    if (!(known > 0 && n % known == 0)) fail("reshape: cannot reshape {} into {}", shape_str(from), shape_str(shape));
    shape[size_t(neg)] = n / known;
  }
  if (!(numel_of(shape) == n))
    fail("reshape: cannot reshape {} ({} elements) into {}", shape_str(from), n, shape_str(shape));
  return shape;
}

Tensor Tensor::reshape_view(const Shape& s) const {
  if (!(is_contiguous())) fail("reshape_view of a non-contiguous tensor {}", shape_str(shape()));
  Shape ns = infer_shape(s, numel(), shape());
  return make_view(*this, ns, contiguous_strides(ns, dtype()), offset());
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const { return slice(d, start, start + length, 1); }

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  if (!(d >= 0 && d < n)) fail("slice: dim {} out of range for shape {}", d, shape_str(shape()));
  check(step >= 1, "slice: step must be >= 1, got {}", step);
  const int64_t len = shape()[size_t(d)];
  if (!(start >= 0 && start <= end && end <= len))
    fail("slice: [{}, {}) out of range for dim {} of shape {}", start, end, d, shape_str(shape()));
  check(dtype() != DType::q4 || d != n - 1 || (start == 0 && end == len && step == 1),
        "q4 tensors can only be sliced along whole rows");
  Shape ns = shape();
  std::vector<int64_t> st = strides();
  ns[size_t(d)] = (end - start + step - 1) / step;
  st[size_t(d)] *= step;
  return make_view(*this, ns, st, offset() + start * strides()[size_t(d)]);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  const int64_t n = dim();
  if (d < 0) d += n;
  Tensor s = slice(d, index, index + 1);
  Shape ns = s.shape();
  std::vector<int64_t> st = s.strides();
  ns.erase(ns.begin() + d);
  st.erase(st.begin() + d);
  return make_view(*this, ns, st, s.offset());
}

Tensor Tensor::permute_view(const std::vector<int64_t>& perm) const {
  if (!(int64_t(perm.size()) == dim())) fail("permute: {} axes for shape {}", perm.size(), shape_str(shape()));
  check(dtype() != DType::q4, "permute of a q4 tensor is not supported");
  std::vector<bool> seen(perm.size(), false);
  Shape ns(perm.size());
  std::vector<int64_t> st(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) {
    int64_t p = perm[i] < 0 ? perm[i] + dim() : perm[i];
    if (!(p >= 0 && p < dim() && !seen[size_t(p)])) fail("permute: bad axis list for shape {}", shape_str(shape()));
    seen[size_t(p)] = true;
    ns[i] = shape()[size_t(p)];
    st[i] = strides()[size_t(p)];
  }
  return make_view(*this, ns, st, offset());
}

Tensor Tensor::transpose_view(int64_t a, int64_t b) const {
  std::vector<int64_t> perm(static_cast<size_t>(dim()));
  std::iota(perm.begin(), perm.end(), 0);
  if (a < 0) a += dim();
  if (b < 0) b += dim();
  if (!(a >= 0 && a < dim() && b >= 0 && b < dim()))
    fail("transpose({}, {}) out of range for shape {}", a, b, shape_str(shape()));
  std::swap(perm[size_t(a)], perm[size_t(b)]);
  return permute_view(perm);
}

// ---- copies ----
void Tensor::copy_from(const Tensor& src) {
  if (!(src.shape() == shape())) fail("copy_from: shape {} into {}", shape_str(src.shape()), shape_str(shape()));
  const int64_t n = numel();
  if (src.dtype() == dtype() && dtype() != DType::q4 && is_contiguous() && src.is_contiguous()) {
    std::memmove(raw(), src.raw(), nbytes());
    return;
  }
  if (src.dtype() == DType::f32 && dtype() == DType::f32) {
    // strided f32 -> f32 copy: walk the index space with an odometer over both stride sets
    const int64_t nd = dim();
    if (nd == 0) {
      *data<float>() = *src.data<float>();
      return;
    }
    std::vector<int64_t> idx(size_t(nd), 0);
    const uint8_t* s = src.raw();
    uint8_t* d = raw();
    const int64_t inner = shape().back(), ss = src.strides().back(), ds = strides().back();
    for (int64_t done = 0; done < n; done += inner) {
      int64_t so = 0, doff = 0;
      for (int64_t k = 0; k < nd - 1; ++k) {
        so += idx[size_t(k)] * src.strides()[size_t(k)];
        doff += idx[size_t(k)] * strides()[size_t(k)];
      }
      for (int64_t j = 0; j < inner; ++j) std::memcpy(d + doff + j * ds, s + so + j * ss, 4);
      for (int64_t k = nd - 2; k >= 0; --k) {
        if (++idx[size_t(k)] < shape()[size_t(k)]) break;
        idx[size_t(k)] = 0;
      }
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) set_flat(i, src.flat(i));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor t = zeros(shape(), dtype());
  t.copy_from(*this);
  return t;
}

Tensor Tensor::to(DType dt) const {
  Tensor t = zeros(shape(), dt);
  t.copy_from(*this);
  return t;
}

// ---- autograd state ----
bool Tensor::requires_grad() const { return impl_ && (impl_->requires_grad || impl_->grad_fn); }
Tensor& Tensor::set_requires_grad(bool r) {
  check(!r || traits(dtype()).is_float, "requires_grad on a {} tensor", dtype_name(dtype()));
  must(impl_.get()).requires_grad = r;
  return *this;
}
const Tensor& Tensor::grad() const { return must(impl_.get()).grad; }
Tensor& Tensor::mutable_grad() { return must(impl_.get()).grad; }
void Tensor::zero_grad() { must(impl_.get()).grad = Tensor(); }
const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const { return must(impl_.get()).grad_fn; }
void Tensor::set_grad_fn(std::shared_ptr<autograd::Node> fn) { must(impl_.get()).grad_fn = std::move(fn); }
Tensor Tensor::detach() const {
  Tensor t = make_view(*this, shape(), strides(), offset());
  return t;
}

}  // namespace mpq
