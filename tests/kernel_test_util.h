// Helpers shared by the kernel tests (test_kernels_*.cpp, test_nhwc_*.cpp): seeded random operands and the
// loop over every implementation of a dispatch list that this CPU can run.
#pragma once
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/cpu_features.h"
#include "core/dtype.h"

namespace mpq::testing {

inline std::vector<float> rand_f(size_t n, std::mt19937& rng, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

inline std::vector<uint8_t> rand_u8(size_t n, std::mt19937& rng, int lo = 0, int hi = 255) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(d(rng));
  return v;
}

inline std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> h(v.size());
  for (size_t i = 0; i < v.size(); ++i) h[i] = f32_to_f16(v[i]);
  return h;
}

// Every implementation of `list` this CPU can run, except the reference (last), gets `run(impl)`; one
// whose ISA is missing is reported in a MESSAGE, so a skipped ISA is visible in the output. Returns how
// many ran.
template <class List, class Fn>
int for_each_fast_impl(const List& list, Fn run) {
  int ran = 0;
  for (size_t i = 0; i + 1 < list.impls().size(); ++i) {
    const auto& impl = list.impls()[i];
    if (!isa_detected(impl.isa)) {
      MESSAGE(fmt::format("{}: CPU lacks {}; not run", impl.name, isa_name(impl.isa)));
      continue;
    }
    run(impl);
    ++ran;
  }
  return ran;
}

}  // namespace mpq::testing
