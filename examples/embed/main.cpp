// embed MODEL.mpq INPUT.npy OUTPUT.npy: logits of a deployed model file (mpq export) for a preprocessed image
// batch f32 [N, 3, H, W] (mpq preprocess) or BERT token ids [N, L], through the C++ API.
#include <mpq/mpq.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.mpq INPUT.npy OUTPUT.npy\n", argv[0]);
    return 2;
  }
  try {
    mpq::api::SessionOptions options;
    options.threads = 2;  // this session's OpenMP threads; other sessions keep their own
    mpq::api::Session session(argv[1], options);
    const mpq::api::Array x = mpq::api::read_npy(argv[2]);
    const mpq::api::Output y = x.integer ? session.run_tokens(x.i32.data(), x.i32.size(), x.shape)
                                         : session.run(x.f32.data(), x.f32.size(), x.shape);
    mpq::api::write_npy(argv[3], y);
    std::printf("%s (%s, loaded in %.1f ms): logits [%lld, %lld] -> %s\n", session.info().model.c_str(),
                session.info().precisions.c_str(), 1e3 * session.load_seconds(), (long long)y.shape[0],
                (long long)y.shape[1], argv[3]);
  } catch (const mpq::api::Error& e) {
    std::fprintf(stderr, "embed: %s\n", e.what());
    return 1;
  }
  return 0;
}
