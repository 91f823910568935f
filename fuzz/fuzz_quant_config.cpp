// libFuzzer target: the --config quantization file (quant/config) from memory, validated against the
// committed BERT's quantizable layers. Only mpq::Error may escape; an accepted config covers every layer with
// scales in the accepted range, and survives a to_json / from_json round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/bert.h"
#include "quant/config.h"

#ifndef MPQ_SOURCE_DIR
#error "MPQ_SOURCE_DIR must name the source tree (set by CMakeLists.txt)"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq;
  static const std::vector<models::QuantLayer> layers =
      models::Bert(models::BertConfig::load(std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/config.json"))
          .quant_layers();
  try {
    const quant::QuantConfig c =
        quant::parse_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json", "bert", layers);
    if (c.layers.size() != layers.size()) std::abort();
    for (const auto& [name, q] : c.layers)
      for (const auto& [op, p] : q.act)
        if (!(p.scale >= quant::kMinActScale && p.scale <= quant::kMaxActScale)) std::abort();
    (void)quant::config_from_json(quant::config_to_json(c, layers), "fuzz-roundtrip.json", "bert", layers);
  } catch (const Error&) {
  }
  return 0;
}
