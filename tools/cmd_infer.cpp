// `mpq infer`: logits of a CNN for a preprocessed f32 NCHW .npy input (BERT: infer_bert).
#include <fmt/format.h>

#include <algorithm>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "models/cnn_common.h"
#include "models/io/npy.h"
#include "models/zoo.h"
#include "ops/ops.h"
#include "tools/commands.h"

namespace mpq::cli {
namespace {

int run_infer(const Args& args) {
  if (args.require("model") == "bert") return infer_bert(args);
  args.check_known({"model", "weights", "input", "output", "batch", "threads", "precision", "no-fold-bn"});
  const std::string prec = args.get("precision", "fp32");
  check(prec == "fp32", "--precision '{}' is not yet supported (only fp32)", prec);
  check_output_file(args.require("output"));  // before the work, so a bad --output fails at once
  auto model = models::load_model(args.require("model"), args.require("weights"));
  if (auto* cnn = dynamic_cast<models::CnnModel*>(model.get())) cnn->set_fold_bn(!args.flag("no-fold-bn"));
  const std::string in_path = args.require("input");
  const Tensor x = io::read_npy(in_path);  // [N, 3, H, W]
  if (!(x.dtype() == DType::f32 && x.dim() == 4 && x.size(1) == 3))
    fail("input '{}': expected an f32 array [N, 3, H, W] (preprocessed NCHW), got {} {}", in_path,
         dtype_name(x.dtype()), shape_str(x.shape()));
  const int64_t bs = args.get_int("batch", 16, 1, 65536);
  autograd::NoGradGuard no_grad;
  std::vector<Tensor> outs;
  for (int64_t b = 0; b < x.size(0); b += bs) {
    models::Batch batch;
    batch.images = x.narrow(0, b, std::min(bs, x.size(0) - b)).contiguous();  // [n, 3, H, W]
    outs.push_back(model->forward(batch, false));                             // [n, classes]
  }
  const Tensor logits = outs.size() == 1 ? outs[0].contiguous() : ops::concat(outs, 0);  // [N, classes]
  io::write_npy(args.require("output"), logits);
  fmt::print(stderr, "wrote logits {} to {}\n", shape_str(logits.shape()), args.require("output"));
  return 0;
}

const Registrar reg({"infer", "logits for a preprocessed input .npy",
                     "mpq infer --model {resnet50,mobilenetv2,bert} --weights PATH --input X.npy --output Y.npy "
                     "[--batch B=16] [--precision fp32]\n  input: f32 [N, 3, H, W] preprocessed as the weights' layout "
                     "expects; output: f32 logits [N, classes]",
                     run_infer});

}  // namespace
}  // namespace mpq::cli
