// BERT evaluation and inference, called by `mpq eval` / `mpq infer` for --model bert.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <numeric>
#include <optional>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "models/bert_train.h"
#include "models/io/npy.h"
#include "models/native/native.h"
#include "quant/task.h"
#include "tools/commands.h"
#include "tools/native_run.h"

namespace mpq::cli {

int eval_bert(const Args& a, deploy::LoadedModel* file) {
  a.check_known({"model", "weights", "model-file", "data", "split", "limit", "json", "batch", "threads", "precision",
                 "config", "int4-group", "calib", "calib-data", "rounding", "rounding-calib"});
  const std::string data_dir = a.require("data");
  const std::string weights = file ? file->info.path : a.require("weights");
  const std::string split = a.get("split", "dev");
  check(split == "dev" || split == "test" || split == "train", "eval: --split must be dev, test or train, got '{}'",
        split);
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_ptr<models::Bert> model;
  std::optional<data::BertTokenizer> tok;
  int64_t seq_len = 0;
  if (file) {  // the model file carries its vocabulary and sequence length
    check(!file->info.vocab.empty(),
          "model file '{}' stores no vocabulary (metadata field 'vocab'): export it with vocab.txt beside the weights",
          file->info.path);
    tok.emplace(data::Vocab::parse(file->info.vocab, "model file '" + file->info.path + "' metadata 'vocab'"));
    seq_len = file->info.bert->seq_len;
  } else {
    model = models::load_bert_model(weights);
    tok.emplace(data::BertTokenizer::from_file(models::bert_dir_of(weights) + "/vocab.txt"));
    seq_len = model->config().seq_len;
  }
  auto ex = data::read_sst2(data_dir + "/" + split + ".tsv");
  const int64_t limit = a.get_int("limit", 0, 0, INT32_MAX);  // 0: all
  if (limit > 0 && size_t(limit) < ex.size()) ex.resize(size_t(limit));
  // --precision / --config: the native per-layer-precision executor (native::CompiledModel, compiled without
  // autotuning like the CNN eval: the same kernels, hence the same figure, every run); --model-file: the same
  // engine on the file's weights; otherwise the fp32 autograd forward. All through the search's sentence
  // evaluator.
  quant::SentenceTaskEvaluator ev(models::encode_sst2(*tok, ex, int(seq_len)), a.get_int("batch", 64, 1, 65536));
  std::string label = file ? "model file, " + file->info.precision_summary() : "fp32";
  std::unique_ptr<native::CompiledModel> nm;
  if (!file && (a.has("precision") || a.has("config"))) {
    // uniform int8 / int4 calibrate on the first --calib SST-2 *train* sentences, never the evaluated split
    const Assignment qa = requested_assignment(a, *model, models::Batch{}, label);
    nm = std::make_unique<native::CompiledModel>(*model,
                                                 native::compile(*model, qa, native::CompileOptions::reproducible()));
  }
  models::Model& runner = file ? static_cast<models::Model&>(*file->model)
                          : nm ? static_cast<models::Model&>(*nm)
                               : static_cast<models::Model&>(*model);
  std::vector<int64_t> all(size_t(ev.size()));
  std::iota(all.begin(), all.end(), int64_t(0));
  const auto tf = std::chrono::steady_clock::now();
  const quant::TaskResult r = ev.evaluate(runner, all);
  const double forward_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - tf).count();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (a.flag("json")) {
    nlohmann::json j{{"model", "bert"},
                     {"weights", weights},
                     {"split", split},
                     {"samples", r.samples},
                     {"accuracy_pct", 100 * r.metric},
                     {"nonfinite_samples", r.nonfinite},
                     {"loss", r.loss},
                     {"seconds", secs},
                     {"forward_seconds", forward_secs},
                     {"precision", label},
                     {"engine", nm || file ? "native" : "autograd"}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("bert ({}) on SST-2 {} ({} samples): accuracy {:.2f}%  loss {:.4f}  ({:.2f}s)\n", label, split,
               r.samples, 100.0 * r.metric, r.loss, secs);
  }
  return 0;
}

}  // namespace mpq::cli
