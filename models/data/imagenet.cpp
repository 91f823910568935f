#include "models/data/imagenet.h"

#include <charconv>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace mpq::data {

namespace fs = std::filesystem;

std::vector<ImageNetSample> parse_labels_txt(std::string_view text, const std::string& labels_name,
                                             const std::string& image_root, int num_classes) {
  std::vector<ImageNetSample> out;
  std::istringstream in{std::string(text)};
  std::string line;
  int lineno = 0;
  bool any_text = false;
  std::error_code ec;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::istringstream ls(line);
    std::string file, cls, extra;
    if (!(ls >> file)) continue;  // blank line
    any_text = true;
    if (file[0] == '#') continue;
    if (!(ls >> cls) || (ls >> extra)) fail("{}:{}: expected 'FILE CLASS', got '{}'", labels_name, lineno, line);
    int label = -1;
    const auto [ptr, err] = std::from_chars(cls.data(), cls.data() + cls.size(), label);
    if (err != std::errc() || ptr != cls.data() + cls.size())
      fail("{}:{}: class '{}' is not an integer", labels_name, lineno, cls);
    check(label >= 0 && label < num_classes, "{}:{}: class {} out of range 0..{}", labels_name, lineno, label,
          num_classes - 1);
    const std::string p = resolve_inside(image_root, file, fmt::format("{}:{}: image", labels_name, lineno));
    check(fs::is_regular_file(p, ec), "{}:{}: image file '{}' not found", labels_name, lineno, p);
    out.push_back({file, p, label});
  }
  check(any_text, "'{}' is empty", labels_name);
  return out;
}

ImageNetFolder::ImageNetFolder(const std::string& dir, int num_classes) : dir_(dir) {
  std::error_code ec;
  check(fs::is_directory(dir, ec), "ImageNet folder '{}' does not exist or is not a directory", dir);
  const fs::path labels = fs::path(dir) / "labels.txt";
  check(fs::exists(labels, ec), "ImageNet folder '{}' has no labels.txt", dir);
  const fs::path image_root = fs::is_directory(fs::path(dir) / "images", ec) ? fs::path(dir) / "images" : fs::path(dir);
  const std::string text = read_text_file(labels.string(), kMaxTextFileBytes, "labels file");
  samples_ = parse_labels_txt(text, labels.string(), image_root.string(), num_classes);
  check(!samples_.empty(), "ImageNet folder '{}': no usable samples in labels.txt", dir);
}

const ImageNetSample& ImageNetFolder::sample(size_t i) const {
  check(i < samples_.size(), "sample index {} out of range (dataset has {})", i, samples_.size());
  return samples_[i];
}

ImageBatch ImageNetFolder::load_batch(const std::vector<int64_t>& indices, Preset preset) const {
  const int64_t b = int64_t(indices.size());
  check(b > 0, "load_batch: empty index list");
  ImageBatch out;
  out.labels.resize(size_t(b));
  for (int64_t i = 0; i < b; ++i) {
    const int64_t k = indices[size_t(i)];
    check(k >= 0 && size_t(k) < samples_.size(), "load_batch: index {} out of range (dataset has {})", k,
          samples_.size());
    out.labels[size_t(i)] = samples_[size_t(k)].label + label_offset(preset);
  }
  out.images = Tensor::zeros({b, 3, 224, 224});
  std::string first_error;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < b; ++i) {
    try {
      const Image img = crop_for_model(decode_jpeg_file(samples_[size_t(indices[size_t(i)])].path), 224, 256);
      preprocess_into(img, preset, out.images, i);
    } catch (const std::exception& e) {
#pragma omp critical(mpq_data_load_batch)
      if (first_error.empty()) first_error = e.what();
    }
  }
  if (!first_error.empty()) throw Error(first_error);
  return out;
}

ImageBatch ImageNetFolder::load_range(int64_t begin, int64_t count, Preset preset) const {
  check(begin >= 0 && size_t(begin) < samples_.size() && count > 0, "load_range: bad range [{}, +{}) of {}", begin,
        count, samples_.size());
  const int64_t end = std::min<int64_t>(begin + count, int64_t(samples_.size()));
  std::vector<int64_t> idx;
  for (int64_t i = begin; i < end; ++i) idx.push_back(i);
  return load_batch(idx, preset);
}

}  // namespace mpq::data
