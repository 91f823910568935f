#include "models/zoo.h"

#include "core/error.h"

namespace mpq::models {

std::unique_ptr<Model> load_model(const std::string& model, const std::string& weights_path) {
  if (model == "resnet50") return load_resnet50(weights_path);
  if (model == "mobilenetv2") return load_mobilenetv2(weights_path);
  if (model == "bert") return load_bert(weights_path);
  fail("unknown model '{}' (expected resnet50, mobilenetv2 or bert)", model);
}

}  // namespace mpq::models
