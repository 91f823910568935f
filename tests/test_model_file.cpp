// The deployable model file (deploy/model_file.h) on real weights: a file written for an assignment and loaded
// back runs bit for bit like the in-process native compile of the same assignment (MobileNetV2 all-int8,
// ResNet50 all-int8, mixes of all five precisions with gptq-rounded int8 / int4 records on MobileNetV2 and
// BERT); its size is the search's stored-bytes count plus the header; damaged files are refused naming the
// file and the field or tensor.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include "tests/paths.h"

#include <cstring>
#include <filesystem>
#include <limits>
#include <set>

#include "core/autograd/node.h"
#include "core/error.h"
#include "core/file_io.h"
#include "deploy/model_file.h"
#include "models/bert.h"
#include "models/bert_train.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "models/io/safetensors.h"
#include "models/mobilenetv2.h"
#include "models/resnet50.h"
#include "models/zoo.h"
#include "quant/fake_quant.h"
#include "quant/observers.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"
#include "quant/search.h"
#include "tests/temp_dir.h"

using namespace mpq;
namespace fs = std::filesystem;

namespace {

const std::string kImagenet = std::string(MPQ_SHARED_DATA) + "/imagenet-val-1300";
const std::string kTflite = std::string(MPQ_SHARED_DATA) + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite";
const std::string kBert = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2";
const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";

std::string temp_file(const std::string& name) {
  return (fs::path(testing::process_temp_dir("model_file")) / name).string();
}

models::Batch images(const models::Model& m, std::vector<int64_t> idx) {
  const data::ImageNetFolder folder(kImagenet);
  models::Batch b;
  b.images = folder.load_batch(idx, dynamic_cast<const models::CnnModel&>(m).preset()).images;  // [n, 3, 224, 224]
  return b;
}

models::Batch sentences(const models::Bert& m, size_t first, size_t n) {
  const auto tok = data::BertTokenizer::from_file(kBert + "/vocab.txt");
  auto ex = data::read_sst2(kSst2 + "/dev.tsv");
  std::vector<data::Sst2Example> sel(ex.begin() + long(first), ex.begin() + long(first + n));
  const models::EncodedSet set = models::encode_sst2(tok, sel, int(m.config().seq_len));
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return models::make_batch(set, idx);
}

quant::Calibration calibrate(models::Model& m, const models::Batch& b) {
  auto hook = std::make_shared<quant::CalibrationHook>();
  {
    autograd::NoGradGuard ng;
    quant::ScopedHook h(m, hook);
    m.forward(b, false);
  }
  return hook->finish();
}

// Layer i at kinds[i % n] (with int4 group `group`, and the rounded records when given).
Assignment cycle(const models::Model& m, const std::vector<Precision>& kinds, const quant::Calibration& cal,
                 int64_t group, const RoundedWeights* rw = nullptr) {
  const auto layers = m.quant_layers();
  std::vector<Precision> ps;
  for (size_t i = 0; i < layers.size(); ++i) ps.push_back(kinds[i % kinds.size()]);
  return quant::make_assignment(layers, ps, cal, group, rw);
}

bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  const Tensor x = a.contiguous(), y = b.contiguous();
  return std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

// Exports `a`, loads the file back and checks: logits bit for bit those of native::compile(m, a), the size
// against the stored-bytes count. Returns the file's bytes.
std::vector<uint8_t> round_trip(models::Model& m, const Assignment& a, const models::Batch& x, const std::string& name,
                                const deploy::ExportOptions& opt = {}) {
  const Tensor want = native::compile(m, a, native::CompileOptions::reproducible())->run(x);
  deploy::ExportSummary s;
  const std::string path = temp_file(name + ".mpq");
  s = deploy::write_model_file(path, m, a, opt);
  deploy::LoadedModel loaded = deploy::load_model_file(path);
  const Tensor got = loaded.native().run(x);
  CHECK_MESSAGE(same_bits(got, want), name << ": the loaded file's logits differ from the in-process engine's");
  CHECK(loaded.info.model == m.name());
  CHECK(loaded.model->num_classes() == m.num_classes());
  int operands = 0;  // activation parameters live in the metadata, not in tensors
  for (const auto& l : m.quant_layers())
    if (precision_is_integer(a.count(l.name) ? a.at(l.name).precision : Precision::fp32))
      operands += models::layer_operands(l.kind);
  CHECK(int64_t(s.tensor_bytes) == s.stored_bytes - 8 * operands);
  CHECK(s.file_bytes == fs::file_size(path));
  // the file against the search's count: the activation parameters move from tensors to the metadata, which
  // also holds the architecture and config (a few kB) and, for BERT, the vocabulary (stated apart)
  const double ratio = double(s.file_bytes - opt.vocab.size()) / double(s.stored_bytes);
  CHECK(std::abs(ratio - 1.0) < 0.05);
  MESSAGE(
      fmt::format("{}: file {} B = tensors {} + header {} (vocabulary {}); counted {} B; file without the "
                  "vocabulary / counted {:.4f}; {}",
                  name, s.file_bytes, s.tensor_bytes, s.header_bytes, opt.vocab.size(), s.stored_bytes, ratio,
                  loaded.info.precision_summary()));
  return read_regular_file(path, kMaxWeightsFileBytes, "test");
}

// The quant BytesTable of the search, summed for a uniform assignment at precision p.
double bytes_table_total(models::Model& m, Precision p, int64_t group) {
  const quant::BytesTable bt = quant::bytes_table(m, group);
  double total = bt.fixed;
  for (const auto& row : bt.layer) total += row.at(p);
  return total;
}

}  // namespace

