#include "models/data/image.h"

#include <turbojpeg.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "core/file_io.h"

namespace mpq::data {
namespace {

struct TjDeleter {
  void operator()(void* h) const { tjDestroy(h); }
};
using TjHandle = std::unique_ptr<void, TjDeleter>;

constexpr std::array<float, 3> kCaffeMeanBGR = {103.939f, 116.779f, 123.68f};
constexpr std::array<float, 3> kTorchMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kTorchStd = {0.229f, 0.224f, 0.225f};

// Which RGB byte feeds output channel c.
int source_channel(Preset p, int c) { return p == Preset::KerasCaffe ? 2 - c : c; }

}  // namespace

Image decode_jpeg(const uint8_t* bytes, size_t size, std::string_view name) {
  check(size > 0, "'{}': empty file, not a JPEG", name);
  check(size <= 0xFFFFFFFFu, "'{}': file too large for TurboJPEG ({} bytes)", name, size);
  TjHandle h(tjInitDecompress());
  check(h != nullptr, "'{}': tjInitDecompress failed: {}", name, tjGetErrorStr2(nullptr));
  int w = 0, hgt = 0, subsamp = 0, colorspace = 0;
  // const_cast: TurboJPEG 2.1's API takes non-const source buffers but does not write them.
  auto* src = const_cast<unsigned char*>(bytes);
  const auto len = static_cast<unsigned long>(size);
  if (tjDecompressHeader3(h.get(), src, len, &w, &hgt, &subsamp, &colorspace) != 0)
    fail("'{}': not a JPEG or corrupt header: {}", name, tjGetErrorStr2(h.get()));
  check(w > 0 && hgt > 0, "'{}': bad JPEG dimensions {}x{}", name, w, hgt);
  check(w <= kMaxImageSide && hgt <= kMaxImageSide,
        "'{}': JPEG dimensions {}x{} exceed the maximum {}x{} (refused before decoding)", name, w, hgt, kMaxImageSide,
        kMaxImageSide);
  Image img;
  img.width = w;
  img.height = hgt;
  img.rgb.resize(size_t(w) * size_t(hgt) * 3);
  // flags 0 = accurate integer IDCT + fancy upsampling. A non-zero return covers both errors and
  // warnings (truncated data is only a warning in libjpeg); both are rejected.
  if (tjDecompress2(h.get(), src, len, img.rgb.data(), w, w * 3, hgt, TJPF_RGB, 0) != 0) {
    const bool warning = tjGetErrorCode(h.get()) == TJERR_WARNING;
    fail("'{}': JPEG decode {}: {}", name, warning ? "failed (corrupt or truncated data)" : "error",
         tjGetErrorStr2(h.get()));
  }
  return img;
}

Image decode_jpeg_file(const std::string& path) {
  const std::vector<uint8_t> bytes = read_regular_file(path, kMaxImageFileBytes, "image file");
  return decode_jpeg(bytes.data(), bytes.size(), path);
}

Image center_crop(const Image& img, int size) {
  check(size > 0 && img.width >= size && img.height >= size, "center_crop: image {}x{} smaller than crop {}", img.width,
        img.height, size);
  const int x0 = (img.width - size) / 2, y0 = (img.height - size) / 2;
  Image out;
  out.width = out.height = size;
  out.rgb.resize(size_t(size) * size_t(size) * 3);
  for (int y = 0; y < size; ++y) {
    const uint8_t* s = &img.rgb[(size_t(y0 + y) * size_t(img.width) + size_t(x0)) * 3];
    std::memcpy(&out.rgb[size_t(y) * size_t(size) * 3], s, size_t(size) * 3);
  }
  return out;
}

Image resize_bilinear(const Image& img, int out_w, int out_h) {
  check(out_w > 0 && out_h > 0 && img.width > 0 && img.height > 0, "resize_bilinear: bad sizes {}x{} -> {}x{}",
        img.width, img.height, out_w, out_h);
  struct Tap {
    int i0, i1;
    float w1;  // weight of i1; i0 gets 1 - w1
  };
  auto taps = [](int in, int out) {
    std::vector<Tap> t(static_cast<size_t>(out));
    const double scale = double(in) / double(out);
    for (int o = 0; o < out; ++o) {
      double s = (o + 0.5) * scale - 0.5;  // half-pixel centers
      s = std::clamp(s, 0.0, double(in - 1));
      const int i0 = int(std::floor(s));
      const int i1 = std::min(i0 + 1, in - 1);
      t[size_t(o)] = {i0, i1, float(s - i0)};
    }
    return t;
  };
  const std::vector<Tap> tx = taps(img.width, out_w), ty = taps(img.height, out_h);
  Image out;
  out.width = out_w;
  out.height = out_h;
  out.rgb.resize(size_t(out_w) * size_t(out_h) * 3);
  for (int y = 0; y < out_h; ++y) {
    const Tap& a = ty[size_t(y)];
    for (int x = 0; x < out_w; ++x) {
      const Tap& b = tx[size_t(x)];
      for (int c = 0; c < 3; ++c) {
        const float top = img.at(a.i0, b.i0, c) * (1 - b.w1) + img.at(a.i0, b.i1, c) * b.w1;
        const float bot = img.at(a.i1, b.i0, c) * (1 - b.w1) + img.at(a.i1, b.i1, c) * b.w1;
        const float v = top * (1 - a.w1) + bot * a.w1;
        out.rgb[(size_t(y) * size_t(out_w) + size_t(x)) * 3 + size_t(c)] =
            uint8_t(std::clamp(std::lround(v), 0l, 255l));
      }
    }
  }
  return out;
}

Image resize_shorter_side(const Image& img, int shorter) {
  check(shorter > 0 && img.width > 0 && img.height > 0, "resize_shorter_side: bad sizes");
  const bool portrait = img.width <= img.height;
  const double longer =
      std::round(double(portrait ? img.height : img.width) * shorter / double(portrait ? img.width : img.height));
  // An extreme aspect ratio (e.g. 8192x2 -> 256x1048576) would allocate gigabytes: the result is bounded
  // like a decoded image.
  check(longer <= kMaxImageSide,
        "image {}x{}: resizing the shorter side to {} gives a longer side of {}, over the "
        "maximum {} (aspect ratio too extreme)",
        img.width, img.height, shorter, longer, kMaxImageSide);
  const int l = std::max(int(longer), 1);
  return portrait ? resize_bilinear(img, shorter, l) : resize_bilinear(img, l, shorter);
}

Image crop_for_model(const Image& img, int size, int resize_shorter) {
  check(resize_shorter >= size, "crop_for_model: resize_shorter {} < crop size {}", resize_shorter, size);
  const int m = std::min(img.width, img.height);
  if (m >= size && m <= resize_shorter) return center_crop(img, size);
  return center_crop(resize_shorter_side(img, resize_shorter), size);
}

std::string_view preset_name(Preset p) {
  switch (p) {
    case Preset::KerasCaffe:
      return "keras_caffe";
    case Preset::TFLiteMobileNet:
      return "tflite_mobilenet";
    case Preset::Torchvision:
      return "torchvision";
  }
  return "?";
}

Preset parse_preset(std::string_view name) {
  for (Preset p : {Preset::KerasCaffe, Preset::TFLiteMobileNet, Preset::Torchvision})
    if (preset_name(p) == name) return p;
  fail("unknown preprocessing preset '{}' (expected keras_caffe, tflite_mobilenet or torchvision)", name);
}

int label_offset(Preset p) { return p == Preset::TFLiteMobileNet ? 1 : 0; }
int num_model_classes(Preset p) { return p == Preset::TFLiteMobileNet ? 1001 : 1000; }

float preprocess_value(Preset p, int c, uint8_t v) {
  switch (p) {
    case Preset::KerasCaffe:
      return float(v) - kCaffeMeanBGR[size_t(c)];
    case Preset::TFLiteMobileNet:
      return (float(v) - 128.0f) / 128.0f;  // exact in float32
    case Preset::Torchvision:
      return (float(v) / 255.0f - kTorchMean[size_t(c)]) / kTorchStd[size_t(c)];
  }
  return 0.0f;
}

void preprocess_into(const Image& img, Preset p, float* dst) {
  check(img.width == img.height && img.width > 0, "preprocess: image must be square, got {}x{}", img.width, img.height);
  // 256-entry table per output channel, filled with preprocess_value, so results are bit-identical to it.
  std::array<std::array<float, 256>, 3> lut{};
  for (int c = 0; c < 3; ++c)
    for (int v = 0; v < 256; ++v) lut[size_t(c)][size_t(v)] = preprocess_value(p, c, uint8_t(v));
  const size_t plane = size_t(img.width) * size_t(img.height);
  for (int c = 0; c < 3; ++c) {
    const int sc = source_channel(p, c);
    const float* table = lut[size_t(c)].data();
    float* out = dst + size_t(c) * plane;
    for (size_t i = 0; i < plane; ++i) out[i] = table[img.rgb[i * 3 + size_t(sc)]];
  }
}

void preprocess_into(const Image& img, Preset p, Tensor& batch, int64_t n) {
  if (!(batch.defined() && batch.dtype() == DType::f32 && batch.is_contiguous() && batch.dim() == 4))
    fail("preprocess_into: batch must be a contiguous f32 [N,3,H,W] tensor, got {}",
         batch.defined() ? shape_str(batch.shape()) : std::string("undefined"));
  if (!(batch.size(1) == 3 && batch.size(2) == img.height && batch.size(3) == img.width))
    fail("preprocess_into: batch {} does not fit a {}x{} image", shape_str(batch.shape()), img.width, img.height);
  if (!(n >= 0 && n < batch.size(0)))
    fail("preprocess_into: slot {} out of range for batch {}", n, shape_str(batch.shape()));
  preprocess_into(img, p, batch.data<float>() + n * 3 * int64_t(img.width) * img.height);
}

Tensor preprocess(const Image& img, Preset p) {
  Tensor t = Tensor::zeros({1, 3, img.height, img.width});
  preprocess_into(img, p, t, 0);
  return t;
}

Tensor load_image(const std::string& path, Preset p) { return preprocess(crop_for_model(decode_jpeg_file(path)), p); }

}  // namespace mpq::data
