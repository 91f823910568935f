// Compiled BERT (models/native/native.h, models/native/bert_native*.cpp) against the autograd model and the
// fake-quant simulation of the same assignment, on the committed SST-2 checkpoint and real dev sentences.
//
// Tolerances (relative = max |native - reference| / max |reference| over the logits):
//   fp32 vs autograd: 1e-5. Same f32 ops per element; only summation orders differ (GEMM blocking, the
//     SIMD softmax sum, the polynomial exp / erf: erf within 3.1e-7 absolute), each ~1e-7 relative.
//   fp16 / bf16 vs FakeQuantHook: 1e-4 / 3e-4. Weights and inputs are rounded identically (RNE) on both
//     sides; the products are exact in f32 and accumulate in f32 in both. What differs is f32 summation
//     order (as fp32) -- unless an intermediate lands within an f32 ulp of a rounding midpoint of the
//     16-bit format, where one side rounds up and the other down: one half-ulp of f16 (2^-11) / bf16
//     (2^-8) on that element, damped by the following layers. Observed values are printed.
//   int8 / int4 vs FakeQuantHook: 2e-3. Integer products are exact here, f32 sums in the simulation;
//     requantization (u8) is the same round-half-even, so results agree except where an f32 difference of
//     ~1e-7 moves a value across a u8 rounding boundary: one quantization step (the calibrated scale) on
//     that element, seen downstream as ~1e-4..1e-3 of the logits. The check on top: the predicted classes
//     agree on every sentence.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/autograd/node.h"
#include "models/bert.h"
#include "models/bert_train.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "models/native/bert_native.h"
#include "models/native/native.h"
#include "quant/fake_quant.h"
#include "quant/observers.h"
#include "quant/quantizer.h"
#include "quant/rounding.h"

using namespace mpq;
namespace fs = std::filesystem;

namespace {

const std::string kSst2 = std::string(MPQ_SHARED_DATA) + "/sst2";
const std::string kTrained = std::string(MPQ_SOURCE_DIR) + "/models/weights/bert-sst2";

std::unique_ptr<models::Bert> trained() {
  REQUIRE_MESSAGE(fs::exists(kTrained + "/model.safetensors"),
                  "the committed checkpoint is missing under " << kTrained);
  return models::load_bert_model(kTrained + "/model.safetensors");
}

// Dev sentences [first, first + n) padded to the longest (mask 0 on padding).
models::Batch dev_batch(const models::Bert& m, size_t first, size_t n) {
  REQUIRE_MESSAGE(fs::exists(kSst2 + "/dev.tsv"), "SST-2 dev set missing under " << kSst2);
  const auto tok = data::BertTokenizer::from_file(kTrained + "/vocab.txt");
  auto ex = data::read_sst2(kSst2 + "/dev.tsv");
  REQUIRE(ex.size() >= first + n);
  std::vector<data::Sst2Example> sel(ex.begin() + long(first), ex.begin() + long(first + n));
  const models::EncodedSet set = models::encode_sst2(tok, sel, int(m.config().seq_len));
  std::vector<size_t> idx(n);
  for (size_t i = 0; i < n; ++i) idx[i] = i;
  return models::make_batch(set, idx);
}

Tensor reference(models::Bert& m, const models::Batch& b, std::shared_ptr<models::LayerHook> hook = nullptr) {
  autograd::NoGradGuard ng;
  quant::ScopedHook scope(m, std::move(hook));
  return m.forward(b, false);  // [N, C]
}

double rel_diff(const Tensor& got, const Tensor& want) {
  REQUIRE(got.shape() == want.shape());
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  double num = 0, den = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    num = std::max(num, std::fabs(double(g[i]) - w[i]));
    den = std::max(den, std::fabs(double(w[i])));
  }
  return num / std::max(den, 1e-30);
}

int argmax_row(const std::vector<float>& v, int64_t r, int64_t C) {
  int best = 0;
  for (int c = 1; c < C; ++c)
    if (v[size_t(r * C + c)] > v[size_t(r * C + best)]) best = c;
  return best;
}

