// libFuzzer target: safetensors parsing from memory. Only mpq::Error may escape the parser.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "models/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto f = mpq::io::parse_safetensors(std::span(data, size), "fuzz.safetensors");
    // Re-serialising what was read must round-trip.
    const auto again = mpq::io::serialize_safetensors(f.tensors, f.metadata);
    (void)mpq::io::parse_safetensors(again, "fuzz-roundtrip.safetensors");
  } catch (const mpq::Error&) {
  }
  return 0;
}
