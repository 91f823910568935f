// Weight-rounding records as the tool stores them (quant/rounding.h): the safetensors form round trips
// bit for bit and refuses damaged files naming file and record; a config with records writes them beside
// itself and loading attaches them (or names the layer that does not fit); the analysis cache recomputes a
// damaged entry instead of failing.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file_io.h"
#include "models/zoo.h"
#include "quant/config.h"
#include "quant/fake_quant.h"
#include "quant/gptq_model.h"
#include "quant/rounding.h"
#include "quant/task.h"
#include "tests/temp_dir.h"

using namespace mpq;
using namespace mpq::quant;
namespace fs = std::filesystem;

namespace {

const std::string kWeights = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/model.safetensors";
const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";

std::string fresh_dir(const std::string& name) { return testing::fresh_temp_dir(name); }

std::shared_ptr<const QuantizedWeight> record(int64_t O, int64_t K, int64_t G, int bits, int seed, bool bc) {
  auto w = std::make_shared<QuantizedWeight>();
  w->rows = O, w->cols = K, w->group = G, w->bits = bits;
  const int qmax = w->qmax();
  for (int64_t i = 0; i < O * K; ++i) w->q.push_back(int8_t((i * 7 + seed) % (2 * qmax + 1) - qmax));
  for (int64_t i = 0; i < O * (K / G); ++i) w->scale.push_back(0.01f + 0.001f * float((i + seed) % 13));
  if (bc)
    for (int64_t o = 0; o < O; ++o) w->bias_correction.push_back(0.1f * float(o - seed));
  w->validate("test");
  return w;
}

void same(const QuantizedWeight& a, const QuantizedWeight& b) {
  CHECK(a.rows == b.rows);
  CHECK(a.cols == b.cols);
  CHECK(a.group == b.group);
  CHECK(a.bits == b.bits);
  CHECK(a.q == b.q);
  CHECK(a.scale == b.scale);
  CHECK(a.bias_correction == b.bias_correction);
}

}  // namespace

TEST_CASE("rounding records: safetensors round trip, damaged files named") {
  RoundedWeights r;
  r.int4["a.fc"] = record(5, 64, 32, 4, 1, true);
  r.int4["b.conv"] = record(3, 27, 27, 4, 2, false);  // per channel (group = K)
  r.int8["a.fc"] = record(5, 64, 64, 8, 3, true);
  const std::vector<uint8_t> bytes = serialize_rounded(r, {{"inputs", "xyz"}});
  std::map<std::string, std::string> meta;
  const RoundedWeights back = parse_rounded(bytes, "r.safetensors", &meta);
  CHECK(meta.at("inputs") == "xyz");
  REQUIRE(back.int4.size() == 2);
  REQUIRE(back.int8.size() == 1);
  same(*back.int4.at("a.fc"), *r.int4.at("a.fc"));
  same(*back.int4.at("b.conv"), *r.int4.at("b.conv"));
  same(*back.int8.at("a.fc"), *r.int8.at("a.fc"));

  // truncated: the container refuses it, naming the file
  std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + long(bytes.size() - 10));
  CHECK_THROWS_WITH_AS(parse_rounded(cut, "r.safetensors"), doctest::Contains("r.safetensors"), Error);
  // a code outside the int4 range: the record's validation names the record
  auto bad = std::make_shared<QuantizedWeight>(*r.int4.at("a.fc"));
  bad->q[3] = 9;
  RoundedWeights rb;
  rb.int4["a.fc"] = bad;
  CHECK_THROWS_WITH_AS(parse_rounded(serialize_rounded(rb, {}), "r.safetensors"), doctest::Contains("int4/a.fc"),
                       Error);
  // a group that does not divide the columns
  std::string text(bytes.begin(), bytes.end());
  const auto at = text.find("\"int4/a.fc\":\"32\"");
  REQUIRE(at != std::string::npos);
  text.replace(at, 16, "\"int4/a.fc\":\"24\"");
  CHECK_THROWS_WITH_AS(parse_rounded(std::vector<uint8_t>(text.begin(), text.end()), "r.safetensors"),
                       doctest::Contains("group '24'"), Error);
}

