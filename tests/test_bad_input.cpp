// Bad input to every loader (issue 13 item 3): each case must end in an mpq::Error naming the file and the
// field / value, promptly and before any large allocation. Built on the real files (ResNet50 TF.js, the
// MobileNetV2 TFLite, the committed BERT, an ImageNet JPEG), altered the way a damaged or hostile copy would be.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/bert.h"
#include "models/data/image.h"
#include "models/data/imagenet.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "models/io/npy.h"
#include "models/io/safetensors.h"
#include "models/io/tfjs.h"
#include "models/io/tflite.h"
#include "models/mobilenetv2.h"
#include "models/zoo.h"
#include "quant/cache.h"
#include "quant/config.h"
#include "tests/paths.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace mpq;
using nlohmann::json;

namespace {

const std::string kShared = MPQ_SHARED_DATA;
const std::string kSource = MPQ_SOURCE_DIR;
const std::string kImage = kShared + "/imagenet-val-1300/images/ILSVRC2012_val_00000347.JPEG";
const std::string kMobilenet = kShared + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite";
const std::string kBertDir = kSource + "/models/weights/bert-sst2";

using testing::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  REQUIRE(bool(f));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs f, which must throw mpq::Error whose message holds every one of `parts`, within `max_seconds`.
template <class F>
void check_error(F&& f, std::initializer_list<std::string> parts, double max_seconds = 20) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg;
  try {
    f();
    FAIL("no exception; expected one mentioning '", *parts.begin(), "'");
  } catch (const Error& e) {
    msg = e.what();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MESSAGE(secs < max_seconds, "took ", secs, " s: ", msg);
  for (const auto& p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "'", p, "' not in: ", msg);
}

// A copy of the real ResNet50 TF.js folder. model.json is copied; the shards are hard links where possible, so
// a test that alters a shard must remove its link first and write a new file (never write through a link: that
// would alter the cached original).
fs::path copy_resnet50(const TempDir& d) {
  const fs::path src = fs::path(testing::resnet50_tfjs_path()).parent_path();
  REQUIRE_MESSAGE(fs::exists(src / "model.json"), "ResNet50 TF.js model not found: run scripts/fetch_resnet50.sh");
  const fs::path dst = d.path / "ResNet50";
  fs::create_directories(dst);
  for (const auto& e : fs::directory_iterator(src)) {
    std::error_code ec;
    if (e.path().extension() == ".bin") fs::create_hard_link(e.path(), dst / e.path().filename(), ec);
    if (e.path().extension() != ".bin") ec = std::make_error_code(std::errc::not_supported);
    if (ec) fs::copy_file(e.path(), dst / e.path().filename());
  }
  return dst;
}

// A tiny TF.js model: one Dense layer, weights "d/kernel" [2, 2] and "d/bias" [2] in one shard `path`.
std::string tiny_tfjs(const std::string& shard_path) {
  return json{{"format", "layers-model"},
              {"modelTopology",
               {{"class_name", "Sequential"},
                {"config", {{"layers", json::array({{{"class_name", "Dense"}, {"config", {{"name", "d"}}}}})}}}}},
              {"weightsManifest",
               json::array({{{"paths", {shard_path}},
                             {"weights", json::array({{{"name", "d/kernel"}, {"shape", {2, 2}}, {"dtype", "float32"}},
                                                      {{"name", "d/bias"}, {"shape", {2}}, {"dtype", "float32"}}})}}})}}
      .dump();
}

const std::string kSixFloats(24, '\0');  // the tiny model's 6 float32 weights

// MobileNetV2's weights (from the real TFLite file) as a torchvision-named map.
io::TensorMap mobilenet_state() {
  auto m = models::load_model("mobilenetv2", kMobilenet);
  io::TensorMap map;
  for (auto& [n, t] : m->named_tensors()) map.insert(n, t->contiguous());
  return map;
}

// Patches the SOF0/SOF2 frame header of a JPEG to claim w x h.
std::string with_jpeg_size(std::string jpg, int w, int h) {
  for (size_t i = 2; i + 9 < jpg.size(); ++i) {
    const auto m = uint8_t(jpg[i + 1]);
    if (uint8_t(jpg[i]) == 0xFF && (m == 0xC0 || m == 0xC1 || m == 0xC2)) {
      jpg[i + 5] = char(h >> 8), jpg[i + 6] = char(h & 0xFF);
      jpg[i + 7] = char(w >> 8), jpg[i + 8] = char(w & 0xFF);
      return jpg;
    }
  }
  FAIL("no SOF marker");
  return jpg;
}

}  // namespace

