// CLI glue shared by `mpq bench`, `mpq profile`, `mpq eval` for native (compiled, per-layer precision)
// execution: the default networks, the batch-1 input, the precision assignment from --precision /
// --config, calibration for uniform int8 / int4 requests, and timing statistics.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model.h"
#include "models/native/native.h"
#include "quant/fake_quant.h"
#include "tools/cli.h"

namespace mpq::cli {

// --weights PATH loads real weights; without it: torchvision ResNet50 / MobileNetV2 with the deterministic
// formula weights, or BERT-base (12 layers, hidden 768, 12 heads, ffn 3072, vocab 30522) with HF-style random
// weights -- speed only.
std::unique_ptr<models::Model> load_or_default_model(const Args& args);

// The batch-1 latency input: formula image [1, 3, 224, 224], or --seq token ids without padding (default: the
// BERT config's sequence length, 128 for the default BERT-base, 64 for the committed SST-2 checkpoint).
models::Batch latency_input(const Args& args, const models::Model& m);

// Samples to calibrate uniform int8 / int4 requests on (--calib N, default 8): the last N real images of --calib-data
// (default <shared>/imagenet-val-1300) in the model's preprocessing preset, or for BERT real SST-2 train
// sentences (--calib-data default <shared>/sst2) when the weights come with a vocab.txt, else `fallback`.
std::vector<models::Batch> calibration_batches(const Args& args, models::Model& m, const models::Batch& fallback);

// Activation ranges observed on `batches` (observers picked per layer input by the channel-weighted proxy).
quant::Calibration calibrate_batches(models::Model& m, const std::vector<models::Batch>& batches);

// The assignment a command runs: --config FILE (validated against the model; the weights identity is checked
// when the file states one and --weights is given), else every layer at --precision P (default fp32) with
// --int4-group G (0 = per output channel). Calibration runs only when P is int8 / int4. `label` gets a
// short description ("int8", or the config path).
Assignment requested_assignment(const Args& args, models::Model& m, const models::Batch& fallback, std::string& label);

// Every layer at precision p with the given calibration (needed for int8 / int4).
Assignment uniform_assignment(const models::Model& m, Precision p, const quant::Calibration& calib, int64_t int4_group);

struct Stats {
  double median = 0, min = 0, max = 0;
};
Stats stats_of(std::vector<double> v);  // throws on an empty list

// Median / min / max wall time (ms) of `runs` calls of `run` after `warmup` untimed calls.
Stats time_runs(const std::function<Tensor()>& run, int warmup, int runs);

// The measured per-layer latency table (`mpq profile`'s core): for each precision, the network compiled with
// every layer at it, `runs` profiled batch-1 runs after `warmup`, per quantizable layer the median step time.
// Returns the profile JSON (see tools/cmd_profile.cpp) whose "layers" / "measured" / "source" fields
// quant::latency_table_from_json reads. `progress` prints per-run progress on stderr.
nlohmann::json measure_latency_table(models::Model& m, const std::vector<Precision>& precisions,
                                     const quant::Calibration& calib, int64_t int4_group, const models::Batch& input,
                                     int warmup, int runs, bool progress);

// The end-to-end measurement the search confirms its final configuration with: compiles `a` natively and
// returns the median batch-1 latency (ms) of `runs` runs after `warmup` on the latency input.
Stats measure_assignment(models::Model& m, const Assignment& a, const models::Batch& input, int warmup = 3,
                         int runs = 20);

}  // namespace mpq::cli
