// libFuzzer target: SST-2 TSV parsing from memory. Only mpq::Error may escape; every example has label 0 / 1
// and a non-blank sentence.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "models/data/sst2.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto ex = mpq::data::parse_sst2(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.tsv");
    for (const auto& e : ex)
      if ((e.label != 0 && e.label != 1) || e.sentence.find_first_not_of(" \t") == std::string::npos) std::abort();
  } catch (const mpq::Error&) {
  }
  return 0;
}
