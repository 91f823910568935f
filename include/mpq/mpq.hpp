// mpq: run a deployed model file (.mpq, written by `mpq export`) from C++.
//
//   mpq::api::Session s("model.mpq");                       // load + compile once
//   mpq::api::Output y = s.run(x.data(), x.size(), {1, 3, 224, 224});   // logits [1, classes]
//
// Inputs. CNNs (resnet50, mobilenetv2): f32 images [N, 3, H, W], row-major, already preprocessed as
// info().preprocessing names it ("keras_caffe": BGR minus the Caffe means; "tflite_mobilenet": (byte - 128) /
// 128 RGB; "torchvision": ImageNet mean / std RGB); H, W >= 32. BERT: token ids [N, L] (int32, 0 = [PAD], padded
// positions masked), L <= info().max_positions; a float buffer holding whole numbers is accepted too. Output:
// logits [N, classes] f32.
//
// Thread safety. A Session is safe to share between threads: its runs are serialized by a mutex of its own.
// Different sessions run concurrently from different threads without disturbing each other: a run sets the
// OpenMP thread count of the calling thread to the session's for its duration and restores it afterwards, and
// the library keeps no other mutable state that one session writes and another reads (oneDNN's engine and
// primitive cache are shared, behind a lock, and hold nothing a session configures). Errors are thrown as
// mpq::api::Error with a message naming the file, field or argument.
//
// Link with find_package(mpq) -> mpq::mpq, or pkg-config mpq. C callers: mpq/mpq.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace mpq::api {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;  // defined in the library: one typeinfo for `catch` across the boundary
};

struct SessionOptions {
  int threads = 0;  // OpenMP threads of this session's runs; 0: every core
  // Time our kernels against oneDNN's per layer when the file is opened and keep the faster (longer open,
  // faster runs; the two round some ties differently, so outputs may change in the last bits from one open to
  // the next). false: our kernels only, the same output on every open (as `mpq infer --model-file`).
  bool autotune = false;
};

struct ModelInfo {
  std::string model;          // "resnet50", "mobilenetv2" or "bert"
  std::string preprocessing;  // "keras_caffe", "tflite_mobilenet", "torchvision" or "wordpiece"
  bool token_input = false;   // BERT: [N, L] token ids
  int64_t classes = 0;        // logits per sample
  int64_t max_positions = 0;  // BERT: the longest L; 0 for CNNs
  std::string precisions;     // e.g. "int8 x52, fp16 x1"
  uint64_t file_bytes = 0;
};

struct Output {
  std::vector<int64_t> shape;  // [N, classes]
  std::vector<float> data;     // row-major
};

class Session {
 public:
  explicit Session(const std::string& model_file, const SessionOptions& options = {});
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const ModelInfo& info() const;
  int threads() const;          // as set (0: every core)
  void set_threads(int n);      // from the next run on; n >= 0
  double load_seconds() const;  // reading, checking and compiling the file

  // input: `input_len` values of shape `shape` (product(shape) == input_len, else Error). CNNs take images,
  // BERT token ids (whole numbers). Returns logits [N, classes].
  Output run(const float* input, size_t input_len, const std::vector<int64_t>& shape);
  // BERT token ids [N, L].
  Output run_tokens(const int32_t* ids, size_t ids_len, const std::vector<int64_t>& shape);

  struct Impl;  // the library's

 private:
  std::unique_ptr<Impl> impl_;
};

// NumPy .npy arrays (format 1.0 - 3.0, C order): f32 (f8 / f2 converted) or integer (i4, i8 range-checked).
struct Array {
  std::vector<int64_t> shape;
  bool integer = false;
  std::vector<float> f32;    // !integer
  std::vector<int32_t> i32;  // integer
};
Array read_npy(const std::string& path);
void write_npy(const std::string& path, const Output& out);  // f32, written atomically

const char* version();  // "0.10.0"

}  // namespace mpq::api
