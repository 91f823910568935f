// How a process that runs many tensor ops treats freed memory (glibc malloc).
//
// glibc serves a block at or above its mmap threshold (128 KiB at start, raised dynamically up to 32 MiB) with
// a fresh mmap and hands it back with munmap when freed, so every re-allocation of a large buffer page-faults
// all of its pages in again. The autograd path allocates a fresh output per op (MobileNetV2 activations of
// 1-200 MB at the search's batch sizes): `mpq demo` spent 171 s of its 352 s wall clock in the kernel (22.7 M
// minor page faults). With the thresholds below freed blocks stay in the heap and are reused: 4.8 s of system
// time, 0.39 M faults, 149 s wall (same command and machine, idle, AMD EPYC Zen 5, 2 threads; README).
// The setting is process-wide, so executables call it (the CLI, the test main), never the library an
// application links.
#pragma once

namespace mpq {

// Blocks up to 256 MiB come from the heap (larger ones, e.g. whole weight files, are still mmapped), and the
// heap is trimmed only when more than 1 GiB at its top is free. Returns false when malloc refused a setting.
bool keep_freed_memory_for_reuse();

}  // namespace mpq
