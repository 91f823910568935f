// The library API (include/mpq/mpq.hpp, mpq.h) through libmpq.so: a session runs a model file exactly as the
// loader + native engine do; bad arguments and files come back as errors (C: status + message, never an
// exception); two sessions of different models run concurrently from two threads, each output equal to the
// same session run alone.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <thread>

#include "core/autograd/node.h"
#include "deploy/model_file.h"
#include "models/bert.h"
#include "models/bert_train.h"
#include "models/cnn_common.h"
#include "models/data/imagenet.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "models/zoo.h"
#include "mpq/mpq.h"
#include "mpq/mpq.hpp"
#include "quant/fake_quant.h"
#include "quant/observers.h"
#include "quant/quantizer.h"
#include "tests/temp_dir.h"

using namespace mpq;
namespace fs = std::filesystem;

namespace {

const std::string kImagenet = std::string(MPQ_SHARED_DATA) + "/imagenet-val-1300";
const std::string kTflite = std::string(MPQ_SHARED_DATA) + "/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite";
const std::string kBert = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2";
const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";

std::string temp_file(const std::string& name) { return (fs::path(testing::process_temp_dir("api")) / name).string(); }

quant::Calibration calibrate(models::Model& m, const models::Batch& b) {
  auto hook = std::make_shared<quant::CalibrationHook>();
  autograd::NoGradGuard ng;
  quant::ScopedHook h(m, hook);
  m.forward(b, false);
  return hook->finish();
}

Assignment uniform(const models::Model& m, Precision p, const quant::Calibration& cal) {
  return quant::make_assignment(m.quant_layers(), std::vector<Precision>(m.quant_layers().size(), p), cal, 0);
}

// MobileNetV2 all-int8 (real weights, calibrated on one image): the file and two real images [2, 3, 224, 224].
struct CnnCase {
  std::string file;
  std::vector<float> x;
  std::vector<int64_t> shape;
};
CnnCase cnn_case() {
  auto m = models::load_model("mobilenetv2", kTflite);
  const data::ImageNetFolder folder(kImagenet);
  const auto preset = dynamic_cast<models::CnnModel&>(*m).preset();
  models::Batch cal;
  cal.images = folder.load_batch({1299}, preset).images;
  CnnCase c;
  c.file = temp_file("mobilenetv2_int8.mpq");
  deploy::write_model_file(c.file, *m, uniform(*m, Precision::int8, calibrate(*m, cal)), {});
  const Tensor x = folder.load_batch({0, 1}, preset).images;  // [2, 3, 224, 224]
  c.x = x.to_vector();
  c.shape = x.shape();
  return c;
}

// The committed BERT at a mix of int8 / fp16 / bf16, and four dev sentences as ids [4, L].
struct BertCase {
  std::string file;
  std::vector<int32_t> ids;
  std::vector<int64_t> shape;
};
BertCase bert_case() {
  auto m = models::load_bert_model(kBert + "/model.safetensors");
  const auto tok = data::BertTokenizer::from_file(kBert + "/vocab.txt");
  auto ex = data::read_sst2(kSst2 + "/dev.tsv");
  ex.resize(12);
  const models::EncodedSet set = models::encode_sst2(tok, ex, int(m->config().seq_len));
  const models::Batch calib = models::make_batch(set, {4, 5, 6, 7, 8, 9, 10, 11});
  const auto layers = m->quant_layers();
  std::vector<Precision> ps;
  for (size_t i = 0; i < layers.size(); ++i) ps.push_back(i % 3 == 0 ? Precision::fp16 : Precision::int8);
  BertCase c;
  c.file = temp_file("bert_mixed.mpq");
  deploy::write_model_file(c.file, *m, quant::make_assignment(layers, ps, calibrate(*m, calib), 0), {});
  const models::Batch b = models::make_batch(set, {0, 1, 2, 3});
  c.ids = b.ids;
  c.shape = {4, b.seq_len};
  return c;
}

std::vector<float> loader_logits(const std::string& file, const models::Batch& b) {
  deploy::LoadedModel l = deploy::load_model_file(file);
  return l.native().run(b).to_vector();
}

}  // namespace

TEST_CASE("api: a C++ session runs a model file like the loader and the native engine, bit for bit") {
  const CnnCase c = cnn_case();
  api::Session s(c.file);
  CHECK(s.info().model == "mobilenetv2");
  CHECK(s.info().preprocessing == "tflite_mobilenet");
  CHECK(!s.info().token_input);
  CHECK(s.info().classes == 1001);
  CHECK(s.info().precisions == "int8 x53");
  CHECK(s.load_seconds() > 0);
  const api::Output y = s.run(c.x.data(), c.x.size(), c.shape);
  CHECK(y.shape == std::vector<int64_t>{2, 1001});
  models::Batch b;
  b.images = Tensor::from_vector(c.shape, c.x);
  const std::vector<float> want = loader_logits(c.file, b);
  REQUIRE(y.data.size() == want.size());
  CHECK(std::memcmp(y.data.data(), want.data(), want.size() * 4) == 0);
  // another thread count gives the same numbers (our kernels split work, never the order of a sum)
  s.set_threads(1);
  CHECK(s.run(c.x.data(), c.x.size(), c.shape).data == y.data);
  // the .npy helpers round trip
  const std::string out = temp_file("logits.npy");
  api::write_npy(out, y);
  const api::Array back = api::read_npy(out);
  CHECK(!back.integer);
  CHECK(back.shape == y.shape);
  CHECK(back.f32 == y.data);
}

