#include "ops/kernels/onednn/onednn_context.h"

#include <cstdlib>
#include <memory>

#include "core/error.h"

namespace mpq::onednn {

dnnl::engine& engine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

size_t PrimitiveCache::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return map_.size();
}
size_t PrimitiveCache::hits() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hits_;
}
size_t PrimitiveCache::misses() const {
  std::lock_guard<std::mutex> lock(mu_);
  return misses_;
}
void PrimitiveCache::clear() {
  std::lock_guard<std::mutex> lock(mu_);
  map_.clear();
}

PrimitiveCache& primitive_cache() {
  static PrimitiveCache cache;
  return cache;
}

LayoutBridge LayoutBridge::input(const dnnl::memory::desc& user, const dnnl::memory::desc& prim) {
  LayoutBridge b;
  b.user = user;
  b.prim = prim;
  b.needed = user != prim;
  if (b.needed) b.to_prim = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), user, engine(), prim));
  return b;
}

LayoutBridge LayoutBridge::output(const dnnl::memory::desc& user, const dnnl::memory::desc& prim) {
  LayoutBridge b;
  b.user = user;
  b.prim = prim;
  b.needed = user != prim;
  if (b.needed) b.to_user = dnnl::reorder(dnnl::reorder::primitive_desc(engine(), prim, engine(), user));
  return b;
}

namespace {
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
// Per-thread grow-only 64-byte-aligned scratch, one buffer per slot.
void* scratch(int slot, size_t bytes) {
  struct Buf {
    std::unique_ptr<void, FreeDeleter> p;
    size_t n = 0;
  };
  thread_local Buf bufs[LayoutBridge::kSlots];
  check(slot >= 0 && slot < LayoutBridge::kSlots, "onednn scratch: bad slot {}", slot);
  Buf& b = bufs[slot];
  if (bytes > b.n) {
    const size_t rounded = (bytes + 63) / 64 * 64;
    b.p.reset(std::aligned_alloc(64, rounded));
    check(b.p != nullptr, "onednn scratch: out of memory ({} bytes)", rounded);
    b.n = rounded;
  }
  return b.p.get();
}
}  // namespace

dnnl::memory LayoutBridge::bring_in(const float* user_ptr, int slot) const {
  // oneDNN takes non-const handles; inputs are only read.
  dnnl::memory u(user, engine(), const_cast<float*>(user_ptr));
  if (!needed) return u;
  dnnl::memory p(prim, engine(), scratch(slot, prim.get_size()));  // copy in the primitive's layout
  to_prim.execute(stream(), u, p);
  return p;
}

dnnl::memory LayoutBridge::out_target(float* user_ptr, int slot) const {
  return needed ? dnnl::memory(prim, engine(), scratch(slot, prim.get_size())) : dnnl::memory(user, engine(), user_ptr);
}

void LayoutBridge::finish(const dnnl::memory& target, float* user_ptr) const {
  if (!needed) return;
  dnnl::memory u(user, engine(), user_ptr);
  dnnl::memory src = target;  // handle copy (execute() wants non-const references)
  to_user.execute(stream(), src, u);
}

}  // namespace mpq::onednn
