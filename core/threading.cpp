#include "core/threading.h"

#include <omp.h>

#include <algorithm>

namespace mpq {
void set_num_threads(int n) { omp_set_num_threads(std::min(n > 0 ? n : omp_get_num_procs(), omp_get_thread_limit())); }
int num_threads() { return std::min(omp_get_max_threads(), omp_get_thread_limit()); }

FixedTeam::FixedTeam()
    : prev_threads_(omp_get_max_threads()), threads_(num_threads()), prev_dynamic_(omp_get_dynamic()) {
  if (threads_ != prev_threads_) omp_set_num_threads(threads_);
  if (prev_dynamic_) omp_set_dynamic(0);
}
FixedTeam::~FixedTeam() {
  if (threads_ != prev_threads_) omp_set_num_threads(prev_threads_);
  if (prev_dynamic_) omp_set_dynamic(1);
}
}  // namespace mpq
