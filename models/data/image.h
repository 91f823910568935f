// JPEG decoding (TurboJPEG), cropping/resizing, and the per-model preprocessing presets.
//
// Pixel layout of Image: interleaved HWC, RGB order, uint8, row-major, no row padding.
// Model input layout: NCHW float32, 3 channels, 224x224 unless stated otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace mpq::data {

// Largest image side decoded (and produced by resize_shorter_side): 8192 px, 192 MiB of RGB8 at 8192x8192.
// ImageNet photos are at most a few thousand pixels a side; a header claiming more is refused before any
// pixel buffer is allocated.
inline constexpr int kMaxImageSide = 8192;

struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // height * width * 3 bytes, RGB
  uint8_t at(int y, int x, int c) const { return rgb[(size_t(y) * size_t(width) + size_t(x)) * 3 + size_t(c)]; }
};

// Decodes a whole JPEG file to RGB8 with libjpeg-turbo's default (accurate integer, "islow") IDCT and
// fancy upsampling, i.e. what PIL / tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE") produce.
// Only regular files of at most kMaxImageFileBytes are read (core/file_io.h); dimensions over kMaxImageSide
// are refused from the header. Every failure (unreadable file, empty file, not a JPEG, truncated or corrupt
// data, including what
// libjpeg only reports as a warning such as "Premature end of JPEG file") throws mpq::Error naming the
// file and carrying tjGetErrorStr2's text.
Image decode_jpeg_file(const std::string& path);
// Same, from memory; `name` is only used in error messages.
Image decode_jpeg(const uint8_t* bytes, size_t size, std::string_view name);

// Center crop to size x size. The top-left corner is ((w - size) / 2, (h - size) / 2) rounded DOWN
// (a 227x227 image is cropped at offset 1). Torchvision's CenterCrop rounds half to even (offset 2 for
// 227), tf.image.central_crop rounds down. Requires w, h >= size.
Image center_crop(const Image& img, int size);

// Bilinear resize with half-pixel centers (align_corners=false, no antialiasing: OpenCV INTER_LINEAR /
// tf.image.resize(antialias=False) convention). Source coordinates are clamped to the border; the
// result is rounded to nearest (half away from zero) and clamped to 0..255.
Image resize_bilinear(const Image& img, int out_w, int out_h);

// Resizes so that the shorter side becomes `shorter` (the longer side is rounded to nearest),
// keeping the aspect ratio.
Image resize_shorter_side(const Image& img, int shorter);

// The crop policy used by the datasets: if size <= min(w, h) <= resize_shorter the image is center
// cropped directly (the shared ImageNet images are 227x227 and take this path, no resampling);
// otherwise the shorter side is first resized to resize_shorter (bilinear, as above), then center cropped.
Image crop_for_model(const Image& img, int size = 224, int resize_shorter = 256);

enum class Preset {
  // Keras ResNet50 ("caffe" mode): channel order B, G, R; value = byte - mean with
  // mean B=103.939, G=116.779, R=123.68; no scaling.
  KerasCaffe,
  // TF1 quantized MobileNetV2 (.tflite): channel order R, G, B; value = (byte - 128) / 128, which is
  // exactly the real value the uint8 input tensor (scale 1/128, zero point 128) represents. It is in
  // [-1, 127/128]; the float-model convention byte / 127.5 - 1 differs by < 0.008 and is NOT used.
  TFLiteMobileNet,
  // torchvision: channel order R, G, B; value = (byte / 255 - mean) / std, computed in float32 in that
  // order, mean = (0.485, 0.456, 0.406), std = (0.229, 0.224, 0.225).
  Torchvision,
};

std::string_view preset_name(Preset p);
Preset parse_preset(std::string_view name);  // "keras_caffe", "tflite_mobilenet", "torchvision"
// Added to the 0..999 ImageNet class index to get the model's output index: 1 for TFLiteMobileNet
// (1001 outputs, index 0 = background), 0 otherwise.
int label_offset(Preset p);
int num_model_classes(Preset p);  // 1001 for TFLiteMobileNet, 1000 otherwise
// The float value preset p maps byte `v` of channel `c` (c indexes the OUTPUT channel order) to.
float preprocess_value(Preset p, int c, uint8_t v);

// img must be exactly size x size (use crop_for_model first). Writes 3 planes of size*size floats
// (CHW, channel order of the preset) to dst.
void preprocess_into(const Image& img, Preset p, float* dst);
// Same, into slot `n` of a contiguous f32 tensor [N, 3, H, W] with H == W == img size.
void preprocess_into(const Image& img, Preset p, Tensor& batch, int64_t n);
// Returns [1, 3, size, size] f32.
Tensor preprocess(const Image& img, Preset p);

// decode_jpeg_file + crop_for_model(224, 256) + preprocess.
Tensor load_image(const std::string& path, Preset p);

}  // namespace mpq::data
