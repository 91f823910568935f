// libFuzzer target: labels.txt parsing and image path resolution. The paths resolve against a scratch data
// folder made once per process: images/ holds two (empty) image files, a sub-folder, a symlink inside and
// one leading out of the folder. Only mpq::Error may escape, and every accepted sample must be a regular
// file inside images/ (the oracle canonicalises it independently).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"
#include "models/data/imagenet.h"

namespace fs = std::filesystem;

namespace {
// Removed when the process exits normally (a crash leaves it for inspection).
struct Scratch {
  fs::path root;
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
};
const Scratch scratch{fs::temp_directory_path() / ("mpq_fuzz_labels_" + std::to_string(::getpid()))};

fs::path make_folder() {
  const fs::path& root = scratch.root;
  fs::create_directories(root / "data" / "images" / "sub");
  for (const char* f : {"data/images/a.JPEG", "data/images/sub/b.JPEG", "outside.JPEG"}) std::ofstream(root / f) << "x";
  std::error_code ec;
  fs::create_symlink(root / "data" / "images" / "a.JPEG", root / "data" / "images" / "in_link.JPEG", ec);
  fs::create_symlink(root / "outside.JPEG", root / "data" / "images" / "out_link.JPEG", ec);
  fs::create_symlink("..", root / "data" / "images" / "up", ec);
  return root / "data" / "images";
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path images = make_folder();
  static const fs::path canon = fs::canonical(images);
  try {
    const auto samples = mpq::data::parse_labels_txt(std::string_view(reinterpret_cast<const char*>(data), size),
                                                     "fuzz/labels.txt", images.string(), 1000);
    for (const auto& s : samples) {
      const fs::path c = fs::canonical(s.path);
      const auto [a, b] = std::mismatch(canon.begin(), canon.end(), c.begin(), c.end());
      if (a != canon.end() || !fs::is_regular_file(c) || s.label < 0 || s.label >= 1000) std::abort();
    }
  } catch (const mpq::Error&) {
  }
  return 0;
}