// ---------------------------------------------------------------- TF.js

TEST_CASE("bad input: TF.js shard with 4 KB appended (real ResNet50) is refused and not silently shifted") {
  TempDir d("tfjs_append");
  const fs::path dir = copy_resnet50(d);
  const fs::path shard = dir / "group1-shard12of25.bin";
  const std::string bytes = read_bytes(shard.string());
  fs::remove(shard);  // break the hard link: only the copy grows
  write_bytes(shard.string(), bytes + std::string(4096, '\x7f'));
  check_error([&] { io::read_tfjs((dir / "model.json").string()); },
              {"model.json", "weightsManifest[0]", "4096 bytes more"});
  // one byte short is refused as well
  write_bytes(shard.string(), bytes.substr(0, bytes.size() - 1));
  check_error([&] { io::read_tfjs((dir / "model.json").string()); }, {"model.json", "weightsManifest[0]"});
}

TEST_CASE("bad input: a Keras BatchNormalization epsilon out of range in model.json is refused (real ResNet50)") {
  TempDir d("tfjs_eps");
  const fs::path dir = copy_resnet50(d);
  const std::string mj = (dir / "model.json").string();
  json j = json::parse(read_bytes(mj));
  for (const double eps : {-1.0, 0.0, 1e300, 1e-45}) {
    CAPTURE(eps);
    // every BatchNormalization layer alike, so the layers' consistency check does not catch it first
    int n = 0;
    for (json& l : j["modelTopology"]["model_config"]["config"]["layers"])
      if (l["class_name"] == "BatchNormalization") l["config"]["epsilon"] = eps, ++n;
    REQUIRE(n == 53);
    write_bytes(mj, j.dump());  // model.json is a copy
    check_error([&] { models::load_model("resnet50", mj); }, {mj, "bn_conv1", "'epsilon'", "outside"});
  }
}

TEST_CASE("bad input: TF.js shard paths outside the model's folder are refused") {
  TempDir d("tfjs_paths");
  fs::create_directories(d.path / "model");
  write_bytes(d.file("outside.bin"), kSixFloats);
  const std::string mj = d.file("model/model.json");
  write_bytes(mj, tiny_tfjs("../outside.bin"));
  check_error([&] { io::read_tfjs(mj); }, {"model.json", "../outside.bin", "'..'"});
  write_bytes(mj, tiny_tfjs(d.file("outside.bin")));
  check_error([&] { io::read_tfjs(mj); }, {"model.json", d.file("outside.bin"), "absolute"});
  fs::create_symlink(d.path / "outside.bin", d.path / "model" / "link.bin");
  write_bytes(mj, tiny_tfjs("link.bin"));
  check_error([&] { io::read_tfjs(mj); }, {"model.json", "link.bin", "outside"});
  // the same bytes inside the folder load
  write_bytes(d.file("model/w.bin"), kSixFloats);
  write_bytes(mj, tiny_tfjs("w.bin"));
  CHECK(io::read_tfjs(mj).weights.size() == 2);
}

// ---------------------------------------------------------------- CNN safetensors

TEST_CASE("bad input: CNN safetensors with an integer dtype is refused naming tensor and dtype") {
  TempDir d("cnn_int");
  io::TensorMap state = mobilenet_state();
  io::TensorMap bad;
  for (const auto& [n, t] : state) bad.insert(n, n == "classifier.1.bias" ? t.to(DType::i32) : t);
  const std::string p = d.file("m.safetensors");
  io::write_safetensors(p, bad, {{"layout", "tflite"}});
  check_error([&] { models::load_model("mobilenetv2", p); }, {p, "classifier.1.bias", "i32"});
  io::TensorMap bad8;
  for (const auto& [n, t] : state) bad8.insert(n, n == "features.0.0.weight" ? t.to(DType::i8) : t);
  io::write_safetensors(p, bad8, {{"layout", "tflite"}});
  check_error([&] { models::load_model("mobilenetv2", p); }, {p, "features.0.0.weight", "i8"});
}

