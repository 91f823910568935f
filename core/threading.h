// One knob for the thread count: OpenMP, which oneDNN (Debian's build uses the OMP runtime) shares.
#pragma once

namespace mpq {
// n <= 0 means all cores. Applies to our kernels and to oneDNN primitives alike.
void set_num_threads(int n);
int num_threads();
}  // namespace mpq
