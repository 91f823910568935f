/* embed_c MODEL.mpq INPUT.npy OUTPUT.npy: the same as examples/embed, through the C API (mpq/mpq.h). */
#include <mpq/mpq.h>

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  char err[512];
  mpq_session* s = NULL;
  mpq_array* x = NULL;
  float* y = NULL;
  int64_t y_shape[2];
  int rc = 1;
  if (argc != 4) {
    fprintf(stderr, "usage: %s MODEL.mpq INPUT.npy OUTPUT.npy\n", argv[0]);
    return 2;
  }
  if (mpq_session_open(argv[1], 2, 0, &s, err, sizeof err) != MPQ_OK ||
      mpq_npy_read(argv[2], &x, err, sizeof err) != MPQ_OK) {
    fprintf(stderr, "embed_c: %s\n", err);
    goto done;
  }
  /* logits [N, classes]: N is the input's first dimension */
  size_t y_len = (size_t)mpq_array_shape(x)[0] * (size_t)mpq_session_classes(s);
  y = malloc(y_len * sizeof *y);
  mpq_status st = mpq_array_is_integer(x)
                      ? mpq_session_run_tokens(s, mpq_array_i32(x), mpq_array_size(x), mpq_array_shape(x),
                                               mpq_array_ndim(x), y, y_len, y_shape)
                      : mpq_session_run(s, mpq_array_f32(x), mpq_array_size(x), mpq_array_shape(x), mpq_array_ndim(x),
                                        y, y_len, y_shape);
  if (st != MPQ_OK) {
    fprintf(stderr, "embed_c: %s\n", mpq_session_error(s));
    goto done;
  }
  if (mpq_npy_write_f32(argv[3], y, y_len, y_shape, 2, err, sizeof err) != MPQ_OK) {
    fprintf(stderr, "embed_c: %s\n", err);
    goto done;
  }
  printf("%s: logits [%lld, %lld] -> %s\n", mpq_session_model(s), (long long)y_shape[0], (long long)y_shape[1],
         argv[3]);
  rc = 0;
done:
  free(y);
  mpq_array_free(x);
  mpq_session_close(s);
  return rc;
}
