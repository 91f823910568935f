/* mpq: run a deployed model file (.mpq, written by `mpq export`) from C.
 *
 * A C interface over mpq/mpq.hpp: opaque handles, status codes, no exception ever crosses it. Functions
 * returning mpq_status give MPQ_OK or an error; the message is
 *   - for mpq_session_open / mpq_npy_*: written into the caller's buffer `err` (err_size bytes, always
 *     NUL-terminated, truncated when longer; err may be NULL);
 *   - for calls on a session: mpq_session_error(session), valid until the next call on that session.
 * A NULL handle, NULL buffer, a shape whose product is not the buffer's length, or an output buffer shorter
 * than N * classes floats is an error (MPQ_ERROR_ARGUMENT / MPQ_ERROR_BUFFER), never a crash.
 *
 * Inputs and outputs as in mpq/mpq.hpp: CNN images f32 [N, 3, H, W] (preprocessed), BERT token ids int32
 * [N, L]; logits f32 [N, classes].
 *
 * Thread safety: calls on one session are serialized by the session; different sessions run concurrently
 * from different threads, each with its own thread count (mpq_session_set_threads); the library keeps no
 * global state that one session changes and another reads. Every handle must be released by its _close /
 * _free function exactly once.
 */
#ifndef MPQ_MPQ_H
#define MPQ_MPQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mpq_session mpq_session;
typedef struct mpq_array mpq_array;

typedef enum mpq_status {
  MPQ_OK = 0,
  MPQ_ERROR_ARGUMENT = 1, /* NULL handle / pointer, bad shape, thread count */
  MPQ_ERROR_BUFFER = 2,   /* output buffer too small (out_shape, when given, still receives [N, classes]) */
  MPQ_ERROR_RUNTIME = 3   /* the file, the model or the run failed (see the message) */
} mpq_status;

const char* mpq_version(void);

/* Opens a model file. threads: OpenMP threads of this session's runs (0: every core). autotune: 0 runs our
 * kernels only (the same output on every open), 1 times oneDNN's against ours per layer at open. */
mpq_status mpq_session_open(const char* path, int threads, int autotune, mpq_session** out, char* err, size_t err_size);
void mpq_session_close(mpq_session* session);              /* NULL is ignored */
const char* mpq_session_error(const mpq_session* session); /* "" when the last call succeeded */

mpq_status mpq_session_set_threads(mpq_session* session, int threads);
const char* mpq_session_model(const mpq_session* session);         /* "resnet50", ...; NULL for NULL */
const char* mpq_session_preprocessing(const mpq_session* session); /* "keras_caffe", ..., "wordpiece" */
int mpq_session_token_input(const mpq_session* session);           /* 1: BERT token ids */
int64_t mpq_session_classes(const mpq_session* session);           /* logits per sample; -1 for NULL */

/* input: input_len floats of shape[0..ndim); output: output_len floats, receives [N, classes]; out_shape
 * (may be NULL): 2 entries. BERT accepts whole-number floats as token ids. */
mpq_status mpq_session_run(mpq_session* session, const float* input, size_t input_len, const int64_t* shape,
                           size_t ndim, float* output, size_t output_len, int64_t* out_shape);
mpq_status mpq_session_run_tokens(mpq_session* session, const int32_t* ids, size_t ids_len, const int64_t* shape,
                                  size_t ndim, float* output, size_t output_len, int64_t* out_shape);

/* .npy helpers (f32 / f64 / f16 as float, i4 / i8 as int32). */
mpq_status mpq_npy_read(const char* path, mpq_array** out, char* err, size_t err_size);
void mpq_array_free(mpq_array* array); /* NULL is ignored */
size_t mpq_array_ndim(const mpq_array* array);
const int64_t* mpq_array_shape(const mpq_array* array);
size_t mpq_array_size(const mpq_array* array);        /* elements */
int mpq_array_is_integer(const mpq_array* array);     /* 1: read through mpq_array_i32 */
const float* mpq_array_f32(const mpq_array* array);   /* NULL for integer arrays */
const int32_t* mpq_array_i32(const mpq_array* array); /* NULL for float arrays */
mpq_status mpq_npy_write_f32(const char* path, const float* data, size_t len, const int64_t* shape, size_t ndim,
                             char* err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif /* MPQ_MPQ_H */
