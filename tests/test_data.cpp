// Data input: JPEG decode + preprocessing presets, ImageNet folder dataset, SST-2 reader, WordPiece
// tokenizer and vocab builder. Uses the real files under MPQ_SHARED_DATA.
#include <doctest/doctest.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/threading.h"
#include "models/data/image.h"
#include "models/data/imagenet.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace mpq;
using namespace mpq::data;

namespace {

const std::string kShared = MPQ_SHARED_DATA;
const std::string kImagenet = kShared + "/imagenet-val-1300";
const std::string kFirstImage = kImagenet + "/images/ILSVRC2012_val_00000347.JPEG";  // labels.txt line 1, class 472

using testing::TempDir;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), std::streamsize(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

// Runs f, which must throw mpq::Error; returns the message.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const mpq::Error& e) {
    return e.what();
  }
  FAIL("expected mpq::Error");
  return {};
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

}  // namespace

// ---------------------------------------------------------------- image

TEST_CASE("image: decode a real ImageNet JPEG, shape and pixel statistics") {
  const Image img = decode_jpeg_file(kFirstImage);
  REQUIRE(img.width == 227);
  REQUIRE(img.height == 227);
  REQUIRE(img.rgb.size() == size_t(227 * 227 * 3));
  double sum[3] = {0, 0, 0}, sq[3] = {0, 0, 0};
  for (size_t i = 0; i < img.rgb.size(); ++i) {
    sum[i % 3] += img.rgb[i];
    sq[i % 3] += double(img.rgb[i]) * img.rgb[i];
  }
  const double n = 227.0 * 227.0;
  for (int c = 0; c < 3; ++c) {
    const double mean = sum[c] / n, sd = std::sqrt(sq[c] / n - mean * mean);
    CHECK(mean > 10.0);
    CHECK(mean < 245.0);
    CHECK(sd > 5.0);  // a natural photo, not a flat or garbage buffer
  }
}

TEST_CASE("image: preset values at given pixels match an independent calculation") {
  const Image img = decode_jpeg_file(kFirstImage);
  const Image crop = crop_for_model(img);  // 227 -> 224: direct center crop at offset (227-224)/2 = 1
  REQUIRE(crop.width == 224);
  REQUIRE(crop.height == 224);
  const int pts[][2] = {{0, 0}, {57, 100}, {111, 112}, {223, 223}, {5, 200}};
  for (auto [y, x] : pts)
    for (int c = 0; c < 3; ++c) REQUIRE(crop.at(y, x, c) == img.at(y + 1, x + 1, c));

  const Tensor caffe = preprocess(crop, Preset::KerasCaffe);
  const Tensor tfl = preprocess(crop, Preset::TFLiteMobileNet);
  const Tensor tv = preprocess(crop, Preset::Torchvision);
  CHECK(caffe.shape() == Shape{1, 3, 224, 224});
  CHECK(tfl.shape() == Shape{1, 3, 224, 224});
  CHECK(tv.shape() == Shape{1, 3, 224, 224});
  const double caffe_mean_bgr[3] = {103.939, 116.779, 123.68};
  const double tv_mean[3] = {0.485, 0.456, 0.406}, tv_std[3] = {0.229, 0.224, 0.225};
  for (auto [y, x] : pts) {
    const int r = img.at(y + 1, x + 1, 0), g = img.at(y + 1, x + 1, 1), b = img.at(y + 1, x + 1, 2);
    const int rgb[3] = {r, g, b}, bgr[3] = {b, g, r};
    for (int c = 0; c < 3; ++c) {
      CHECK(caffe.at({0, c, y, x}) == doctest::Approx(bgr[c] - caffe_mean_bgr[c]).epsilon(1e-6));
      CHECK(tfl.at({0, c, y, x}) == float((rgb[c] - 128) / 128.0));  // exact: k/128 is representable
      CHECK(tv.at({0, c, y, x}) == doctest::Approx((rgb[c] / 255.0 - tv_mean[c]) / tv_std[c]).epsilon(1e-5));
    }
  }
  // TFLite values lie in [-1, 127/128].
  float lo = 1e9f, hi = -1e9f;
  for (float v : tfl.to_vector()) lo = std::min(lo, v), hi = std::max(hi, v);
  CHECK(lo >= -1.0f);
  CHECK(hi <= 127.0f / 128.0f);
}

