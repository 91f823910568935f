#include "quant/splits.h"

#include <algorithm>

#include "core/error.h"

namespace mpq::quant {

namespace {
uint64_t splitmix64(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  check(n >= 0, "permutation size {} must be >= 0", n);
  std::vector<int64_t> p(static_cast<size_t>(n));  // [n]
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i;
  uint64_t s = seed;
  for (int64_t i = n - 1; i > 0; --i) {
    // j uniform in [0, i] (modulo bias < 2^-40 for any realistic n)
    const int64_t j = int64_t(splitmix64(s) % uint64_t(i + 1));
    std::swap(p[size_t(i)], p[size_t(j)]);
  }
  return p;
}

Splits make_splits(int64_t total, int64_t n_calib, int64_t n_search, int64_t n_test, uint64_t seed) {
  check(n_calib >= 0 && n_search >= 0, "splits: sizes calib {} / search {} must be >= 0", n_calib, n_search);
  check(n_calib + n_search <= total, "splits: calib {} + search {} exceed the {} samples", n_calib, n_search, total);
  if (n_test < 0) n_test = total - n_calib - n_search;
  check(n_calib + n_search + n_test <= total, "splits: calib {} + search {} + test {} exceed the {} samples", n_calib,
        n_search, n_test, total);
  const std::vector<int64_t> p = seeded_permutation(total, seed);
  Splits s;
  auto cut = [&](int64_t from, int64_t n) {
    std::vector<int64_t> v(p.begin() + from, p.begin() + from + n);
    std::sort(v.begin(), v.end());
    return v;
  };
  s.calib = cut(0, n_calib);
  s.search = cut(n_calib, n_search);
  s.test = cut(n_calib + n_search, n_test);
  return s;
}

}  // namespace mpq::quant
