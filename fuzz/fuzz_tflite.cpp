// libFuzzer target: hand-written TFLite flatbuffer parsing from memory, then reading every constant
// tensor (raw and dequantized). Only mpq::Error may escape.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/error.h"
#include "models/io/tflite.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto m = mpq::io::parse_tflite(std::span(data, size), "fuzz.tflite");
    for (const auto& sg : m.subgraphs)
      for (size_t i = 0; i < sg.tensors.size() && i < 64; ++i) {
        try {
          (void)mpq::io::tflite_dequantize(m, sg, int32_t(i));
        } catch (const mpq::Error&) {
        }
      }
  } catch (const mpq::Error&) {
  }
  return 0;
}