TEST_CASE("image: KerasCaffe channel order is BGR") {
  const Image crop = crop_for_model(decode_jpeg_file(kFirstImage));
  const Tensor caffe = preprocess(crop, Preset::KerasCaffe);
  const float* d = caffe.data<float>();
  const size_t plane = 224 * 224;
  // Plane sums against the byte planes: plane 0 is blue (RGB byte 2), plane 2 is red (RGB byte 0).
  double plane_sum[3] = {0, 0, 0}, byte_sum[3] = {0, 0, 0};
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) {
      plane_sum[c] += d[size_t(c) * plane + i];
      byte_sum[c] += crop.rgb[i * 3 + size_t(c)];
    }
  CHECK(plane_sum[0] / plane + 103.939 == doctest::Approx(byte_sum[2] / plane).epsilon(1e-5));
  CHECK(plane_sum[1] / plane + 116.779 == doctest::Approx(byte_sum[1] / plane).epsilon(1e-5));
  CHECK(plane_sum[2] / plane + 123.68 == doctest::Approx(byte_sum[0] / plane).epsilon(1e-5));
  CHECK(byte_sum[0] != byte_sum[2]);  // the check above can tell the orders apart for this image
  CHECK(label_offset(Preset::KerasCaffe) == 0);
  CHECK(label_offset(Preset::Torchvision) == 0);
  CHECK(label_offset(Preset::TFLiteMobileNet) == 1);
  CHECK(num_model_classes(Preset::TFLiteMobileNet) == 1001);
  CHECK(parse_preset("tflite_mobilenet") == Preset::TFLiteMobileNet);
  CHECK(contains(error_of([] { parse_preset("caffe2"); }), "caffe2"));
}

TEST_CASE("image: resize path, bilinear resize and crop policy") {
  // Horizontal ramp 400x300: resizing the shorter side 300 -> 256 gives 341x256, then a 224 crop.
  Image ramp;
  ramp.width = 400;
  ramp.height = 300;
  ramp.rgb.resize(400 * 300 * 3);
  for (int y = 0; y < 300; ++y)
    for (int x = 0; x < 400; ++x)
      for (int c = 0; c < 3; ++c)
        ramp.rgb[(size_t(y) * 400 + size_t(x)) * 3 + size_t(c)] = uint8_t(c == 0 ? x * 255 / 399 : 77);
  const Image r = resize_shorter_side(ramp, 256);
  CHECK(r.width == 341);
  CHECK(r.height == 256);
  const Image c = crop_for_model(ramp);
  REQUIRE(c.width == 224);
  REQUIRE(c.height == 224);
  for (int x = 1; x < 224; ++x) CHECK(c.at(100, x, 0) >= c.at(100, x - 1, 0));  // ramp stays monotone
  CHECK(c.at(10, 10, 1) == 77);                                                 // constant stays exact
  // Same-size resize is the identity; small images are upscaled then cropped.
  const Image same = resize_bilinear(ramp, 400, 300);
  CHECK(same.rgb == ramp.rgb);
  Image tiny;
  tiny.width = 100;
  tiny.height = 50;
  tiny.rgb.assign(100 * 50 * 3, 200);
  const Image up = crop_for_model(tiny);
  CHECK(up.width == 224);
  CHECK(up.rgb == std::vector<uint8_t>(224 * 224 * 3, 200));
  // A 2x2 -> 4x4 upscale with half-pixel centers: output x=1 samples source 0.25 -> 0.75*a + 0.25*b.
  Image two;
  two.width = 2;
  two.height = 1;
  two.rgb = {0, 0, 0, 100, 100, 100};
  const Image four = resize_bilinear(two, 4, 1);
  CHECK(four.at(0, 0, 0) == 0);  // clamped to the border
  CHECK(four.at(0, 1, 0) == 25);
  CHECK(four.at(0, 2, 0) == 75);
  CHECK(four.at(0, 3, 0) == 100);
}