void check_same_classes(const Tensor& got, const Tensor& want) {
  const std::vector<float> g = got.to_vector(), w = want.to_vector();
  const int64_t N = got.size(0), C = got.size(1);
  for (int64_t r = 0; r < N; ++r) CHECK_MESSAGE(argmax_row(g, r, C) == argmax_row(w, r, C), "sentence " << r);
}

}  // namespace

TEST_CASE("native bert: fp32 logits equal the autograd model on real sentences, padded batch with mask") {
  auto m = trained();
  const models::Batch b = dev_batch(*m, 0, 3);  // three sentences of different lengths
  REQUIRE(b.seq_len > 8);
  int padded = 0;
  for (int32_t v : b.mask) padded += v == 0;
  REQUIRE(padded > 0);
  const Tensor want = reference(*m, b);
  for (bool autotune : {false, true}) {
    native::CompileOptions opt;
    opt.autotune = autotune;
    auto nm = native::compile_bert(*m, {}, opt);
    const Tensor got = nm->run(b);
    const double d = rel_diff(got, want);
    MESSAGE("fp32 (autotune " << autotune << ") rel diff " << d);
    CHECK(d < 1e-5);
    // A second run on another sequence length re-plans and still agrees; the single sentence alone too.
    const models::Batch one = dev_batch(*m, 5, 1);
    CHECK(rel_diff(nm->run(one), reference(*m, one)) < 1e-5);
    CHECK(rel_diff(nm->run(b), want) < 1e-5);
  }
}

TEST_CASE("native bert: odd shapes (hidden 72, 3 heads, ffn 100, seq 13) fp32 vs autograd") {
  models::BertConfig c;
  c.vocab_size = 50, c.hidden = 72, c.layers = 2, c.heads = 3, c.ffn = 100, c.max_pos = 20, c.num_labels = 3;
  c.seq_len = 13;
  models::Bert m(c);
  m.init_random(3, 0.2f);
  models::Batch b;
  b.seq_len = 13;
  for (int s = 0; s < 2; ++s)
    for (int j = 0; j < 13; ++j) {
      const bool real = s == 0 || j < 9;  // second sequence padded after 9 tokens
      b.ids.push_back(real ? 1 + (j * 7 + s * 3) % 49 : 0);
      b.mask.push_back(real ? 1 : 0);
    }
  const Tensor want = reference(m, b);
  auto nm = native::compile_bert(m, {}, {});
  const double d = rel_diff(nm->run(b), want);
  MESSAGE("odd-shape fp32 rel diff " << d);
  CHECK(d < 1e-5);
}

namespace {

quant::Calibration calibrate(models::Bert& m) {
  auto hook = std::make_shared<quant::CalibrationHook>();
  const models::Batch cb = dev_batch(m, 10, 8);  // 8 other dev sentences
  reference(m, cb, hook);
  return hook->finish();
}

Assignment uniform(const models::Bert& m, Precision p, const quant::Calibration& cal, int64_t group) {
  std::vector<std::string> names;
  for (const auto& l : m.quant_layers()) names.push_back(l.name);
  return quant::make_assignment(m.quant_layers(), std::vector<Precision>(names.size(), p), cal, group);
}

// Native vs the fake-quant simulation of the same assignment on 3 padded dev sentences.
double native_vs_fake(models::Bert& m, const Assignment& a, const char* what, bool classes = true) {
  const models::Batch b = dev_batch(m, 0, 3);
  const Tensor want = reference(m, b, std::make_shared<quant::FakeQuantHook>(a));
  auto nm = native::compile_bert(m, a, {});
  const Tensor got = nm->run(b);
  const double d = rel_diff(got, want);
  MESSAGE(std::string(what) << ": rel diff vs fake quant " << d << " (vs fp32 " << rel_diff(got, reference(m, b))
                            << ")");
  if (classes) check_same_classes(got, want);
  return d;
}

}  // namespace

TEST_CASE("native bert: uniform int8 (W8A8 linears and int8 attention matmuls) vs fake quant") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  CHECK(native_vs_fake(*m, uniform(*m, Precision::int8, cal, 0), "int8") < 2e-3);
}

TEST_CASE("native bert: uniform fp16 / bf16 vs fake quant") {
  auto m = trained();
  CHECK(native_vs_fake(*m, uniform(*m, Precision::fp16, {}, 0), "fp16") < 1e-4);
  CHECK(native_vs_fake(*m, uniform(*m, Precision::bf16, {}, 0), "bf16") < 3e-4);
}