TEST_CASE("bad input: bn_eps metadata is parsed strictly: nan / inf / junk / negative / zero refused") {
  TempDir d("bn_eps");
  const std::string p = d.file("r.safetensors");
  for (const std::string v : {"nan", "inf", "-inf", "0.001xyz", "-5", "0", "1e-45", "2", " 0.001", ""}) {
    CAPTURE(v);
    io::write_safetensors(p, {}, {{"layout", "torchvision"}, {"bn_eps", v}});
    check_error([&] { models::load_model("resnet50", p); }, {p, "bn_eps", "'" + v + "'"});
  }
  // a valid value passes the metadata check; the (empty) file then lacks its first tensor
  io::write_safetensors(p, {}, {{"layout", "torchvision"}, {"bn_eps", "0.001"}});
  check_error([&] { models::load_model("resnet50", p); }, {p, "conv1.weight", "missing"});
}

// ---------------------------------------------------------------- special files

TEST_CASE("bad input: a FIFO or /dev/zero as weights / data is refused promptly") {
  TempDir d("special");
  for (const std::string name :
       {"w.safetensors", "w.tflite", "model.json", "x.npy", "labels.txt", "dev.tsv", "vocab.txt", "img.JPEG"})
    REQUIRE(::mkfifo(d.file(name).c_str(), 0600) == 0);
  check_error([&] { models::load_model("resnet50", d.file("w.safetensors")); }, {"w.safetensors", "FIFO"}, 5);
  check_error([&] { models::load_model("mobilenetv2", d.file("w.tflite")); }, {"w.tflite", "FIFO"}, 5);
  check_error([&] { models::load_model("resnet50", d.file("model.json")); }, {"model.json", "FIFO"}, 5);
  check_error([&] { io::read_npy(d.file("x.npy")); }, {"x.npy", "FIFO"}, 5);
  check_error([&] { data::read_sst2(d.file("dev.tsv")); }, {"dev.tsv", "FIFO"}, 5);
  check_error([&] { data::Vocab::load(d.file("vocab.txt")); }, {"vocab.txt", "FIFO"}, 5);
  check_error([&] { data::decode_jpeg_file(d.file("img.JPEG")); }, {"img.JPEG", "FIFO"}, 5);
  check_error([&] { data::ImageNetFolder(d.path.string()); }, {"labels.txt", "FIFO"}, 5);
  // BERT: the weights beside a valid config.json
  fs::create_directories(d.path / "bert");
  fs::copy_file(kBertDir + "/config.json", d.path / "bert" / "config.json");
  REQUIRE(::mkfifo((d.path / "bert" / "model.safetensors").c_str(), 0600) == 0);
  check_error([&] { models::load_model("bert", (d.path / "bert" / "model.safetensors").string()); },
              {"model.safetensors", "FIFO"}, 5);
  // a character device behind a weights-like name
  fs::create_symlink("/dev/zero", d.path / "zero.safetensors");
  check_error([&] { models::load_model("resnet50", d.file("zero.safetensors")); },
              {"zero.safetensors", "character device"}, 5);
  fs::create_symlink("/dev/zero", d.path / "zero.npy");
  check_error([&] { io::read_npy(d.file("zero.npy")); }, {"zero.npy", "character device"}, 5);
  // a directory
  fs::create_directories(d.path / "dir.safetensors");
  check_error([&] { models::load_model("resnet50", d.file("dir.safetensors")); }, {"dir.safetensors", "directory"}, 5);
}

// ---------------------------------------------------------------- BERT config.json

