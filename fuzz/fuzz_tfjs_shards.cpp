// libFuzzer target: TF.js shard path resolution (core/file_io.h resolve_inside, as read_tfjs uses it). A scratch
// model folder is made once per process: model/ holds shard files, a sub-folder, a symlink inside and one
// leading out; outside.bin sits beside model/. Each input line is resolved inside model/ with the oracle that
// an accepted path canonicalises inside it; the whole input is also parsed as a model.json in that folder
// (shards really read). Only mpq::Error may escape.
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/file_io.h"
#include "models/io/tfjs.h"

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
const Scratch scratch{fs::temp_directory_path() / ("mpq_fuzz_tfjs_shards_" + std::to_string(::getpid()))};

fs::path make_folder() {
  const fs::path& root = scratch.root;
  fs::create_directories(root / "model" / "sub");
  const std::string floats(24, '\0');  // 6 float32 zeros: a [2, 2] kernel and a [2] bias
  for (const char* f : {"model/w.bin", "model/sub/w2.bin", "outside.bin"}) std::ofstream(root / f) << floats;
  std::ofstream(root / "model" / "half.bin") << std::string(12, '\0');
  std::error_code ec;
  fs::create_symlink(root / "model" / "w.bin", root / "model" / "in_link.bin", ec);
  fs::create_symlink(root / "outside.bin", root / "model" / "out_link.bin", ec);
  fs::create_symlink("..", root / "model" / "up", ec);
  fs::create_directories(root / "model" / "dir.bin");
  return root / "model";
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = make_folder();
  static const fs::path canon = fs::canonical(dir);
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t start = 0;
  while (start <= in.size()) {
    const size_t nl = std::min(in.find('\n', start), in.size());
    try {
      const fs::path p = mpq::resolve_inside(dir.string(), in.substr(start, nl - start), "fuzz shard");
      const fs::path c = fs::weakly_canonical(p);
      const auto [a, b] = std::mismatch(canon.begin(), canon.end(), c.begin(), c.end());
      if (a != canon.end()) std::abort();
    } catch (const mpq::Error&) {
    }
    start = nl + 1;
  }
  try {
    (void)mpq::io::parse_tfjs_in_folder(in, (dir / "model.json").string());
  } catch (const mpq::Error&) {
  }
  return 0;
}
