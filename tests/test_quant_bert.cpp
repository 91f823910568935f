// The BERT / SST-2 task of the search (quant/task.h) on the committed checkpoint and the real SST-2 files:
// split provenance and disjointness, the evaluator against models::evaluate (an independent path through
// bert_train.h), a fake-quant evaluation, and the clear errors of bad requests (data folders without usable
// samples, unknown model names, configurations for another model or with unknown layers).
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "models/bert.h"
#include "models/bert_train.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "models/mobilenetv2.h"
#include "models/zoo.h"
#include "quant/config.h"
#include "quant/fake_quant.h"
#include "quant/task.h"
#include "tests/temp_dir.h"

using namespace mpq;
using namespace mpq::quant;

namespace {
const std::string kWeights = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/model.safetensors";
const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";

std::string temp_dir(const std::string& name) { return testing::fresh_temp_dir(name); }
}  // namespace

TEST_CASE("bert task: splits from train (calibration) and dev (search / test), evaluator matches models::evaluate") {
  auto model = models::load_model("bert", kWeights);
  TaskOptions o;
  o.calib = 16, o.search = 40, o.test = 48;
  const Task t = make_task(*model, kWeights, kSst2, o, 3);
  const auto train = data::read_sst2(kSst2 + "/train.tsv"), dev = data::read_sst2(kSst2 + "/dev.tsv");
  const int64_t n_train = int64_t(train.size());
  CHECK(t.ev->size() == n_train + int64_t(dev.size()));
  CHECK(t.metric_label == "accuracy");
  REQUIRE(t.splits.calib.size() == 16);
  REQUIRE(t.splits.search.size() == 40);
  REQUIRE(t.splits.test.size() == 48);
  for (int64_t i : t.splits.calib) CHECK(i < n_train);
  std::set<int64_t> seen(t.splits.search.begin(), t.splits.search.end());
  for (int64_t i : t.splits.search) CHECK(i >= n_train);
  for (int64_t i : t.splits.test) {
    CHECK(i >= n_train);
    CHECK(!seen.count(i));
  }
  CHECK(t.data_identity["dev"]["size"].get<int64_t>() == int64_t(std::filesystem::file_size(kSst2 + "/dev.tsv")));
  // default sizes: 64 train sentences, dev halves
  const Task d = make_task(*model, kWeights, kSst2, {}, 0);
  CHECK(d.splits.calib.size() == 64);
  CHECK(d.splits.search.size() == dev.size() / 2);
  CHECK(d.splits.test.size() == dev.size() - dev.size() / 2);

  // fp32 accuracy on the test split = models::evaluate on the same dev sentences
  std::vector<data::Sst2Example> rows;
  for (int64_t i : t.splits.test) rows.push_back(dev[size_t(i - n_train)]);
  auto* bert = dynamic_cast<models::Bert*>(model.get());
  REQUIRE(bert);
  const auto tok = data::BertTokenizer::from_file(models::bert_dir_of(kWeights) + "/vocab.txt");
  const models::EvalResult ref =
      models::evaluate(*bert, models::encode_sst2(tok, rows, int(bert->config().seq_len)), 7);
  const TaskResult got = t.ev->evaluate(*model, t.splits.test);
  CHECK(got.samples == 48);
  CHECK(got.metric == ref.accuracy);
  CHECK(got.loss == doctest::Approx(ref.loss).epsilon(1e-5));
  const Tensor z = t.ev->outputs(*model, t.splits.test);  // [48, 2]
  CHECK(z.size(0) == 48);
  CHECK(z.size(1) == 2);
  // per-sentence outcomes: the argmax of the outputs against the label, in split order
  REQUIRE(got.hits.size() == 48);
  int64_t right = 0;
  for (int64_t i = 0; i < 48; ++i) {
    const float* row = z.contiguous().data<float>() + 2 * i;  // [2]
    const bool hit = int(row[1] > row[0]) == rows[size_t(i)].label;
    CHECK(got.hits[size_t(i)] == (hit ? '1' : '0'));
    right += hit;
  }
  CHECK(double(right) / 48 == got.metric);
  const models::Batch b = t.ev->batch({t.splits.test[0], t.splits.test[1]});
  CHECK(b.labels.size() == 2);
  CHECK(b.labels[0] == dev[size_t(t.splits.test[0] - n_train)].label);

  // calibration + uniform int8 fake quant: every layer (18, incl. the two attention matmuls per block) calibrated,
  // accuracy within 5 points of fp32 on the 48 sentences
  const Calibration cal = calibrate(*model, *t.ev, t.splits.calib);
  std::vector<std::string> names;
  for (const auto& l : model->quant_layers()) names.push_back(l.name);
  CHECK(names.size() == 20);
  CHECK(cal.size() == names.size() - 2);  // the two embedding tables quantize no activation
  CHECK(cal.at("bert.encoder.layer.0.attention.self.qk").size() == 2);  // both operands of QK^T
  ScopedHook h(*model, std::make_shared<FakeQuantHook>(make_assignment(
                           model->quant_layers(), std::vector<Precision>(names.size(), Precision::int8), cal)));
  CHECK(std::abs(t.ev->evaluate(*model, t.splits.test).metric - got.metric) <= 0.05);
}

