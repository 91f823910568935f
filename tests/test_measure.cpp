// The timing helpers' bookkeeping (models/native/measure.h): which calls run, in which order, and the
// statistic. No wall time is asserted (speed belongs to the benchmarks); the clock only feeds the medians.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "models/native/measure.h"

using namespace mpq;

TEST_CASE("measure: interleaved timing warms each run, then calls them in turn, one statistic per run") {
  std::string calls;
  const std::vector<std::function<void()>> fns = {[&] { calls += 'a'; }, [&] { calls += 'b'; }, [&] { calls += 'c'; }};
  const std::vector<native::Stats> st = native::time_runs_interleaved(fns, 2, 3);
  CHECK(calls == "aabbccabcabcabc");  // warm-ups per run first, then rounds A B C
  REQUIRE(st.size() == 3);
  for (const native::Stats& s : st) {
    CHECK(s.min >= 0);
    CHECK(s.min <= s.median);
    CHECK(s.median <= s.max);
  }
  CHECK_THROWS_WITH_AS(native::time_runs_interleaved(fns, 0, 0), doctest::Contains("runs (0) must be positive"), Error);
}

TEST_CASE("measure: the median of an odd and of an even count, min and max") {
  const native::Stats odd = native::stats_of({3.0, 1.0, 2.0});
  CHECK(odd.median == 2.0);
  CHECK(odd.min == 1.0);
  CHECK(odd.max == 3.0);
  CHECK(native::stats_of({4.0, 1.0, 2.0, 3.0}).median == 2.5);
  CHECK_THROWS_AS(native::stats_of({}), Error);
}