TEST_CASE("image: corrupt, truncated, empty and missing files give errors naming the file") {
  TempDir tmp("image");
  const std::string good = read_bytes(kFirstImage);
  REQUIRE(good.size() > 1000);
  const std::string truncated = tmp.file("truncated.jpg");
  write_bytes(truncated, good.substr(0, good.size() / 2));
  std::string msg = error_of([&] { decode_jpeg_file(truncated); });
  CHECK(contains(msg, "truncated.jpg"));
  MESSAGE(msg);
  const std::string garbage = tmp.file("garbage.jpg");
  write_bytes(garbage, std::string(4096, '\x5a'));
  msg = error_of([&] { decode_jpeg_file(garbage); });
  CHECK(contains(msg, "garbage.jpg"));
  CHECK(contains(msg, "not a JPEG"));
  const std::string header_only = tmp.file("header_only.jpg");
  write_bytes(header_only, good.substr(0, 200));
  CHECK(contains(error_of([&] { decode_jpeg_file(header_only); }), "header_only.jpg"));
  const std::string empty = tmp.file("empty.jpg");
  write_bytes(empty, "");
  CHECK(contains(error_of([&] { decode_jpeg_file(empty); }), "empty.jpg"));
  CHECK(contains(error_of([&] { decode_jpeg_file(tmp.file("nope.jpg")); }), "nope.jpg"));
}

// ---------------------------------------------------------------- imagenet

TEST_CASE("imagenet: folder lists 1300 samples in labels.txt order, labels in range") {
  const ImageNetFolder ds(kImagenet);
  REQUIRE(ds.size() == 1300);
  CHECK(ds.sample(0).file == "ILSVRC2012_val_00000347.JPEG");
  CHECK(ds.sample(0).label == 472);
  CHECK(ds.sample(1).label == 260);
  for (const ImageNetSample& s : ds.samples()) {
    CHECK(s.label >= 0);
    CHECK(s.label < 1000);
  }
  CHECK_THROWS_AS(ds.sample(1300), mpq::Error);
}

TEST_CASE("imagenet: load_batch decodes in parallel and matches the single-image path") {
  const ImageNetFolder ds(kImagenet);
  const int saved = mpq::num_threads();
  mpq::set_num_threads(2);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 32; ++i) idx.push_back(i * 40);
  ds.load_batch(idx, Preset::TFLiteMobileNet);  // warm-up: thread pool, page cache
  const auto t0 = std::chrono::steady_clock::now();
  const ImageBatch b = ds.load_batch(idx, Preset::TFLiteMobileNet);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("decode+crop+preprocess of 32 images with 2 threads: " << ms << " ms");
  REQUIRE(b.images.shape() == Shape{32, 3, 224, 224});
  REQUIRE(b.labels.size() == 32);
  for (size_t i = 0; i < 32; ++i) CHECK(b.labels[i] == ds.sample(size_t(idx[i])).label + 1);  // background at 0
  for (size_t i : {size_t(0), size_t(17), size_t(31)}) {
    const Tensor one = load_image(ds.sample(size_t(idx[i])).path, Preset::TFLiteMobileNet);
    const float* a = one.data<float>();
    const float* row = b.images.data<float>() + i * 3 * 224 * 224;
    CHECK(std::equal(a, a + 3 * 224 * 224, row));
  }
  // Every real image decodes without a libjpeg warning.
  for (int64_t begin = 0; begin < int64_t(ds.size()); begin += 100)
    CHECK_NOTHROW(ds.load_range(begin, 100, Preset::KerasCaffe));
  mpq::set_num_threads(saved);
}

TEST_CASE("imagenet: folder errors") {
  TempDir tmp("imagenet");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.file("missing")); }), "missing"));
  // Empty folder: no labels.txt.
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "labels.txt"));
  fs::create_directories(tmp.path / "images");
  write_bytes(tmp.file("labels.txt"), "");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "empty"));
  write_bytes(tmp.file("labels.txt"), "\n# only a comment\n\n");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "no usable samples"));
  write_bytes(tmp.file("images/a.jpg"), read_bytes(kFirstImage));
  write_bytes(tmp.file("labels.txt"), "a.jpg 3\na.jpg\n");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "labels.txt:2"));
  write_bytes(tmp.file("labels.txt"), "a.jpg x7\n");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "labels.txt:1"));
  write_bytes(tmp.file("labels.txt"), "a.jpg 3\na.jpg 1000\n");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "out of range"));
  write_bytes(tmp.file("labels.txt"), "a.jpg 3\nb.jpg 4\n");
  CHECK(contains(error_of([&] { ImageNetFolder(tmp.path.string()); }), "b.jpg"));
  // A listed file that is not a JPEG fails at load time with its name.
  write_bytes(tmp.file("images/b.jpg"), "not a jpeg at all");
  const ImageNetFolder ds(tmp.path.string());
  CHECK(ds.size() == 2);
  CHECK(contains(error_of([&] { ds.load_batch({0, 1}, Preset::Torchvision); }), "b.jpg"));
  const ImageBatch one = ds.load_batch({0}, Preset::Torchvision);
  CHECK(one.labels == std::vector<int>{3});
}

