// The analysis cache (quant/cache.h) with damaged entries: each is reported naming the file, recomputed
// and overwritten; what the cache cannot work with (an entry that is a FIFO, an unwritable folder) stays an
// error.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.h"
#include "quant/cache.h"

using namespace mpq;
using namespace mpq::quant;
using nlohmann::json;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

struct Fixture {
  std::string dir;
  json inputs;
  HutchinsonResult fresh;
  int computed = 0;

  explicit Fixture(const std::string& name) {
    const auto tmp = std::filesystem::temp_directory_path();
    dir = (tmp / (name + "_" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
    const std::string wfile = dir + "_w.bin";
    std::ofstream(wfile) << "weights";
    inputs = analysis_inputs("mobilenetv2", weights_identity(wfile), {1, 2, 3}, {{"draws", 8}});
    fresh.trace = {1.0 / 3, 2e-9, 7.5};
    fresh.std_error = {0.1, 0.2, 0.3};
    fresh.draws = 8;
    fresh.converged = true;
  }
  ~Fixture() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
    std::filesystem::remove(dir + "_w.bin", ec);
  }
  HutchinsonResult get(const AnalysisCache& cache, bool* hit) {
    return cache.cached<HutchinsonResult>(
        "traces", inputs,
        [&] {
          ++computed;
          return fresh;
        },
        [](const HutchinsonResult& v) { return to_json(v); }, hutchinson_from_json, hit);
  }
};

}  // namespace

TEST_CASE("analysis cache: a damaged entry is reported, recomputed, equals the fresh value and is overwritten") {
  Fixture fx("mpq_test_cache_damaged");
  std::vector<std::string> warnings;
  const AnalysisCache cache(fx.dir, [&](const std::string& w) { warnings.push_back(w); });
  bool hit = true;
  CHECK(fx.get(cache, &hit).trace == fx.fresh.trace);
  CHECK(!hit);
  const std::string path = cache.path_for("traces", analysis_key(fx.inputs));
  const std::string good = slurp(path);
  REQUIRE(!good.empty());
  CHECK(fx.get(cache, &hit).trace == fx.fresh.trace);  // a plain hit
  CHECK(hit);
  CHECK(fx.computed == 1);
  CHECK(warnings.empty());

  json entry = json::parse(good);
  auto with_payload = [&](const char* field, const json& v) {
    json e = entry;
    e["payload"][field] = v;
    return e.dump(1);
  };
  const std::pair<const char*, std::string> damage[] = {
      {"bad JSON", "{\"kind\": \"traces\", \"inputs\": nul"},
      {"truncated", good.substr(0, good.size() / 2)},
      {"empty", ""},
      {"not an object", "[1, 2, 3]"},
      {"no payload", json{{"kind", "traces"}, {"inputs", fx.inputs}}.dump()},
      {"wrong type", with_payload("trace", "0.333")},
      {"wrong element type", with_payload("std_error", json::array({"a", "b", "c"}))},
      {"out of range", with_payload("draws", 1e20)},
      {"size mismatch", with_payload("std_error", json::array({0.1, 0.2}))},
      {"inputs of another key",
       [&] {
         json e = entry;
         e["inputs"]["settings"]["draws"] = 9;
         return e.dump(1);
       }()},
  };
  for (const auto& [what, text] : damage) {
    CAPTURE(std::string(what));
    std::ofstream(path, std::ios::trunc) << text;
    fx.computed = 0;
    warnings.clear();
    HutchinsonResult got;
    CHECK_NOTHROW(got = fx.get(cache, &hit));
    CHECK(!hit);
    CHECK(fx.computed == 1);
    CHECK(got.trace == fx.fresh.trace);
    CHECK(got.std_error == fx.fresh.std_error);
    CHECK(got.draws == fx.fresh.draws);
    REQUIRE(warnings.size() == 1);  // reported once, naming the file
    CHECK(warnings[0].find("'" + path + "'") != std::string::npos);
    CHECK(warnings[0].find("recomputing") != std::string::npos);
    // overwritten with the fresh value: the next call is a hit again
    CHECK(json::parse(slurp(path)) == entry);
    fx.computed = 0;
    CHECK(fx.get(cache, &hit).trace == fx.fresh.trace);
    CHECK(hit);
    CHECK(fx.computed == 0);
    CHECK(warnings.size() == 1);
  }

  // use_stored (the metric memo's path): a payload its user refuses is reported, and the entry is left for
  // the next store to overwrite
  warnings.clear();
  CHECK(!cache.use_stored("traces", fx.inputs, [](const json&) { mpq::fail("not the size this model needs"); }));
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].find("not the size this model needs") != std::string::npos);
  CHECK(cache.use_stored("traces", fx.inputs, [](const json& j) { CHECK(j.contains("trace")); }));
}

TEST_CASE("analysis cache: what the cache cannot work with stays an error, naming it") {
  Fixture fx("mpq_test_cache_errors");
  std::vector<std::string> warnings;
  const AnalysisCache cache(fx.dir, [&](const std::string& w) { warnings.push_back(w); });
  bool hit = false;
  fx.get(cache, &hit);
  const std::string path = cache.path_for("traces", analysis_key(fx.inputs));
  // an entry that is a FIFO: reading would hang, and store could not replace it
  std::filesystem::remove(path);
  REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
  CHECK_THROWS_WITH_AS(fx.get(cache, &hit), doctest::Contains(("'" + path + "' is a FIFO").c_str()), Error);
  std::filesystem::remove(path);
  // an entry that is a folder
  std::filesystem::create_directory(path);
  CHECK_THROWS_WITH_AS(fx.get(cache, &hit), doctest::Contains(("'" + path + "' is a directory").c_str()), Error);
  std::filesystem::remove(path);
  CHECK(warnings.empty());
  // a cache folder that cannot exist (its parent is a file): an error naming it, not a warning
  const std::string file = fx.dir + "/plain_file";
  std::ofstream(file) << "x";
  const AnalysisCache bad(file + "/cache");
  CHECK_THROWS_WITH_AS(fx.get(bad, &hit), doctest::Contains((file + "/cache").c_str()), Error);
}
