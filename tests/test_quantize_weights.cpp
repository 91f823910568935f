// The shared round-to-nearest weight quantizer (ops/kernels/quantize_weights.h): every implementation equals
// the reference bit for bit over edge shapes (tails of 16 lanes, groups, rows of 9 like a 3x3 depthwise),
// and the reference equals an independent double-precision restatement of its definition.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "ops/kernels/quantize_weights.h"
#include "tests/kernel_test_util.h"

using namespace mpq;
using namespace mpq::kernels;

TEST_CASE("quantize rows: implementations bit-exact vs the reference, reference vs the definition") {
  std::mt19937 rng(7);
  struct Case {
    int64_t rows, K, group;
    int bits;
  };
  const Case cases[] = {{3, 9, 0, 4},    {5, 9, 0, 8},   {2, 1, 0, 8},    {4, 17, 0, 4},
                        {7, 31, 0, 8},   {3, 64, 32, 4}, {2, 128, 64, 4}, {2, 384, 128, 4},
                        {1, 1000, 0, 8}, {6, 48, 16, 3}, {1, 4608, 0, 4}, {9, 33, 11, 4}};
  for (const Case& c : cases) {
    CAPTURE(c.rows);
    CAPTURE(c.K);
    CAPTURE(c.group);
    CAPTURE(c.bits);
    std::vector<float> w = testing::rand_f(size_t(c.rows * c.K), rng, -0.3f, 0.3f);  // [rows, K]
    if (c.K >= 4) {
      w[1] = 0.0f;  // exact zero, a tie at half a step, and a whole all-zero group in row 0
      w[2] = -0.0f;
    }
    if (c.group > 0)
      for (int64_t i = 0; i < c.group; ++i) w[size_t(i)] = 0.0f;
    const int64_t G = c.group > 0 ? c.group : c.K;
    std::vector<int8_t> qr(w.size()), qi(w.size());
    std::vector<float> sr(size_t(c.rows * (c.K / G))), si(sr.size());
    QuantizeRowsArgs a{w.data(), c.rows, c.K, c.group, c.bits, qr.data(), sr.data()};
    quantize_rows_ref(a);
    // the definition, in double: s = max|w| / qmax; q = round half to even of w / s, clamped
    const double qmax = double((1 << (c.bits - 1)) - 1);
    for (int64_t r = 0; r < c.rows; ++r)
      for (int64_t g = 0; g < c.K / G; ++g) {
        double amax = 0;
        for (int64_t i = 0; i < G; ++i) amax = std::max(amax, std::fabs(double(w[size_t(r * c.K + g * G + i)])));
        const float s = amax > 0 ? float(amax) / float(qmax) : 1.0f;
        CHECK(sr[size_t(r * (c.K / G) + g)] == s);
        for (int64_t i = 0; i < G; ++i) {
          const float x = w[size_t(r * c.K + g * G + i)] / s;
          const double q = std::clamp(double(std::nearbyint(x)), -qmax, qmax);
          CHECK(double(qr[size_t(r * c.K + g * G + i)]) == q);
        }
      }
    const int ran = testing::for_each_fast_impl(quantize_rows_list(), [&](const auto& impl) {
      CAPTURE(impl.name);
      std::fill(qi.begin(), qi.end(), int8_t(99));
      impl.fn({w.data(), c.rows, c.K, c.group, c.bits, qi.data(), si.data()});
      CHECK(qi == qr);
      CHECK(si == sr);
    });
    CHECK(ran >= 0);
  }
}

TEST_CASE("quantize rows: bad arguments and non-finite weights are refused, naming them") {
  std::vector<float> w(18, 0.1f);
  std::vector<int8_t> q(18);
  std::vector<float> s(2);
  CHECK_THROWS_WITH_AS(quantize_rows({w.data(), 2, 9, 4, 4, q.data(), s.data()}),
                       doctest::Contains("group 4 does not divide row length 9"), Error);
  CHECK_THROWS_WITH_AS(quantize_rows({w.data(), 2, 9, 0, 9, q.data(), s.data()}), doctest::Contains("9 bits"), Error);
  w[11] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(quantize_rows({w.data(), 2, 9, 0, 4, q.data(), s.data()}),
                       doctest::Contains("weight 2 of row 1 is nan"), Error);
}

TEST_CASE("split nibbles: pack then widen gives the values back in every implementation, over tails and offsets") {
  std::mt19937 rng(11);
  for (const int64_t n : {int64_t(1), int64_t(31), int64_t(32), int64_t(33), int64_t(63), int64_t(64), int64_t(65),
                          int64_t(127), int64_t(129), int64_t(1000), int64_t(4096 + 17)}) {
    CAPTURE(n);
    std::vector<int8_t> x(static_cast<size_t>(n));  // [n] every code in [-8, 7], the extremes included
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = int8_t(int(rng() % 16) - 8);
    x[0] = -8;
    x[size_t(n - 1)] = 7;
    std::vector<uint8_t> packed(static_cast<size_t>(split_nibble_bytes(n)));
    REQUIRE(pack_s4_split(x.data(), n, packed.data()));
    // the layout the kernels read: value 64c + j in the low nibble of byte 32c + j, 64c + 32 + j in its high one
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t b = packed[size_t(i / 64 * 32 + i % 32)];
      CHECK(int((i % 64 < 32 ? b : b >> 4) & 0xf) == (x[size_t(i)] & 0xf));
    }
    // from chunk 0 and from a later chunk (a thread's share of the stream), into a guarded buffer
    for (const int64_t begin : {int64_t(0), n > 64 ? int64_t(64) : int64_t(0)}) {
      CAPTURE(begin);
      const int64_t m = n - begin;
      std::vector<int8_t> ref(size_t(m) + 8, int8_t(99)), got(ref.size(), int8_t(99));
      widen_s4_s8_ref({packed.data() + begin / 2, m, ref.data()});
      CHECK(std::equal(ref.begin(), ref.begin() + m, x.begin() + begin));
      CHECK(ref[size_t(m)] == 99);  // nothing written past n
      const int ran = testing::for_each_fast_impl(widen_s4_s8_list(), [&](const auto& impl) {
        CAPTURE(impl.name);
        std::fill(got.begin(), got.end(), int8_t(99));
        impl.fn({packed.data() + begin / 2, m, got.data()});
        CHECK(got == ref);
      });
      CHECK(ran >= 0);
    }
  }
  // the team's split: blocks of kWidenTeamBlock values and a short last block give the reference's values
  {
    const int64_t n = 3 * kWidenTeamBlock + 17;
    std::vector<int8_t> x(static_cast<size_t>(n));  // [n]
    for (int64_t i = 0; i < n; ++i) x[size_t(i)] = int8_t(int(rng() % 16) - 8);
    std::vector<uint8_t> packed(static_cast<size_t>(split_nibble_bytes(n)));
    REQUIRE(pack_s4_split(x.data(), n, packed.data()));
    std::vector<int8_t> got(size_t(n) + 8, int8_t(99));
    widen_s4_s8_team({packed.data(), n, got.data()});
    CHECK(std::equal(x.begin(), x.end(), got.begin()));
    CHECK(got[size_t(n)] == 99);
  }
  const int8_t out_of_range[3] = {1, 8, -2};
  uint8_t packed[32];
  CHECK_FALSE(pack_s4_split(out_of_range, 3, packed));
  const int8_t below[2] = {-9, 0};
  CHECK_FALSE(pack_s4_split(below, 2, packed));
  CHECK_THROWS_WITH_AS(widen_s4_s8({nullptr, 5, nullptr}), doctest::Contains("null buffer"), Error);
}
