// core/file_io: the one rule for reading (regular files only, bounded, paths resolved inside their folder)
// and writing (destination checked first, temporary file + fsync + rename, every failure names the file).
#include <doctest/doctest.h>

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/memory_policy.h"
#include "core/tensor.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using namespace mpq;

namespace {

const std::string kShared = MPQ_SHARED_DATA;
const std::string kSst2Dev = kShared + "/sst2/dev.tsv";

using testing::TempDir;

std::string slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("expected mpq::Error");
  return {};
}

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

}  // namespace

TEST_CASE("file_io: a regular file is read whole, the size bound is checked before reading") {
  const std::string real = slurp(kSst2Dev);
  REQUIRE(real.size() > 10000);
  CHECK(read_text_file(kSst2Dev, kMaxTextFileBytes, "SST-2 file") == real);
  const auto bytes = read_regular_file(kSst2Dev, real.size(), "SST-2 file");  // exactly at the bound
  CHECK(std::string(bytes.begin(), bytes.end()) == real);
  const std::string msg = error_of([&] { read_regular_file(kSst2Dev, real.size() - 1, "SST-2 file"); });
  CHECK(has(msg, kSst2Dev));
  CHECK(has(msg, std::to_string(real.size()) + " bytes"));
  CHECK(has(msg, std::to_string(real.size() - 1)));
  TempDir d("read");
  std::ofstream(d.file("empty.txt")).flush();
  CHECK(read_text_file(d.file("empty.txt"), 10, "text").empty());
  CHECK(has(error_of([&] { read_text_file(d.file("none.txt"), 10, "vocab file"); }), "none.txt"));
}

TEST_CASE("file_io: FIFOs, devices and directories are refused at once, naming the path and its kind") {
  TempDir d("special");
  REQUIRE(::mkfifo(d.file("fifo").c_str(), 0600) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  std::string msg = error_of([&] { read_regular_file(d.file("fifo"), 100, "weights"); });
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(5));
  CHECK(has(msg, d.file("fifo")));
  CHECK(has(msg, "a FIFO"));
  CHECK(has(msg, "weights"));
  CHECK(has(error_of([&] { read_regular_file("/dev/zero", 100, "weights"); }), "a character device"));
  CHECK(has(error_of([&] { read_regular_file("/dev/null", 100, "weights"); }), "/dev/null"));
  CHECK(has(error_of([&] { read_regular_file(d.path.string(), 100, "weights"); }), "a directory"));
  CHECK(has(error_of([&] { regular_file_size(d.file("fifo"), "tfjs shard"); }), "a FIFO"));
  CHECK(non_regular_kind(d.file("fifo")) == "a FIFO");
  CHECK(non_regular_kind(kSst2Dev).empty());
}

TEST_CASE("file_io: resolve_inside keeps declared paths inside their folder") {
  TempDir d("resolve");
  fs::create_directories(d.path / "m" / "sub");
  std::ofstream(d.path / "m" / "a.bin") << "a";
  std::ofstream(d.path / "m" / "sub" / "b.bin") << "b";
  std::ofstream(d.path / "out.bin") << "o";
  fs::create_symlink(d.path / "m" / "a.bin", d.path / "m" / "in_link.bin");
  fs::create_symlink(d.path / "out.bin", d.path / "m" / "out_link.bin");
  fs::create_symlink("..", d.path / "m" / "up");
  const std::string m = (d.path / "m").string();
  CHECK(resolve_inside(m, "a.bin", "shard") == (d.path / "m" / "a.bin").string());
  CHECK(resolve_inside(m, "sub/b.bin", "shard") == (d.path / "m" / "sub" / "b.bin").string());
  CHECK(resolve_inside(m, "in_link.bin", "shard") == (d.path / "m" / "in_link.bin").string());
  CHECK(resolve_inside(m, "not_yet.bin", "shard") == (d.path / "m" / "not_yet.bin").string());  // need not exist
  CHECK(has(error_of([&] { resolve_inside(m, "../out.bin", "shard"); }), "'..'"));
  CHECK(has(error_of([&] { resolve_inside(m, "sub/../a.bin", "shard"); }), "'..'"));
  CHECK(has(error_of([&] { resolve_inside(m, (d.path / "out.bin").string(), "shard"); }), "absolute"));
  CHECK(has(error_of([&] { resolve_inside(m, "", "shard"); }), "empty"));
  CHECK(has(error_of([&] { resolve_inside(m, std::string("a.bin\0x", 7), "shard"); }), "NUL"));
  const std::string out = error_of([&] { resolve_inside(m, "out_link.bin", "labels.txt:3: image"); });
  CHECK(has(out, "labels.txt:3: image"));
  CHECK(has(out, "out_link.bin"));
  CHECK(has(out, "outside"));
  CHECK(has(error_of([&] { resolve_inside(m, "up/out.bin", "shard"); }), "outside"));
  CHECK(has(error_of([&] { resolve_inside(m, "up/m/../out.bin", "shard"); }), "'..'"));
}