TEST_CASE("native bert: uniform int4 (per channel, group 32) vs fake quant") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  CHECK(native_vs_fake(*m, uniform(*m, Precision::int4, cal, 0), "int4 per channel") < 2e-3);
  CHECK(native_vs_fake(*m, uniform(*m, Precision::int4, cal, 32), "int4 group 32") < 2e-3);
}

TEST_CASE("native bert: gptq-rounded int8 / int4 records (quant/rounding.h) run the same in both engines") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  quant::RoundingRequest rr;
  rr.int4_group = 32;
  rr.int8 = true;
  const std::vector<models::Batch> calib{dev_batch(*m, 10, 8)};  // [8, L] sentences the checks do not use
  const RoundedWeights rw = quant::round_weights(*m, calib, cal, rr);
  // every linear has both records; the embedding tables stay round-to-nearest
  int64_t linears = 0;
  for (const auto& l : m->quant_layers()) {
    if (l.kind != models::LayerKind::linear) continue;
    ++linears;
    REQUIRE(rw.find(l.name, Precision::int4));
    REQUIRE(rw.find(l.name, Precision::int8));
    CHECK(rw.find(l.name, Precision::int4)->bias_correction.size() == size_t(rw.find(l.name, Precision::int4)->rows));
  }
  CHECK(int64_t(rw.int4.size()) == linears);
  for (const Precision p : {Precision::int8, Precision::int4}) {
    std::vector<Precision> ps(m->quant_layers().size(), p);
    const Assignment a = quant::make_assignment(m->quant_layers(), ps, cal, 32, &rw);
    CHECK(native_vs_fake(*m, a, p == Precision::int8 ? "gptq int8" : "gptq int4 group 32") < 2e-3);
  }
}

TEST_CASE("native bert: deterministic mixes of all five precisions vs fake quant") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  const Precision all[] = {Precision::fp32, Precision::fp16, Precision::bf16, Precision::int8, Precision::int4};
  std::vector<std::string> names;
  for (const auto& l : m->quant_layers()) names.push_back(l.name);
  for (int offset : {0, 2, 3}) {
    // Layer i gets all[(i + offset) % 5]: within a layer, query / key / value differ (so their inputs
    // need up to three formats), and the attention matmuls meet every neighbour precision.
    std::vector<Precision> ps;
    for (size_t i = 0; i < names.size(); ++i) ps.push_back(all[(i + size_t(offset)) % 5]);
    Assignment a = quant::make_assignment(m->quant_layers(), ps, cal, 32);
    int n = 0;
    for (auto& [name, q] : a)  // every other int4 layer per output channel
      if (q.precision == Precision::int4 && n++ % 2 == 1) q.weight_group = 0;
    const std::string what = "mix offset " + std::to_string(offset);
    CHECK(native_vs_fake(*m, a, what.c_str()) < 2e-3);
  }
}

TEST_CASE("native bert: weight quantization reproduces quant::fake_quant_weight bit for bit") {
  auto m = trained();
  Tensor* w = nullptr;
  for (auto& [name, t] : m->named_tensors())
    if (name == "bert.encoder.layer.0.intermediate.dense.weight") w = t;
  REQUIRE(w != nullptr);
  const int64_t N = w->size(0), K = w->size(1);
  for (auto [bits, group] : {std::pair{8, int64_t(0)}, {4, 0}, {4, 32}, {4, 128}}) {
    std::vector<int8_t> q;
    std::vector<float> s;
    native::bert::quantize_weight_sym(w->data<float>(), N, K, bits, group, q, s);
    const std::vector<float> fq = quant::fake_quant_weight(*w, {bits, group}).to_vector();
    const int64_t G = group ? group : K;
    int64_t bad = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < K; ++k)
        bad += float(q[size_t(n * K + k)]) * s[size_t(n * (K / G) + k / G)] != fq[size_t(n * K + k)];
    CHECK_MESSAGE(bad == 0, "bits " << bits << " group " << group);
  }
}

namespace {
std::vector<uint8_t> rand_u8(size_t n, std::mt19937& rng) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng() & 0xff);
  return v;
}
}  // namespace

