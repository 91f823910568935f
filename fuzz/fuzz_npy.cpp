// libFuzzer target: .npy parsing from memory. Only mpq::Error may escape the parser.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "models/io/npy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const mpq::Tensor t = mpq::io::parse_npy(std::span(data, size), "fuzz.npy");
    if (t.dtype() != mpq::DType::bf16) (void)mpq::io::parse_npy(mpq::io::serialize_npy(t), "fuzz-roundtrip.npy");
  } catch (const mpq::Error&) {
  }
  return 0;
}
