// libFuzzer target: the latency-table JSON (`mpq search --latency-table`) from memory. Only mpq::Error may
// escape; every accepted time is a number >= 0 and the table survives a to_json / from_json round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "quant/search.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq::quant;
  try {
    const LatencyTable t = parse_latency_table(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& [layer, m] : t.ms)
      for (const auto& [p, ms] : m)
        if (!(ms >= 0)) std::abort();
    const LatencyTable again = latency_table_from_json(t.to_json(), "fuzz-roundtrip");
    if (again.ms != t.ms) std::abort();
  } catch (const mpq::Error&) {
  }
  return 0;
}