TEST_CASE("model file: MobileNetV2 all-int8 loads and runs bit for bit like the in-process engine") {
  auto m = models::load_model("mobilenetv2", kTflite);
  const quant::Calibration cal = calibrate(*m, images(*m, {1290, 1291}));
  const Assignment a = cycle(*m, {Precision::int8}, cal, 0);
  CHECK(double(deploy::stored_bytes(*m, a)) == bytes_table_total(*m, Precision::int8, 0));
  round_trip(*m, a, images(*m, {0, 1}), "mobilenetv2_int8");
}

TEST_CASE("model file: ResNet50 (Keras) all-int8 loads and runs bit for bit like the in-process engine") {
  REQUIRE_MESSAGE(fs::exists(testing::resnet50_tfjs_path()), testing::resnet50_tfjs_path()
                                                                 << " missing: run scripts/fetch_resnet50.sh");
  auto m = models::load_model("resnet50", testing::resnet50_tfjs_path());
  const quant::Calibration cal = calibrate(*m, images(*m, {1290}));
  const Assignment a = cycle(*m, {Precision::int8}, cal, 0);
  CHECK(double(deploy::stored_bytes(*m, a)) == bytes_table_total(*m, Precision::int8, 0));
  round_trip(*m, a, images(*m, {0}), "resnet50_int8");
}

TEST_CASE("model file: MobileNetV2 mix of int4 / int8 / fp16 / bf16 / fp32 with gptq-rounded records") {
  auto m = models::load_model("mobilenetv2", kTflite);
  const quant::Calibration cal = calibrate(*m, images(*m, {1290, 1291}));
  quant::RoundingRequest rr;
  rr.int4_group = 32;
  rr.max_positions = 64;
  rr.int8 = true;  // int8 records too (off by default), so both kinds travel through the file
  const RoundedWeights rw = quant::round_weights(*m, {images(*m, {1292, 1293})}, cal, rr);
  REQUIRE(!rw.int4.empty());
  REQUIRE(!rw.int8.empty());
  const Assignment a =
      cycle(*m, {Precision::int4, Precision::int8, Precision::fp16, Precision::bf16, Precision::fp32}, cal, 32, &rw);
  int with_records = 0, corrected = 0;
  for (const auto& [name, q] : a) {
    with_records += q.weights != nullptr;
    corrected += q.weights && !q.weights->bias_correction.empty();
  }
  CHECK(with_records > 10);
  MESSAGE(with_records << " layers carry rounded records, " << corrected << " with bias corrections");
  round_trip(*m, a, images(*m, {0, 1}), "mobilenetv2_mixed_gptq");
}

TEST_CASE("model file: BERT mixes with gptq records and quantized embedding tables, the vocabulary travels") {
  auto m = models::load_bert_model(kBert + "/model.safetensors");
  const quant::Calibration cal = calibrate(*m, sentences(*m, 100, 16));
  quant::RoundingRequest rr;
  rr.int4_group = 32;
  const RoundedWeights rw = quant::round_weights(*m, {sentences(*m, 200, 8)}, cal, rr);
  deploy::ExportOptions opt;
  opt.vocab = read_text_file(kBert + "/vocab.txt", kMaxTextFileBytes, "vocab");
  const models::Batch x = sentences(*m, 0, 4);
  for (int offset : {0, 2}) {
    std::vector<Precision> kinds = {Precision::int4, Precision::int8, Precision::fp16, Precision::bf16,
                                    Precision::fp32};
    std::rotate(kinds.begin(), kinds.begin() + offset, kinds.end());
    round_trip(*m, cycle(*m, kinds, cal, 32, &rw), x, fmt::format("bert_mixed_{}", offset), opt);
  }
  const Assignment all8 = cycle(*m, {Precision::int8}, cal, 0);
  CHECK(double(deploy::stored_bytes(*m, all8)) == bytes_table_total(*m, Precision::int8, 0));
  round_trip(*m, all8, x, "bert_int8", opt);
  deploy::LoadedModel l = deploy::load_model_file(temp_file("bert_int8.mpq"));
  CHECK(l.info.vocab == opt.vocab);
  REQUIRE(l.info.bert);
  CHECK(l.info.bert->to_json() == m->config().to_json());
  CHECK(l.info.preprocessing == "wordpiece");
}

