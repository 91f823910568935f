// The project's one pseudo-random generator: splitmix64 (Steele, Lea, Flood 2014; the seeding generator
// of xoshiro). Chosen because it is a few integer operations, passes BigCrush, and gives the same stream
// on every platform and standard library (std::mt19937 does, but std::*_distribution does not), so
// seeded splits, observer subsamples and dropout masks reproduce everywhere.
#pragma once
#include <cstdint>

namespace mpq {

// The stateless form: the output for counter value x (equal to SplitMix64{x}.next()). Counter-based
// streams (dropout masks indexed by element) use it directly.
constexpr uint64_t splitmix64_at(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

struct SplitMix64 {
  uint64_t state = 0;
  constexpr uint64_t next() {
    const uint64_t r = splitmix64_at(state);
    state += 0x9E3779B97F4A7C15ull;
    return r;
  }
  // Uniform double in [0, 1) from the top 53 bits.
  constexpr double uniform() { return double(next() >> 11) * 0x1.0p-53; }
};

}  // namespace mpq
