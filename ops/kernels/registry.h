// Ordered-list run-time dispatch, one list per op.
//
// A list is a fixed array of KernelImpl entries, fastest first, the plain reference last. select()
// returns the first entry whose ISA is enabled (detected by cpuid and allowed by the MPQ_ISA cap, see
// core/cpu_features.h) and whose supports() predicate accepts the arguments. The reference entry must
// have Isa::ref and no predicate, so selection never fails. supports() may encode a capability limit or a
// measured speed preference; either way every entry must compute correct results for any valid
// arguments, so tests can call each entry's fn directly on every shape.
//
//   Args : what the predicate looks at (e.g. GemmArgs, Conv2dShape)
//   Fn   : the function-pointer type of the implementation
#pragma once
#include <span>
#include <vector>

#include "core/cpu_features.h"
#include "core/error.h"

namespace mpq::kernels {

template <class Args, class Fn>
struct KernelImpl {
  const char* name;               // states dtype/tile/ISA, e.g. "gemm_f32_14x32__avx512"
  Isa isa;                        // requirement
  bool (*supports)(const Args&);  // nullptr = supports everything
  Fn fn;

  bool usable(const Args& a) const { return isa_enabled(isa) && (supports == nullptr || supports(a)); }
};

template <class Args, class Fn>
class KernelList {
 public:
  using Impl = KernelImpl<Args, Fn>;
  constexpr KernelList(const char* op, std::span<const Impl> impls) : op_(op), impls_(impls) {}

  const Impl& select(const Args& a) const {
    for (const Impl& impl : impls_)
      if (impl.usable(a)) return impl;
    fail("{}: no implementation accepts these arguments (the reference should be last)", op_);
  }
  std::span<const Impl> impls() const { return impls_; }
  // What an autotuner times for `a` (both native engines): the dispatcher's choice (or `first` when given),
  // then, when `all`, every other entry whose ISA is enabled, reference entries excluded. supports() is not
  // consulted for those: it may hold a speed preference, which the timing then checks; every entry computes
  // correct results for any valid arguments.
  std::vector<const Impl*> candidates(const Args& a, bool all, const Impl* first = nullptr) const {
    const Impl* chosen = first ? first : &select(a);
    std::vector<const Impl*> out{chosen};
    if (!all) return out;
    for (const Impl& impl : impls_)
      if (impl.isa != Isa::ref && isa_enabled(impl.isa) && impl.fn != chosen->fn) out.push_back(&impl);
    return out;
  }
  const char* op() const { return op_; }

 private:
  const char* op_;
  std::span<const Impl> impls_;
};

}  // namespace mpq::kernels
