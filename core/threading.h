// One knob for the thread count: OpenMP, which oneDNN (Debian's build uses the OMP runtime) shares.
#pragma once

namespace mpq {
// n <= 0 means all cores. Applies to our kernels and to oneDNN primitives alike. Capped at
// OMP_THREAD_LIMIT (thread-limit-var): OpenMP never gives a team more threads than that.
void set_num_threads(int n);
// The team size a parallel region started on the calling thread asks for, capped at OMP_THREAD_LIMIT.
// (omp_get_max_threads() alone ignores the limit: with OMP_THREAD_LIMIT=1 on 2 cores it says 2.)
int num_threads();

// For its lifetime on the calling thread: nthreads-var pinned to num_threads() and dynamic team sizing
// off, then both restored. oneDNN sizes and partitions a primitive's work for omp_get_max_threads() at
// creation and assumes every planned thread runs at execution; under OMP_THREAD_LIMIT=1 (max 2, team 1)
// or OMP_DYNAMIC=true it silently skipped work (wrong GEMM and convolution results). Every oneDNN
// primitive creation and execution runs inside one of these. Our own kernels do not need it: their
// drivers loop over work items with the team size they actually got.
class FixedTeam {
 public:
  FixedTeam();
  ~FixedTeam();
  FixedTeam(const FixedTeam&) = delete;
  FixedTeam& operator=(const FixedTeam&) = delete;
  int threads() const { return threads_; }

 private:
  int prev_threads_, threads_;
  bool prev_dynamic_;
};
}  // namespace mpq