// ---------------------------------------------------------------- sst2

TEST_CASE("sst2: split sizes and labels") {
  const auto train = read_sst2(kShared + "/sst2/train.tsv");
  const auto dev = read_sst2(kShared + "/sst2/dev.tsv");
  const auto test = read_sst2(kShared + "/sst2/test.tsv");
  CHECK(train.size() == 6920);
  CHECK(dev.size() == 872);
  CHECK(test.size() == 1821);
  CHECK(dev[0].label == 0);
  CHECK(dev[0].sentence == "one long string of cliches .");
  int pos = 0;
  for (const auto& e : dev) pos += e.label;
  CHECK(pos > 300);
  CHECK(pos < 572);
}

TEST_CASE("sst2: errors name file and line") {
  TempDir tmp("sst2");
  CHECK(contains(error_of([&] { read_sst2(tmp.file("none.tsv")); }), "none.tsv"));
  write_bytes(tmp.file("a.tsv"), "1\tgood\n0 no tab here\n");
  CHECK(contains(error_of([&] { read_sst2(tmp.file("a.tsv")); }), "a.tsv:2"));
  write_bytes(tmp.file("b.tsv"), "1\tgood\n0\tbad\n2\tugly\n");
  CHECK(contains(error_of([&] { read_sst2(tmp.file("b.tsv")); }), "b.tsv:3"));
  write_bytes(tmp.file("c.tsv"), "1\t \n");
  CHECK(contains(error_of([&] { read_sst2(tmp.file("c.tsv")); }), "c.tsv:1"));
  write_bytes(tmp.file("d.tsv"), "");
  CHECK(contains(error_of([&] { read_sst2(tmp.file("d.tsv")); }), "d.tsv"));
}

// ---------------------------------------------------------------- tokenizer

namespace {
// Ids are the positions in this list.
const std::vector<std::string> kSmallVocab = {
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",  // 0-4
    "the",
    "cafe",
    "un",
    "##aff",
    "##able",  // 5-9
    ",",
    "!",
    ".",
    "'",
    "s",  // 10-14
    "hello",
    "world",
    "\xe4\xb8\xad",
    "\xe5\x9b\xbd",
    "a",  // 15-19 (中 = U+4E2D, 国 = U+56FD)
    "##b",
    "naive",
    "-",
    "##s",
    "run",  // 20-24
    "##ning",
    "##n",
    "\xc3\xb8",
    "x",  // 25-28 (ø = U+00F8)
};
BertTokenizer small_tokenizer() { return BertTokenizer(Vocab(kSmallVocab)); }
std::vector<int32_t> ids(const BertTokenizer& t, const std::string& s) { return t.to_ids(t.tokenize(s)); }
using V = std::vector<int32_t>;
}  // namespace