TEST_CASE("api: bad arguments and files are errors naming what is wrong") {
  const CnnCase c = cnn_case();
  CHECK_THROWS_WITH_AS(api::Session("/nonexistent/m.mpq"), doctest::Contains("/nonexistent/m.mpq"), api::Error);
  CHECK_THROWS_WITH_AS(api::Session(c.file, {-1, false}), doctest::Contains("threads -1"), api::Error);
  api::Session s(c.file);
  CHECK_THROWS_WITH_AS(s.run(nullptr, 10, {10}), doctest::Contains("input is null"), api::Error);
  CHECK_THROWS_WITH_AS(s.run(c.x.data(), c.x.size() - 1, c.shape), doctest::Contains("the buffer"), api::Error);
  CHECK_THROWS_WITH_AS(s.run(c.x.data(), c.x.size(), {2, 224, 224, 3}), doctest::Contains("[N, 3, H, W]"), api::Error);
  const int32_t ids[4] = {1, 2, 3, 4};
  CHECK_THROWS_WITH_AS(s.run_tokens(ids, 4, {1, 4}), doctest::Contains("takes images"), api::Error);
  CHECK_THROWS_WITH_AS(s.set_threads(-2), doctest::Contains("-2"), api::Error);
  CHECK_THROWS_WITH_AS(api::read_npy("/nonexistent/x.npy"), doctest::Contains("/nonexistent/x.npy"), api::Error);
}

TEST_CASE("api: the C interface returns statuses and messages, never throws") {
  const CnnCase c = cnn_case();
  char err[256];
  mpq_session* s = nullptr;
  CHECK(mpq_session_open("/nonexistent/m.mpq", 0, 0, &s, err, sizeof err) == MPQ_ERROR_RUNTIME);
  CHECK(s == nullptr);
  CHECK(std::string(err).find("/nonexistent/m.mpq") != std::string::npos);
  CHECK(mpq_session_open(nullptr, 0, 0, &s, err, sizeof err) == MPQ_ERROR_ARGUMENT);
  CHECK(mpq_session_open(c.file.c_str(), 0, 0, nullptr, err, sizeof err) == MPQ_ERROR_ARGUMENT);
  char tiny[8];
  CHECK(mpq_session_open("/nonexistent/m.mpq", 0, 0, &s, tiny, sizeof tiny) == MPQ_ERROR_RUNTIME);
  CHECK(std::strlen(tiny) == 7);  // truncated, terminated
  REQUIRE(mpq_session_open(c.file.c_str(), 2, 0, &s, err, sizeof err) == MPQ_OK);
  CHECK(std::string(mpq_session_model(s)) == "mobilenetv2");
  CHECK(mpq_session_classes(s) == 1001);
  CHECK(mpq_session_token_input(s) == 0);
  std::vector<float> y(2 * 1001);
  int64_t out_shape[2] = {0, 0};
  // null / mis-sized buffers
  CHECK(mpq_session_run(nullptr, c.x.data(), c.x.size(), c.shape.data(), 4, y.data(), y.size(), out_shape) ==
        MPQ_ERROR_ARGUMENT);
  CHECK(mpq_session_run(s, nullptr, c.x.size(), c.shape.data(), 4, y.data(), y.size(), out_shape) ==
        MPQ_ERROR_ARGUMENT);
  CHECK(std::string(mpq_session_error(s)).find("input is NULL") != std::string::npos);
  CHECK(mpq_session_run(s, c.x.data(), c.x.size() - 3, c.shape.data(), 4, y.data(), y.size(), out_shape) ==
        MPQ_ERROR_ARGUMENT);
  CHECK(std::string(mpq_session_error(s)).find("input buffer") != std::string::npos);
  CHECK(mpq_session_run(s, c.x.data(), c.x.size(), c.shape.data(), 4, y.data(), y.size() - 1, out_shape) ==
        MPQ_ERROR_BUFFER);
  CHECK(out_shape[0] == 2);
  CHECK(out_shape[1] == 1001);
  CHECK(mpq_session_run(s, c.x.data(), c.x.size(), c.shape.data(), 4, nullptr, 0, nullptr) == MPQ_ERROR_BUFFER);
  const int64_t bad_shape[4] = {2, 3, 224, -224};
  CHECK(mpq_session_run(s, c.x.data(), c.x.size(), bad_shape, 4, y.data(), y.size(), out_shape) == MPQ_ERROR_ARGUMENT);
  const int32_t ids[4] = {1, 2, 3, 4};
  const int64_t ids_shape[2] = {1, 4};
  CHECK(mpq_session_run_tokens(s, ids, 4, ids_shape, 2, y.data(), y.size(), out_shape) == MPQ_ERROR_RUNTIME);
  CHECK(std::string(mpq_session_error(s)).find("takes images") != std::string::npos);
  CHECK(mpq_session_set_threads(s, -1) == MPQ_ERROR_ARGUMENT);
  // a good run: the C++ session's numbers, and the message cleared
  REQUIRE(mpq_session_run(s, c.x.data(), c.x.size(), c.shape.data(), 4, y.data(), y.size(), out_shape) == MPQ_OK);
  CHECK(std::string(mpq_session_error(s)).empty());
  CHECK(y == api::Session(c.file).run(c.x.data(), c.x.size(), c.shape).data);
  mpq_session_close(s);
  mpq_session_close(nullptr);
  // .npy helpers
  const std::string path = temp_file("c_logits.npy");
  CHECK(mpq_npy_write_f32(path.c_str(), y.data(), y.size(), out_shape, 2, err, sizeof err) == MPQ_OK);
  CHECK(mpq_npy_write_f32(path.c_str(), y.data(), y.size() - 1, out_shape, 2, err, sizeof err) == MPQ_ERROR_RUNTIME);
  mpq_array* a = nullptr;
  REQUIRE(mpq_npy_read(path.c_str(), &a, err, sizeof err) == MPQ_OK);
  CHECK(mpq_array_ndim(a) == 2);
  CHECK(mpq_array_shape(a)[1] == 1001);
  CHECK(mpq_array_is_integer(a) == 0);
  CHECK(mpq_array_i32(a) == nullptr);
  CHECK(std::memcmp(mpq_array_f32(a), y.data(), y.size() * 4) == 0);
  mpq_array_free(a);
  CHECK(mpq_npy_read("/nonexistent/x.npy", &a, err, sizeof err) == MPQ_ERROR_RUNTIME);
  CHECK(a == nullptr);
  CHECK(std::string(mpq_version()) == api::version());
}

