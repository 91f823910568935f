// The timing helpers' bookkeeping (models/native/measure.h): which calls run, in which order, and the
// statistic. No wall time is asserted (speed belongs to the benchmarks); the clock only feeds the medians.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
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

TEST_CASE("measure: the autotuner drops a candidate whose warm-up throws, times the rest in turn, keeps the fastest") {
  std::string calls;
  const auto run = [&](size_t c) {
    calls += char('0' + c);
    if (c == 0) mpq::fail("candidate 0 rejects these arguments");
    if (c == 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // far slower than candidate 1
  };
  CHECK(native::fastest_candidate(3, run, 2) == 1);
  CHECK(calls == "0121212");                          // warm-ups (0 throws), then rounds 1 2
  CHECK(native::fastest_candidate(1, run, 3) == -1);  // nobody left
  CHECK_THROWS_WITH_AS(native::fastest_candidate(2, run, 0), doctest::Contains("reps must be >= 1"), Error);
}
