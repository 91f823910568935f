// doctest's main; the test cases live in the other tests/*.cpp files. Freed memory is kept for reuse as in
// the CLI (core/memory_policy.h), so the tests run the allocator the way the tool does.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "core/memory_policy.h"

int main(int argc, char** argv) {
  mpq::keep_freed_memory_for_reuse();
  doctest::Context context(argc, argv);
  return context.run();
}