TEST_CASE("bad input: BERT config.json is bounded and cross-checked before allocating") {
  TempDir d("bert_cfg");
  const json good = json::parse(read_bytes(kBertDir + "/config.json"));
  const std::string cfg = d.file("config.json"), weights = d.file("model.safetensors");
  fs::copy_file(kBertDir + "/vocab.txt", d.file("vocab.txt"));
  auto with = [&](const char* field, const json& v) {
    json j = good;
    j[field] = v;
    write_bytes(cfg, j.dump());
  };
  struct Case {
    const char* field;
    json value;
  };
  const Case cases[] = {
      {"num_hidden_layers", 10000},
      {"num_hidden_layers", int64_t(1) << 40},
      {"hidden_size", int64_t(1) << 40},
      {"vocab_size", int64_t(1) << 40},
      {"intermediate_size", int64_t(1) << 31},
      {"max_position_embeddings", int64_t(1) << 40},
      {"num_attention_heads", 3},  // 128 is not a multiple of 3
      {"vocab_size", 100},         // vocab.txt has 4000 tokens
      {"layer_norm_eps", 1e300},
      {"hidden_dropout_prob", 1.5},
      {"attention_probs_dropout_prob", -0.1},
      {"type_vocab_size", int64_t(1) << 40},
      {"num_labels", int64_t(1) << 40},
  };
  for (const Case& c : cases) {
    CAPTURE(c.field);
    CAPTURE(c.value.dump());
    with(c.field, c.value);
    check_error([&] { models::load_bert_model(weights); }, {cfg, c.field}, 5);
  }
  // the vocab mismatch names vocab.txt too
  with("vocab_size", 100);
  check_error([&] { models::load_bert_model(weights); }, {cfg, "vocab_size", "vocab.txt", "4000"}, 5);
  // a good config gets past the checks: the (absent) weights file is the next error
  write_bytes(cfg, good.dump());
  check_error([&] { models::load_bert_model(weights); }, {"model.safetensors"}, 5);
}

// ---------------------------------------------------------------- MobileNetV2 TFLite mapping

TEST_CASE("bad input: MobileNetV2 TFLite conv with too few inputs is refused naming the operator") {
  const io::TfliteModel real = io::read_tflite(kMobilenet);
  size_t first_conv = 0;
  while (real.subgraphs[0].operators[first_conv].opcode != io::tflite_op::CONV_2D) ++first_conv;
  for (const std::vector<int32_t>& inputs : {std::vector<int32_t>{0}, std::vector<int32_t>{0, -1, -1},
                                             std::vector<int32_t>{}, std::vector<int32_t>{0, 1 << 30, 2}}) {
    CAPTURE(inputs.size());
    io::TfliteModel m = real;
    m.subgraphs[0].operators[first_conv].inputs = inputs;
    check_error([&] { models::mobilenetv2_from_tflite(m, kMobilenet); }, {kMobilenet, "operator #0", "input"});
  }
}

// ---------------------------------------------------------------- JPEG

TEST_CASE("bad input: a JPEG header claiming 16384x16384 is refused before allocating") {
  const std::string real = read_bytes(kImage);
  for (auto [w, h] : {std::pair{16384, 16384}, std::pair{60000, 2}, std::pair{2, 60000}}) {
    const std::string big = with_jpeg_size(real, w, h);
    check_error([&] { data::decode_jpeg(reinterpret_cast<const uint8_t*>(big.data()), big.size(), "big.JPEG"); },
                {"big.JPEG", fmt::format("{}x{}", w, h), "maximum"}, 5);
  }
  // the real header still decodes
  const data::Image img = data::decode_jpeg_file(kImage);
  CHECK(img.width == 227);
}

// ---------------------------------------------------------------- labels.txt

TEST_CASE("bad input: labels.txt paths that escape the data folder are refused") {
  TempDir d("labels");
  fs::create_directories(d.path / "data" / "images");
  fs::copy_file(kImage, d.path / "outside.JPEG");
  fs::copy_file(kImage, d.path / "data" / "images" / "in.JPEG");
  const std::string labels = (d.path / "data" / "labels.txt").string();
  const std::string dir = (d.path / "data").string();
  write_bytes(labels, "../../outside.JPEG 1\n");
  check_error([&] { data::ImageNetFolder f(dir); }, {"labels.txt:1", "../../outside.JPEG", "'..'"});
  write_bytes(labels, kImage + " 1\n");
  check_error([&] { data::ImageNetFolder f(dir); }, {"labels.txt:1", kImage, "absolute"});
  fs::create_symlink(d.path / "outside.JPEG", d.path / "data" / "images" / "link.JPEG");
  write_bytes(labels, "in.JPEG 3\nlink.JPEG 1\n");
  check_error([&] { data::ImageNetFolder f(dir); }, {"labels.txt:2", "link.JPEG", "outside"});
  write_bytes(labels, "in.JPEG 3\n");
  CHECK(data::ImageNetFolder(dir).size() == 1);
}

// ---------------------------------------------------------------- --config activation scales

