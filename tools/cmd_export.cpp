// `mpq export`: the deployable model file (deploy/model_file.h) of a model at a precision assignment -- one
// safetensors file with the weights at their precisions, loadable by `mpq infer|eval|bench --model-file`
// and by applications through include/mpq/mpq.hpp (C++) or mpq.h (C).
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "models/bert.h"
#include "models/zoo.h"
#include "quant/cache.h"
#include "tools/cli.h"
#include "tools/native_run.h"

namespace mpq::cli {
namespace {

int run_export(const Args& args) {
  args.check_known({"model", "weights", "config", "precision", "int4-group", "calib", "calib-data", "rounding",
                    "rounding-calib", "out", "threads", "json"});
  const std::string out = args.require("out"), weights = args.require("weights");
  usage_check(args.has("config") || args.has("precision"), "give --config FILE or --precision P (the assignment)");
  check_output_file(out);  // before the work, so a bad --out fails at once
  const auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_model(args.require("model"), weights);
  std::string label;
  const Assignment a = requested_assignment(args, *model, models::latency_input(*model), label);
  deploy::ExportOptions opt;
  opt.weights = quant::weights_identity(weights);
  if (model->name() == "bert") {  // the vocabulary travels with the model, for text input (mpq eval)
    const std::string vocab = models::bert_dir_of(weights) + "/vocab.txt";
    if (std::filesystem::exists(vocab)) opt.vocab = read_text_file(vocab, kMaxTextFileBytes, "vocab file");
  }
  const deploy::ExportSummary s = deploy::write_model_file(out, *model, a, opt);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double ratio = double(s.file_bytes) / double(s.stored_bytes);
  if (args.flag("json")) {
    fmt::print("{}\n", nlohmann::json{{"out", out},
                                      {"model", model->name()},
                                      {"precision", label},
                                      {"file_bytes", s.file_bytes},
                                      {"tensor_bytes", s.tensor_bytes},
                                      {"header_bytes", s.header_bytes},
                                      {"stored_bytes", s.stored_bytes},
                                      {"file_vs_stored", ratio},
                                      {"seconds", seconds}}
                           .dump());
  } else {
    fmt::print(
        "wrote {} ({} {}): {} bytes = tensors {} + header {}; the search counts {} bytes for this configuration "
        "(file / counted = {:.4f}), {:.1f} s\n",
        out, model->name(), label, s.file_bytes, s.tensor_bytes, s.header_bytes, s.stored_bytes, ratio, seconds);
  }
  return 0;
}

const Registrar reg(
    {"export", "write a deployable model file (.mpq) at a precision assignment",
     "mpq export --model {resnet50,mobilenetv2,bert} --weights PATH (--config FILE | --precision P "
     "[--int4-group 0|32|64|128] [--rounding gptq|nearest] [--calib 8] [--rounding-calib 128] [--calib-data DIR]) "
     "--out MODEL.mpq [--json]\n"
     "  one safetensors file: weights packed at their precisions (int8 / int4 codes + f32 scales, fp16 / bf16, "
     "f32 biases with batch norm folded), the architecture, preprocessing and the quant config in its metadata "
     "(deploy/model_file.h); int8 / int4 layers keep the config's rounded records "
     "(config.rounded.safetensors) when it has them\n"
     "  --json prints one object: out, model, precision, file_bytes, tensor_bytes, header_bytes, stored_bytes "
     "(what the search counts), file_vs_stored, seconds",
     run_export});

}  // namespace
}  // namespace mpq::cli
