// The C++ session API (include/mpq/mpq.hpp) over the deployable model file (deploy/model_file.h) and the
// native engine. Everything the library throws inside is turned into mpq::api::Error at this boundary.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>
#include <utility>

#include <fmt/format.h>

#include "core/error.h"
#include "core/file_io.h"
#include "core/threading.h"
#include "deploy/model_file.h"
#include "models/io/npy.h"
#include "mpq/mpq.hpp"

namespace mpq::api {

Error::~Error() = default;

namespace {

// Runs f, turning any exception but our own into mpq::api::Error (the message kept).
template <class F>
auto guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const api::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw api::Error(e.what());
  }
}

// The calling thread's OpenMP thread count for the duration of one run (OpenMP keeps it per thread, so
// another thread's sessions are not affected), restored afterwards.
class ThreadCount {
 public:
  explicit ThreadCount(int n) : prev_(num_threads()) { set_num_threads(n); }
  ~ThreadCount() { set_num_threads(prev_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  int prev_;
};

// Product of `shape` (every dim >= 1) == len, else an Error naming the argument.
void check_shape(const std::vector<int64_t>& shape, size_t len, const char* what) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    if (d < 1) throw Error(fmt::format("mpq: {} shape {} has a dimension < 1", what, shape_str(shape)));
    if (n > std::numeric_limits<uint64_t>::max() / uint64_t(d))
      throw Error(fmt::format("mpq: {} shape {} overflows", what, shape_str(shape)));
    n *= uint64_t(d);
  }
  if (n != len)
    throw Error(fmt::format("mpq: {} shape {} holds {} values, the buffer {}", what, shape_str(shape), n, len));
}

}  // namespace

struct Session::Impl {
  deploy::LoadedModel m;
  ModelInfo info;
  std::atomic<int> threads{0};  // read by threads() while another thread may set it
  double load_seconds = 0;
  std::mutex mu;  // one run at a time: the compiled model's buffers serve one run
};

namespace {
Output run_locked(Session::Impl& s, const models::Batch& b) {
  std::lock_guard<std::mutex> lock(s.mu);
  const ThreadCount tc(s.threads);
  const Tensor y = s.m.native().run(b).contiguous();  // [N, classes] f32
  Output out;
  out.shape = y.shape();
  out.data.assign(y.data<float>(), y.data<float>() + y.numel());
  return out;
}
}  // namespace

Session::Session(const std::string& model_file, const SessionOptions& options) : impl_(std::make_unique<Impl>()) {
  guarded([&] {
    check(options.threads >= 0 && options.threads <= 1024, "mpq: session threads {} outside [0, 1024]",
          options.threads);
    const auto t0 = std::chrono::steady_clock::now();
    native::CompileOptions co = native::CompileOptions::reproducible();
    co.autotune = options.autotune;
    {
      const ThreadCount tc(options.threads);  // compilation (autotuning) runs at the session's thread count
      impl_->m = deploy::load_model_file(model_file, co);
    }
    impl_->load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    impl_->threads = options.threads;
    const deploy::ModelFileInfo& fi = impl_->m.info;
    ModelInfo& i = impl_->info;
    i.model = fi.model, i.preprocessing = fi.preprocessing, i.token_input = fi.bert.has_value();
    i.classes = fi.classes, i.max_positions = fi.bert ? fi.bert->max_pos : 0;
    i.precisions = fi.precision_summary(), i.file_bytes = fi.file_bytes;
  });
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

const ModelInfo& Session::info() const { return impl_->info; }
int Session::threads() const { return impl_->threads; }
double Session::load_seconds() const { return impl_->load_seconds; }

void Session::set_threads(int n) {
  if (n < 0 || n > 1024) throw Error(fmt::format("mpq: session threads {} outside [0, 1024]", n));
  impl_->threads = n;  // from the next run on (a run in progress keeps its count)
}

Output Session::run(const float* input, size_t input_len, const std::vector<int64_t>& shape) {
  if (input == nullptr) throw Error("mpq: run: input is null");
  check_shape(shape, input_len, "input");
  if (impl_->info.token_input) {  // BERT: whole numbers as token ids
    std::vector<int32_t> ids(input_len);
    for (size_t i = 0; i < input_len; ++i) {
      const float v = input[i];
      if (!(v >= 0.0f && v < 2147483648.0f && std::floor(v) == v))
        throw Error(fmt::format("mpq: run: {} takes token ids; input[{}] = {} is not one", impl_->info.model, i, v));
      ids[i] = int32_t(v);
    }
    return run_tokens(ids.data(), ids.size(), shape);
  }
  if (!(shape.size() == 4 && shape[1] == 3 && shape[2] >= 32 && shape[3] >= 32))
    throw Error(fmt::format("mpq: run: {} takes images [N, 3, H, W] with H, W >= 32, got {}", impl_->info.model,
                            shape_str(shape)));
  return guarded([&] {
    models::Batch b;
    b.images = Tensor::empty(shape);  // [N, 3, H, W]
    std::memcpy(b.images.data<float>(), input, input_len * sizeof(float));
    return run_locked(*impl_, b);
  });
}

Output Session::run_tokens(const int32_t* ids, size_t ids_len, const std::vector<int64_t>& shape) {
  if (ids == nullptr) throw Error("mpq: run_tokens: ids is null");
  check_shape(shape, ids_len, "ids");
  if (!impl_->info.token_input)
    throw Error(fmt::format("mpq: run_tokens: {} takes images, not token ids", impl_->info.model));
  if (!(shape.size() == 2 && shape[1] <= impl_->info.max_positions))
    throw Error(fmt::format("mpq: run_tokens: bert takes ids [N, L] with L <= {}, got {}", impl_->info.max_positions,
                            shape_str(shape)));
  return guarded([&] {
    models::Batch b;
    b.seq_len = shape[1];
    b.ids.assign(ids, ids + ids_len);  // [N * L]; the engine checks each id against the vocabulary
    b.mask.resize(ids_len);
    for (size_t i = 0; i < ids_len; ++i) b.mask[i] = ids[i] != 0 ? 1 : 0;  // 0 = [PAD]
    return run_locked(*impl_, b);
  });
}

Array read_npy(const std::string& path) {
  return guarded([&] {
    const Tensor t = io::read_npy(path).contiguous();
    Array a;
    a.shape = t.shape();
    a.integer = !(t.dtype() == DType::f32 || t.dtype() == DType::f16 || t.dtype() == DType::bf16);
    if (!a.integer) {
      const Tensor f = t.dtype() == DType::f32 ? t : t.to(DType::f32);
      a.f32.assign(f.data<float>(), f.data<float>() + f.numel());
    } else if (t.dtype() == DType::i32) {
      a.i32.assign(t.data<int32_t>(), t.data<int32_t>() + t.numel());
    } else {  // i8 / u8
      a.i32.resize(size_t(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) a.i32[size_t(i)] = int32_t(t.flat(i));
    }
    return a;
  });
}

void write_npy(const std::string& path, const Output& out) {
  guarded([&] {
    check_shape(out.shape, out.data.size(), "output");
    Tensor t = Tensor::empty(out.shape);
    std::memcpy(t.data<float>(), out.data.data(), out.data.size() * sizeof(float));
    io::write_npy(path, t);  // atomic (core/file_io.h)
  });
}

const char* version() { return MPQ_VERSION; }

}  // namespace mpq::api
