// The whole search pipeline (quant/pipeline.h) run to success on the smallest real model: the committed
// 2-layer BERT on real SST-2 sentences, with small splits and sweeps so that it takes seconds. Checks the
// chosen configuration against the probes that justified it, the written files against the outcome, and
// that a second run answers from the analysis cache with the same outcome and no fresh evaluation, and that a
// third one over damaged cache entries reports each, recomputes it to the same values and rewrites it.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/zoo.h"
#include "quant/cache.h"
#include "quant/config.h"
#include "quant/pipeline.h"
#include "quant/pipeline_report.h"

using namespace mpq;
using namespace mpq::quant;

namespace {
const std::string kWeights = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2/model.safetensors";
const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";

// Per process: test runs from two checkouts at once must not share (and damage) each other's cache.
std::string fresh_dir(const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(d);
  return d.string();
}

struct Recorder : SearchObserver {
  std::vector<std::string> phases_ended;
  int64_t progress_calls = 0;
  void progress(const std::string&, int64_t, int64_t, const std::string&) override { ++progress_calls; }
  void phase_end(const std::string& phase) override { phases_ended.push_back(phase); }
};

// Damages one entry of each kind in the analysis cache `dir` in a different way; returns file -> how.
std::map<std::string, std::string> damage_cache(const std::string& dir, size_t layers) {
  std::map<std::string, std::string> out;
  bool memo_done = false;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().string(), name = e.path().filename().string();
    if (e.path().extension() != ".json") continue;  // the rounding records (tests/test_rounding.cpp damages those)
    std::ifstream in(f);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    nlohmann::json j = nlohmann::json::parse(text);
    nlohmann::json& p = j["payload"];
    std::string how;
    if (name.starts_with("traces-")) {
      how = "truncated";
      std::ofstream(f, std::ios::trunc) << text.substr(0, text.size() / 2);
      out[f] = how;
      continue;
    }
    if (name.starts_with("calibration-")) {
      how = "wrong type";
      p.begin().value()["0"]["scale"] = "big";
    } else if (name.starts_with("dependencies-") && p["precision"] == "int8") {
      how = "one layer short of the model";
      REQUIRE(p["layers"].size() == layers);
      p["layers"].erase(p["layers"].size() - 1);
      p["single"].erase(p["single"].size() - 1);
    } else if (name.starts_with("latency-")) {
      how = "no layer times";
      p["layers"] = nlohmann::json::object();
    } else if (name.starts_with("metric_memo-") && !memo_done) {
      how = "outcomes of fewer samples than the split";
      REQUIRE(!p["hits"].empty());
      std::string& hits = p["hits"].begin().value().get_ref<std::string&>();
      hits.pop_back();
      memo_done = true;
    } else if (name.starts_with("metric_memo-")) {
      how = "not JSON";
      std::ofstream(f, std::ios::trunc) << "{\"kind\": \"metric_memo\", \"payload\": {\"configs\": [1, ";
      out[f] = how;
      continue;
    } else {
      continue;
    }
    std::ofstream(f, std::ios::trunc) << j.dump(1);
    out[f] = how;
  }
  return out;
}

SearchRequest tiny_request(const std::string& cache) {
  SearchRequest r;
  r.weights = kWeights;
  r.data = kSst2;
  r.range.max_drop = 1.0;
  r.splits.calib = 8, r.splits.search = 64, r.splits.test = 64;
  r.draws = 2;
  r.dep_samples = 4;
  r.pareto_points = 3;
  r.latency_runs = 2;
  r.orderings = {OrderKind::augmented, OrderKind::hessian, OrderKind::random};
  r.cache_dir = cache;
  return r;
}
}  // namespace

