// Scratch folders of the tests, one rule for all: <system temp>/mpq_test_<tag>_<pid>_<n>, n counting within the
// process, so two test processes at once (ctest -j runs test cases of one file side by side; two build trees)
// never share a folder, and one process never reuses one.
#pragma once
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace mpq::testing {

inline std::filesystem::path unique_temp_path(const std::string& tag) {
  static std::atomic<int> n{0};
  return std::filesystem::temp_directory_path() /
         ("mpq_test_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(n++));
}

// A fresh empty folder, removed when the object goes out of scope.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& tag) : path(unique_temp_path(tag)) { std::filesystem::create_directories(path); }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }
};

namespace detail {
// Folders handed out as paths (fresh_temp_dir / process_temp_dir), removed when the process exits normally.
struct TempRegistry {
  std::mutex m;
  std::vector<std::filesystem::path> dirs;
  std::map<std::string, std::string> by_tag;
  ~TempRegistry() {
    for (const auto& d : dirs) {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  }
};
inline TempRegistry& temp_registry() {
  static TempRegistry r;
  return r;
}
}  // namespace detail

// A fresh empty folder on every call.
inline std::string fresh_temp_dir(const std::string& tag) {
  const std::filesystem::path d = unique_temp_path(tag);
  std::filesystem::create_directories(d);
  auto& r = detail::temp_registry();
  std::lock_guard lock(r.m);
  r.dirs.push_back(d);
  return d.string();
}

// One folder per tag for the whole process (created on first use).
inline std::string process_temp_dir(const std::string& tag) {
  auto& r = detail::temp_registry();
  {
    std::lock_guard lock(r.m);
    if (auto it = r.by_tag.find(tag); it != r.by_tag.end()) return it->second;
  }
  const std::string d = fresh_temp_dir(tag);
  std::lock_guard lock(r.m);
  return r.by_tag.emplace(tag, d).first->second;
}

}  // namespace mpq::testing