TEST_CASE("native bert: per-call attention packing equals the library packers") {
  using namespace native::bert;
  std::mt19937 rng(1);
  const int64_t dims[] = {1, 3, 13, 32, 33, 64, 70};
  for (int64_t N : dims)
    for (int64_t K : dims) {
      const int64_t ldb = std::max(N, K) + 3;
      const std::vector<uint8_t> B = rand_u8(size_t(std::max(N, K) * ldb), rng);  // [max(N,K), ldb] u8
      std::vector<float> Bf(B.size());                                            // same shape, f32
      for (size_t i = 0; i < B.size(); ++i) Bf[i] = (float(B[i]) - 100.0f) * 0.0173f;
      // The operand as the library packers take it, W [N, K]: rows form W[n][k] = B[n][k], cols W[n][k] = B[k][n].
      for (bool cols : {false, true}) {
        std::vector<int8_t> w8(size_t(N * K));  // [N, K]
        std::vector<float> wf(size_t(N * K));   // [N, K]
        for (int64_t n = 0; n < N; ++n)
          for (int64_t k = 0; k < K; ++k) {
            const size_t src = size_t(cols ? k * ldb + n : n * ldb + k);
            w8[size_t(n * K + k)] = int8_t(int(B[src]) - 128);
            wf[size_t(n * K + k)] = Bf[src];
          }
        const std::vector<float> ones(size_t(N), 1.0f);
        const kernels::PackedQ8W lib8 = kernels::pack_q8w(w8.data(), N, K, ones.data());
        const kernels::PackedF16W lib16 = kernels::pack_f16w_from_f32(wf.data(), N, K);
        const kernels::PackedBF16W libbf = kernels::pack_bf16w_from_f32(wf.data(), N, K);
        kernels::PackedQ8W q8 = alloc_attn_q8(N, K);
        kernels::PackedF16W f16 = alloc_attn_f16(N, K);
        kernels::PackedBF16W bf = alloc_attn_bf16(N, K);
        for (int rep = 0; rep < 2; ++rep) {  // repacking into the same buffer
          if (cols) {
            pack_attn_q8_cols(B.data(), ldb, q8);
            pack_attn_f16_cols(Bf.data(), ldb, f16);
            pack_attn_bf16_cols(Bf.data(), ldb, bf);
          } else {
            pack_attn_q8_rows(B.data(), ldb, q8);
            pack_attn_f16_rows(Bf.data(), ldb, f16);
            pack_attn_bf16_rows(Bf.data(), ldb, bf);
          }
        }
        const std::string what = "N=" + std::to_string(N) + " K=" + std::to_string(K) + (cols ? " cols" : " rows");
        CHECK_MESSAGE(std::memcmp(q8.w.data(), lib8.w.data(), lib8.w.bytes) == 0, what);
        CHECK_MESSAGE(q8.colsum == lib8.colsum, what);
        CHECK_MESSAGE(q8.scale == lib8.scale, what);
        CHECK_MESSAGE(std::memcmp(f16.w.data(), lib16.w.data(), lib16.w.bytes) == 0, what);
        CHECK_MESSAGE(std::memcmp(bf.w.data(), libbf.w.data(), libbf.w.bytes) == 0, what);
      }
    }
}

