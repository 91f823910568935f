// libFuzzer target: the analysis cache's JSON (quant/cache.*, quant/search.* metric memo) as a hand-edited or
// damaged cache file would present it: the text is parsed like AnalysisCache::load, then its "payload" (or
// the whole document) is read as each cached kind: Hutchinson traces, calibration, dependencies, metric memo.
// Only mpq::Error may escape.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.h"
#include "quant/cache.h"
#include "quant/search.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq::quant;
  using nlohmann::json;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return 0;
  const json& payload = j.is_object() && j.contains("payload") ? j["payload"] : j;
  try {
    (void)hutchinson_from_json(payload);
  } catch (const mpq::Error&) {
  }
  try {
    (void)calibration_from_json(payload);
  } catch (const mpq::Error&) {
  }
  try {
    (void)dependency_from_json(payload);
  } catch (const mpq::Error&) {
  }
  try {
    MemoMetric memo([](const auto&) { return 0.0; });  // generic: Precision lives in quant or core
    memo.merge_json(payload);
  } catch (const mpq::Error&) {
  }
  return 0;
}