TEST_CASE("model file: torchvision layouts (convs without bias, batch norm folded at export), formula weights") {
  for (const bool resnet : {true, false}) {
    std::unique_ptr<models::CnnModel> m = resnet ? models::make_resnet50(models::ResNetLayout::torchvision)
                                                 : models::make_mobilenetv2(models::MobileNetLayout::torchvision);
    models::formula_init(*m);
    models::Batch x;
    x.images = models::formula_input(2, 64, 64);  // [2, 3, 64, 64]
    const quant::Calibration cal = calibrate(*m, x);
    const Assignment a = cycle(*m, {Precision::int8, Precision::fp16, Precision::int4, Precision::fp32}, cal, 32);
    round_trip(*m, a, x, m->name() + "_torchvision_mixed");
  }
}

namespace {

// A small valid file (BERT, a mix of every precision) and its parsed form, to damage.
struct Sample {
  std::vector<uint8_t> bytes;
  io::SafetensorsFile parsed;
};
Sample sample() {
  static const Sample s = [] {
    auto m = models::load_bert_model(kBert + "/model.safetensors");
    const quant::Calibration cal = calibrate(*m, sentences(*m, 100, 8));
    const Assignment a =
        cycle(*m, {Precision::int4, Precision::int8, Precision::fp16, Precision::bf16, Precision::fp32}, cal, 32);
    Sample r;
    r.bytes = deploy::serialize_model_file(*m, a, {});
    r.parsed = io::parse_safetensors(r.bytes, "sample");
    return r;
  }();
  return s;
}

// The first tensor whose name ends in `suffix` and whose dtype is `dt`.
std::string find_tensor(const io::TensorMap& t, const std::string& suffix, DType dt) {
  for (const auto& [name, x] : t)
    if (name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        x.dtype() == dt)
      return name;
  FAIL("no tensor *" << suffix << " of the wanted dtype");
  return "";
}

// Re-serializes `tensors` / `meta` with one change and returns the loader's message ("" when it loads).
std::string refused(const io::TensorMap& tensors, const std::map<std::string, std::string>& meta) {
  const std::vector<uint8_t> bytes = io::serialize_safetensors(tensors, meta);
  try {
    deploy::parse_model_file(bytes, "damaged.mpq");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

io::TensorMap without(const io::TensorMap& t, const std::string& drop, const std::string& rename = "",
                      const Tensor* replacement = nullptr) {
  io::TensorMap out;
  for (const auto& [name, x] : t) {
    if (name != drop) {
      out.insert(name, x);
    } else if (replacement) {
      out.insert(rename.empty() ? name : rename, *replacement);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("model file: damaged files are refused naming the file and the field") {
  const Sample s = sample();
  const io::TensorMap& t = s.parsed.tensors;
  const auto& meta = s.parsed.metadata;
  REQUIRE(refused(t, meta).empty());  // the re-serialized original loads

  SUBCASE("truncated") {
    const std::string path = temp_file("truncated.mpq");
    write_file_atomic(path, std::span<const uint8_t>(s.bytes.data(), s.bytes.size() - 1000));
    CHECK_THROWS_WITH_AS(deploy::load_model_file(path), doctest::Contains(path.c_str()), Error);
    CHECK_THROWS_WITH_AS(deploy::load_model_file(path), doctest::Contains("data_offsets"), Error);
    write_file_atomic(path, std::span<const uint8_t>(s.bytes.data(), 5));
    CHECK_THROWS_WITH_AS(deploy::load_model_file(path), doctest::Contains("shorter than the 8-byte header"), Error);
  }
  SUBCASE("not a regular file, not there") {
    CHECK_THROWS_WITH_AS(deploy::load_model_file(fs::temp_directory_path().string()), doctest::Contains("directory"),
                         Error);
    CHECK_THROWS_WITH_AS(deploy::load_model_file("/nonexistent/m.mpq"), doctest::Contains("/nonexistent/m.mpq"), Error);
  }
  SUBCASE("another format or version, missing metadata") {
    auto m2 = meta;
    m2["version"] = "2";
    CHECK(refused(t, m2).find("damaged.mpq': metadata field 'version' is '2'") != std::string::npos);
    m2 = meta;
    m2["format"] = "mpq-quant-config";
    CHECK(refused(t, m2).find("metadata field 'format'") != std::string::npos);
    for (const char* key : {"architecture", "quant_config", "preprocessing", "model"}) {
      m2 = meta;
      m2.erase(key);
      CHECK_MESSAGE(refused(t, m2).find(fmt::format("metadata field '{}' is missing", key)) != std::string::npos, key);
    }
    m2 = meta;
    m2["architecture"] = "{\"hidden_size\": 128}";
    CHECK(refused(t, m2).find("vocab_size") != std::string::npos);
    m2 = meta;
    m2["preprocessing"] = "torchvision";
    CHECK(refused(t, m2).find("metadata field 'preprocessing'") != std::string::npos);
  }
  SUBCASE("quant_config disagrees: a layer missing, another precision") {
    nlohmann::json q = nlohmann::json::parse(meta.at("quant_config"));
    const std::string first = q["layers"][0]["name"];
    auto m2 = meta;
    auto q2 = q;
    q2["layers"].erase(0);
    m2["quant_config"] = q2.dump();
    const std::string msg = refused(t, m2);
    CHECK(msg.find("quant_config") != std::string::npos);
    CHECK(msg.find(first) != std::string::npos);
    // an int4 layer declared fp16: its tensor has the wrong dtype
    for (auto& l : q["layers"])
      if (l["precision"] == "int4" && std::string(l["name"]).find("attention.self.") == std::string::npos) {
        l["precision"] = "fp16";
        l["weight_group"] = 0;
        l["inputs"] = nlohmann::json::array();
        break;
      }
    m2["quant_config"] = q.dump();
    const std::string dt = refused(t, m2);
    CHECK(dt.find("has dtype U8") != std::string::npos);
    CHECK(dt.find("F16 expected") != std::string::npos);
  }
  SUBCASE("tensors disagree: missing, extra, shape, dtype, scales") {
    const std::string codes = find_tensor(t, ".weight", DType::u8);  // an int4 layer
    std::string msg = refused(without(t, codes), meta);
    CHECK(msg.find("tensor '" + codes + "' is missing") != std::string::npos);
    CHECK(msg.find("damaged.mpq") != std::string::npos);
    io::TensorMap plus = t;
    plus.insert("stray.weight", Tensor::zeros({3}));
    msg = refused(plus, meta);
    CHECK(msg.find("tensor 'stray.weight' belongs to no layer") != std::string::npos);
    const Tensor& c = *t.find(codes);
    const Tensor narrower = c.narrow(1, 0, c.size(1) - 1).contiguous();
    msg = refused(without(t, codes, "", &narrower), meta);
    CHECK(msg.find("tensor '" + codes + "' has shape") != std::string::npos);
    const std::string f16 = find_tensor(t, ".weight", DType::f16);
    const Tensor as_f32 = t.find(f16)->to(DType::f32);
    msg = refused(without(t, f16, "", &as_f32), meta);
    CHECK(msg.find("tensor '" + f16 + "' has dtype F32") != std::string::npos);
    const std::string scale = find_tensor(t, ".weight.scale", DType::f32);
    Tensor negative = t.find(scale)->clone();
    negative.set_flat(0, -1.0f);
    msg = refused(without(t, scale, "", &negative), meta);
    CHECK(msg.find(scale) != std::string::npos);
    CHECK(msg.find("scale") != std::string::npos);
    const std::string ln = "bert.embeddings.LayerNorm.weight";
    REQUIRE(t.find(ln));
    msg = refused(without(t, ln), meta);
    CHECK(msg.find("tensor '" + ln + "' of bert is missing") != std::string::npos);
  }
  SUBCASE("non-finite parameters") {  // found by fuzz_model_file: a NaN reached a u8 store at run time
    const std::string ln = "bert.embeddings.LayerNorm.weight";
    Tensor nan_ln = t.find(ln)->clone();
    nan_ln.set_flat(3, std::numeric_limits<float>::quiet_NaN());
    std::string msg = refused(without(t, ln, "", &nan_ln), meta);
    CHECK(msg.find("tensor '" + ln + "' element 3 is nan") != std::string::npos);
    const std::string f16 = find_tensor(t, ".weight", DType::f16);
    Tensor inf_w = t.find(f16)->clone();
    reinterpret_cast<uint16_t*>(inf_w.data<uint16_t>())[0] = 0x7c00;  // f16 +inf
    msg = refused(without(t, f16, "", &inf_w), meta);
    CHECK(msg.find("tensor '" + f16 + "' element 0 is inf") != std::string::npos);
  }
}