TEST_CASE("file_io: write_file_atomic replaces the target whole and leaves no temporary file") {
  TempDir d("write");
  const std::string p = d.file("out.json");
  write_file_atomic(p, std::string_view("first\n"));
  CHECK(slurp(p) == "first\n");
  ::chmod(p.c_str(), 0640);
  const std::string big(3 << 20, 'x');  // several write calls' worth
  write_file_atomic(p, std::string_view(big));
  CHECK(slurp(p) == big);
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);  // an existing file keeps its mode
  CHECK(entries(d.path) == 1);         // no temporary file left
  write_file_atomic(d.file("new.bin"), std::span<const uint8_t>());
  CHECK(fs::file_size(d.file("new.bin")) == 0);
}

TEST_CASE("file_io: a failing write throws naming the file, removes its temporary file, keeps the old one") {
  TempDir d("write_fail");
  const std::string p = d.file("report.json");
  write_file_atomic(p, std::string_view("old content\n"));
  // RLIMIT_FSIZE makes every write past 4 KiB fail with EFBIG (SIGXFSZ ignored): a full disk, without one.
  struct rlimit old {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &old) == 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  const std::string msg = error_of([&] { write_file_atomic(p, std::string_view(std::string(1 << 20, 'y'))); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(has(msg, p));
  CHECK(has(msg, "write"));
  CHECK(slurp(p) == "old content\n");
  CHECK(entries(d.path) == 1);
}

TEST_CASE("file_io: destinations are validated before any work") {
  TempDir d("dest");
  check_output_file(d.file("fine.json"));
  fs::create_directories(d.path / "dir.json");
  CHECK(has(error_of([&] { check_output_file(d.file("dir.json")); }), "a directory"));
  const std::string missing = error_of([&] { check_output_file(d.file("no/such/folder/x.json")); });
  CHECK(has(missing, "x.json"));
  CHECK(has(missing, "does not exist"));
  std::ofstream(d.path / "plain") << "f";
  CHECK(has(error_of([&] { check_output_file(d.file("plain/x.json")); }), "not a folder"));
  CHECK(has(error_of([&] { write_file_atomic(d.file("no/x.json"), std::string_view("z")); }), "does not exist"));
  CHECK(has(error_of([&] { check_output_file("/dev/null"); }), "a character device"));
  check_output_dir(d.file("new/nested/out"));  // created later: its nearest existing ancestor is writable
  check_output_dir(d.path.string());
  CHECK(has(error_of([&] { check_output_dir(d.file("plain/out")); }), "not a folder"));
}

// core/memory_policy.h: after the CLI's malloc setting a freed 64 MiB tensor buffer is reused from the heap,
// so touching a second one of the same size costs (almost) no page faults, even with a small block allocated
// after it; glibc's default would munmap the first and fault all 16384 pages of the second in again (and with
// aligned_alloc instead of Storage's own alignment the heap would grow for the second one). ASan replaces malloc (its
// own allocator and quarantine ignore mallopt), so the sanitizer build skips this case, visibly.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kReplacedMalloc = true;
#else
constexpr bool kReplacedMalloc = false;
#endif
TEST_CASE("memory policy: a freed large buffer is reused without page faults" * doctest::skip(kReplacedMalloc)) {
  REQUIRE(mpq::keep_freed_memory_for_reuse());
  constexpr size_t kBytes = size_t(64) << 20;
  auto minor_faults = [] {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return long(u.ru_minflt);
  };
  std::vector<std::unique_ptr<mpq::Storage>> small;  // allocated while the big block lives, as an op's outputs are
  auto touch = [&] {
    const long before = minor_faults();
    // written as an op writes its output: every page touched (a zero fill need not touch them: Storage zeros
    // through calloc, which leaves memory fresh from the kernel unwritten)
    mpq::Storage s(kBytes, /*zero_fill=*/false);
    std::memset(s.data, 1, kBytes);
    small.push_back(std::make_unique<mpq::Storage>(256));
    return minor_faults() - before;
  };
  touch();  // the heap grows to hold the block once
  const long again = touch();
  CHECK(again < long(kBytes / 4096 / 10));  // < 10 % of the pages faulted in again
}

TEST_CASE("memory policy: a tensor buffer size that would wrap when rounded is refused before allocating") {
  CHECK_THROWS_WITH_AS(mpq::Storage(SIZE_MAX - 10), doctest::Contains("out of memory allocating"), mpq::Error);
  CHECK_THROWS_WITH_AS(mpq::Storage(SIZE_MAX - 100), doctest::Contains("out of memory allocating"), mpq::Error);
  const mpq::Storage ok(1);  // one byte still gets a whole aligned line
  CHECK(reinterpret_cast<uintptr_t>(ok.data) % mpq::Storage::kAlign == 0);
}
