#include "core/memory_policy.h"

#include <malloc.h>

namespace mpq {

namespace {
constexpr int kMmapThresholdBytes = 256 << 20;  // above the largest activation of the search's batches
constexpr int kTrimThresholdBytes = 1 << 30;    // what a process may keep free at the heap's top
}  // namespace

bool keep_freed_memory_for_reuse() {
  // mallopt returns 1 on success; setting either threshold also turns off glibc's dynamic adjustment.
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes) == 1;
  return mmap_ok && trim_ok;
}

}  // namespace mpq
