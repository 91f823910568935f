// `mpq bench`: end-to-end batch-1 inference latency of a model, median / min / max over repeated warm runs,
// plus the memory footprint of the packed weights of the configuration. The default engine is the native
// executor (models/native/native.h) at --precision P for every layer or a per-layer --config; --engine
// autograd times the fp32 autograd forward instead (the reference path).
#include <fmt/format.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/threading.h"
#include "deploy/model_file.h"
#include "models/native/measure.h"
#include "tools/cli.h"
#include "tools/native_run.h"

namespace mpq::cli {
namespace {

// --model-file: load (read, check, compile with autotuning, as `mpq bench` compiles) timed, then the runs.
int bench_model_file(const Args& args, int runs, int warmup) {
  args.check_known({"model", "model-file", "threads", "runs", "warmup", "seq", "json"});
  const std::string path = args.get("model-file");
  const auto t0 = std::chrono::steady_clock::now();
  deploy::LoadedModel m = deploy::load_model_file(path, native::CompileOptions{});
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  check(!args.has("model") || args.get("model") == m.info.model, "--model {} but '{}' holds {}", args.get("model"),
        path, m.info.model);
  const models::Batch batch = deploy::latency_input(m.info, args.get_int("seq", 0, 0, 1 << 20));
  const native::Stats st = native::time_runs([&] { m.native().run(batch); }, warmup, runs);
  const std::string label = "model file, " + m.info.precision_summary();
  const int64_t weight_bytes = int64_t(m.native().weight_bytes());
  if (args.flag("json")) {
    nlohmann::json j = {{"model", m.info.model},
                        {"model_file", path},
                        {"precision", label},
                        {"engine", "native"},
                        {"threads", num_threads()},
                        {"runs", runs},
                        {"median_ms", st.median},
                        {"min_ms", st.min},
                        {"max_ms", st.max},
                        {"load_ms", load_ms},
                        {"file_bytes", m.info.file_bytes},
                        {"weight_bytes", weight_bytes},
                        {"batch", 1}};
    if (batch.seq_len) j["seq"] = batch.seq_len;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(
        "{} ({}) batch 1{}: median {:.2f} ms  min {:.2f}  max {:.2f}  ({} runs, {} threads); load {:.1f} ms, file "
        "{:.2f} MB, packed weights {:.2f} MB\n",
        m.info.model, label, batch.seq_len ? fmt::format(" seq {}", batch.seq_len) : "", st.median, st.min, st.max,
        runs, num_threads(), load_ms, double(m.info.file_bytes) / 1e6, double(weight_bytes) / 1e6);
  }
  return 0;
}

int run_bench(const Args& args) {
  const int runs = int(args.get_int("runs", 30, 1, 1000000)), warmup = int(args.get_int("warmup", 3, 0, 1000000));
  if (args.has("model-file")) return bench_model_file(args, runs, warmup);
  args.check_known({"model", "weights", "precision", "config", "int4-group", "calib", "calib-data", "rounding",
                    "rounding-calib", "threads", "runs", "warmup", "seq", "json", "engine"});
  const std::string engine = args.get("engine", "native");
  check(engine == "native" || engine == "autograd", "--engine must be native or autograd, got '{}'", engine);
  auto model = load_or_default_model(args);
  const models::Batch batch = latency_input(args, *model);

  std::string label;
  native::Stats st;
  int64_t weight_bytes = 0;
  if (engine == "autograd") {
    check(!args.has("config") && args.get("precision", "fp32") == "fp32",
          "--engine autograd runs fp32 only (per-layer precisions run natively)");
    label = "fp32";
    for (auto& [n, t] : model->named_tensors()) weight_bytes += int64_t(t->nbytes());
    autograd::NoGradGuard no_grad;
    st = native::time_runs([&] { model->forward(batch, false); }, warmup, runs);
  } else {
    const Assignment a = requested_assignment(args, *model, batch, label);
    const auto nm = native::compile(*model, a);
    weight_bytes = int64_t(nm->weight_bytes());
    st = native::time_runs([&] { nm->run(batch); }, warmup, runs);
  }
  const std::string name = model->name();
  if (args.flag("json")) {
    nlohmann::json j = {{"model", name},
                        {"precision", label},
                        {"engine", engine},
                        {"threads", num_threads()},
                        {"runs", runs},
                        {"median_ms", st.median},
                        {"min_ms", st.min},
                        {"max_ms", st.max},
                        {"weight_bytes", weight_bytes},
                        {"batch", 1}};
    if (batch.seq_len) j["seq"] = batch.seq_len;
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print(
        "{} {} ({}) batch 1{}: median {:.2f} ms  min {:.2f}  max {:.2f}  ({} runs, {} threads), weights {:.2f} MB\n",
        name, label, engine, batch.seq_len ? fmt::format(" seq {}", batch.seq_len) : "", st.median, st.min, st.max,
        runs, num_threads(), double(weight_bytes) / 1e6);
  }
  return 0;
}

const Registrar reg({"bench", "end-to-end batch-1 latency (median/min/max) and weight bytes of a configuration",
                     "mpq bench (--model {resnet50,mobilenetv2,bert} [--weights PATH] "
                     "[--precision {fp32,fp16,bf16,int8,int4} | --config FILE] [--int4-group 0|32|64|128] | "
                     "--model-file MODEL.mpq) "
                     "[--calib 8] [--calib-data DIR] [--runs 30] [--warmup 3] [--seq L] [--threads N] [--json] "
                     "[--engine native|autograd]\n"
                     "  without --weights: deterministic random weights (speed only); int8/int4 calibrate on --calib "
                     "real samples\n"
                     "  --json prints one object: model, precision, engine, threads, runs, median_ms, min_ms, max_ms, "
                     "weight_bytes, batch (, seq); with --model-file also model_file, load_ms (read, check, compile "
                     "with autotuning) and file_bytes",
                     run_bench});

}  // namespace
}  // namespace mpq::cli
