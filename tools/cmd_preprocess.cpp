// `mpq preprocess`: JPEG images -> the preprocessed f32 [N, 3, 224, 224] batch a CNN (or a model file) takes,
// as an .npy for `mpq infer` and applications (include/mpq/mpq.hpp).
#include <fmt/format.h>

#include <sstream>

#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "models/data/image.h"
#include "models/io/npy.h"
#include "models/io/safetensors.h"
#include "tools/cli.h"

namespace mpq::cli {
namespace {

int run_preprocess(const Args& args) {
  args.check_known({"preset", "model-file", "images", "out", "threads"});
  usage_check(args.has("preset") != args.has("model-file"), "give either --preset or --model-file");
  const std::string out = args.require("out");
  check_output_file(out);
  std::string name = args.get("preset");
  if (args.has("model-file")) {  // the preset the file names (metadata only; nothing is compiled)
    const std::string path = args.get("model-file");
    const io::SafetensorsFile f = io::read_safetensors(path);
    check(f.metadata.count("format") && f.metadata.at("format") == deploy::kModelFileFormat,
          "model file '{}': metadata field 'format' is not '{}'", path, deploy::kModelFileFormat);
    check(f.metadata.count("preprocessing"), "model file '{}': metadata field 'preprocessing' is missing", path);
    name = f.metadata.at("preprocessing");
    check(name != "wordpiece", "model file '{}' takes token ids (bert), not images", path);
  }
  data::Preset preset{};
  try {
    preset = data::parse_preset(name);
  } catch (const Error& e) {
    throw UsageError(fmt::format("--preset: {}", e.what()));
  }
  std::vector<std::string> paths;
  std::stringstream list(args.require("images"));
  for (std::string p; std::getline(list, p, ',');)
    if (!p.empty()) paths.push_back(p);
  usage_check(!paths.empty(), "--images needs at least one path (comma-separated)");
  Tensor batch = Tensor::empty({int64_t(paths.size()), 3, 224, 224});  // [N, 3, 224, 224]
  for (size_t i = 0; i < paths.size(); ++i)
    batch.narrow(0, int64_t(i), 1).copy_from(data::load_image(paths[i], preset));
  io::write_npy(out, batch);
  fmt::print(stderr, "wrote {} {} images ({}) to {}\n", shape_str(batch.shape()), paths.size(), name, out);
  return 0;
}

const Registrar reg({"preprocess", "JPEG images -> a preprocessed f32 NCHW batch (.npy) for infer",
                     "mpq preprocess (--preset {keras_caffe,tflite_mobilenet,torchvision} | --model-file MODEL.mpq) "
                     "--images A.jpg[,B.jpg...] --out X.npy\n"
                     "  decode, resize the shorter side to 256, center crop 224, and map bytes to the values the "
                     "weights' layout expects; output f32 [N, 3, 224, 224]",
                     run_preprocess});

}  // namespace
}  // namespace mpq::cli
