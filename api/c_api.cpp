// The C API (include/mpq/mpq.h) over the C++ sessions: every entry point catches everything, so no
// exception crosses into C; messages go to the session or to the caller's buffer.
#include <algorithm>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "mpq/mpq.h"
#include "mpq/mpq.hpp"

struct mpq_session {
  mpq::api::Session s;
  std::string error;  // the last call's message, "" after a success
};

struct mpq_array {
  mpq::api::Array a;
};

namespace {

void put(char* err, size_t err_size, const std::string& msg) {
  if (err == nullptr || err_size == 0) return;
  const size_t n = std::min(msg.size(), err_size - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

// Runs f; an exception becomes a status and its message (passed to `report`).
template <class F, class R>
mpq_status call(F&& f, R&& report) {
  try {
    return f();
  } catch (const mpq::api::Error& e) {
    report(e.what());
    return MPQ_ERROR_RUNTIME;
  } catch (const std::exception& e) {
    report(std::string("mpq: ") + e.what());
    return MPQ_ERROR_RUNTIME;
  } catch (...) {
    report("mpq: unknown error");
    return MPQ_ERROR_RUNTIME;
  }
}

// A session call: clears the session's message, fills it on failure.
template <class F>
mpq_status on_session(mpq_session* s, F&& f) {
  if (s == nullptr) return MPQ_ERROR_ARGUMENT;
  s->error.clear();
  return call(f, [&](const std::string& m) { s->error = m; });
}

mpq_status fail_arg(mpq_session* s, const std::string& msg) {
  s->error = msg;
  return MPQ_ERROR_ARGUMENT;
}

// Shared tail of the two run functions: checks the output buffer, copies the logits.
template <class Run>
mpq_status run_into(mpq_session* s, const void* in, size_t in_len, const int64_t* shape, size_t ndim, float* output,
                    size_t output_len, int64_t* out_shape, Run&& run) {
  return on_session(s, [&]() -> mpq_status {
    if (in == nullptr) return fail_arg(s, "mpq: run: input is NULL");
    if (shape == nullptr || ndim == 0 || ndim > 8) return fail_arg(s, "mpq: run: shape is NULL or ndim not in [1, 8]");
    uint64_t n = 1;
    for (size_t i = 0; i < ndim; ++i) {
      if (shape[i] < 1 || uint64_t(shape[i]) > (uint64_t(1) << 40) / n)
        return fail_arg(s, "mpq: run: shape[" + std::to_string(i) + "] = " + std::to_string(shape[i]) +
                               " is < 1 or the shape is absurdly large");
      n *= uint64_t(shape[i]);
    }
    if (n != in_len)
      return fail_arg(
          s, "mpq: run: the shape holds " + std::to_string(n) + " values, the input buffer " + std::to_string(in_len));
    const int64_t classes = s->s.info().classes;
    if (out_shape) out_shape[0] = shape[0], out_shape[1] = classes;
    const uint64_t need = uint64_t(shape[0]) * uint64_t(classes);
    if (output == nullptr || output_len < need) {
      s->error = "mpq: run: the output buffer holds " + std::to_string(output == nullptr ? 0 : output_len) +
                 " floats, the logits need " + std::to_string(need) + " (N x classes)";
      return MPQ_ERROR_BUFFER;
    }
    const mpq::api::Output y = run(std::vector<int64_t>(shape, shape + ndim));
    std::memcpy(output, y.data.data(), y.data.size() * sizeof(float));
    return MPQ_OK;
  });
}

}  // namespace

extern "C" {

const char* mpq_version(void) { return mpq::api::version(); }

mpq_status mpq_session_open(const char* path, int threads, int autotune, mpq_session** out, char* err,
                            size_t err_size) {
  put(err, err_size, "");
  if (out == nullptr || path == nullptr) {
    put(err, err_size, "mpq: mpq_session_open: path and out must not be NULL");
    return MPQ_ERROR_ARGUMENT;
  }
  *out = nullptr;
  if (threads < 0) {
    put(err, err_size, "mpq: mpq_session_open: threads must be >= 0");
    return MPQ_ERROR_ARGUMENT;
  }
  return call(
      [&] {
        mpq::api::SessionOptions o;
        o.threads = threads, o.autotune = autotune != 0;
        *out = new mpq_session{mpq::api::Session(path, o), {}};
        return MPQ_OK;
      },
      [&](const std::string& m) { put(err, err_size, m); });
}

void mpq_session_close(mpq_session* session) { delete session; }

const char* mpq_session_error(const mpq_session* session) {
  return session == nullptr ? "mpq: NULL session" : session->error.c_str();
}

mpq_status mpq_session_set_threads(mpq_session* session, int threads) {
  return on_session(session, [&] {
    if (threads < 0) return fail_arg(session, "mpq: set_threads: threads must be >= 0");
    session->s.set_threads(threads);
    return MPQ_OK;
  });
}

const char* mpq_session_model(const mpq_session* s) { return s ? s->s.info().model.c_str() : nullptr; }
const char* mpq_session_preprocessing(const mpq_session* s) { return s ? s->s.info().preprocessing.c_str() : nullptr; }
int mpq_session_token_input(const mpq_session* s) { return s && s->s.info().token_input ? 1 : 0; }
int64_t mpq_session_classes(const mpq_session* s) { return s ? s->s.info().classes : -1; }

mpq_status mpq_session_run(mpq_session* session, const float* input, size_t input_len, const int64_t* shape,
                           size_t ndim, float* output, size_t output_len, int64_t* out_shape) {
  return run_into(session, input, input_len, shape, ndim, output, output_len, out_shape,
                  [&](const std::vector<int64_t>& sh) { return session->s.run(input, input_len, sh); });
}

mpq_status mpq_session_run_tokens(mpq_session* session, const int32_t* ids, size_t ids_len, const int64_t* shape,
                                  size_t ndim, float* output, size_t output_len, int64_t* out_shape) {
  return run_into(session, ids, ids_len, shape, ndim, output, output_len, out_shape,
                  [&](const std::vector<int64_t>& sh) { return session->s.run_tokens(ids, ids_len, sh); });
}

mpq_status mpq_npy_read(const char* path, mpq_array** out, char* err, size_t err_size) {
  put(err, err_size, "");
  if (out == nullptr || path == nullptr) {
    put(err, err_size, "mpq: mpq_npy_read: path and out must not be NULL");
    return MPQ_ERROR_ARGUMENT;
  }
  *out = nullptr;
  return call(
      [&] {
        *out = new mpq_array{mpq::api::read_npy(path)};
        return MPQ_OK;
      },
      [&](const std::string& m) { put(err, err_size, m); });
}

void mpq_array_free(mpq_array* array) { delete array; }
size_t mpq_array_ndim(const mpq_array* a) { return a ? a->a.shape.size() : 0; }
const int64_t* mpq_array_shape(const mpq_array* a) { return a ? a->a.shape.data() : nullptr; }
size_t mpq_array_size(const mpq_array* a) { return a ? (a->a.integer ? a->a.i32.size() : a->a.f32.size()) : 0; }
int mpq_array_is_integer(const mpq_array* a) { return a && a->a.integer ? 1 : 0; }
const float* mpq_array_f32(const mpq_array* a) { return a && !a->a.integer ? a->a.f32.data() : nullptr; }
const int32_t* mpq_array_i32(const mpq_array* a) { return a && a->a.integer ? a->a.i32.data() : nullptr; }

mpq_status mpq_npy_write_f32(const char* path, const float* data, size_t len, const int64_t* shape, size_t ndim,
                             char* err, size_t err_size) {
  put(err, err_size, "");
  if (path == nullptr || data == nullptr || shape == nullptr || ndim == 0) {
    put(err, err_size, "mpq: mpq_npy_write_f32: path, data and shape must not be NULL, ndim >= 1");
    return MPQ_ERROR_ARGUMENT;
  }
  return call(
      [&] {
        mpq::api::Output o;
        o.shape.assign(shape, shape + ndim);
        o.data.assign(data, data + len);
        mpq::api::write_npy(path, o);  // checks that the shape holds len values
        return MPQ_OK;
      },
      [&](const std::string& m) { put(err, err_size, m); });
}

}  // extern "C"