TEST_CASE("tokenizer: basic tokenization, accents, punctuation, CJK") {
  const BertTokenizer t = small_tokenizer();
  // Lower-case, then greedy longest-match: "unaffable" -> un ##aff ##able.
  CHECK(t.tokenize("UNaffable") == std::vector<std::string>{"un", "##aff", "##able"});
  CHECK(ids(t, "UNaffable") == V{7, 8, 9});
  CHECK(ids(t, "Hello, World!") == V{15, 10, 16, 11});
  // Accents: precomposed U+00E9 and decomposed e + U+0301 both strip to "cafe"; "naïve" -> "naive".
  CHECK(ids(t, "Caf\xc3\xa9") == V{6});
  CHECK(ids(t, "CAF\xc3\x89") == V{6});
  CHECK(ids(t, "Cafe\xcc\x81") == V{6});
  CHECK(ids(t, "na\xc3\xafve") == V{21});
  // Ø lower-cases to ø, which has no decomposition and is kept.
  CHECK(ids(t, "\xc3\x98") == V{27});
  // Apostrophe is punctuation; "cat" cannot be matched at all -> one [UNK] for the word.
  CHECK(ids(t, "the cat's") == V{5, 1, 13, 14});
  CHECK(ids(t, "x-ray") == V{28, 22, 1});
  // '$' (ASCII 36) is punctuation under HF's rule; "b" alone is not in the vocab (only "##b").
  CHECK(ids(t, "a$b") == V{19, 1, 1});
  // Unicode punctuation: U+2026 ellipsis and guillemets split off (and are [UNK] here).
  CHECK(t.basic_tokenize("hello\xe2\x80\xa6world") == std::vector<std::string>{"hello", "\xe2\x80\xa6", "world"});
  CHECK(ids(t, "\xc2\xabhello\xc2\xbb") == V{1, 15, 1});
  // CJK ideographs become separate tokens even without spaces.
  CHECK(ids(t, "the\xe4\xb8\xad\xe5\x9b\xbd") == V{5, 17, 18});
  // Cleaning: NUL, BEL and U+200B (Cf) vanish; tab, newline and NBSP (Zs) separate words.
  CHECK(ids(t, std::string("the\0\x07 wor", 9) + "ld\xe2\x80\x8b") == V{5, 16});
  CHECK(ids(t, "the\tworld\n") == V{5, 16});
  // Private use U+E000 (Co) and unassigned U+0378 (Cn) are category C* and dropped like controls.
  CHECK(ids(t, "the \xee\x80\x80wor\xcd\xb8ld") == V{5, 16});
  CHECK(ids(t, "the\xc2\xa0world") == V{5, 16});
  // Invalid UTF-8 is replaced by U+FFFD and dropped.
  CHECK(ids(t, "the\xff world") == V{5, 16});
  CHECK(t.tokenize("   ").empty());
  // Beyond Latin: NFD + drop Mn also strips Greek tonos ('Ά' U+0386 -> 'α') and kana voicing marks
  // ('ガ' U+30AC -> 'カ' U+30AB); Hangul '한' U+D55C = 0xAC00 + 18*588 + 0*28 + 4 decomposes to jamo
  // U+1112 U+1161 U+11AB.
  CHECK(t.basic_tokenize("\xce\x86 \xe3\x82\xac \xed\x95\x9c") ==
        std::vector<std::string>{"\xce\xb1", "\xe3\x82\xab", "\xe1\x84\x92\xe1\x85\xa1\xe1\x86\xab"});
}

TEST_CASE("tokenizer: wordpiece continuation pieces and [UNK] rules") {
  const BertTokenizer t = small_tokenizer();
  CHECK(ids(t, "running") == V{24, 25});
  CHECK(ids(t, "runs") == V{24, 23});
  CHECK(ids(t, "runn") == V{24, 26});
  CHECK(ids(t, "abb") == V{19, 20, 20});
  CHECK(ids(t, "runx") == V{1});  // unmatchable remainder -> the whole word is [UNK]
  // max_input_chars_per_word = 100 code points: 100 chars are split, 101 chars are one [UNK].
  const std::string w100 = "a" + std::string(99, 'b');
  const std::vector<int32_t> p100 = ids(t, w100);
  REQUIRE(p100.size() == 100);
  CHECK(p100[0] == 19);
  CHECK(p100[99] == 20);
  CHECK(ids(t, w100 + "b") == V{1});
}

