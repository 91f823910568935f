// libFuzzer target: the deployable model file (deploy/model_file.h parse_model_file): safetensors container,
// metadata (format, version, architecture, preprocessing, quant_config, vocab), tensor table against the
// architecture and the layers' precisions, codes and scales in range, then the native compile. An input that
// loads (a small BERT) is also run once on a batch-1 input of 4 token ids, and its logits must have the
// declared shape: a file the loader accepts is one an application will run. Only mpq::Error may escape.
// Seeds (fuzz/corpus/fuzz_model_file): the golden tiny BERT (tests/golden/bert_tiny, with the first 50 lines
// of the committed vocabulary) exported at fp16, int8 and int4 with `mpq export`, calibrated on SST-2.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "core/error.h"
#include "deploy/model_file.h"

namespace {
// A model file may declare a full-size architecture; running it is what the loader's bounds allow, but the
// fuzzer only runs inputs whose compiled model is small enough to keep thousands of executions per second.
constexpr int64_t kMaxRunHidden = 64, kMaxRunLayers = 4, kMaxRunFfn = 256;  // seeds: 32, 2, 64
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace mpq;
  deploy::LoadedModel loaded;
  try {
    loaded = deploy::parse_model_file(std::span(data, size), "fuzz.mpq");
  } catch (const Error&) {
    return 0;
  }
  if (!loaded.model) std::abort();  // accepted without a model
  const deploy::ModelFileInfo& info = loaded.info;
  if (!info.bert) return 0;  // CNNs run on 224 x 224 images: too slow per input here
  const models::BertConfig& c = *info.bert;
  if (c.hidden > kMaxRunHidden || c.layers > kMaxRunLayers || c.ffn > kMaxRunFfn) return 0;
  try {
    const models::Batch in = deploy::latency_input(info, 4);  // one sequence of 4 token ids
    const Tensor out = loaded.model->forward(in);
    // oracle: one row of num_labels logits, as the file's architecture declares
    if (out.dim() != 2 || out.size(0) != 1 || out.size(1) != c.num_labels) std::abort();
  } catch (const Error&) {
  }
  return 0;
}