TEST_CASE("bad input: --config activation scales that are denormal or absurd are refused naming file and layer") {
  models::QuantLayer fc;
  fc.name = "fc";
  fc.kind = models::LayerKind::linear;
  fc.weight = "fc.weight";
  const std::vector<models::QuantLayer> layers = {fc};
  auto cfg = [](double scale) {
    return json{{"format", "mpq-quant-config"},
                {"version", 1},
                {"model", "m"},
                {"layers",
                 json::array({{{"name", "fc"},
                               {"precision", "int8"},
                               {"inputs", json::array({{{"operand", 0}, {"scale", scale}, {"zero_point", 128}}})}}})}};
  };
  for (double s : {1e-45, 1e-39, 1e-30, 1e30, 3e38}) {
    CAPTURE(s);
    check_error([&] { quant::config_from_json(cfg(s), "q.json", "m", layers); },
                {"q.json", "'fc'", "scale", fmt::format("{}", float(s))});
  }
  // integer fields that do not fit (nlohmann would narrow them with an undefined cast)
  for (const auto& [field, v] : {std::pair{"zero_point", json(1e20)}, std::pair{"zero_point", json(int64_t(1) << 40)},
                                 std::pair{"operand", json(-1e300)}, std::pair{"zero_point", json(12.5)}}) {
    CAPTURE(field);
    json j = cfg(0.0235);
    j["layers"][0]["inputs"][0][field] = v;
    check_error([&] { quant::config_from_json(j, "q.json", "m", layers); },
                {"q.json", "'fc'", field, "not an integer"});
  }
  json big_version = cfg(0.0235);
  big_version["version"] = 4294967297.0;
  check_error([&] { quant::config_from_json(big_version, "q.json", "m", layers); }, {"q.json", "version"});
  CHECK(quant::config_from_json(cfg(0.0235), "q.json", "m", layers).layers.at("fc").act.at(0).scale ==
        doctest::Approx(0.0235));
}

// ---------------------------------------------------------------- analysis cache payloads

TEST_CASE("bad input: a damaged analysis-cache payload is an mpq::Error naming the kind and field") {
  const json traces = {{"trace", {1.5, 0.25}}, {"std_error", {0.1, 0.01}}, {"draws", 16}, {"converged", true}};
  CHECK(quant::hutchinson_from_json(traces).draws == 16);
  auto with = [](json j, const std::string& key, const json& v) {
    j[key] = v;
    return j;
  };
  json no_draws = traces;
  no_draws.erase("draws");
  check_error([&] { quant::hutchinson_from_json(no_draws); }, {"analysis cache", "traces", "draws"});
  check_error([&] { quant::hutchinson_from_json(with(traces, "draws", 1e20)); }, {"analysis cache", "traces", "draws"});
  check_error([&] { quant::hutchinson_from_json(json::array()); }, {"analysis cache", "traces"});

  const json ci = {{"scale", 0.02}, {"zero_point", 128},    {"lo", -2.56},
                   {"hi", 2.54},    {"observer", "minmax"}, {"error", {{"minmax", 0.1}}}};
  CHECK(quant::calibration_from_json({{"fc", {{"0", ci}}}}).at("fc").at(0).params.zero_point == 128);
  check_error([&] { quant::calibration_from_json({{"fc", {{"x", ci}}}}); }, {"analysis cache", "calibration", "'x'"});
  check_error(
      [&] {
        quant::calibration_from_json({{"fc", {{"0", with(ci, "scale", 1e300)}}}});
      },
      {"analysis cache", "calibration", "scale"});
  check_error(
      [&] {
        quant::calibration_from_json({{"fc", {{"0", with(ci, "zero_point", 1e12)}}}});
      },
      {"analysis cache", "calibration", "zero_point"});
  check_error([&] { quant::calibration_from_json({{"fc", 3}}); }, {"analysis cache", "calibration"});

  const json dep = {
      {"precision", "int8"},      {"base", "fp16"},
      {"layers", {"a", "b"}},     {"base_loss", 0.41},
      {"single", {0.001, 0.002}}, {"pairs", {{{"i", 0}, {"j", 1}, {"dl_pair", 0.004}, {"interaction", 0.001}}}},
      {"evaluations", 7},         {"seconds", 1.25}};
  CHECK(quant::dependency_from_json(dep).pairs.size() == 1);
  json far = dep;
  far["pairs"][0]["j"] = int64_t(1) << 40;
  check_error([&] { quant::dependency_from_json(far); }, {"analysis cache", "dependencies", "'j'"});
  check_error([&] { quant::dependency_from_json(with(dep, "precision", "int3")); }, {"analysis cache", "int3"});
}
