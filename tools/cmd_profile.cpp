// `mpq profile`: the measured per-layer latency table the search reads (quant/search.h LatencyTable).
//
// For every precision P requested, the whole network is compiled with every layer at P and run batch-1
// `--runs` times after `--warmup` runs with per-step timing (NativeModel::run_profiled); each quantizable
// layer's entry is the median of its step times. So every layer is timed in the network's real context: its
// real input shape, NHWC / row-major layout, the kernel the autotuner chose, and the conversion of its input
// when its producer wrote another dtype (at a uniform P that happens only at the network input).
// Output (JSON):
//   {"source": "...", "measured": true, "threads": T, "runs": R,
//    "layers": {"<layer>": {"fp32": ms, "fp16": ms, ...}},        <- what the search reads
//    "other_ms": {"fp32": ms, ...},     median of the summed non-quantizable steps (pooling, softmax, ...)
//    "end_to_end_ms": {"fp32": ms, ...}, median of the whole profiled run
//    "weight_bytes": {"fp32": bytes, ...},
//    "implementations": {"fp32": {"<layer>": "<kernel>"}, ...}}
#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "models/native/measure.h"
#include "quant/task.h"
#include "tools/cli.h"
#include "tools/native_run.h"
#include "tools/progress.h"

namespace mpq::cli {
namespace {

std::vector<Precision> parse_precision_list(const std::string& s) {
  std::vector<Precision> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      out.push_back(parse_precision(item));
    } catch (const Error& e) {
      throw UsageError(fmt::format("--precisions: {}", e.what()));
    }
  }
  usage_check(!out.empty(), "--precisions: empty list");
  return out;
}

int run_profile(const Args& args) {
  args.check_known({"model", "weights", "out", "precisions", "int4-group", "calib", "calib-data", "threads", "runs",
                    "warmup", "seq", "json"});
  const std::string out_path = args.require("out");
  const int runs = int(args.get_int("runs", 20, 1, 1000000)), warmup = int(args.get_int("warmup", 3, 0, 1000000));
  const int64_t group = int4_group_option(args);
  const auto precisions = parse_precision_list(args.get("precisions", "fp32,fp16,bf16,int8,int4"));
  check_output_file(out_path);  // before the load and the measurements, so a bad --out fails at once
  auto model = load_or_default_model(args);
  const models::Batch batch = latency_input(args, *model);

  quant::Calibration calib;  // computed once, only when an integer precision is requested
  for (Precision p : precisions)
    if (precision_is_integer(p) && calib.empty())
      calib = quant::calibrate_batches(*model, calibration_batches(args, *model, batch));

  const nlohmann::json j = native::measure_latency_table(
      *model, precisions, [&](Precision p) { return quant::uniform_assignment(*model, p, calib, group); }, batch,
      warmup, runs, progress_printer(model->name()));
  write_file_atomic(out_path, j.dump(1) + "\n");  // a reader sees the old table or the new one, never a part
  if (args.flag("json")) {
    fmt::print("{}\n", nlohmann::json({{"model", model->name()},
                                       {"out", out_path},
                                       {"end_to_end_ms", j["end_to_end_ms"]},
                                       {"other_ms", j["other_ms"]},
                                       {"weight_bytes", j["weight_bytes"]}})
                           .dump());
  } else {
    for (Precision p : precisions) {
      const std::string pn = precision_name(p);
      fmt::print("{} {:>5}: end-to-end {:8.2f} ms (median), non-layer steps {:.2f} ms, weights {:.2f} MB\n",
                 model->name(), pn, j["end_to_end_ms"][pn].get<double>(), j["other_ms"][pn].get<double>(),
                 j["weight_bytes"][pn].get<double>() / 1e6);
    }
    fmt::print("wrote {} ({} layers x {} precisions)\n", out_path, j["layers"].size(), precisions.size());
  }
  return 0;
}

const Registrar reg({"profile", "measured per-layer latency table (every quantizable layer at every precision)",
                     "mpq profile --model {resnet50,mobilenetv2,bert} [--weights PATH] --out latency.json "
                     "[--precisions fp32,fp16,bf16,int8,int4] [--int4-group 0] [--runs 20] [--warmup 3] "
                     "[--seq L] [--calib 8] [--calib-data DIR] [--threads N] [--json]",
                     run_profile});

}  // namespace
}  // namespace mpq::cli
