// oneDNN glue: one CPU engine for the process, one stream per thread, and a thread-safe primitive cache.
//
// Creating a oneDNN primitive (JIT code generation) costs 0.1-10 ms, executing a small one microseconds,
// so every op keys its primitives (plus any reorders) by shape + parameters and reuses them.
#pragma once
#include <dnnl.hpp>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/threading.h"  // FixedTeam: every creation and execution below runs inside one

namespace mpq::onednn {

dnnl::engine& engine();  // process-wide CPU engine
dnnl::stream& stream();  // per calling thread (streams are cheap; avoids sharing one across threads)

// Map key -> immutable cached object. Objects are created outside the lock (creation is slow), and the
// first inserted wins if two threads race on the same key. Bounded: cleared when it reaches kMaxEntries
// (entries are shared_ptr, so an entry in use by another thread stays alive).
class PrimitiveCache {
 public:
  static constexpr size_t kMaxEntries = 4096;

  template <class T, class Make>
  std::shared_ptr<const T> get_or_create(const std::string& key, Make&& make) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (auto it = map_.find(key); it != map_.end()) {
        ++hits_;
        return std::static_pointer_cast<const T>(it->second);
      }
    }
    std::shared_ptr<const T> created = std::make_shared<const T>(make());
    std::lock_guard<std::mutex> lock(mu_);
    ++misses_;
    if (map_.size() >= kMaxEntries) map_.clear();
    auto [it, inserted] = map_.emplace(key, created);
    return std::static_pointer_cast<const T>(it->second);
  }
  size_t size() const;
  size_t hits() const;
  size_t misses() const;
  void clear();

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<const void>> map_;
  size_t hits_ = 0, misses_ = 0;
};
PrimitiveCache& primitive_cache();

// A cached reorder between a user (plain) layout and the layout a primitive chose (format_tag::any).
// `needed` is false when the primitive accepted the plain layout, in which case nothing is copied.
struct LayoutBridge {
  dnnl::memory::desc user, prim;
  bool needed = false;
  dnnl::reorder to_prim, to_user;  // user -> prim (inputs), prim -> user (outputs); only one is created
  static LayoutBridge input(const dnnl::memory::desc& user, const dnnl::memory::desc& prim);
  static LayoutBridge output(const dnnl::memory::desc& user, const dnnl::memory::desc& prim);
  // Temporaries live in per-thread grow-only scratch buffers (slot 0..kSlots-1, one per operand of a
  // call): allocating them per call through oneDNN meant fresh mmap + page faults every time.
  static constexpr int kSlots = 3;
  // Input: returns memory in the primitive's layout (the user buffer itself, or a reordered copy).
  dnnl::memory bring_in(const float* user_ptr, int slot) const;
  // Output: memory the primitive writes into; call finish() afterwards to copy into the user buffer.
  dnnl::memory out_target(float* user_ptr, int slot) const;
  void finish(const dnnl::memory& target, float* user_ptr) const;
};

}  // namespace mpq::onednn
