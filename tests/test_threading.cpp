// The thread-count knob against OpenMP's own limits. ctest also runs a slice of the suite under
// OMP_THREAD_LIMIT=1 (tests/threads/threads_tests.cmake), where omp_get_max_threads() still says "all
// cores" but every team gets one thread: the case that made oneDNN skip work.
#include <doctest/doctest.h>
#include <omp.h>

#include <algorithm>

#include "core/threading.h"

using namespace mpq;

namespace {
int team_size() {
  int n = 0;
#pragma omp parallel
  {
#pragma omp single
    n = omp_get_num_threads();
  }
  return n;
}
}  // namespace

TEST_CASE("threading: set_num_threads and num_threads never exceed OMP_THREAD_LIMIT") {
  const int saved = omp_get_max_threads(), limit = omp_get_thread_limit();
  set_num_threads(3);
  CHECK(num_threads() == std::min(3, limit));
  CHECK(omp_get_max_threads() == std::min(3, limit));
  omp_set_num_threads(3);  // straight to OpenMP, past our knob: num_threads() still caps
  CHECK(num_threads() == std::min(3, limit));
  omp_set_num_threads(saved);
}

TEST_CASE("threading: FixedTeam pins nthreads to num_threads() with dynamic sizing off, then restores both") {
  const int saved = omp_get_max_threads(), saved_dyn = omp_get_dynamic(), limit = omp_get_thread_limit();
  omp_set_num_threads(3);
  omp_set_dynamic(1);
  {
    const FixedTeam team;
    CHECK(team.threads() == std::min(3, limit));
    CHECK(omp_get_max_threads() == team.threads());
    CHECK(omp_get_dynamic() == 0);
    CHECK(team_size() == team.threads());  // with dynamic off, a team is exactly what was asked
  }
  CHECK(omp_get_max_threads() == 3);
  CHECK(omp_get_dynamic() == 1);
  omp_set_dynamic(saved_dyn);
  omp_set_num_threads(saved);
}
