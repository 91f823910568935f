// `mpq demo`: the README's main job on an embedded default -- the whole method end to end (`mpq search`) on
// the real ImageNet MobileNetV2 (TFLite, dequantized to f32) and the real validation images of
// ../shared/data: calibration, Hutchinson Hessian traces, measured inter-layer dependencies, the four
// orderings, the bisection for --max-drop 0.5 top-1 points, the Pareto sweeps, the native per-layer
// latency table and the end-to-end latency of the chosen configuration. Writes DIR/config.json and the
// report DIR/report/{report.html, report.json, pareto.csv, pareto.svg, ...} (DIR = --dir, default mpq-demo).
// Every option is `mpq search`'s; the demo only fills in the defaults below.
#include <fmt/format.h>

#include <string>
#include <vector>

#include "core/error.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

int run_demo(const Args& args) {
  args.check_known({"data", "weights", "dir", "max-drop", "min-relative", "seed", "threads", "json", "calib", "search",
                    "test", "draws"});
  const std::string shared = MPQ_DEFAULT_DATA;
  const std::string dir = args.get("dir", "mpq-demo");
  std::vector<std::string> argv = {
      "mpq", "search", "--model", "mobilenetv2", "--weights",
      args.get("weights", shared + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite"), "--data",
      args.get("data", shared + "/imagenet-val-1300"), "--out", dir + "/config.json", "--report", dir + "/report",
      // 8 calibration, 128 search and 256 test images: the whole demo stays well
      // under 15 minutes on 2 cores (the search's own defaults are 16 / 128 / 256)
      "--calib", args.get("calib", "8"), "--search", args.get("search", "128"), "--test", args.get("test", "256")};
  if (args.has("min-relative")) {
    argv.insert(argv.end(), {"--min-relative", args.get("min-relative")});
  } else {
    argv.insert(argv.end(), {"--max-drop", args.get("max-drop", "0.5")});
  }
  for (const char* k : {"seed", "threads", "draws"})
    if (args.has(k)) argv.insert(argv.end(), {std::string("--") + k, args.get(k)});
  if (args.flag("json")) argv.push_back("--json");
  std::string line;
  for (size_t i = 0; i < argv.size(); ++i) line += (i ? " " : "") + argv[i];
  fmt::print(stderr, "mpq demo runs: {}\n", line);
  std::vector<char*> ptrs;
  for (std::string& s : argv) ptrs.push_back(s.data());
  return registry().at("search").run(Args(int(ptrs.size()), ptrs.data(), 2));
}

const Registrar reg({"demo",
                     "the whole method on MobileNetV2 + the real ImageNet images (mpq search with embedded defaults)",
                     "mpq demo [--dir mpq-demo] [--max-drop 0.5 | --min-relative R] [--data DIR] [--weights TFLITE] "
                     "[--calib 8] [--search 128] [--test 256] [--draws N] [--seed S] [--threads N] [--json]\n"
                     "  writes DIR/config.json and DIR/report/ (report.html, pareto.svg, pareto.csv, report.json)",
                     run_demo});

}  // namespace
}  // namespace mpq::cli
