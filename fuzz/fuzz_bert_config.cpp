// libFuzzer target: BERT config.json parsing and validation from memory. Only mpq::Error may escape; an
// accepted config is within its documented bounds (so allocating it is safe) and round-trips through to_json.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "models/bert.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using mpq::models::BertConfig;
  try {
    const BertConfig c = BertConfig::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
    if (c.parameter_count() > BertConfig::kMaxParameters || c.layers > BertConfig::kMaxLayers) std::abort();
    const BertConfig again = BertConfig::from_json(c.to_json(), "fuzz-roundtrip.json");
    if (again.parameter_count() != c.parameter_count() || again.seq_len != c.seq_len) std::abort();
  } catch (const mpq::Error&) {
  }
  return 0;
}
