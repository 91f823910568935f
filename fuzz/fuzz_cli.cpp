// libFuzzer target: the CLI argument parser (tools/cli.cpp, linked in as it is). The input is split at NUL
// bytes into argv[1..]; the parsed options are then queried the way the commands query them. Only mpq::Error
// may escape.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> words(1, "mpq");
  std::string cur;
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      words.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(char(data[i]));
    }
  }
  words.push_back(cur);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  try {
    const mpq::cli::Args args(int(words.size()), argv.data(), 1);
    for (const char* k : {"limit", "threads", "batch", "seed"}) {
      try {
        (void)args.get_int(k, 1, -1000, 1000);
      } catch (const mpq::Error&) {
      }
    }
    for (const char* k : {"confidence", "lr", "range"}) {
      try {
        (void)args.get_double(k, 0.5, 0, 1);
      } catch (const mpq::Error&) {
      }
    }
    (void)args.get("model", "resnet50");
    try {
      (void)args.flag("quiet");
      (void)args.get_choice("start", "fp16", {"fp16", "bf16"});
    } catch (const mpq::Error&) {
    }
    try {
      (void)args.require("weights");
    } catch (const mpq::Error&) {
    }
    args.check_known({"model", "weights", "limit", "threads", "batch", "seed", "confidence", "lr", "range", "quiet"});
  } catch (const mpq::Error&) {
  }
  return 0;
}
