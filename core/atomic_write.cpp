#include "core/atomic_write.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "core/error.h"

namespace mpq {

namespace fs = std::filesystem;

namespace {
std::string parent_of(const std::string& path) {
  const fs::path p = fs::path(path).parent_path();
  return p.empty() ? "." : p.string();
}
}  // namespace

void ensure_directory(const std::string& dir, std::string_view what) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec, "{}: cannot create folder '{}': {}", what, dir, ec.message());
  check(fs::is_directory(dir, ec), "{}: '{}' is not a folder", what, dir);
  check(::access(dir.c_str(), W_OK) == 0, "{}: folder '{}' is not writable: {}", what, dir, std::strerror(errno));
}

void check_destination(const std::string& path, std::string_view what, bool create_parent) {
  check(!path.empty(), "{}: empty output path", what);
  std::error_code ec;
  check(!fs::is_directory(path, ec), "{}: '{}' is a folder, not a file", what, path);
  const std::string dir = parent_of(path);
  if (create_parent) {
    ensure_directory(dir, what);
    return;
  }
  check(fs::is_directory(dir, ec), "{}: folder '{}' of '{}' does not exist", what, dir, path);
  check(::access(dir.c_str(), W_OK) == 0, "{}: folder '{}' of '{}' is not writable: {}", what, dir, path,
        std::strerror(errno));
}

void write_file_atomic(const std::string& path, std::string_view content) {
  const std::string dir = parent_of(path);
  std::string tmpl = (fs::path(dir) / ("." + fs::path(path).filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> name(tmpl.begin(), tmpl.end());  // mkstemp's writable template
  name.push_back('\0');
  const int fd = ::mkstemp(name.data());
  check(fd >= 0, "cannot create a temporary file beside '{}': {}", path, std::strerror(errno));
  const std::string tmp(name.data());
  auto fail_with = [&](const char* step) {
    const std::string err = std::strerror(errno);
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("writing '{}' failed ({}: {})", path, step, err);
  };
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) fail_with("write");
    done += size_t(n);
  }
  // mkstemp creates mode 0600; an output gets what open(O_CREAT, 0666) would give it: 0666 minus the umask
  // (fchmod does not apply the umask itself, so it is read and restored).
  const mode_t um = ::umask(0);
  ::umask(um);
  if (::fchmod(fd, 0666 & ~um) != 0) fail_with("chmod");
  if (::fsync(fd) != 0) fail_with("fsync");
  if (::close(fd) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail("writing '{}' failed (close: {})", path, err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string err = std::strerror(errno);
    ::unlink(tmp.c_str());
    fail("writing '{}' failed (rename: {})", path, err);
  }
}

}  // namespace mpq