TEST_CASE(
    "pipeline: the whole search on the committed BERT, its outputs, a cached rerun and a rerun over damaged cache "
    "entries") {
  const std::string dir = fresh_dir("mpq-test-pipeline");
  const SearchRequest req = tiny_request(dir + "/cache");
  auto model = models::load_model("bert", kWeights);
  Recorder rec;
  const SearchOutcome o = run_search(*model, req, rec);

  const size_t n = o.layers.size();
  REQUIRE(n == model->quant_layers().size());
  REQUIRE(o.runs.size() == 3);
  CHECK(o.calib_samples == 8);
  CHECK(o.search_samples == 64);
  CHECK(o.test_samples == 64);
  for (const char* ph :
       {"latency", "calibration", "weight rounding", "hessian", "dependencies", "bisection", "pareto", "test"})
    CHECK(std::find(rec.phases_ended.begin(), rec.phases_ended.end(), ph) != rec.phases_ended.end());
  CHECK(rec.progress_calls > 0);

  // the chosen configuration is the first ordering's bisection result, and every layer of it is assigned
  const SearchResult& b = o.runs[0].bisection;
  REQUIRE(o.chosen_precisions == b.precisions);
  REQUIRE(o.chosen.size() == n);
  int lowered8 = 0, lowered4 = 0;
  for (size_t i = 0; i < n; ++i) {
    const Precision p = o.chosen.at(o.layers[i].name).precision;
    CHECK(p == b.precisions[i]);
    lowered8 += p == Precision::int8 || p == Precision::int4;
    lowered4 += p == Precision::int4;
    if (precision_is_integer(p))
      CHECK(int(o.chosen.at(o.layers[i].name).act.size()) == models::layer_operands(o.layers[i].kind));
    // gptq rounding (the default): every int4 layer with a weight, except embedding tables, carries its record,
    // and it is the outcome's record; int8 layers round to nearest (RoundingRequest::int8 is off)
    const auto& lq = o.chosen.at(o.layers[i].name);
    const bool rounded =
        p == Precision::int4 && !o.layers[i].weight.empty() && o.layers[i].kind != models::LayerKind::embedding;
    CHECK(bool(lq.weights) == rounded);
    if (rounded) CHECK(lq.weights == o.rounded.find(o.layers[i].name, p));
  }
  CHECK(o.rounded.int8.empty());
  CHECK(!o.rounded.int4.empty());
  CHECK(lowered8 == b.k8);
  CHECK(lowered4 == b.k4);
  // the search-split metric the bisection accepted is inside the range against the search-split reference
  CHECK(req.range.ok(b.final_metric, b.reference));
  CHECK(b.final_ok);
  // test split: the reference and the verdict agree with the numbers
  CHECK(o.baseline_test == doctest::Approx(o.test.at("fp32")));
  CHECK(o.metric_test == doctest::Approx(o.test.at("chosen")));
  CHECK(o.within_range == req.range.ok(o.metric_test, o.baseline_test));
  for (const auto& [k, v] : o.test) {
    CHECK(v >= 0);
    CHECK(v <= 100);
  }
  // areas: augmented vs hessian, augmented vs random, hessian vs random; in the latency space, then bytes
  REQUIRE(o.areas.size() == 6);
  CHECK(o.areas[0].a == "augmented");
  CHECK(o.areas[0].b == "hessian");
  CHECK(o.areas[2].a == "hessian");
  CHECK(o.areas[2].b == "random");
  for (size_t i = 0; i < 6; ++i) CHECK(o.areas[i].area.space == (i < 3 ? Space::latency : Space::bytes));
  // the chosen configuration's stored bytes, by the table
  CHECK(b.weight_bytes == doctest::Approx(o.bytes(o.chosen_precisions)));
  REQUIRE(o.end_to_end_available);
  CHECK(*o.end_to_end.chosen > 0);

  // files
  write_search_outputs(o, dir + "/config.json", dir + "/report");
  const QuantConfig cfg = load_config(dir + "/config.json", "bert", model->quant_layers());
  for (const auto& [name, q] : o.chosen) {
    REQUIRE(cfg.layers.count(name));
    CHECK(cfg.layers.at(name).precision == q.precision);
    // the records travel with the config (config.rounded.safetensors), bit for bit
    REQUIRE(bool(cfg.layers.at(name).weights) == bool(q.weights));
    if (q.weights) {
      CHECK(cfg.layers.at(name).weights->q == q.weights->q);
      CHECK(cfg.layers.at(name).weights->scale == q.weights->scale);
      CHECK(cfg.layers.at(name).weights->bias_correction == q.weights->bias_correction);
    }
  }
  for (const char* f :
       {"report.json", "report.html", "pareto.svg", "pareto_zoom.svg", "pareto.csv", "probes.csv", "latency.json"})
    CHECK(std::filesystem::file_size(dir + "/report/" + f) > 0);
  std::ifstream rj(dir + "/report/report.json");
  const nlohmann::json s = nlohmann::json::parse(rj);
  CHECK(s["k8"].get<int>() == b.k8);
  CHECK(s["k4"].get<int>() == b.k4);
  CHECK(s["metric"].get<double>() == doctest::Approx(o.metric_test));
  CHECK(s["within_range"].get<bool>() == o.within_range);
  CHECK(s["searches"].size() == 3);
  CHECK(s["pareto"]["areas"].size() == 6);
  CHECK(s["bytes_vs_int8"].get<double>() == doctest::Approx(b.weight_bytes / s["int8_weight_bytes"].get<double>()));
  CHECK(s["objective"] == "latency");
  std::ifstream csv(dir + "/report/pareto.csv");
  int64_t lines = 0;
  for (std::string line; std::getline(csv, line);) ++lines;
  CHECK(lines == int64_t(o.pareto.points.size()) + 1);  // header + one row per point

  // a second run answers every analysis and every probe from the cache, with the same outcome
  Recorder rec2;
  const SearchOutcome again = run_search(*model, req, rec2);
  CHECK(again.evaluations_fresh == 0);
  CHECK(again.chosen_precisions == o.chosen_precisions);
  CHECK(again.test == o.test);
  CHECK(again.traces.trace == o.traces.trace);
  REQUIRE(again.rounded.int4.size() == o.rounded.int4.size());
  for (const auto& [name, qw] : o.rounded.int4) CHECK(again.rounded.int4.at(name)->q == qw->q);

  for (const std::string& w : again.warnings) CHECK(w.find("analysis cache") == std::string::npos);

  // a third run over damaged entries: each is reported naming its file, recomputed and rewritten; the search
  // does not stop
  const std::map<std::string, std::string> damaged = damage_cache(req.cache_dir, model->quant_layers().size());
  REQUIRE(damaged.size() == 6);
  Recorder rec3;
  SearchOutcome third;
  REQUIRE_NOTHROW(third = run_search(*model, req, rec3));
  for (const auto& [file, how] : damaged) {
    CAPTURE(how);
    CHECK(std::count_if(third.warnings.begin(), third.warnings.end(), [&](const std::string& w) {
            return w.find("analysis cache: entry '" + file + "' is damaged") != std::string::npos;
          }) == 1);
    const nlohmann::json rewritten = nlohmann::json::parse(std::ifstream(file));  // whole again
    CHECK(rewritten.contains("payload"));
  }
  // recomputed to the values of the first run (the latency table is measured afresh: its times differ)
  CHECK(third.traces.trace == o.traces.trace);
  CHECK(to_json(third.calibration) == to_json(o.calibration));
  for (Precision p : {Precision::int8, Precision::int4}) {
    CHECK(third.dependencies.at(p).single == o.dependencies.at(p).single);
    CHECK(third.dependencies.at(p).pairs.size() == o.dependencies.at(p).pairs.size());
  }
  CHECK(third.test.at("fp32") == o.test.at("fp32"));
  CHECK(third.evaluations_fresh > 0);  // the damaged memo's configurations were evaluated again
  // round-to-nearest is a different analysis: no records, other memo keys (fresh probes)
  SearchRequest near = req;
  near.rounding = WeightRounding::nearest;
  Recorder rec4;
  const SearchOutcome n3 = run_search(*model, near, rec4);
  CHECK(n3.rounded.empty());
  CHECK(n3.evaluations_fresh > 0);
  for (const auto& [name, q] : n3.chosen) CHECK(!q.weights);
  // the bytes objective without and with the fill, from the same cache: the fill starts from the bisection's
  // configuration and only lowers layers further, each one verified inside the range (on this small model the
  // bisection already reaches every layer at int4, so the fill's own choices are tested in test_quant_search)
  SearchRequest bytes = req;
  bytes.objective = Objective::bytes;
  Recorder rec5, rec6;
  const SearchOutcome plain = run_search(*model, bytes, rec5);
  bytes.fill = true;
  const SearchOutcome filled = run_search(*model, bytes, rec6);
  write_search_outputs(filled, dir + "/config.json", dir + "/report");
  const nlohmann::json fj = nlohmann::json::parse(std::ifstream(dir + "/report/report.json"));
  CHECK(fj["fill"].get<bool>());
  CHECK(fj["searches"][0]["filled"].size() == filled.runs[0].bisection.filled.size());
  const SearchResult &pb = plain.runs[0].bisection, &fb = filled.runs[0].bisection;
  CHECK(pb.filled.empty());
  CHECK(fb.final_ok);
  CHECK(fb.weight_bytes <= pb.weight_bytes);
  CHECK(fb.k4 == pb.k4 + int(std::count_if(fb.filled.begin(), fb.filled.end(),
                                           [&](int i) { return fb.precisions[size_t(i)] == Precision::int4; })));
  for (size_t i = 0; i < n; ++i) {
    const bool was_filled = std::find(fb.filled.begin(), fb.filled.end(), int(i)) != fb.filled.end();
    CHECK((fb.precisions[i] == pb.precisions[i]) == !was_filled);
  }
  for (const Probe& p : fb.probes)
    if (p.stage == 5 || p.stage == 6) CHECK(p.ok == req.range.ok(p.metric, fb.reference));
  std::filesystem::remove_all(dir);
}

TEST_CASE("pipeline: a request outside its domain is refused before any work, naming the value") {
  auto model = models::load_model("bert", kWeights);
  Recorder rec;
  SearchRequest r = tiny_request("");
  r.range = {};
  CHECK_THROWS_WITH_AS(run_search(*model, r, rec), doctest::Contains("--max-drop"), Error);
  r = tiny_request("");
  r.int4_group = 48;
  CHECK_THROWS_WITH_AS(run_search(*model, r, rec), doctest::Contains("int4 group 48"), Error);
  r = tiny_request("");
  r.latency_tolerance = 1.5;
  CHECK_THROWS_WITH_AS(run_search(*model, r, rec), doctest::Contains("latency tolerance 1.5"), Error);
  r = tiny_request("");
  r.start = Precision::int8;
  CHECK_THROWS_WITH_AS(run_search(*model, r, rec), doctest::Contains("start 'int8'"), Error);
  CHECK(rec.phases_ended.empty());
}
