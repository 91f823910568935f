// libFuzzer target: TF.js model.json parsing from memory. Every shard path resolves to the same fixed
// 64-byte buffer, except paths containing "missing", which fail like an absent file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "models/io/tfjs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto loader = [](const std::string& path) {
    if (path.find("missing") != std::string::npos) mpq::fail("shard '{}' does not exist", path);
    std::vector<uint8_t> shard(64);
    for (size_t i = 0; i < shard.size(); ++i) shard[i] = uint8_t(i * 37);
    return shard;
  };
  try {
    (void)mpq::io::parse_tfjs(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/model.json", loader);
  } catch (const mpq::Error&) {
  }
  return 0;
}
