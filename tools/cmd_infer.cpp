// `mpq infer`: logits for a preprocessed f32 NCHW image batch (CNNs) or int32 / int64 token ids (BERT), by the
// fp32 autograd forward, the native engine at --precision / --config, or a deployed --model-file.
#include <fmt/format.h>

#include <algorithm>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "models/cnn_common.h"
#include "models/io/npy.h"
#include "models/native/native.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "tools/cli.h"
#include "tools/native_run.h"

namespace mpq::cli {
namespace {

// Logits [N, classes] of images [N, 3, H, W], `bs` images per forward.
Tensor run_images(models::Model& m, const Tensor& x, const std::string& path, int64_t bs) {
  if (!(x.dtype() == DType::f32 && x.dim() == 4 && x.size(1) == 3))
    fail("input '{}': expected an f32 array [N, 3, H, W] (preprocessed NCHW), got {} {}", path, dtype_name(x.dtype()),
         shape_str(x.shape()));
  std::vector<Tensor> outs;
  for (int64_t b = 0; b < x.size(0); b += bs) {
    models::Batch batch;
    batch.images = x.narrow(0, b, std::min(bs, x.size(0) - b)).contiguous();  // [n, 3, H, W]
    outs.push_back(m.forward(batch, false));                                  // [n, classes]
  }
  return outs.size() == 1 ? outs[0].contiguous() : ops::concat(outs, 0);  // [N, classes]
}

// Logits [B, C] of token ids [B, L] (0 = [PAD], masked), one forward.
Tensor run_tokens(models::Model& m, const Tensor& ids, const std::string& path) {
  if (!(ids.dtype() == DType::i32 && ids.dim() == 2))
    fail("input '{}': bert takes int32 / int64 token ids [batch, seq], got {} {}", path, dtype_name(ids.dtype()),
         shape_str(ids.shape()));
  models::Batch b;
  b.seq_len = ids.size(1);
  const Tensor c = ids.contiguous();
  const int32_t* p = c.data<int32_t>();  // [B * L]
  b.ids.assign(p, p + c.numel());
  for (int32_t id : b.ids) b.mask.push_back(id != 0 ? 1 : 0);
  return m.forward(b, false);
}

int run_infer(const Args& args) {
  args.check_known({"model", "weights", "model-file", "input", "output", "batch", "threads", "precision", "config",
                    "int4-group", "calib", "calib-data", "rounding", "rounding-calib", "no-fold-bn"});
  const std::string in_path = args.require("input"), out_path = args.require("output");
  const int64_t bs = args.get_int("batch", 16, 1, 65536);
  check_output_file(out_path);  // before the work, so a bad --output fails at once
  deploy::LoadedModel file;
  std::unique_ptr<models::Model> model;
  std::unique_ptr<native::CompiledModel> compiled;
  models::Model* runner = nullptr;
  std::string label = "fp32 (autograd)";
  if (args.has("model-file")) {
    usage_check(!args.has("weights") && !args.has("precision") && !args.has("config"),
                "--model-file holds the weights and precisions: give no --weights, --precision or --config");
    file = deploy::load_model_file(args.get("model-file"));  // our kernels only: the same output every run
    check(!args.has("model") || args.get("model") == file.info.model, "--model {} but '{}' holds {}", args.get("model"),
          args.get("model-file"), file.info.model);
    runner = file.model.get();
    label = "model file, " + file.info.precision_summary();
  } else {
    model = models::load_model(args.require("model"), args.require("weights"));
    if (auto* cnn = dynamic_cast<models::CnnModel*>(model.get())) cnn->set_fold_bn(!args.flag("no-fold-bn"));
    runner = model.get();
    if (args.has("precision") || args.has("config")) {  // the native engine, any per-layer mix
      const Assignment a = requested_assignment(args, *model, models::latency_input(*model), label);
      compiled = std::make_unique<native::CompiledModel>(
          *model, native::compile(*model, a, native::CompileOptions::reproducible()));
      runner = compiled.get();
    }
  }
  const Tensor x = io::read_npy(in_path);
  autograd::NoGradGuard no_grad;
  const Tensor logits =
      runner->name() == "bert" ? run_tokens(*runner, x, in_path) : run_images(*runner, x, in_path, bs);
  io::write_npy(out_path, logits);
  fmt::print(stderr, "wrote logits {} to {} ({})\n", shape_str(logits.shape()), out_path, label);
  return 0;
}

const Registrar reg(
    {"infer", "logits for a preprocessed input .npy",
     "mpq infer (--model {resnet50,mobilenetv2,bert} --weights PATH [--precision P | --config FILE] | "
     "--model-file MODEL.mpq) --input X.npy --output Y.npy [--batch B=16]\n"
     "  input: f32 [N, 3, H, W] preprocessed as the weights' layout expects (mpq preprocess), or int32 / int64 "
     "token ids [N, L] for bert; output: f32 logits [N, classes]\n"
     "  without --precision / --config / --model-file: the fp32 autograd forward; with them the native engine (our "
     "kernels, not autotuned: the same output every run; --precision int8 / int4 calibrates as mpq bench does)",
     run_infer});

}  // namespace
}  // namespace mpq::cli
