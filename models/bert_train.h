// SST-2 glue for BERT: tokenised datasets, padded batches, evaluation and the from-scratch training loop
// (AdamW, linear warm-up then linear decay, dropout, gradient clipping at 1.0) shared by `mpq train`,
// `mpq eval --model bert` and the tests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/bert.h"
#include "models/data/sst2.h"
#include "models/data/tokenizer.h"

namespace mpq::models {

struct EncodedSet {
  std::vector<std::vector<int32_t>> ids;  // per example: [CLS] pieces [SEP], unpadded (<= max_len)
  std::vector<int32_t> labels;            // per example
  size_t size() const { return ids.size(); }
};
EncodedSet encode_sst2(const data::BertTokenizer& tok, const std::vector<data::Sst2Example>& ex, int max_len);

// Rows `idx` of `set`, padded with 0 ([PAD], mask 0) to the longest row.
Batch make_batch(const EncodedSet& set, const std::vector<size_t>& idx);

struct EvalResult {
  int64_t samples = 0;
  double accuracy = 0.0;  // top-1
  double loss = 0.0;      // mean cross-entropy
  double seconds = 0.0;
};
// No-grad, eval mode (no dropout); batches in dataset order.
EvalResult evaluate(Bert& model, const EncodedSet& set, int batch_size = 64);

struct TrainOptions {
  int epochs = 3;
  int batch = 32;
  float lr = 1e-3f;
  float warmup = 0.1f;  // fraction of all steps
  float weight_decay = 0.01f;
  float clip = 1.0f;  // max global grad norm (HF default); <= 0 disables
  uint64_t seed = 0;
  int64_t max_steps = -1;  // stop early (tests)
  bool progress = true;    // loss, examples/s and ETA on stderr
};
struct TrainResult {
  std::vector<float> step_losses;
  std::vector<EvalResult> dev;  // one per epoch when a dev set is given
  double seconds = 0.0;
};
// Trains in place. Batches are shuffled each epoch (seeded) and grouped by similar length to cut padding.
TrainResult train_bert(Bert& model, const EncodedSet& train, const EncodedSet* dev, const TrainOptions& opts);

}  // namespace mpq::models
