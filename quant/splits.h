// Calibration / search / test splits over sample indices [0, total): one seeded permutation (Fisher-Yates
// on a splitmix64 stream, so the same seed gives the same splits on every platform / standard library),
// cut into consecutive disjoint pieces.
#pragma once
#include <cstdint>
#include <vector>

namespace mpq::quant {

struct Splits {
  std::vector<int64_t> calib, search, test;  // disjoint; each sorted ascending
  // the weight-rounding samples (quant/rounding.h), sorted ascending: n_rounding samples that are in no other
  // split, so that the analysis (whose probes run on calibration samples) and the search judge the rounded
  // weights on samples the rounding was not fitted to; only when fewer are left over do calibration samples
  // fill up the count (rounding_from_calib says how many).
  std::vector<int64_t> rounding;
  int64_t rounding_from_calib = 0;
};

// n_test < 0: every remaining sample goes to the test split. Throws when the sizes exceed `total`.
Splits make_splits(int64_t total, int64_t n_calib, int64_t n_search, int64_t n_test, uint64_t seed,
                   int64_t n_rounding = 0);

// The seeded permutation itself.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

}  // namespace mpq::quant
