#include "models/native/native.h"

#include <set>

#include "core/error.h"
#include "models/bert.h"
#include "models/cnn_common.h"

namespace mpq::native {

void check_assignment_layers(const models::Model& model, const Assignment& assignment) {
  std::set<std::string> known;
  for (const models::QuantLayer& l : model.quant_layers()) known.insert(l.name);
  for (const auto& [name, q] : assignment)
    if (!known.count(name)) fail("native compile: layer '{}' is not a quantizable layer of {}", name, model.name());
}

std::unique_ptr<NativeModel> compile(models::Model& model, Assignment assignment, const CompileOptions& opt) {
  if (dynamic_cast<models::CnnModel*>(&model) != nullptr) return compile_cnn(model, std::move(assignment), opt);
  if (dynamic_cast<models::Bert*>(&model) != nullptr) return compile_bert(model, std::move(assignment), opt);
  fail("native compile: model '{}' has no native executor (resnet50, mobilenetv2 and bert have)", model.name());
}

void release_record(Assignment& a, const std::string& layer) {
  if (auto it = a.find(layer); it != a.end()) it->second.weights.reset();
}

CompiledModel::CompiledModel(const models::Model& source, std::unique_ptr<NativeModel> compiled)
    : name_(source.name()),
      layers_(source.quant_layers()),
      classes_(source.num_classes()),
      compiled_(std::move(compiled)) {
  check(compiled_ != nullptr, "native: CompiledModel of {} without a compiled executor", name_);
}

Tensor CompiledModel::forward(const models::Batch& batch, bool training) {
  check(!training, "native: the compiled {} runs inference only (forward with training = true)", name_);
  return compiled_->run(batch);
}

}  // namespace mpq::native
