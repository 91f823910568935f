#include "core/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include "core/error.h"

namespace mpq {
namespace {

namespace fs = std::filesystem;

std::string errno_text() { return std::strerror(errno); }

// Closes the descriptor on every path out of a reader or writer.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

std::string kind_of(mode_t m) {
  if (S_ISREG(m)) return "";
  if (S_ISDIR(m)) return "a directory";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

void check_no_nul(std::string_view path, std::string_view what) {
  // (the path itself is not printed: the message would end at its NUL)
  const size_t nul = path.find('\0');
  check(nul == std::string_view::npos, "{}: path contains a NUL byte at offset {}", what, nul);
}

// Opens a regular file for reading; returns the descriptor and its size.
Fd open_regular(const std::string& path, uint64_t max_bytes, std::string_view what, uint64_t& size) {
  check_no_nul(path, what);
  // O_NONBLOCK: opening a FIFO for reading returns at once instead of blocking until a writer appears; the
  // fstat below then refuses it. For regular files the flag has no effect on reads.
  Fd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) fail("{} '{}': cannot open for reading: {}", what, path, errno_text());
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail("{} '{}': cannot stat: {}", what, path, errno_text());
  const std::string kind = kind_of(st.st_mode);
  if (!kind.empty()) fail("{} '{}' is {}; only regular files are read", what, path, kind);
  size = uint64_t(st.st_size);
  if (size > max_bytes)
    fail("{} '{}' is {} bytes, more than the {} bytes a {} can plausibly be", what, path, size, max_bytes, what);
  return Fd(fd.release());
}

// Reads exactly n bytes at `offset` with pread (the descriptor's position is not used, so one open file can
// be read in parts in any order); `file_bytes` is the size the file had when opened, named when it ends early.
void pread_exact(int fd, uint64_t offset, uint8_t* dst, uint64_t n, uint64_t file_bytes, const std::string& path,
                 std::string_view what) {
  uint64_t got = 0;
  while (got < n) {
    const ssize_t r =
        ::pread(fd, dst + got, size_t(std::min<uint64_t>(n - got, uint64_t(1) << 30)), off_t(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("{} '{}': read error at offset {}: {}", what, path, offset + got, errno_text());
    if (r == 0)
      fail("{} '{}': file shrank to {} bytes while being read ({} expected)", what, path, offset + got, file_bytes);
    got += uint64_t(r);
  }
}

// The whole file: exactly `size` bytes, then refuses a file that grew past its fstat size by now.
void read_exact(int fd, uint8_t* dst, uint64_t size, const std::string& path, std::string_view what) {
  pread_exact(fd, 0, dst, size, size, path, what);
  uint8_t extra;
  ssize_t n;
  while ((n = ::pread(fd, &extra, 1, off_t(size))) < 0 && errno == EINTR) {
  }
  check(n == 0, "{} '{}': file grew past {} bytes while being read", what, path, size);
}

mode_t new_file_mode() {
  // The process umask, read once (umask() can only be read by setting it).
  static const mode_t mask = [] {
    const mode_t m = ::umask(022);
    ::umask(m);
    return m;
  }();
  return 0666 & ~mask;
}

std::string parent_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

std::string non_regular_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("'{}': cannot stat: {}", path, errno_text());
  return kind_of(st.st_mode);
}

uint64_t regular_file_size(const std::string& path, std::string_view what) {
  check_no_nul(path, what);
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail("{} '{}': cannot stat: {}", what, path, errno_text());
  const std::string kind = kind_of(st.st_mode);
  if (!kind.empty()) fail("{} '{}' is {}; only regular files are read", what, path, kind);
  return uint64_t(st.st_size);
}

std::vector<uint8_t> read_regular_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  uint64_t size = 0;
  const Fd fd = open_regular(path, max_bytes, what, size);
  std::vector<uint8_t> out(size);  // [size] bytes
  read_exact(fd.get(), out.data(), size, path, what);
  return out;
}

RegularFileReader::RegularFileReader(const std::string& path, uint64_t max_bytes, std::string_view what)
    : path_(path), what_(what) {
  Fd fd = open_regular(path, max_bytes, what, size_);
  fd_ = fd.release();
}

RegularFileReader::~RegularFileReader() {
  if (fd_ >= 0) ::close(fd_);
}

void RegularFileReader::read_at(uint64_t offset, uint8_t* dst, uint64_t n) const {
  check(offset <= size_ && n <= size_ - offset, "{} '{}': {} bytes at offset {} run past its {} bytes", what_, path_, n,
        offset, size_);
  pread_exact(fd_, offset, dst, n, size_, path_, what_);
}

void RegularFileReader::check_unchanged() const {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) fail("{} '{}': cannot stat: {}", what_, path_, errno_text());
  check(uint64_t(st.st_size) == size_, "{} '{}': file changed size from {} to {} bytes while being read", what_, path_,
        size_, uint64_t(st.st_size));
}

std::string read_text_file(const std::string& path, uint64_t max_bytes, std::string_view what) {
  uint64_t size = 0;
  const Fd fd = open_regular(path, max_bytes, what, size);
  std::string out(size, '\0');
  read_exact(fd.get(), reinterpret_cast<uint8_t*>(out.data()), size, path, what);
  return out;
}

std::string resolve_inside(const std::string& dir, std::string_view rel, std::string_view what) {
  const std::string base_dir = dir.empty() ? std::string(".") : dir;
  check(!rel.empty(), "{}: empty path declared in folder '{}'", what, base_dir);
  check_no_nul(rel, what);
  const fs::path r(rel);
  check(!r.is_absolute(), "{}: path '{}' is absolute; only paths relative to folder '{}' are read", what, rel,
        base_dir);
  for (const fs::path& c : r)
    check(c != "..", "{}: path '{}' contains '..'; only paths inside folder '{}' are read", what, rel, base_dir);
  const fs::path full = fs::path(base_dir) / r;
  std::error_code ec;
  const fs::path base = fs::weakly_canonical(base_dir, ec);
  check(!ec, "{}: cannot resolve folder '{}': {}", what, base_dir, ec.message());
  const fs::path target = fs::weakly_canonical(full, ec);
  check(!ec, "{}: cannot resolve path '{}' in folder '{}': {}", what, rel, base_dir, ec.message());
  // inside: every component of the folder is a leading component of the target
  const auto mm = std::mismatch(base.begin(), base.end(), target.begin(), target.end());
  check(mm.first == base.end(), "{}: path '{}' leads to '{}', outside folder '{}' (symlink?)", what, rel,
        target.string(), base.string());
  return full.string();
}

void check_output_file(const std::string& path) {
  check(!path.empty(), "output path is empty");
  check_no_nul(path, "output");
  const std::string parent = parent_of(path);
  struct stat st {};
  if (::stat(parent.c_str(), &st) != 0)
    fail("output '{}': folder '{}' does not exist ({})", path, parent, errno_text());
  check(S_ISDIR(st.st_mode), "output '{}': '{}' is not a folder", path, parent);
  if (::access(parent.c_str(), W_OK | X_OK) != 0)
    fail("output '{}': folder '{}' is not writable ({})", path, parent, errno_text());
  if (::stat(path.c_str(), &st) == 0) {
    const std::string kind = kind_of(st.st_mode);
    if (!kind.empty()) fail("output '{}' exists and is {}; only a regular file is replaced", path, kind);
  }
}

void check_output_dir(const std::string& dir) {
  check(!dir.empty(), "output folder path is empty");
  check_no_nul(dir, "output folder");
  fs::path p = fs::path(dir);
  struct stat st {};
  // the folder itself when it exists, else its nearest existing ancestor (created folders go there)
  while (::stat(p.c_str(), &st) != 0) {
    const fs::path up = p.parent_path();
    if (up.empty() || up == p) {
      p = ".";
      check(::stat(".", &st) == 0, "output folder '{}': cannot stat the current folder", dir);
      break;
    }
    p = up;
  }
  check(S_ISDIR(st.st_mode), "output folder '{}': '{}' exists and is not a folder", dir, p.string());
  if (::access(p.c_str(), W_OK | X_OK) != 0)
    fail("output folder '{}': '{}' is not writable ({})", dir, p.string(), errno_text());
}

void create_output_dir(const std::string& dir) {
  check_output_dir(dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  check(!ec, "output folder '{}': cannot create it: {}", dir, ec.message());
}

void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  check_output_file(path);
  const std::string parent = parent_of(path);
  std::string tmp = (fs::path(parent) / ("." + fs::path(path).filename().string() + ".tmp.XXXXXX")).string();
  Fd fd(::mkstemp(tmp.data()));
  if (fd.get() < 0) fail("output '{}': cannot create a temporary file in '{}': {}", path, parent, errno_text());
  try {
    struct stat st {};
    const mode_t mode = ::stat(path.c_str(), &st) == 0 ? (st.st_mode & 07777) : new_file_mode();
    if (::fchmod(fd.get(), mode) != 0) fail("output '{}': cannot set the mode of '{}': {}", path, tmp, errno_text());
    uint64_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n =
          ::write(fd.get(), bytes.data() + done, size_t(std::min<uint64_t>(bytes.size() - done, 1 << 30)));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0)
        fail("output '{}': write to '{}' failed after {} of {} bytes: {}", path, tmp, done, bytes.size(),
             n < 0 ? errno_text() : std::string("no progress"));
      done += uint64_t(n);
    }
    if (::fsync(fd.get()) != 0) fail("output '{}': fsync of '{}' failed: {}", path, tmp, errno_text());
    if (::close(fd.release()) != 0) fail("output '{}': closing '{}' failed: {}", path, tmp, errno_text());
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      fail("output '{}': cannot rename '{}' over it: {}", path, tmp, errno_text());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  // Make the rename itself durable. Some file systems refuse fsync on a folder (EINVAL); the data is
  // already synced, so only a failure to open the folder is ignored as well.
  const Fd dfd(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0 && ::fsync(dfd.get()) != 0 && errno != EINVAL)
    fail("output '{}': fsync of folder '{}' failed: {}", path, parent, errno_text());
}

void write_file_atomic(const std::string& path, std::string_view text) {
  write_file_atomic(path, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace mpq
