// ImageNet-style folder dataset:
//   DIR/labels.txt   one sample per line: "FILE CLASS" (whitespace separated, CLASS in 0..num_classes-1;
//                    blank lines and lines starting with '#' are skipped)
//   DIR/images/FILE  the JPEGs (if DIR/images does not exist, FILE is taken relative to DIR)
// Samples are listed in labels.txt order (deterministic). Labels stored here are the dataset's own
// 0-based class indices; load_batch adds the preset's label_offset.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "models/data/image.h"

namespace mpq::data {

struct ImageNetSample {
  std::string file;  // as written in labels.txt
  std::string path;  // full path of the image
  int label = 0;     // 0-based dataset class
};

struct ImageBatch {
  Tensor images;            // [B, 3, 224, 224] f32, NCHW, channel order of the preset
  std::vector<int> labels;  // dataset label + label_offset(preset)
};

// The samples listed by labels.txt text (`labels_name` names it in messages, with the line number). Each FILE
// is resolved inside `image_root` (core/file_io.h resolve_inside: no absolute path, no '..', no symlink
// leading out of the folder) and must be an existing regular file.
std::vector<ImageNetSample> parse_labels_txt(std::string_view text, const std::string& labels_name,
                                             const std::string& image_root, int num_classes);

class ImageNetFolder {
 public:
  // Parses labels.txt (parse_labels_txt) and checks that every listed image exists. Throws mpq::Error on a
  // missing folder, missing, non-regular or empty labels.txt, a malformed line or out-of-range class (message
  // has labels.txt:LINE), an image path leading outside the image folder, a missing image file, or when no
  // sample is listed.
  explicit ImageNetFolder(const std::string& dir, int num_classes = 1000);

  size_t size() const { return samples_.size(); }
  const ImageNetSample& sample(size_t i) const;
  const std::vector<ImageNetSample>& samples() const { return samples_; }
  const std::string& dir() const { return dir_; }

  // Decodes, crops (crop_for_model: 224, resizing only if the shorter side is outside 224..256) and
  // preprocesses the given samples in parallel (OpenMP, mpq::num_threads() threads). Batch row i is
  // indices[i]. The first decode error is rethrown after the parallel loop.
  ImageBatch load_batch(const std::vector<int64_t>& indices, Preset preset) const;
  // Indices [begin, min(begin + count, size())).
  ImageBatch load_range(int64_t begin, int64_t count, Preset preset) const;

 private:
  std::string dir_;
  std::vector<ImageNetSample> samples_;
};

}  // namespace mpq::data