TEST_CASE("rounding records: a config carries them beside itself, a record that does not fit is named") {
  auto m = models::load_model("bert", kWeights);
  const std::vector<models::QuantLayer> layers = m->quant_layers();
  Calibration cal;
  for (const auto& l : layers)
    for (int op = 0; op < models::layer_operands(l.kind); ++op) cal[l.name][op].params = {0.02f, 128, -2.56f, 2.54f};
  std::vector<Precision> ps(layers.size(), Precision::fp16);
  RoundedWeights r;
  std::string l4, l8;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (layers[i].kind != models::LayerKind::linear) continue;
    const Tensor* w = nullptr;
    for (auto& [n, t] : m->named_tensors())
      if (n == layers[i].weight) w = t;
    REQUIRE(w);
    const int64_t O = w->size(0), K = w->numel() / O;
    if (l4.empty()) {
      l4 = layers[i].name, ps[i] = Precision::int4;
      r.int4[l4] = record(O, K, 32, 4, 5, true);
    } else if (l8.empty()) {
      l8 = layers[i].name, ps[i] = Precision::int8;
      r.int8[l8] = record(O, K, K, 8, 6, true);
    }
  }
  REQUIRE(!l8.empty());
  QuantConfig cfg;
  cfg.model = "bert";
  cfg.layers = make_assignment(layers, ps, cal, 0, &r);
  CHECK(cfg.layers.at(l4).weight_group == 32);  // the record's group
  const std::string dir = fresh_dir("mpq_test_rounding_config");
  save_config(dir + "/config.json", cfg, layers);
  CHECK(fs::exists(dir + "/config.rounded.safetensors"));
  const QuantConfig back = load_config(dir + "/config.json", "bert", layers);
  REQUIRE(back.layers.at(l4).weights);
  REQUIRE(back.layers.at(l8).weights);
  same(*back.layers.at(l4).weights, *r.int4.at(l4));
  same(*back.layers.at(l8).weights, *r.int8.at(l8));
  for (const auto& [name, q] : back.layers)
    if (name != l4 && name != l8) CHECK(!q.weights);

  // the config says int8 where the file holds an int4 record: refused, naming the layer
  std::ifstream in(dir + "/config.json");
  nlohmann::json j = nlohmann::json::parse(in);
  for (auto& e : j["layers"])
    if (e["name"] == l4) e["precision"] = "int8", e["weight_group"] = 0;
  write_file_atomic(dir + "/config.json", j.dump());
  CHECK_THROWS_WITH_AS(load_config(dir + "/config.json", "bert", layers), doctest::Contains(l4.c_str()), Error);
  // another linear moved to int4 has no record in the file: refused (it would silently round to nearest), naming it
  std::string other;
  for (auto& e : j["layers"])
    if (e["name"] == l4) e["precision"] = "int4", e["weight_group"] = 32;
  for (const auto& l : layers)
    if (l.kind == models::LayerKind::linear && l.name != l4 && l.name != l8 && other.empty()) other = l.name;
  REQUIRE(!other.empty());
  nlohmann::json inputs;  // l4's input statistics: `other` was fp16 and an int4 layer needs them
  for (auto& e : j["layers"])
    if (e["name"] == l4) inputs = e.at("inputs");
  for (auto& e : j["layers"])
    if (e["name"] == other) e["precision"] = "int4", e["inputs"] = inputs;
  write_file_atomic(dir + "/config.json", j.dump());
  CHECK_THROWS_WITH_AS(load_config(dir + "/config.json", "bert", layers),
                       doctest::Contains(fmt::format("layer '{}' is int4", other).c_str()), Error);
  // ... while an int4 embedding table (no input statistics: nearest by design) is accepted without one
  for (auto& e : j["layers"])
    if (e["name"] == other) e["precision"] = "fp16";
  for (auto& e : j["layers"])
    if (e["name"] == std::string(models::kWordEmbeddings)) e["precision"] = "int4";
  write_file_atomic(dir + "/config.json", j.dump());
  CHECK(load_config(dir + "/config.json", "bert", layers).layers.at(models::kWordEmbeddings).precision ==
        Precision::int4);
  // the records file may not point outside the config's folder
  j["rounded_weights"]["file"] = "../elsewhere.safetensors";
  write_file_atomic(dir + "/config.json", j.dump());
  CHECK_THROWS_WITH_AS(load_config(dir + "/config.json", "bert", layers), doctest::Contains("elsewhere"), Error);
}

TEST_CASE("rounding records: the cache reuses an entry and recomputes a damaged one") {
  auto m = models::load_model("bert", kWeights);
  TaskOptions to;
  to.calib = 8, to.search = 8, to.test = 8, to.rounding = 8;
  Task task = make_task(*m, kWeights, kSst2, to, 0);
  const Calibration cal = calibrate(*m, *task.ev, task.splits.calib);
  const auto batches = task_batches(*task.ev, task.splits.rounding, 8);
  RoundingRequest rr;
  rr.int8 = false;
  const std::string dir = fresh_dir("mpq_test_rounding_cache");
  const AnalysisCache cache(dir);
  const nlohmann::json inputs = {{"test", "rounding cache"}};
  std::vector<std::string> log;
  auto logger = [&](const std::string& s) { log.push_back(s); };
  bool hit = true;
  const RoundedWeights first = cached_round_weights(cache, inputs, *m, batches, cal, rr, &hit, logger);
  CHECK(!hit);
  REQUIRE(!first.int4.empty());
  CHECK(first.int8.empty());
  const RoundedWeights second = cached_round_weights(cache, inputs, *m, batches, cal, rr, &hit, logger);
  CHECK(hit);
  for (const auto& [name, qw] : first.int4) same(*second.int4.at(name), *qw);
  // damage the entry: recomputed (a log line says so), equal to the first computation
  const std::string entry = dir + "/rounding-" + analysis_key(inputs) + ".safetensors";
  REQUIRE(fs::exists(entry));
  fs::resize_file(entry, fs::file_size(entry) / 2);
  log.clear();
  const RoundedWeights third = cached_round_weights(cache, inputs, *m, batches, cal, rr, &hit, logger);
  CHECK(!hit);
  REQUIRE(!log.empty());
  CHECK(log.front().find("recomputing") != std::string::npos);
  for (const auto& [name, qw] : first.int4) same(*third.int4.at(name), *qw);
}