TEST_CASE("native bert: the int8 attention product is bit-exact (every non-oneDNN int8 kernel)") {
  using namespace native::bert;
  std::mt19937 rng(2);
  const int64_t dims[] = {1, 5, 13, 32, 64, 67};
  int checked = 0;
  for (const auto& impl : kernels::gemm_qu8_qc8w_list().impls()) {
    if (!isa_enabled(impl.isa) || impl.fn == &kernels::gemm_qu8_qc8w__onednn) continue;
    for (int64_t M : dims)
      for (int64_t N : dims)
        for (int64_t K : {int64_t(4), int64_t(7), int64_t(64), int64_t(130), kAttnQ8MaxK}) {
          if (K == kAttnQ8MaxK && M * N > 200) continue;  // the extreme depth on small outputs only
          const bool extreme = K == kAttnQ8MaxK;
          const int64_t lda = K + 1, ldb = K + 2;
          std::vector<uint8_t> A = rand_u8(size_t(M * lda), rng), B = rand_u8(size_t(N * ldb), rng);
          int32_t za = int32_t(rng() % 256), zb = int32_t(rng() % 256);
          if (extreme) {  // largest |acc|: (255 - 0) * (0 - 128) summed over K
            std::fill(A.begin(), A.end(), uint8_t(255)), std::fill(B.begin(), B.end(), uint8_t(0));
            za = 0, zb = 255;
          }
          kernels::PackedQ8W w = alloc_attn_q8(N, K);
          pack_attn_q8_rows(B.data(), ldb, w);
          std::vector<float> C(size_t(M * N));                // [M, N]
          std::vector<int32_t> corr(static_cast<size_t>(M));  // [M]
          attn_q8_gemm(impl.fn, A.data(), lda, M, za, w, zb, C.data(), N, corr.data());
          int64_t bad = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              int64_t t = 0;
              for (int64_t k = 0; k < K; ++k)
                t += (int64_t(A[size_t(i * lda + k)]) - za) * (int64_t(B[size_t(j * ldb + k)]) - zb);
              bad += int64_t(int32_t(C[size_t(i * N + j)]) + corr[size_t(i)]) != t;
            }
          CHECK_MESSAGE(bad == 0, impl.name << " M=" << M << " N=" << N << " K=" << K);
          ++checked;
        }
  }
  CHECK(checked > 0);
  kernels::PackedQ8W too_deep = alloc_attn_q8(1, kAttnQ8MaxK + 1);
  std::vector<uint8_t> a(size_t(kAttnQ8MaxK + 1));
  float c = 0;
  int32_t r = 0;
  CHECK_THROWS_WITH(attn_q8_gemm(&kernels::gemm_qu8_qc8w_ref, a.data(), kAttnQ8MaxK + 1, 1, 0, too_deep, 0, &c, 1, &r),
                    doctest::Contains("exceeds"));
}

TEST_CASE("native bert: bad assignments and inputs are named") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  Assignment a = uniform(*m, Precision::int8, cal, 0);
  a["bert.encoder.layer.1.intermediate.dense"].act.clear();
  CHECK_THROWS_WITH(
      native::compile_bert(*m, a, {}),
      doctest::Contains("'bert.encoder.layer.1.intermediate.dense' is int8 but its input has no calibrated"));
  a = uniform(*m, Precision::int8, cal, 0);
  a["bert.encoder.layer.0.attention.self.pv"].act.erase(1);
  CHECK_THROWS_WITH(native::compile_bert(*m, a, {}), doctest::Contains("'bert.encoder.layer.0.attention.self.pv'"));
  a = uniform(*m, Precision::int4, cal, 16);
  CHECK_THROWS_WITH(native::compile_bert(*m, a, {}), doctest::Contains("int4 weight_group 16"));
  Assignment bad;
  bad["bert.encoder.layer.9.output.dense"] = {};
  CHECK_THROWS_WITH(native::compile_bert(*m, bad, {}), doctest::Contains("'bert.encoder.layer.9.output.dense'"));

  auto nm = native::compile_bert(*m, {}, {});
  models::Batch b = dev_batch(*m, 0, 1);
  b.ids[1] = int32_t(m->config().vocab_size);
  CHECK_THROWS_WITH(nm->run(b), doctest::Contains("outside the vocabulary"));
  b = dev_batch(*m, 0, 1);
  b.seq_len = m->config().max_pos + 1;
  b.ids.assign(size_t(b.seq_len), 1);
  b.mask.clear();
  CHECK_THROWS_WITH(nm->run(b), doctest::Contains("exceeds max_position_embeddings"));
}

