// The one rule for reading and writing files.
//
// Reading: only regular files are read. A path is opened with O_NONBLOCK (a FIFO then opens at once instead of
// waiting for a writer) and fstat'ed before one byte is read; a FIFO, device, socket or directory is refused
// naming the path and what it is. The file's size is checked against a per-call maximum (what is plausible for
// the format) before anything is allocated, and the read must deliver exactly that many bytes (a file that
// changes size while being read is refused).
//
// Paths declared inside a file (TF.js shard paths, labels.txt image paths) are resolved by resolve_inside():
// relative only, no '..' component, and the result (symlinks followed) must stay inside the declaring folder.
//
// Writing: check_output_file() validates a destination BEFORE the work that produces it starts (its folder
// exists, is a folder and is writable; the path is not a folder). write_file_atomic() writes to a unique
// temporary file beside the target (mkstemp), checks every write, fsyncs, renames over the target and
// fsyncs the folder, so a reader sees the old file or the new one, never a partial one; the temporary file is
// removed on failure. Every failure throws mpq::Error naming the file.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mpq {

// Plausible upper bounds of the files the project reads (per call). They are far above every real file (the
// largest, BERT-base safetensors, is 440 MB) and below this machine class's 24 GiB of memory.
inline constexpr uint64_t kMaxWeightsFileBytes = uint64_t(8) << 30;  // safetensors, tflite, npy, one TF.js shard
inline constexpr uint64_t kMaxJsonFileBytes = uint64_t(64) << 20;    // model.json, config.json, --config, tables
inline constexpr uint64_t kMaxTextFileBytes = uint64_t(256) << 20;   // vocab.txt, labels.txt, SST-2 TSV
inline constexpr uint64_t kMaxImageFileBytes = uint64_t(64) << 20;   // one JPEG

// What `path` is when it is not a regular file ("a FIFO", "a directory", "a character device", ...), or ""
// for a regular file. Symlinks are followed. Throws when the path cannot be stat'ed (missing file).
std::string non_regular_kind(const std::string& path);

// Size in bytes of the regular file at `path` (symlinks followed); throws for anything else, naming `what`.
uint64_t regular_file_size(const std::string& path, std::string_view what);

// Whole regular file, at most max_bytes (else throws naming the size and the limit). `what` names the
// kind of file in messages ("weights", "image", "vocab file", ...).
std::vector<uint8_t> read_regular_file(const std::string& path, uint64_t max_bytes, std::string_view what);

// A regular file read in parts, by the same rules (opened, refused and size-checked as read_regular_file
// does), for formats whose header says where each part lies: a reader then never holds the whole file and
// what it parses out of it at once. read_at() delivers exactly n bytes at `offset` (a file that ends early is
// refused); check_unchanged() refuses a file whose size changed since it was opened.
class RegularFileReader {
 public:
  RegularFileReader(const std::string& path, uint64_t max_bytes, std::string_view what);
  ~RegularFileReader();
  RegularFileReader(const RegularFileReader&) = delete;
  RegularFileReader& operator=(const RegularFileReader&) = delete;
  uint64_t size() const { return size_; }
  void read_at(uint64_t offset, uint8_t* dst, uint64_t n) const;
  void check_unchanged() const;

 private:
  int fd_ = -1;
  std::string path_, what_;
  uint64_t size_ = 0;
};
std::string read_text_file(const std::string& path, uint64_t max_bytes, std::string_view what);

// `rel`, a path declared inside a file that lives in folder `dir`, as a path under `dir`. Refused (mpq::Error
// naming `what`, the declared path and the folder): an empty or absolute path, any '..' component, and a
// path whose existing part resolves (symlinks followed) outside `dir`. The file need not exist.
std::string resolve_inside(const std::string& dir, std::string_view rel, std::string_view what);

// Validates an output path before the work that produces it: the folder that will hold it exists, is a
// folder and is writable, and `path` is not an existing folder. Throws naming `path`.
void check_output_file(const std::string& path);
// The same for an output folder that the command creates if needed: the folder itself, or else its nearest
// existing ancestor, must be a writable folder.
void check_output_dir(const std::string& dir);

// check_output_dir(), then creates the folder (and its parents); throws naming it when that fails.
void create_output_dir(const std::string& dir);

// Atomic replace of `path` with `bytes` (see the top of this file). The new file gets mode 0666 minus umask,
// like a file created by fopen.
void write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);
void write_file_atomic(const std::string& path, std::string_view text);

}  // namespace mpq