TEST_CASE("tokenizer: encode with [CLS]/[SEP], truncation, padding and mask") {
  const BertTokenizer t = small_tokenizer();
  Encoding e = t.encode("Hello, World!", 8);
  CHECK(e.ids == V{2, 15, 10, 16, 11, 3, 0, 0});
  CHECK(e.mask == V{1, 1, 1, 1, 1, 1, 0, 0});
  e = t.encode("Hello, World!", 4);
  CHECK(e.ids == V{2, 15, 10, 3});
  CHECK(e.mask == V{1, 1, 1, 1});
  e = t.encode("", 3);
  CHECK(e.ids == V{2, 3, 0});
  CHECK_THROWS_AS(t.encode("x", 1), mpq::Error);

  const BatchEncoding b = t.encode_batch({"the cafe", "UNaffable world", "x"}, 6);
  REQUIRE(b.ids.shape() == Shape{3, 6});
  REQUIRE(b.ids.dtype() == DType::i32);
  const int32_t* bi = b.ids.data<int32_t>();
  const int32_t* bm = b.mask.data<int32_t>();
  CHECK(V(bi, bi + 18) == V{2, 5, 6, 3, 0, 0, /**/ 2, 7, 8, 9, 16, 3, /**/ 2, 28, 3, 0, 0, 0});
  CHECK(V(bm, bm + 18) == V{1, 1, 1, 1, 0, 0, /**/ 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 0, 0, 0});
  const BatchEncoding l = t.encode_batch({"the", "hello world"}, 10, Padding::Longest);
  REQUIRE(l.ids.shape() == Shape{2, 4});
  const int32_t* li = l.ids.data<int32_t>();
  CHECK(V(li, li + 8) == V{2, 5, 3, 0, 2, 15, 16, 3});
}

TEST_CASE("tokenizer: vocab load/save and missing special tokens") {
  TempDir tmp("vocab");
  Vocab(kSmallVocab).save(tmp.file("vocab.txt"));
  const BertTokenizer t = BertTokenizer::from_file(tmp.file("vocab.txt"));
  CHECK(t.vocab().tokens() == kSmallVocab);
  CHECK(t.pad_id() == 0);
  CHECK(t.sep_id() == 3);
  CHECK(contains(error_of([] { BertTokenizer(Vocab({"[PAD]", "[UNK]", "[CLS]"})); }), "[SEP]"));
  write_bytes(tmp.file("dup.txt"), "[PAD]\n[UNK]\nthe\nthe\n");
  CHECK(contains(error_of([&] { Vocab::load(tmp.file("dup.txt")); }), "dup.txt:4"));
  CHECK(contains(error_of([&] { Vocab::load(tmp.file("none.txt")); }), "none.txt"));
  // [PAD] need not be id 0.
  const BertTokenizer p(Vocab({"[UNK]", "[CLS]", "[SEP]", "[PAD]", "a"}));
  CHECK(p.encode("a", 4).ids == V{1, 4, 2, 3});
}

TEST_CASE("vocab: builder on SST-2 train is deterministic and covers SST-2 dev") {
  std::vector<std::string> train, dev;
  for (auto& e : read_sst2(kShared + "/sst2/train.tsv")) train.push_back(e.sentence);
  for (auto& e : read_sst2(kShared + "/sst2/dev.tsv")) dev.push_back(e.sentence);
  const Vocab v1 = build_wordpiece_vocab(train, 8000, 2);
  const Vocab v2 = build_wordpiece_vocab(train, 8000, 2);
  CHECK(v1.tokens() == v2.tokens());
  CHECK(v1.size() == 8000);
  CHECK(v1.token(0) == "[PAD]");
  CHECK(v1.token(1) == "[UNK]");
  CHECK(v1.token(2) == "[CLS]");
  CHECK(v1.token(3) == "[SEP]");
  CHECK(v1.token(4) == "[MASK]");
  CHECK(v1.contains("the"));
  CHECK(v1.contains("##s"));
  const BertTokenizer tok(v1);
  const double rate = unk_rate(tok, dev);
  int64_t pieces = 0, words = 0;
  for (const auto& s : dev) {
    pieces += int64_t(tok.tokenize(s).size());
    words += int64_t(tok.basic_tokenize(s).size());
  }
  MESSAGE("SST-2 dev [UNK] rate with the " << v1.size() << "-token vocab: " << rate * 100 << "% of " << pieces
                                           << " pieces (" << double(pieces) / double(words) << " pieces/word)");
  CHECK(rate < 0.001);  // measured 0.005% (1 of 21788 pieces)
  TempDir tmp("vocabbuild");
  v1.save(tmp.file("vocab.txt"));
  CHECK(Vocab::load(tmp.file("vocab.txt")).tokens() == v1.tokens());
}