TEST_CASE("native bert: profiled steps, implementations and weight bytes") {
  auto m = trained();
  const quant::Calibration cal = calibrate(*m);
  auto n32 = native::compile_bert(*m, {}, {});
  auto n8 = native::compile_bert(*m, uniform(*m, Precision::int8, cal, 0), {});
  const models::Batch b = dev_batch(*m, 0, 1);
  std::vector<native::StepTime> steps;
  const Tensor lp = n8->run_profiled(b, steps);
  CHECK(rel_diff(lp, n8->run(b)) == 0.0);
  std::map<std::string, int> seen;
  for (const auto& s : steps) {
    seen[s.name] += 1;
    CHECK(s.ms >= 0.0);
  }
  for (const auto& l : m->quant_layers()) {
    CHECK_MESSAGE(seen[l.name] == 1, l.name);
    bool quant_flag = false;
    for (const auto& s : steps)
      if (s.name == l.name) quant_flag = s.quant_layer;
    CHECK_MESSAGE(quant_flag, l.name);
  }
  for (const char* other :
       {"embeddings", "layer.0.softmax", "layer.1.layernorm1", "layer.1.gelu", "layer.0.layernorm2", "pooler.tanh"})
    CHECK_MESSAGE(seen[other] == 1, other);
  CHECK(steps.size() == m->quant_layers().size() + 1 + 4 * size_t(m->config().layers) + 1);
  const auto impl = n8->implementations();
  CHECK(impl.size() == m->quant_layers().size());
  for (const auto& l : m->quant_layers()) CHECK_MESSAGE(!impl.at(l.name).empty(), l.name);
  MESSAGE("int8 intermediate.dense runs " << impl.at("bert.encoder.layer.0.intermediate.dense") << ", qk runs "
                                          << impl.at("bert.encoder.layer.0.attention.self.qk"));
  // fp32: every parameter in f32, except that the token-type table is folded into the position table
  // (position + type 0, one [max_pos, D] table); int8: linears at 1 byte + scales, embeddings still f32.
  size_t params = 0;
  for (auto& [name, t] : m->named_tensors()) params += size_t(t->numel());
  const size_t type_rows = size_t(m->config().type_vocab * m->config().hidden);
  CHECK(n32->weight_bytes() == (params - type_rows) * 4);
  CHECK(n8->weight_bytes() < n32->weight_bytes());
  MESSAGE("weight bytes fp32 " << n32->weight_bytes() << ", int8 " << n8->weight_bytes());
}

TEST_CASE("native bert: a small per-channel int4 linear on int8 kernels (widened codes) equals the int4 kernels") {
  using native::bert::Linear;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (const auto& [N, K, M] : std::vector<std::array<int64_t, 3>>{{72, 100, 13}, {128, 512, 7}, {33, 64, 1}}) {
    INFO(N << " x " << K << ", M = " << M);
    std::vector<float> W(static_cast<size_t>(N * K)), b(static_cast<size_t>(N));  // [N, K], [N]
    for (float& v : W) v = u(rng);
    for (float& v : b) v = u(rng);
    LayerQuant lq;
    lq.precision = Precision::int4;
    lq.act[0] = quant::act_params_from_range(-1.0f, 3.0f);
    Linear wide, narrow;
    wide.build("t.linear", W.data(), b.data(), N, K, lq);
    narrow.build("t.linear", W.data(), b.data(), N, K, lq);
    REQUIRE(wide.w.widened());                           // N * K <= kWidenedInt4MaxWeights
    narrow.w.q8 = kernels::PackedQ8W{};                  // the same layer on the int4 kernels
    CHECK(wide.bytes() == narrow.bytes());               // the stored int4 bytes: the widened copy is not counted
    std::vector<uint8_t> A(static_cast<size_t>(M * K));  // [M, K] u8
    for (size_t i = 0; i < A.size(); ++i) A[i] = uint8_t((i * 37 + 11) % 256);
    for (DType dt : {DType::u8, DType::f32}) {
      std::vector<uint8_t> yw(size_t(M * N) * 4, 0), yn(yw.size(), 1);  // [M, N] in dt
      kernels::ActOut ow{dt, yw.data(), N, 0.05f, 20}, on{dt, yn.data(), N, 0.05f, 20};
      wide.choose_impl(A.data(), K, M, ow, nullptr, 0, false, 1);
      narrow.choose_impl(A.data(), K, M, on, nullptr, 0, false, 1);
      CHECK(wide.impl.rfind("q4_as_q8+", 0) == 0);
      CHECK(narrow.impl.find("qc4w") != std::string::npos);
      wide.run(A.data(), K, M, ow, nullptr, 0);
      narrow.run(A.data(), K, M, on, nullptr, 0);
      CHECK(std::memcmp(yw.data(), yn.data(), size_t(M * N) * (dt == DType::u8 ? 1 : 4)) == 0);
    }
  }
}