TEST_CASE("api: two sessions of different models run concurrently from two threads, outputs as alone") {
  const CnnCase c = cnn_case();
  const BertCase b = bert_case();
  api::SessionOptions one;
  one.threads = 1;
  api::Session cnn(c.file, one), bert(b.file, one);
  bert.set_threads(2);  // each session its own thread count
  REQUIRE(bert.info().token_input);
  // alone, one after the other
  const api::Output cnn_alone = cnn.run(c.x.data(), c.x.size(), c.shape);
  const api::Output bert_alone = bert.run_tokens(b.ids.data(), b.ids.size(), b.shape);
  // the BERT session's float entry point takes the same ids as whole numbers
  const std::vector<float> ids_f(b.ids.begin(), b.ids.end());
  CHECK(bert.run(ids_f.data(), ids_f.size(), b.shape).data == bert_alone.data);
  // together: each thread runs its session repeatedly while the other runs
  constexpr int kRuns = 6;
  std::vector<api::Output> cnn_out(kRuns), bert_out(kRuns);
  std::thread t1([&] {
    for (int i = 0; i < kRuns; ++i) cnn_out[size_t(i)] = cnn.run(c.x.data(), c.x.size(), c.shape);
  });
  std::thread t2([&] {
    for (int i = 0; i < 4 * kRuns; ++i) {
      api::Output o = bert.run_tokens(b.ids.data(), b.ids.size(), b.shape);
      if (i % 4 == 0) bert_out[size_t(i / 4)] = std::move(o);
    }
  });
  t1.join();
  t2.join();
  for (int i = 0; i < kRuns; ++i) {
    CHECK_MESSAGE(std::memcmp(cnn_out[size_t(i)].data.data(), cnn_alone.data.data(), cnn_alone.data.size() * 4) == 0,
                  "mobilenetv2 run " << i);
    CHECK_MESSAGE(bert_out[size_t(i)].data == bert_alone.data, "bert run " << i);
  }
  // one session shared by two threads: runs are serialized, results unchanged
  std::vector<api::Output> shared(2);
  std::thread u1([&] { shared[0] = cnn.run(c.x.data(), c.x.size(), c.shape); });
  std::thread u2([&] { shared[1] = cnn.run(c.x.data(), c.x.size(), c.shape); });
  u1.join();
  u2.join();
  CHECK(shared[0].data == cnn_alone.data);
  CHECK(shared[1].data == cnn_alone.data);
  // the calling thread's OpenMP setting is restored after a run
  CHECK(bert.threads() == 2);
}
