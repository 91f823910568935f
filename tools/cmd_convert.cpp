// `mpq convert`: any loadable weights (TF.js model.json, .tflite, safetensors) -> safetensors with the
// canonical (torchvision / Hugging Face) names and {"layout": ...} metadata, loadable again by load_model.
#include <fmt/format.h>

#include "core/error.h"
#include "core/file_io.h"
#include "models/cnn_common.h"
#include "models/io/safetensors.h"
#include "models/zoo.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

int run_convert(const Args& args) {
  args.check_known({"model", "weights", "out", "threads", "precision"});
  const std::string prec = args.get("precision", "fp32");
  check(prec == "fp32", "--precision '{}' is not yet supported (only fp32)", prec);
  const std::string name = args.require("model"), out = args.require("out");
  check_output_file(out);  // before the (possibly long) load, so a bad --out fails at once
  auto model = models::load_model(name, args.require("weights"));
  io::TensorMap map;
  for (auto& [n, t] : model->named_tensors()) map.insert(n, t->contiguous());
  std::map<std::string, std::string> meta = {{"model", name}};
  if (auto* cnn = dynamic_cast<models::CnnModel*>(model.get())) meta = cnn->metadata();
  io::write_safetensors(out, map, meta);
  fmt::print(stderr, "wrote {} tensors ({} values) to {}\n", map.size(), map.total_elements(), out);
  return 0;
}

const Registrar reg({"convert", "weights (TF.js / TFLite / safetensors) -> safetensors with layout metadata",
                     "mpq convert --model {resnet50,mobilenetv2,bert} --weights IN --out OUT.safetensors",
                     run_convert});

}  // namespace
}  // namespace mpq::cli
