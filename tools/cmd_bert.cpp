// BERT evaluation and inference, called by `mpq eval` / `mpq infer` for --model bert.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <numeric>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "models/bert_train.h"
#include "models/io/npy.h"
#include "models/native/native.h"
#include "quant/task.h"
#include "tools/commands.h"
#include "tools/native_run.h"

namespace mpq::cli {

int eval_bert(const Args& a) {
  a.check_known({"model", "weights", "data", "split", "limit", "json", "batch", "threads", "precision", "config",
                 "int4-group", "calib", "calib-data", "rounding", "rounding-calib"});
  const std::string weights = a.require("weights"), data_dir = a.require("data");
  const std::string split = a.get("split", "dev");
  check(split == "dev" || split == "test" || split == "train", "eval: --split must be dev, test or train, got '{}'",
        split);
  const auto t0 = std::chrono::steady_clock::now();
  auto model = models::load_bert_model(weights);
  const auto tok = data::BertTokenizer::from_file(models::bert_dir_of(weights) + "/vocab.txt");
  auto ex = data::read_sst2(data_dir + "/" + split + ".tsv");
  const int64_t limit = a.get_int("limit", 0, 0, INT32_MAX);  // 0: all
  if (limit > 0 && size_t(limit) < ex.size()) ex.resize(size_t(limit));
  // --precision / --config: the native per-layer-precision executor (native::CompiledModel, compiled without
  // autotuning like the CNN eval: the same kernels, hence the same figure, every run); otherwise the fp32
  // autograd forward. Both through the search's sentence evaluator.
  quant::SentenceTaskEvaluator ev(models::encode_sst2(tok, ex, int(model->config().seq_len)),
                                  a.get_int("batch", 64, 1, 65536));
  std::string label = "fp32";
  std::unique_ptr<native::CompiledModel> nm;
  if (a.has("precision") || a.has("config")) {
    // uniform int8 / int4 calibrate on the first --calib SST-2 *train* sentences, never the evaluated split
    const Assignment qa = requested_assignment(a, *model, models::Batch{}, label);
    nm = std::make_unique<native::CompiledModel>(*model,
                                                 native::compile(*model, qa, native::CompileOptions::reproducible()));
  }
  std::vector<int64_t> all(size_t(ev.size()));
  std::iota(all.begin(), all.end(), int64_t(0));
  const auto tf = std::chrono::steady_clock::now();
  const quant::TaskResult r = nm ? ev.evaluate(*nm, all) : ev.evaluate(*model, all);
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
                     {"engine", nm ? "native" : "autograd"}};
    fmt::print("{}\n", j.dump());
  } else {
    fmt::print("bert ({}) on SST-2 {} ({} samples): accuracy {:.2f}%  loss {:.4f}  ({:.2f}s)\n", label, split,
               r.samples, 100.0 * r.metric, r.loss, secs);
  }
  return 0;
}

int infer_bert(const Args& a) {
  a.check_known({"model", "weights", "input", "output", "threads"});
  const std::string weights = a.require("weights"), in = a.require("input"), out = a.require("output");
  check_output_file(out);  // before the work, so a bad --output fails at once
  auto model = models::load_bert_model(weights);
  const Tensor ids = io::read_npy(in);  // [B, L] i32 (i64 converted by the reader)
  if (!(ids.dtype() == DType::i32 && ids.dim() == 2))
    fail("infer: '{}' must hold int32/int64 ids [batch, seq], got {} {}", in, dtype_name(ids.dtype()),
         shape_str(ids.shape()));
  models::Batch b;
  b.seq_len = ids.size(1);
  const Tensor c = ids.contiguous();
  const int32_t* p = c.data<int32_t>();  // [B * L]
  b.ids.assign(p, p + c.numel());
  for (int32_t id : b.ids) b.mask.push_back(id != 0 ? 1 : 0);  // 0 = [PAD]
  autograd::NoGradGuard ng;
  const Tensor logits = model->forward(b, false);  // [B, C]
  io::write_npy(out, logits);
  fmt::print(stderr, "wrote logits {} to {}\n", shape_str(logits.shape()), out);
  return 0;
}

}  // namespace mpq::cli