TEST_CASE("bad requests: data folders without usable samples, unknown model, config for another model") {
  auto bert = models::load_model("bert", kWeights);
  CHECK_THROWS_WITH_AS(make_task(*bert, kWeights, "/nonexistent/sst2", {}, 0), doctest::Contains("does not exist"),
                       Error);
  const std::string empty = temp_dir("mpq_test_task_empty");
  CHECK_THROWS_WITH_AS(make_task(*bert, kWeights, empty, {}, 0), doctest::Contains((empty + "/train.tsv").c_str()),
                       Error);
  std::ofstream(empty + "/train.tsv") << "1\ta fine film .\n0\ta dull one .\n";
  std::ofstream(empty + "/dev.tsv") << "\n\n";
  CHECK_THROWS_WITH_AS(make_task(*bert, kWeights, empty, {}, 0), doctest::Contains((empty + "/dev.tsv").c_str()),
                       Error);
  std::ofstream(empty + "/dev.tsv") << "1\tgood .\n";
  TaskOptions big;
  big.calib = 3;
  CHECK_THROWS_WITH_AS(make_task(*bert, kWeights, empty, big, 0),
                       doctest::Contains("--calib 3 exceeds its 2 sentences"), Error);
  // an image folder whose labels.txt lists nothing
  auto cnn = models::make_mobilenetv2(models::MobileNetLayout::tflite);
  const std::string img = temp_dir("mpq_test_task_images");
  CHECK_THROWS_WITH_AS(make_task(*cnn, "", img, {}, 0), doctest::Contains("has no labels.txt"), Error);
  std::ofstream(img + "/labels.txt") << "\n";
  CHECK_THROWS_WITH_AS(make_task(*cnn, "", img, {}, 0), doctest::Contains("is empty"), Error);
  // more samples asked for than the folder has
  CHECK_THROWS_WITH_AS(make_task(*cnn, "", std::string(MPQ_SHARED_DATA) + "/imagenet-val-1300", {16, 1280, 256}, 0),
                       doctest::Contains("exceed the 1300 samples"), Error);

  CHECK_THROWS_WITH_AS(models::load_model("vgg16", kWeights), doctest::Contains("unknown model 'vgg16'"), Error);

  // a BERT configuration: fine for bert; for mobilenetv2 refused by name; a BERT layer in a mobilenetv2 file too
  const auto bl = bert->quant_layers();
  QuantConfig cfg;
  cfg.model = "bert";
  for (const auto& l : bl) cfg.layers[l.name].precision = Precision::fp16;
  const nlohmann::json j = config_to_json(cfg, bl);
  CHECK(config_from_json(j, "b.json", "bert", bl).layers.size() == bl.size());
  const auto ml = cnn->quant_layers();
  CHECK_THROWS_WITH_AS(config_from_json(j, "b.json", "mobilenetv2", ml),
                       doctest::Contains("config 'b.json' is for model 'bert', not 'mobilenetv2'"), Error);
  nlohmann::json relabelled = j;
  relabelled["model"] = "mobilenetv2";
  CHECK_THROWS_WITH_AS(
      config_from_json(relabelled, "b.json", "mobilenetv2", ml),
      doctest::Contains("layer 'bert.embeddings.word_embeddings' is not a quantizable layer of mobilenetv2"), Error);
  nlohmann::json unknown = j;
  unknown["layers"][3]["name"] = "bert.encoder.layer.7.attention.self.qk";
  CHECK_THROWS_WITH_AS(config_from_json(unknown, "b.json", "bert", bl),
                       doctest::Contains("layer 'bert.encoder.layer.7.attention.self.qk' is not a quantizable layer"),
                       Error);
}
